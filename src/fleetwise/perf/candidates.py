"""A table of training plans as numpy columns: one row per plan, the input of every cost model.

Entry points: ``Candidates.from_plans`` (a few plans), ``Candidates.take`` (a subset),
``Candidates.plan(i)`` (row ``i`` back as a ``TrainingPlan``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from fleetwise.plan import RECOMPUTE, TrainingPlan

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Candidates:
    """Columns of plans. ``recompute`` holds 0 none, 1 selective, 2 full."""

    tp: IntArray
    pp: IntArray
    dp: IntArray
    cp: IntArray
    ep: IntArray
    mbs: IntArray
    vpp: IntArray
    recompute: IntArray
    recompute_frac: FloatArray
    zero: IntArray
    sp: BoolArray
    tp_overlap: BoolArray
    ep_overlap: BoolArray

    def __len__(self) -> int:
        return int(self.tp.shape[0])

    @classmethod
    def from_plans(cls, plans: Sequence[TrainingPlan]) -> Candidates:
        def col(get: object, dtype: type) -> npt.NDArray[np.generic]:
            return np.array([get(p) for p in plans], dtype=dtype)  # type: ignore[operator]

        return cls(
            tp=col(lambda p: p.tp, np.int64),
            pp=col(lambda p: p.pp, np.int64),
            dp=col(lambda p: p.dp, np.int64),
            cp=col(lambda p: p.cp, np.int64),
            ep=col(lambda p: p.ep, np.int64),
            mbs=col(lambda p: p.micro_batch, np.int64),
            vpp=col(lambda p: p.vpp, np.int64),
            recompute=col(lambda p: RECOMPUTE.index(p.recompute), np.int64),
            recompute_frac=col(lambda p: p.recompute_layers_frac, np.float64),
            zero=col(lambda p: p.zero, np.int64),
            sp=col(lambda p: p.sequence_parallel, np.bool_),
            tp_overlap=col(lambda p: p.tp_comm_overlap, np.bool_),
            ep_overlap=col(lambda p: p.ep_comm_overlap, np.bool_),
        )  # type: ignore[arg-type]

    def take(self, index: IntArray | BoolArray) -> Candidates:
        return Candidates(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def plan(self, i: int) -> TrainingPlan:
        return TrainingPlan(
            tp=int(self.tp[i]),
            pp=int(self.pp[i]),
            dp=int(self.dp[i]),
            cp=int(self.cp[i]),
            ep=int(self.ep[i]),
            micro_batch=int(self.mbs[i]),
            vpp=int(self.vpp[i]),
            recompute=RECOMPUTE[int(self.recompute[i])],
            recompute_layers_frac=float(self.recompute_frac[i]),
            zero=int(self.zero[i]),
            sequence_parallel=bool(self.sp[i]),
            tp_comm_overlap=bool(self.tp_overlap[i]),
            ep_comm_overlap=bool(self.ep_overlap[i]),
        )

    @property
    def chips(self) -> IntArray:
        return np.asarray(self.tp * self.pp * self.dp * self.cp, dtype=np.int64)

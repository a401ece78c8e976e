"""A table of training plans as numpy columns: one row per plan, the input of every cost model.

Entry points: ``Candidates.from_plans`` (a few plans), ``Candidates.take`` (a subset),
``Candidates.plan(i)`` (row ``i`` back as a ``TrainingPlan``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

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
    pp_inner: BoolArray | None = None  # rank order tp-cp-pp-dp (pipeline stages inside the domain); None = none

    def __len__(self) -> int:
        return int(self.tp.shape[0])

    @classmethod
    def from_plans(cls, plans: Sequence[TrainingPlan]) -> Candidates:
        def ints(values: list[int]) -> IntArray:
            return np.array(values, dtype=np.int64)

        def flags(values: list[bool]) -> BoolArray:
            return np.array(values, dtype=np.bool_)

        return cls(
            tp=ints([p.tp for p in plans]),
            pp=ints([p.pp for p in plans]),
            dp=ints([p.dp for p in plans]),
            cp=ints([p.cp for p in plans]),
            ep=ints([p.ep for p in plans]),
            mbs=ints([p.micro_batch for p in plans]),
            vpp=ints([p.vpp for p in plans]),
            recompute=ints([RECOMPUTE.index(p.recompute) for p in plans]),
            recompute_frac=np.array([p.recompute_layers_frac for p in plans], dtype=np.float64),
            zero=ints([p.zero for p in plans]),
            sp=flags([p.sequence_parallel for p in plans]),
            tp_overlap=flags([p.tp_comm_overlap for p in plans]),
            ep_overlap=flags([p.ep_comm_overlap for p in plans]),
            pp_inner=flags([p.rank_order == "tp-cp-pp-dp" for p in plans]),
        )

    def take(self, index: IntArray | BoolArray) -> Candidates:
        cols: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            cols[f.name] = None if v is None else v[index]
        return Candidates(**cols)

    @property
    def pipeline_inner(self) -> BoolArray:
        """True where pipeline stages sit inside the scale-up domain before data-parallel replicas."""
        return self.pp_inner if self.pp_inner is not None else np.zeros(len(self), dtype=np.bool_)

    @property
    def dp_stride(self) -> IntArray:
        """Ranks between neighbouring members of the (dp x cp) gradient group."""
        return np.asarray(np.where(self.pipeline_inner, self.tp * self.pp, self.tp), dtype=np.int64)

    @property
    def pp_stride(self) -> IntArray:
        """Ranks between neighbouring pipeline stages."""
        return np.asarray(np.where(self.pipeline_inner, self.tp * self.cp, self.tp * self.cp * self.dp),
                          dtype=np.int64)

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
            rank_order="tp-cp-pp-dp" if bool(self.pipeline_inner[i]) else "tp-cp-dp-pp",
        )

    @property
    def chips(self) -> IntArray:
        return np.asarray(self.tp * self.pp * self.dp * self.cp, dtype=np.int64)

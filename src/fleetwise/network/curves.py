"""Measured collective curves: achieved bus bandwidth by message size and group size, per fabric.

Entry points: ``CollectiveEfficiency`` (``busbw(S) = B_max·S/(S + S_half)`` with floor ``alpha_s``),
``parse_collective`` (one entry of the fitted efficiency file) and ``CollectiveCurves`` (the lookups a
network needs: ring, in-switch all-reduce and all-to-all curves of a chip's tiers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CollectiveEfficiency:
    """Bus bandwidth ``B_max * S / (S + S_half)`` plus a latency floor ``alpha_s`` (nccl-tests convention)."""

    busbw_frac: float
    s_half_bytes: float
    alpha_s: float
    by_group_size: dict[int, float] = field(default_factory=dict)
    applies_to: tuple[str, ...] = ()
    tier: str = "any"
    fabric_kind: str | None = None  # scale-out entries: "infiniband" | "roce" | None (any)
    algorithm: str = "ring"  # ring | nvls (NVLink SHARP, in-switch reduction) | mesh | torus | hierarchical
    basis_bytes_per_s: float | None = None  # when the fraction is of a fixed link rate, not the chip's tier

    def frac(self, group_size: npt.NDArray[np.int64] | FloatArray) -> FloatArray:
        """Fraction of link bandwidth reached as bus bandwidth, by group size (full meshes scale with peers)."""
        g = np.asarray(group_size, dtype=np.float64)
        if not self.by_group_size:
            return np.full_like(g, self.busbw_frac)
        sizes = np.array(sorted(self.by_group_size), dtype=np.float64)
        fracs = np.array([self.by_group_size[int(s)] for s in sizes])
        return np.asarray(np.interp(g, sizes, fracs), dtype=np.float64)


class CollectiveCurves(Protocol):
    """Where a network finds the fitted curves of a chip's tiers (``perf.efficiency.EfficiencyTable``)."""

    def collective(self, chip_id: str, tier: str, fabric_id: str | None = None) -> CollectiveEfficiency: ...

    def in_switch_all_reduce(self, chip_id: str) -> CollectiveEfficiency | None: ...

    def all_to_all(self, chip_id: str, tier: str) -> CollectiveEfficiency: ...


def _size_frac(v: Any) -> float:
    """A group size's fraction: ring ``busbw_frac``, or the mean of all-to-all dispatch and combine."""
    if not isinstance(v, dict):
        return float(v)
    if "busbw_frac" in v:
        return float(v["busbw_frac"])
    return 0.5 * (float(v["dispatch_frac"]) + float(v["combine_frac"]))


def parse_collective(raw: dict[str, Any], name: str = "") -> CollectiveEfficiency:
    """One fitted collective entry of ``perf/data/efficiency.yaml`` (ring, NVLS, mesh, all-to-all)."""
    by_size = {int(k): _size_frac(v) for k, v in (raw.get("by_group_size") or {}).items()}
    frac = raw.get("busbw_frac")
    if frac is None and by_size:
        frac = by_size[max(by_size)]
    applies = raw.get("applies_to") or ()
    fabric_kind = None
    if isinstance(applies, str) or list(applies) == ["any"]:
        # scale-out entries that apply to any chip on a fabric family, named ib_* / roce_*
        fabric_kind = "infiniband" if name.startswith("ib") else "roce" if name.startswith("roce") else None
        applies = ()
    basis = None
    bw_basis = str(raw.get("bw_basis") or "")
    if bw_basis.startswith("ici_link_"):
        # fraction of one ICI link; a ring on one torus axis drives a link in each direction
        basis = 2.0 * float(bw_basis.removeprefix("ici_link_").removesuffix("GBps")) * 1e9
    return CollectiveEfficiency(
        busbw_frac=float(frac if frac is not None else 0.7),
        s_half_bytes=float(raw.get("s_half_bytes", 16e6)),
        alpha_s=float(raw.get("alpha_s", 30e-6)),
        by_group_size=by_size,
        applies_to=tuple(applies),
        tier=str(raw.get("tier", "any")),
        fabric_kind=fabric_kind,
        basis_bytes_per_s=basis,
        algorithm=str(raw.get("algorithm") or "ring"),
    )

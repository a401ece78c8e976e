"""Achieved-efficiency models fitted on micro-benchmarks (GEMM, attention, HBM, collectives).

Entry points: ``load_efficiency()`` returns ``EfficiencyTable``; ``ChipEfficiency.gemm_time_s`` times
GEMM shapes column-wise. Parameters live in ``perf/data/efficiency.yaml`` (fitted by
``scripts/fit_efficiency.py`` on ``reference/measured-efficiency.yaml`` only, never on end-to-end runs).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.loader import load_data_file
from fleetwise.errors import SpecError
from fleetwise.network.curves import CollectiveEfficiency, parse_collective
from fleetwise.perf.calibration import families

FloatArray = npt.NDArray[np.float64]
DATA_FILE = Path(__file__).parent / "data" / "efficiency.yaml"


@dataclass(frozen=True, slots=True)
class GemmEfficiency:
    """``eff = e_max * t / (t + t0)`` with ``t`` the GEMM's time at ``e_max`` (measured-efficiency notes)."""

    e_max: float
    t0_s: float


@dataclass(frozen=True, slots=True)
class ChipEfficiency:
    """Every fitted efficiency of one chip."""

    chip_id: str
    gemm: dict[str, GemmEfficiency]
    attn_fwd: float
    attn_bwd: float
    attn_s_half: float
    hbm: float
    is_default: bool
    borrowed_from: str | None = None
    k_half: float = 208.0
    k_ref: float = 1024.0

    def gemm_params(self, precision: str) -> GemmEfficiency:
        for p in (precision, "bf16", "fp16"):
            if p in self.gemm:
                g = self.gemm[p]
                if p != precision and precision == "fp8":
                    # fp8 sits 5-10 points below bf16 relative to its own peak on Hopper (notes, GEMM ceiling)
                    return GemmEfficiency(g.e_max * 0.9, g.t0_s)
                return g
        return next(iter(self.gemm.values()))

    def gemm_time_s(
        self, flops: FloatArray, peak_flops: float, precision: str, k: FloatArray | None = None
    ) -> FloatArray:
        """Time of GEMMs of ``flops`` each (column-wise) at achieved efficiency.

        Args:
            flops: FLOPs of one GEMM (2·M·N·K), any shape.
            peak_flops: dense peak FLOP/s of the chip at this precision.
            precision: compute precision.
            k: reduction dimension; small K (<= 512) costs efficiency (notes, GEMM size).
        """
        g = self.gemm_params(precision)
        t = flops / (peak_flops * g.e_max) + g.t0_s
        if k is not None:
            # eff *= min(1, K/(K + k_half) · (k_ref + k_half)/k_ref): small reduction dims cost efficiency
            t = t * np.maximum(1.0, (1.0 + self.k_half / np.maximum(k, 1.0)) / (1.0 + self.k_half / self.k_ref))
        return np.asarray(t, dtype=np.float64)

    def attention_eff(self, seq: FloatArray, backward: bool = False) -> FloatArray:
        e = self.attn_bwd if backward else self.attn_fwd
        return np.asarray(e * seq / (seq + self.attn_s_half), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class EfficiencyTable:
    """Fitted efficiencies for every chip with data, defaults for the rest."""

    chips: dict[str, ChipEfficiency]
    defaults: ChipEfficiency
    collectives: dict[str, CollectiveEfficiency]
    alltoall: dict[str, CollectiveEfficiency]

    def chip(self, chip_id: str) -> ChipEfficiency:
        """The chip's fitted efficiencies; a chip without micro-benchmarks inherits those of the nearest
        fitted chip of its family (``borrowed_from`` says which), else the generic defaults."""
        if chip_id in self.chips:
            return self.chips[chip_id]
        members: dict[str, list[str]] = {}
        for chip, name in families().items():  # file order: neighbours in a family are the nearest chips
            members.setdefault(name, []).append(chip)
        for fam in members.values():
            if chip_id in fam:
                here = fam.index(chip_id)
                fitted = sorted((abs(fam.index(c) - here), fam.index(c) < here, c) for c in fam if c in self.chips)
                if fitted:
                    return replace(self.chips[fitted[0][2]], chip_id=chip_id, borrowed_from=fitted[0][2])
        return self.defaults

    def collective(self, chip_id: str, tier: str, fabric_id: str | None = None) -> CollectiveEfficiency:
        """The fitted ring-collective model for a chip's tier ('scaleup' | 'scaleout').

        Scale-out entries are matched by fabric family (InfiniBand, RoCE) first, then by chip.
        """
        if tier == "scaleout" and fabric_id:
            for c in self.collectives.values():
                if c.tier == tier and c.fabric_kind and fabric_id.startswith(c.fabric_kind):
                    return c
        for c in self.collectives.values():
            if c.tier == tier and chip_id in c.applies_to and c.algorithm != "nvls":
                return c
        for c in self.collectives.values():
            if c.tier == tier and c.fabric_kind == "infiniband":
                return c
        key = "scaleout_default" if tier == "scaleout" else "scaleup_default"
        return self.collectives[key]

    def in_switch_all_reduce(self, chip_id: str) -> CollectiveEfficiency | None:
        """The NVLink-SHARP (in-switch reduction) all-reduce model of a chip, where one was measured."""
        for c in self.collectives.values():
            if c.tier == "scaleup" and chip_id in c.applies_to and c.algorithm == "nvls":
                return c
        return None

    def all_to_all(self, chip_id: str, tier: str) -> CollectiveEfficiency:
        for c in self.alltoall.values():
            if chip_id in c.applies_to and c.tier in (tier, "any"):
                return c
        return self.collective(chip_id, tier)


def _chip(chip_id: str, raw: dict[str, Any], defaults: dict[str, Any], is_default: bool,
          small_k: dict[str, Any]) -> ChipEfficiency:
    gemm_raw = raw.get("gemm") or defaults["gemm_by_precision"]
    gemm = {p: GemmEfficiency(float(v["e_max"]), float(v["t0_s"])) for p, v in gemm_raw.items()}
    attn = raw.get("attention") or defaults["attention"]
    hbm = raw.get("hbm") or defaults["hbm"]
    return ChipEfficiency(
        chip_id=chip_id,
        gemm=gemm,
        attn_fwd=float(attn["fwd"]),
        attn_bwd=float(attn["bwd"]),
        attn_s_half=float(attn.get("s_half", 1024)),
        hbm=float(hbm["e"]),
        is_default=is_default,
        borrowed_from=str(raw.get("borrowed_from")) if raw.get("borrowed_from") else None,
        k_half=float(small_k.get("k_half", 208.0)),
        k_ref=float(small_k.get("k_ref", 1024.0)),
    )


def load_efficiency(path: Path = DATA_FILE) -> EfficiencyTable:
    """Read the fitted efficiency file."""
    data = load_data_file(path)
    if not isinstance(data, dict) or "chips" not in data:
        raise SpecError(f"{path}: expected top-level keys defaults, chips, collectives")
    d = data.get("defaults", {})
    defaults_raw = {
        "gemm_by_precision": {"bf16": d.get("gemm", {"e_max": 0.6, "t0_s": 5e-6})},
        "attention": d.get("attention", {"fwd": 0.45, "bwd": 0.35, "s_half": 1024}),
        "hbm": d.get("hbm", {"e": 0.75}),
    }
    small_k = data.get("gemm_small_k") or {}
    chips = {cid: _chip(cid, raw or {}, defaults_raw, False, small_k) for cid, raw in data["chips"].items()}
    defaults = _chip("default", {}, defaults_raw, True, small_k)
    collectives = {name: parse_collective(raw, name) for name, raw in (data.get("collectives") or {}).items()}
    collectives.setdefault("scaleup_default", CollectiveEfficiency(0.7, 16e6, 30e-6, tier="scaleup"))
    collectives.setdefault("scaleout_default", CollectiveEfficiency(0.7, 32e6, 40e-6, tier="scaleout"))
    alltoall = {name: parse_collective(raw, name) for name, raw in (data.get("alltoall") or {}).items()
                if raw.get("bw_basis")}  # latency-only entries (small-batch kernels) are not bandwidth models
    return EfficiencyTable(chips, defaults, collectives, alltoall)

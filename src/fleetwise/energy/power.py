"""Accelerator power by phase, clock frequency (DVFS) and power cap.

Entry points: ``chip_power(accel)`` resolves a chip's ``ChipPower`` from ``energy/data/power.yaml``;
``ChipPower.power_w(phase, f)``, ``ChipPower.time_factor(phase, f)`` and ``ChipPower.capped_clock(phase, cap_w)``
are column-wise (``f`` may be an array). Model: research/energy-network-placement.md §4.1–4.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleetwise.catalog.loader import data_layers, format_validation_error, load_data_file
from fleetwise.catalog.types import Accelerator
from fleetwise.errors import SpecError
from fleetwise.perf.calibration import family_of

FloatArray = npt.NDArray[np.float64]
Phase = Literal["compute", "memory", "comm", "wait"]
PHASES: tuple[Phase, ...] = ("compute", "memory", "comm", "wait")
POWER_FILE = Path(__file__).parent / "data" / "power.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PhaseValues(_Strict):
    compute: float = Field(ge=0.0, le=1.0)
    memory: float = Field(ge=0.0, le=1.0)
    comm: float = Field(ge=0.0, le=1.0)
    wait: float = Field(ge=0.0, le=1.0)


class PowerEntry(_Strict):
    """A family's (or the defaults') parameters as written in power.yaml; absent = inherit the defaults."""

    idle_frac_of_tdp: float | None = Field(default=None, ge=0.0, lt=1.0)
    activity: PhaseValues | None = None
    core_share: PhaseValues | None = None
    compute_bound_share: PhaseValues | None = None
    dvfs_exponent: float | None = Field(default=None, ge=1.0, le=4.0)
    f_min_ratio: float | None = Field(default=None, gt=0.0, le=1.0)
    sources: tuple[str, ...] = ()
    estimated: tuple[str, ...] = ()


class PowerFile(_Strict):
    defaults: PowerEntry
    families: dict[str, PowerEntry] = Field(default_factory=dict)
    unknown_tdp_w: float = Field(gt=0.0, le=5000.0)


@dataclass(frozen=True, slots=True)
class ChipPower:
    """Resolved power parameters of one accelerator (watts; clocks as a share of the maximum)."""

    chip_id: str
    idle_w: float
    max_w: float
    activity: dict[str, float]
    core_share: dict[str, float]
    compute_bound_share: dict[str, float]
    dvfs_exponent: float
    f_min: float
    sources: tuple[str, ...]
    derived: tuple[str, ...]  # fields that are TDP-derived defaults or estimates, not measurements

    def dynamic_w(self, phase: Phase) -> float:
        return (self.max_w - self.idle_w) * self.activity[phase]

    def power_w(self, phase: Phase, f: FloatArray | float) -> FloatArray:
        """Chip power in ``phase`` at clock share ``f`` (W): idle + activity · (core · f^a + uncore)."""
        k = self.core_share[phase]
        f_arr = np.asarray(f, dtype=np.float64)
        return np.asarray(self.idle_w + self.dynamic_w(phase) * (k * f_arr**self.dvfs_exponent + (1.0 - k)))

    def time_factor(self, phase: Phase, f: FloatArray | float) -> FloatArray:
        """Time at clock ``f`` over time at the maximum clock: roofline, only the core-bound part stretches."""
        s = self.compute_bound_share[phase]
        f_arr = np.asarray(f, dtype=np.float64)
        if s <= 0.0:
            return np.ones_like(f_arr)
        return np.asarray(np.maximum(s / f_arr, 1.0))

    @property
    def cap_floor_w(self) -> float:
        """The lowest power cap DVFS can hold in every phase: the busiest phase's draw at the lowest clock."""
        return max(float(self.power_w(p, self.f_min)) for p in PHASES)

    def capped_clock(self, phase: Phase, cap_w: float | None) -> float:
        """Highest clock at which ``phase`` draws at most ``cap_w``; 1.0 where the cap is inert.

        A cap below the phase's power at the lowest clock cannot be met by DVFS: the clock stops at f_min.
        """
        if cap_w is None or float(self.power_w(phase, 1.0)) <= cap_w:
            return 1.0
        k = self.core_share[phase]
        dyn = self.dynamic_w(phase)
        if dyn <= 0.0 or k <= 0.0:
            return 1.0
        x = ((cap_w - self.idle_w) / dyn - (1.0 - k)) / k  # = f^a at the cap
        if x <= 0.0:
            return self.f_min
        return float(np.clip(x ** (1.0 / self.dvfs_exponent), self.f_min, 1.0))


def load_power_file(path: Path = POWER_FILE) -> PowerFile:
    """Parse power.yaml (user catalog folders' power.yaml layered over it); a bad value raises ``SpecError``
    naming the file and field."""
    return _load_power_file(path, tuple(data_layers()))


@lru_cache(maxsize=4)
def _load_power_file(path: Path, layers: tuple[Path, ...]) -> PowerFile:
    data = load_data_file(path)
    try:
        return PowerFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(str(path), exc)) from None


def chip_power(accel: Accelerator, path: Path = POWER_FILE) -> ChipPower:
    """The power parameters of ``accel``: catalog TDP/idle, its family's entry, then the TDP-derived defaults."""
    pf = load_power_file(path)
    d = pf.defaults
    fam_name = family_of(accel.id)
    fam = pf.families.get(fam_name, PowerEntry())
    derived: list[str] = list(fam.estimated) if fam_name in pf.families else ["all parameters (no family entry)"]
    max_w = accel.tdp_w
    if max_w is None:
        max_w = pf.unknown_tdp_w
        derived.append(f"max_w (no tdp_w in the catalog: placeholder {pf.unknown_tdp_w:.0f} W)")
    idle_frac = fam.idle_frac_of_tdp if fam.idle_frac_of_tdp is not None else d.idle_frac_of_tdp
    assert idle_frac is not None
    if accel.idle_w is not None:
        idle_w = accel.idle_w
        derived = [x for x in derived if x != "idle_frac_of_tdp"]
    else:
        idle_w = idle_frac * max_w
        if "idle_frac_of_tdp" not in derived:
            derived.append("idle_w (TDP-derived default)")

    def pick(name: str) -> PhaseValues:
        v = getattr(fam, name) or getattr(d, name)
        assert v is not None
        return v  # type: ignore[no-any-return]

    exp = fam.dvfs_exponent or d.dvfs_exponent
    fmin = fam.f_min_ratio or d.f_min_ratio
    assert exp is not None and fmin is not None
    return ChipPower(
        chip_id=accel.id,
        idle_w=float(idle_w),
        max_w=float(max(max_w, idle_w)),
        activity=pick("activity").model_dump(),
        core_share=pick("core_share").model_dump(),
        compute_bound_share=pick("compute_bound_share").model_dump(),
        dvfs_exponent=float(exp),
        f_min=float(fmin),
        sources=tuple(fam.sources) + tuple(d.sources),
        derived=tuple(derived),
    )

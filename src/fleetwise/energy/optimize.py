"""Power settings for one plan: the per-stage frequency plan, a clock sweep and a power-cap sweep.

Entry points: ``sweep_settings(c, cols, s, settings_list)`` → one ``SettingOutcome`` per setting (step time,
energy and power of plan row 0); ``stage_plan_outcome`` compares the stage plan with stock clocks.
The search over plans *and* settings lives in ``fleetwise.search.evaluate.search_energy_optimal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from fleetwise.energy.training import EnergySetup, PowerSettings, training_energy
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.training import StepColumns, TrainingSetup

CAP_FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
CLOCKS = (1.0, 0.97, 0.94, 0.9, 0.85, 0.8, 0.7, 0.6)


@dataclass(frozen=True, slots=True)
class SettingOutcome:
    """A plan under one power setting: step time (s), facility energy per step (J), chip power (W)."""

    settings: PowerSettings
    step_time_s: float
    step_energy_j: float
    avg_power_w_per_chip: float

    def versus(self, ref: SettingOutcome) -> tuple[float, float]:
        """(energy saving, slowdown) as fractions of ``ref``."""
        return 1.0 - self.step_energy_j / ref.step_energy_j, self.step_time_s / ref.step_time_s - 1.0


def sweep_settings(c: Candidates, cols: StepColumns, s: TrainingSetup, e: EnergySetup,
                   settings: Sequence[PowerSettings], row: int = 0) -> list[SettingOutcome]:
    """Evaluate row ``row`` of the plan table under each power setting."""
    out = []
    for st in settings:
        ec = training_energy(c, cols, s, replace(e, settings=st))
        out.append(SettingOutcome(st, float(ec.step_time_s[row]), float(ec.step_energy_j[row]),
                                  float(ec.avg_power_w_per_chip[row])))
    return out


def cap_settings(e: EnergySetup, fractions: Sequence[float] = CAP_FRACTIONS) -> list[PowerSettings]:
    """A global power-cap sweep: caps at fractions of the chip's maximum power (those the chip can hold)."""
    return [PowerSettings(cap_w=f * e.chip.max_w) for f in fractions if f * e.chip.max_w >= e.chip.cap_floor_w]


def clock_settings(e: EnergySetup, clocks: Sequence[float] = CLOCKS, stage_plan: bool = True) -> list[PowerSettings]:
    return [PowerSettings(clock=f, stage_plan=stage_plan) for f in clocks if f >= e.chip.f_min]

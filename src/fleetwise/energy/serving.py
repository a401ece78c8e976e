"""Energy of a serving phase mix (prefill, decode, idle) at a clock or power cap, for the serving planner.

Entry point: ``phase_mix_energy(chip, mix, clock=1.0, cap_w=None)`` → ``PhaseMixEnergy``. A serving phase is
described by its time at the maximum clock and the share of that time in each power phase, e.g. prefill
``{"compute": 0.8, "memory": 0.1, "comm": 0.1}``, decode ``{"memory": 0.85, "comm": 0.15}``, idle ``{"wait": 1}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetwise.energy.power import PHASES, ChipPower
from fleetwise.errors import SpecError


@dataclass(frozen=True, slots=True)
class PhaseMixEnergy:
    """Per-chip energy (J), time (s) and average power (W) of a phase mix at one clock setting."""

    energy_j: float
    time_s: float
    clock_by_phase: dict[str, float]
    energy_by_phase_j: dict[str, float]

    @property
    def avg_power_w(self) -> float:
        return self.energy_j / self.time_s if self.time_s > 0 else 0.0


def phase_mix_energy(chip: ChipPower, time_s: float, mix: Mapping[str, float], clock: float = 1.0,
                     cap_w: float | None = None) -> PhaseMixEnergy:
    """Energy of ``time_s`` seconds (at the maximum clock) split over power phases by ``mix`` (shares sum to 1).

    Args:
        chip: the accelerator's power parameters (``fleetwise.energy.power.chip_power``).
        time_s: duration of the work at the maximum clock, seconds.
        mix: share of that time per phase (compute, memory, comm, wait).
        clock: requested clock as a share of the maximum (DVFS), in [f_min, 1].
        cap_w: optional per-chip power cap, W; inert in phases that draw less.

    Returns:
        ``PhaseMixEnergy``: the lengthened time, the energy and the clock each phase ran at.
    """
    bad = [k for k in mix if k not in PHASES]
    if bad or abs(sum(mix.values()) - 1.0) > 1e-6 or any(v < 0 for v in mix.values()):
        raise SpecError(f"phase mix: shares over {', '.join(PHASES)} must be >= 0 and sum to 1 (got {dict(mix)})")
    if not chip.f_min - 1e-9 <= clock <= 1.0:
        raise SpecError(f"phase mix: clock must be in [{chip.f_min:.2f}, 1] (got {clock})")
    energy: dict[str, float] = {}
    clocks: dict[str, float] = {}
    total_t = 0.0
    for phase in PHASES:
        share = mix.get(phase, 0.0)
        if share <= 0.0:
            continue
        f = min(clock, chip.capped_clock(phase, cap_w))
        t = time_s * share * float(chip.time_factor(phase, f))
        clocks[phase] = f
        energy[phase] = float(chip.power_w(phase, f)) * t
        total_t += t
    return PhaseMixEnergy(sum(energy.values()), total_t, clocks, energy)

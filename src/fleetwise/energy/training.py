"""Energy, power, cost and carbon of every plan in a training candidate table, under power settings.

Entry points: ``energy_setup(accel, system, ...)`` → ``EnergySetup``; ``training_energy(c, cols, s, e)`` →
``EnergyColumns`` (column-wise); ``EnergyColumns.row(i)`` → ``TrainingEnergy`` (one plan, with its breakdown).

Each pipeline stage runs the phases of the step breakdown: core-bound compute (GEMMs, attention,
recompute, LM head), memory-bound kernels and the optimiser, exposed communication, and waiting (bubbles;
on stages other than the last, the time the last stage spends on the LM head). Clock and cap change phase
times by ``ChipPower.time_factor``; the bubble scales with the stage time (Narayanan et al. 2021, Sec. 2.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.types import Accelerator, System
from fleetwise.energy.facility import SITES_FILE, NodePower, Site, load_sites, node_power
from fleetwise.energy.power import POWER_FILE, ChipPower, Phase, chip_power
from fleetwise.energy.prices import Pricing, hardware_cost
from fleetwise.errors import SpecError
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.training import StepColumns, TrainingSetup
from fleetwise.units import HOUR

FloatArray = npt.NDArray[np.float64]

ENERGY_ASSUMPTIONS: tuple[str, ...] = (
    "chip power = idle + activity(phase) x (core share x f^a + uncore share) x (TDP - idle); parameters per chip "
    "family in energy/data/power.yaml, TDP-derived where unmeasured",
    "time at clock f: only the core-bound share stretches (roofline); exposed communication is link-bound",
    "overlapped communication adds no chip power beyond the compute it hides behind",
    "hosts and NICs draw constant power for the whole step; switch ports counted per NIC",
    "facility energy = PUE x IT energy; CO2 = facility kWh x site grid intensity (operational only, no embodied)",
    "hardware cost = site rent per chip-hour, else catalog price amortised over its busy life",
)


@dataclass(frozen=True, slots=True)
class PowerSettings:
    """How the chips are clocked. ``clock``: requested core clock share for the critical path;
    ``cap_w``: per-chip power cap; ``stage_plan``: slow non-critical stages to their slack and drop the
    clock to its minimum while waiting (Perseus-style, never lengthens the step)."""

    clock: float = 1.0
    cap_w: float | None = None
    stage_plan: bool = False

    def label(self) -> str:
        parts = [f"clock {self.clock:.2f}"]
        if self.cap_w is not None:
            parts.append(f"cap {self.cap_w:.0f} W")
        if self.stage_plan:
            parts.append("stage plan")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class EnergySetup:
    """Everything the energy model needs besides the step columns."""

    chip: ChipPower
    node: NodePower
    site_id: str
    site: Site
    usd_per_chip_hour: float | None
    settings: PowerSettings = field(default_factory=PowerSettings)
    hardware_price: str = "no price known: electricity only"  # which price usd_per_chip_hour came from


def check_power_settings(chip: ChipPower, settings: PowerSettings) -> None:
    """Raise ``SpecError`` for a clock or power cap the chip cannot run at, naming the allowed range.

    A cap below ``chip.cap_floor_w`` cannot be honoured (DVFS stops at the lowest clock, and the chip would
    draw more than the cap), so it is refused rather than silently exceeded; a cap above the chip's maximum
    power is inert and accepted.
    """
    if not chip.f_min <= settings.clock <= 1.0:
        raise SpecError(f"clock (--clock) must be in [{chip.f_min:.2f}, 1] of {chip.chip_id}'s maximum clock "
                        f"(got {settings.clock:g})")
    cap = settings.cap_w
    if cap is not None and not cap >= chip.cap_floor_w:
        raise SpecError(f"power cap (--cap / --power-cap-w) {cap:g} W is below what {chip.chip_id} can be held "
                        f"to (its busiest phase at the lowest clock); allowed: {chip.cap_floor_w:.0f} W or more "
                        f"(up to {chip.max_w:.0f} W; above that the cap is inert)")


def energy_setup(accel: Accelerator, system: System, site: str | None = None,
                 settings: PowerSettings | None = None, sites_file: Path = SITES_FILE,
                 power_file: Path = POWER_FILE, pricing: Pricing = "purchase") -> EnergySetup:
    """Resolve the chip's power parameters, the node overhead and the site (default: the file's default site)."""
    settings = settings or PowerSettings()
    chip = chip_power(accel, power_file)
    check_power_settings(chip, settings)
    sf = load_sites(Path(sites_file))
    sid, st = sf.site(site)
    cost = hardware_cost(accel, sid, st.rent_usd_per_chip_hour, sf.node.lifetime_years, sf.node.utilisation, pricing)
    return EnergySetup(chip=chip, node=node_power(system, accel, chip, sf.node), site_id=sid, site=st,
                       usd_per_chip_hour=cost.usd_per_chip_hour, settings=settings, hardware_price=cost.basis)


def for_training(s: TrainingSetup, site: str | None = None, settings: PowerSettings | None = None) -> EnergySetup:
    return energy_setup(s.accel, s.system, site, settings)


@dataclass(frozen=True, slots=True)
class PhaseUse:
    """One phase of one group of stages: chips per step spend ``time_s`` at ``power_w`` (columns)."""

    chips: FloatArray
    power_w: FloatArray
    time_s: FloatArray
    clock: FloatArray

    @property
    def energy_j(self) -> FloatArray:
        return np.asarray(self.chips * self.power_w * self.time_s)


@dataclass(frozen=True, slots=True)
class EnergyColumns:
    """Per-plan step time under the settings and energy per step (J) by component."""

    step_time_s: FloatArray
    phases: dict[str, PhaseUse]  # "<group>.<phase>": group is "critical" (last stage) or "other" stages
    host_j: FloatArray
    network_j: FloatArray
    pue: float
    tokens_per_step: float
    chips: FloatArray
    nodes: FloatArray
    usd_per_kwh: float
    gco2_per_kwh: float
    usd_per_chip_hour: float | None
    hardware_price: str = ""

    @property
    def accelerator_j(self) -> FloatArray:
        return np.asarray(sum(p.energy_j for p in self.phases.values()))

    @property
    def it_j(self) -> FloatArray:
        return np.asarray(self.accelerator_j + self.host_j + self.network_j)

    @property
    def step_energy_j(self) -> FloatArray:
        """Facility energy per step (J), PUE included."""
        return np.asarray(self.it_j * self.pue)

    @property
    def energy_j_per_token(self) -> FloatArray:
        return np.asarray(self.step_energy_j / self.tokens_per_step)

    @property
    def step_cost_usd(self) -> FloatArray:
        electricity = self.step_energy_j / 3.6e6 * self.usd_per_kwh
        rent = self.chips * self.step_time_s / HOUR * (self.usd_per_chip_hour or 0.0)
        return np.asarray(electricity + rent)

    @property
    def step_co2_kg(self) -> FloatArray:
        return np.asarray(self.step_energy_j / 3.6e6 * self.gco2_per_kwh / 1000.0)

    @property
    def avg_power_w_per_chip(self) -> FloatArray:
        """Accelerator-only average power (the NVML / npu-smi boundary)."""
        return np.asarray(self.accelerator_j / (self.chips * self.step_time_s))

    @property
    def avg_power_w_per_node(self) -> FloatArray:
        """Wall power of one node (chips, host, network share), PUE excluded."""
        return np.asarray(self.it_j / (self.nodes * self.step_time_s))

    def objective(self, name: str) -> FloatArray:
        """The column a search ranks by: time, energy, cost or carbon (per step)."""
        cols = {"time": "step_time_s", "energy": "step_energy_j", "cost": "step_cost_usd", "carbon": "step_co2_kg"}
        if name not in cols:
            raise SpecError(f"objective must be one of {', '.join(cols)} (got {name!r})")
        return np.asarray(getattr(self, cols[name]))  # only the one asked for: each is a pass over the phases


def _phase(e: EnergySetup, phase: Phase, chips: FloatArray, time_s: FloatArray, clock: float | FloatArray
           ) -> PhaseUse:
    if np.ndim(clock) == 0:  # one clock for every plan: its power once, on a one-element column, read as a column
        one = np.full(1, clock, dtype=np.float64)
        f = np.broadcast_to(one, time_s.shape)
        power = np.broadcast_to(e.chip.power_w(phase, one), time_s.shape)
        return PhaseUse(chips=chips, power_w=power, time_s=np.asarray(time_s), clock=f)
    f = np.broadcast_to(np.asarray(clock, dtype=np.float64), time_s.shape).astype(np.float64)
    return PhaseUse(chips=chips, power_w=e.chip.power_w(phase, f), time_s=np.asarray(time_s), clock=f)


def training_energy(c: Candidates, cols: StepColumns, s: TrainingSetup, e: EnergySetup) -> EnergyColumns:
    """Energy of every plan's step under ``e.settings``; the step may lengthen under a low clock or cap."""
    chip, st = e.chip, e.settings
    zeros = np.zeros_like(cols.compute_s)
    membound = cols.membound_s if cols.membound_s is not None else zeros
    head = cols.head_s if cols.head_s is not None else zeros
    f_c = min(st.clock, chip.capped_clock("compute", st.cap_w))
    f_m = min(st.clock, chip.capped_clock("memory", st.cap_w))
    f_n = min(st.clock, chip.capped_clock("comm", st.cap_w))
    f_w = chip.f_min if st.stage_plan else min(st.clock, chip.capped_clock("wait", st.cap_w))

    core1 = np.maximum(cols.compute_s + cols.recompute_s - membound, 0.0)  # (n,) core-bound, max clock
    inner_comm1 = cols.tp_comm_s + cols.cp_comm_s + cols.ep_comm_s + cols.pp_comm_s
    core = core1 * chip.time_factor("compute", f_c)
    mem = membound * chip.time_factor("memory", f_m)
    inner_comm = inner_comm1 * chip.time_factor("comm", f_n)
    stage1 = core1 + membound + inner_comm1
    stretch = np.divide(core + mem + inner_comm, stage1, out=np.ones_like(stage1), where=stage1 > 0)
    bubble = cols.bubble_s * stretch
    dp = cols.dp_comm_s * chip.time_factor("comm", f_n)
    opt = cols.optimizer_s * chip.time_factor("memory", f_m)
    step = core + mem + inner_comm + bubble + dp + opt

    pp = c.pp.astype(np.float64)
    chips = c.chips.astype(np.float64)
    crit = chips / pp  # the last stage's chips
    other = chips - crit
    # other stages do the same work minus the LM head; with a stage plan they stretch it over their slack
    other_core1 = np.maximum(core1 - head, 0.0)
    f_o: float | FloatArray
    if st.stage_plan:
        f_o = np.clip(np.divide(other_core1, core, out=np.ones_like(core), where=core > 0), chip.f_min, f_c)
        other_core = other_core1 * chip.time_factor("compute", f_o)
    else:  # one clock for all plans: its time factor once, on a one-element column (same ufuncs)
        f_o = f_c
        other_core = other_core1 * chip.time_factor("compute", np.full(1, f_c, dtype=np.float64))
    slack = np.maximum(core - other_core, 0.0)
    mem_opt = mem + opt  # both stage groups spend the same memory-bound and communication time
    comm = inner_comm + dp
    phases = {
        "critical.compute": _phase(e, "compute", crit, core, f_c),
        "critical.memory": _phase(e, "memory", crit, mem_opt, f_m),
        "critical.comm": _phase(e, "comm", crit, comm, f_n),
        "critical.wait": _phase(e, "wait", crit, bubble, f_w),
        "other.compute": _phase(e, "compute", other, other_core, f_o),
        "other.memory": _phase(e, "memory", other, mem_opt, f_m),
        "other.comm": _phase(e, "comm", other, comm, f_n),
        "other.wait": _phase(e, "wait", other, bubble + slack, f_w),
    }
    nodes = chips / e.node.chips_per_node
    return EnergyColumns(
        step_time_s=np.asarray(step),
        phases=phases,
        host_j=np.asarray(nodes * e.node.host_w * step),
        network_j=np.asarray(nodes * e.node.network_w * step),
        pue=e.site.pue,
        tokens_per_step=float(s.job.tokens_per_step),
        chips=chips,
        nodes=np.asarray(nodes),
        usd_per_kwh=e.site.usd_per_kwh,
        gco2_per_kwh=e.site.gco2_per_kwh,
        usd_per_chip_hour=e.usd_per_chip_hour,
        hardware_price=e.hardware_price,
    )


@dataclass(frozen=True, slots=True)
class TrainingEnergy:
    """One plan's power, energy, cost and carbon with their breakdowns (per step unless named per job)."""

    settings: str
    site: str
    pue: float
    step_time_s: float
    avg_power_w_per_chip: float  # accelerators only
    avg_power_w_per_node: float  # chips + host + network share, PUE excluded
    step_energy_j: float  # facility energy, PUE included
    energy_j_per_token: float
    step_cost_usd: float
    step_co2_kg: float
    job_energy_mwh: float | None
    job_cost_usd: float | None
    job_co2_t: float | None
    energy_breakdown_j: dict[str, float]  # accelerator phases, host, network, facility overhead; sums to step
    phases: dict[str, tuple[float, float, float]]  # name -> (chips, power W, seconds per step)
    cost_breakdown_usd: dict[str, float]
    derived: tuple[str, ...]
    hardware_price: str = ""  # which price the hardware cost used (rent, amortised purchase, or none)

    def reconcile_error(self) -> float:
        """|Σ chips·power·time + host + network| · PUE against the total, as a fraction (should be ~0)."""
        acc = sum(n * p * t for n, p, t in self.phases.values())
        it = acc + self.energy_breakdown_j["host"] + self.energy_breakdown_j["network"]
        return abs(it * self.pue - self.step_energy_j) / self.step_energy_j


def row_totals(ec: EnergyColumns) -> tuple[FloatArray, ...]:
    """Per row, the totals ``energy_row`` reports: (accelerator J, IT J, facility J per step with PUE,
    electricity USD, hardware USD, cost USD, CO2 kg per step). The phases are summed once (each property
    sums them again), by the same expressions as the properties."""
    acc = ec.accelerator_j
    it = np.asarray(acc + ec.host_j + ec.network_j)
    step = np.asarray(it * ec.pue)
    electricity = np.asarray(step / 3.6e6 * ec.usd_per_kwh)
    rent = np.asarray(ec.chips * ec.step_time_s / HOUR * (ec.usd_per_chip_hour or 0.0))
    co2 = np.asarray(step / 3.6e6 * ec.gco2_per_kwh / 1000.0)
    return acc, it, step, electricity, rent, np.asarray(electricity + rent), co2


def _one_row(ec: EnergyColumns, i: int) -> EnergyColumns:
    """Row ``i`` as one-element columns (views)."""
    r = slice(i, i + 1)
    phases = {k: PhaseUse(p.chips[r], p.power_w[r], p.time_s[r], p.clock[r]) for k, p in ec.phases.items()}
    return replace(ec, step_time_s=ec.step_time_s[r], phases=phases, host_j=ec.host_j[r], network_j=ec.network_j[r],
                   chips=ec.chips[r], nodes=ec.nodes[r])


def energy_row(ec: EnergyColumns, i: int, e: EnergySetup, steps: float | None) -> TrainingEnergy:
    """Row ``i`` of the columns as a ``TrainingEnergy``; ``steps`` = optimiser steps of the whole job."""
    return energy_rows(_one_row(ec, i), e, steps)(0)  # the row alone: the same expressions on one element


def energy_rows(ec: EnergyColumns, e: EnergySetup, steps: float | None) -> Callable[[int], TrainingEnergy]:
    """A reader of rows of the columns as ``TrainingEnergy`` (as ``energy_row``); the per-row totals are
    computed once for all rows, each read takes its row."""
    acc, it, step, electricity_usd, rent_usd, cost_usd, co2_kg = row_totals(ec)
    phase_j = {k: p.energy_j for k, p in ec.phases.items()}
    per_chip = np.asarray(acc / (ec.chips * ec.step_time_s))
    per_node = np.asarray(it / (ec.nodes * ec.step_time_s))
    per_token = np.asarray(step / ec.tokens_per_step)
    derived = e.chip.derived + e.node.derived
    if ec.usd_per_chip_hour is None:
        derived += ("hardware cost: no rent or price known (counted as 0)",)

    def row(i: int) -> TrainingEnergy:
        step_j = float(step[i])
        it_j = float(it[i])
        breakdown = {f"accelerator.{k}": float(phase_j[k][i]) for k, p in ec.phases.items() if p.chips[i] > 0}
        breakdown["host"] = float(ec.host_j[i])
        breakdown["network"] = float(ec.network_j[i])
        breakdown["facility_overhead"] = step_j - it_j
        electricity, rent, cost, co2 = (float(electricity_usd[i]), float(rent_usd[i]), float(cost_usd[i]),
                                        float(co2_kg[i]))
        return TrainingEnergy(
            settings=e.settings.label(),
            site=e.site_id,
            pue=ec.pue,
            step_time_s=float(ec.step_time_s[i]),
            avg_power_w_per_chip=float(per_chip[i]),
            avg_power_w_per_node=float(per_node[i]),
            step_energy_j=step_j,
            energy_j_per_token=float(per_token[i]),
            step_cost_usd=cost,
            step_co2_kg=co2,
            job_energy_mwh=None if steps is None else step_j * steps / 3.6e9,
            job_cost_usd=None if steps is None else cost * steps,
            job_co2_t=None if steps is None else co2 * steps / 1000.0,
            energy_breakdown_j=breakdown,
            phases={k: (float(p.chips[i]), float(p.power_w[i]), float(p.time_s[i]))
                    for k, p in ec.phases.items() if p.chips[i] > 0},
            cost_breakdown_usd={"electricity": electricity, "hardware": rent},
            derived=derived,
            hardware_price=e.hardware_price,
        )

    return row

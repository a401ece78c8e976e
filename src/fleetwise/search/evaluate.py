"""Evaluate training candidate spaces column-wise, keep feasible plans, rank them, and explain one.

Entry points: ``search_training(setup, space)`` → ``TrainingSearch``; ``evaluate_plan(setup, plan)``
→ ``PlanResult`` (raises ``InfeasibleError`` naming the constraint that rejects the plan).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fleetwise.energy.training import (
    ENERGY_ASSUMPTIONS,
    EnergyColumns,
    EnergySetup,
    PowerSettings,
    TrainingEnergy,
    energy_row,
    for_training,
    training_energy,
)
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.intervals import Interval, intervals_of
from fleetwise.perf.model_math import model_flops_per_token
from fleetwise.perf.training import ASSUMPTIONS, StepColumns, TrainingSetup, training_step
from fleetwise.plan import TrainingPlan
from fleetwise.search.pareto import pareto_front
from fleetwise.search.space import (
    SearchSpace,
    generate,
    knob_masks,
    layout_masks,
    space_axes,
    space_size,
    structural_masks,
)
from fleetwise.units import DAY

FloatArray = npt.NDArray[np.float64]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class PlanResult:
    """One plan's prediction with its breakdown (seconds per step, bytes per device)."""

    plan: TrainingPlan
    step_time_s: float
    breakdown_s: dict[str, float]
    memory_bytes: dict[str, float]
    memory_capacity_bytes: float
    fits_memory: bool
    tokens_per_s_per_chip: float
    mfu: float
    model_tflops_per_chip: float
    hardware_tflops_per_chip: float
    days: float | None
    chips: int
    energy: TrainingEnergy | None = None  # power, energy, cost and CO2 with breakdowns (fleetwise.energy)
    comm_tiers: dict[str, str] = field(default_factory=dict)  # parallel group -> network tier it crosses
    constants: dict[str, float | str] = field(default_factory=dict)  # efficiencies and group constants used

    @property
    def memory_total_bytes(self) -> float:
        return float(sum(self.memory_bytes.values()))

    def intervals(self) -> dict[str, Interval]:
        """Central 80 % intervals of the predicted step time, throughput and MFU (perf/data/intervals.yaml)."""
        return intervals_of("training", str(self.constants.get("chip_family", "global")), {
            "step_time_s": self.step_time_s, "tokens_per_s_per_chip": self.tokens_per_s_per_chip, "mfu": self.mfu,
            "model_tflops_per_chip": self.model_tflops_per_chip})


@dataclass(frozen=True, slots=True)
class TrainingSearch:
    """The ranked feasible plans of a search, its Pareto front and how the space was pruned."""

    best: list[PlanResult]
    pareto: list[PlanResult]
    candidates_evaluated: int
    feasible: int
    rejected_by: dict[str, int]
    search_seconds: float
    assumptions: tuple[str, ...] = field(default=ASSUMPTIONS + ENERGY_ASSUMPTIONS)
    objective: str = "time"
    pareto_time_energy: list[PlanResult] = field(default_factory=list)


OBJECTIVES = ("time", "energy", "cost", "carbon")


def _metrics(c: Candidates, cols: StepColumns, s: TrainingSetup) -> dict[str, FloatArray]:
    step = cols.step_time_s
    chips = c.chips.astype(np.float64)
    tokens = float(s.job.tokens_per_step)
    model_flops = model_flops_per_token(s.model, s.job.seq_len) * tokens
    # hardware FLOPs add recomputed forward work: full recompute re-runs layers (Narayanan et al. 2021, Eq. 3)
    layer_fwd = model_flops / 3.0 - 2.0 * s.model.vocab * s.model.hidden * tokens  # forward minus the LM head
    extra = np.where(c.recompute == 2, c.recompute_frac * layer_fwd, 0.0)
    peak = s.accel.peak_flops(s.job.precision)
    return {
        "tokens_per_s_per_chip": tokens / step / chips,
        "mfu": model_flops / step / chips / peak,
        "model_tflops_per_chip": model_flops / step / chips / 1e12,
        "hardware_tflops_per_chip": (model_flops + extra) / step / chips / 1e12,
    }


def _result(c: Candidates, cols: StepColumns, s: TrainingSetup, i: int, fits: bool,
            energy: tuple[EnergyColumns, EnergySetup] | None = None) -> PlanResult:
    met = _metrics(c, cols, s)
    mem = cols.memory
    step = float(cols.step_time_s[i])
    if energy is None:
        e = for_training(s)
        energy = (training_energy(c, cols, s, e), e)
    steps = s.job.tokens / s.job.tokens_per_step if s.job.tokens else None
    days = None
    if s.job.tokens:
        days = s.job.tokens / s.job.tokens_per_step * step / DAY
    return PlanResult(
        plan=c.plan(i),
        step_time_s=step,
        breakdown_s={k: float(v[i]) for k, v in cols.parts().items()},
        memory_bytes={
            "weights": float(mem.weights[i]), "gradients": float(mem.gradients[i]),
            "optimizer": float(mem.optimizer[i]), "activations": float(mem.activations[i]),
            "logits": float(mem.logits[i]), "reserved": float(mem.reserved[i]),
        },
        memory_capacity_bytes=mem.capacity,
        fits_memory=fits,
        tokens_per_s_per_chip=float(met["tokens_per_s_per_chip"][i]),
        mfu=float(met["mfu"][i]),
        model_tflops_per_chip=float(met["model_tflops_per_chip"][i]),
        hardware_tflops_per_chip=float(met["hardware_tflops_per_chip"][i]),
        days=days,
        chips=int(c.chips[i]),
        energy=energy_row(energy[0], i, energy[1], steps),
        comm_tiers=comm_tiers(c, s, i),
        constants=constants_used(s),
    )


def comm_tiers(c: Candidates, s: TrainingSetup, i: int) -> dict[str, str]:
    """Which tier each parallel group of plan ``i`` uses, under the plan's rank order."""
    one = np.ones(1, dtype=np.int64)
    groups = {
        "tp": (c.tp[i], 1), "cp": (c.cp[i], c.tp[i]), "ep": (c.ep[i], c.tp[i] * c.cp[i]),
        "dp": (c.dp[i], c.dp_stride[i] * c.cp[i]), "pp": (c.pp[i], c.pp_stride[i]),
    }
    out = {}
    for name, (size, stride) in groups.items():
        if size > 1:
            crosses = bool(s.network.spans_scaleout(one * size, one * stride)[0])
            out[name] = "scale-out" if crosses else "scale-up"
    if s.sites > 1:
        out["dp"] = out.get("dp", "scale-up") + f" + link between {s.sites} sites"
    return out


def constants_used(s: TrainingSetup) -> dict[str, float | str]:
    """The fitted efficiencies and group constant behind a prediction, and where they come from."""
    g = s.eff.gemm_params(s.job.precision)
    source = "default prior (no micro-benchmarks for this chip)" if s.eff.is_default else (
        f"micro-benchmarks of {s.eff.borrowed_from}" if s.eff.borrowed_from else "micro-benchmarks of this chip")
    return {
        "chip_family": s.constants.family,
        "compute_scale": round(s.constants.compute_scale, 4),
        "gemm_e_max": g.e_max,
        "gemm_t0_s": g.t0_s,
        "attention_fwd_eff": s.eff.attn_fwd,
        "hbm_eff": s.eff.hbm,
        "efficiency_source": source,
        "scaleup_busbw_frac": s.network.scaleup.eff.busbw_frac,
        "scaleout_busbw_frac": s.network.scaleout.eff.busbw_frac,
        "system": s.system.id,
    }


def evaluate_plan(s: TrainingSetup, plan: TrainingPlan, allow_over_memory: bool = False,
                  energy: EnergySetup | None = None) -> PlanResult:
    """Predict one plan; raise ``InfeasibleError`` naming each rule it breaks."""
    c = Candidates.from_plans([plan])
    masks = structural_masks(c, s.model, s.job, s.system.domain_size, s.sites)
    broken = [name for name, ok in masks.items() if not ok[0]]
    if broken:
        raise InfeasibleError(f"plan {plan.label()} is rejected by: {', '.join(broken)}")
    cols = training_step(c, s)
    fits = bool(cols.memory.fits[0])
    if not fits and not allow_over_memory:
        need = float(cols.memory.total[0]) / 1e9
        cap = cols.memory.capacity / 1e9
        raise InfeasibleError(
            f"plan {plan.label()} is rejected by: fits_memory (needs {need:.1f} GB per device, "
            f"{cap:.0f} GB on {s.accel.id}, of which {100 * 0.95:.0f}% usable)"
        )
    e = energy or for_training(s)
    return _result(c, cols, s, 0, fits, (training_energy(c, cols, s, e), e))


def search_training(s: TrainingSetup, space: SearchSpace, top: int = 10,
                    progress: ProgressFn | None = None, ignore_memory: bool = False,
                    objective: str = "time", energy: EnergySetup | None = None,
                    max_step_time_s: float | None = None) -> TrainingSearch:
    """Evaluate the whole space block by block; return the ``top`` feasible plans by ``objective``
    (time, energy, cost or carbon per step), the Pareto front of time vs memory headroom and of time vs energy."""
    if objective not in OBJECTIVES:
        raise SpecError(f"--objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    e = energy or for_training(s)
    t0 = time.perf_counter()
    total = space_size(space, s.model, s.job)
    evaluated = feasible = 0
    rejected: dict[str, int] = {}
    keep: list[tuple[Candidates, StepColumns, EnergyColumns, npt.NDArray[np.int64]]] = []
    # rules on the parallel layout alone are checked once per layout, for all its knob combinations
    layouts, knobs = space_axes(space, s.model, s.job)
    lm = layout_masks(layouts[:, 0], layouts[:, 1], layouts[:, 2], layouts[:, 4], layouts[:, 3], s.model, s.job,
                      s.system.domain_size, s.sites)
    for name, m in lm.items():
        rejected[name] = int((~m).sum()) * len(knobs)
    good_layouts = layouts[np.logical_and.reduce(list(lm.values()))] if len(layouts) else layouts
    evaluated = (len(layouts) - len(good_layouts)) * len(knobs)
    for block in generate(space, s.model, s.job, layouts=good_layouts):
        masks = knob_masks(block, s.model, s.job)
        ok = np.logical_and.reduce(list(masks.values()))
        for name, m in masks.items():
            rejected[name] = rejected.get(name, 0) + int((~m).sum())
        evaluated += len(block)
        sub = block.take(np.flatnonzero(ok))
        if len(sub):
            cols = training_step(sub, s)
            fits = cols.memory.fits | ignore_memory
            rejected["fits_memory"] = rejected.get("fits_memory", 0) + int((~fits).sum())
            idx = np.flatnonzero(fits)
            feasible += len(idx)
            if len(idx):
                ec = training_energy(sub, cols, s, e)
                if max_step_time_s is not None:  # a time budget under the power settings
                    idx = idx[ec.step_time_s[idx] <= max_step_time_s]
                    if not len(idx):
                        continue
                rank = ec.objective(objective)
                order = idx[np.argsort(rank[idx], kind="stable")]
                keep.append((sub, cols, ec, order[: max(top, 64)]))
                # Pareto candidates: keep the fronts of this block (time vs free memory, time vs energy)
                free = cols.memory.capacity - cols.memory.total[idx]
                front = idx[pareto_front(cols.step_time_s[idx], -free)]
                keep.append((sub, cols, ec, front))
                keep.append((sub, cols, ec, idx[pareto_front(ec.step_time_s[idx], ec.step_energy_j[idx])]))
        if progress is not None:
            progress(evaluated, total)
    # choose globally on plain columns first, then build results only for the chosen rows
    refs = [(b, int(i)) for b, (_, _, _, rows) in enumerate(keep) for i in rows]
    refs = list(dict.fromkeys(refs))
    if refs:
        # the columns are computed properties: evaluate each once per kept block, then gather
        by_block: dict[int, tuple[FloatArray, ...]] = {}  # keep holds each block up to three times
        arrays = {}
        for b in {b for b, _ in refs}:
            block_key = id(keep[b][1])
            if block_key not in by_block:
                by_block[block_key] = (keep[b][2].objective(objective), keep[b][1].step_time_s,
                                       keep[b][1].memory.total, keep[b][2].step_time_s, keep[b][2].step_energy_j)
            arrays[b] = by_block[block_key]
        obj, tm, mem, etm, en = (np.array([arrays[b][k][i] for b, i in refs]) for k in range(5))
        cap = keep[0][1].memory.capacity
        order = np.lexsort((mem, np.round(obj, 9)))  # ties: more headroom first
        chosen = set(order[: 4 * top].tolist()) | set(pareto_front(tm, mem - cap).tolist()) \
            | set(pareto_front(etm, en).tolist())
        refs = [refs[j] for j in sorted(chosen)]
    results: list[PlanResult] = []
    seen: set[str] = set()
    for b, i in refs:
        sub, cols, ec, _ = keep[b]
        r = _result(sub, cols, s, i, True, (ec, e))
        key = r.plan.model_dump_json()
        if key not in seen:
            seen.add(key)
            results.append(r)
    results.sort(key=lambda r: (round(_objective_of(r, objective), 9), r.memory_total_bytes))  # ties: headroom
    times = np.array([r.step_time_s for r in results])
    free = np.array([r.memory_capacity_bytes - r.memory_total_bytes for r in results])
    pareto = [results[i] for i in pareto_front(times, -free)] if results else []
    e_times = np.array([r.energy.step_time_s if r.energy else r.step_time_s for r in results])
    energies = np.array([r.energy.step_energy_j if r.energy else np.inf for r in results])
    pareto_e = [results[i] for i in pareto_front(e_times, energies)] if results else []
    return TrainingSearch(
        objective=objective,
        pareto_time_energy=pareto_e,
        best=results[:top],
        pareto=sorted(pareto, key=lambda r: r.step_time_s),
        candidates_evaluated=evaluated,
        feasible=feasible,
        rejected_by=rejected,
        search_seconds=time.perf_counter() - t0,
    )


def _objective_of(r: PlanResult, objective: str) -> float:
    """The per-step value a search ranks ``r`` by (seconds, J, USD or kg CO2)."""
    if objective == "time":
        return r.step_time_s
    if r.energy is None:
        return float("inf")
    return {"energy": r.energy.step_energy_j, "cost": r.energy.step_cost_usd,
            "carbon": r.energy.step_co2_kg}[objective]


@dataclass(frozen=True, slots=True)
class EnergyOptimum:
    """The energy-optimal plan and power setting within a slowdown budget, against the time-optimal plan."""

    time_optimal: PlanResult  # fastest plan at stock clocks
    energy_optimal: PlanResult  # lowest energy per step within the budget (its ``energy`` carries the setting)
    max_slowdown: float
    tried: list[tuple[str, float, float]]  # (setting, best energy saving, its slowdown) per setting

    @property
    def saving(self) -> float:
        assert self.time_optimal.energy is not None and self.energy_optimal.energy is not None
        return 1.0 - self.energy_optimal.energy.step_energy_j / self.time_optimal.energy.step_energy_j

    @property
    def slowdown(self) -> float:
        assert self.time_optimal.energy is not None and self.energy_optimal.energy is not None
        return self.energy_optimal.energy.step_time_s / self.time_optimal.energy.step_time_s - 1.0


def search_energy_optimal(s: TrainingSetup, space: SearchSpace, max_slowdown: float = 0.03,
                          settings: list[PowerSettings] | None = None, site: str | None = None) -> EnergyOptimum:
    """Search plans x power settings for the least energy per step at most ``max_slowdown`` slower than the
    fastest plan at stock clocks. Settings default to the stage frequency plan at a few global clocks."""
    ref = search_training(s, space, top=1, energy=for_training(s, site))
    if not ref.best:
        raise InfeasibleError(f"no feasible plan for {s.model.id} on {space.chips} x {s.accel.id}")
    fastest = ref.best[0]
    assert fastest.energy is not None
    limit = fastest.step_time_s * (1.0 + max_slowdown)
    grid = settings or [PowerSettings(clock=f, stage_plan=True) for f in (1.0, 0.98, 0.96, 0.94, 0.92, 0.9)]
    best, tried = fastest, []
    for st in grid:
        r = search_training(s, space, top=1, objective="energy", energy=for_training(s, site, st),
                            max_step_time_s=limit)
        if not r.best or r.best[0].energy is None:
            tried.append((st.label(), float("nan"), float("nan")))
            continue
        cand = r.best[0]
        assert cand.energy is not None and best.energy is not None
        tried.append((st.label(), 1.0 - cand.energy.step_energy_j / fastest.energy.step_energy_j,
                      cand.energy.step_time_s / fastest.step_time_s - 1.0))
        if cand.energy.step_energy_j < best.energy.step_energy_j:
            best = cand
    return EnergyOptimum(fastest, best, max_slowdown, tried)

"""Evaluate training candidate spaces column-wise, keep feasible plans, rank them, and explain one.

Entry points: ``search_training(setup, space)`` → ``TrainingSearch``; ``evaluate_plan(setup, plan)``
→ ``PlanResult`` (raises ``InfeasibleError`` naming the constraint that rejects the plan).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetwise.energy.training import (
    ENERGY_ASSUMPTIONS,
    EnergyColumns,
    EnergySetup,
    PowerSettings,
    TrainingEnergy,
    energy_row,
    energy_rows,
    for_training,
    row_totals,
    training_energy,
)
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.intervals import Interval, intervals_of
from fleetwise.perf.model_math import attention_flops_per_token, gemm_flops_per_token, model_flops_per_token
from fleetwise.perf.training import ASSUMPTIONS, StepColumns, TrainingSetup, training_step
from fleetwise.plan import TrainingJob, TrainingPlan
from fleetwise.progress import ProgressFn
from fleetwise.search.pareto import pareto_front
from fleetwise.search.space import (
    SearchSpace,
    check_chips,
    check_pinned,
    fitting_blocks,
    layout_masks,
    passing_blocks,
    space_axes,
    space_size,
    structural_masks,
)
from fleetwise.units import DAY

FloatArray = npt.NDArray[np.float64]


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
    job: TrainingJob | None = None  # the resolved workload (seq-len, global batch and how it was chosen, ...)


OBJECTIVES = ("time", "energy", "cost", "carbon")


def _metrics(c: Candidates, cols: StepColumns, s: TrainingSetup) -> dict[str, FloatArray]:
    step = cols.step_time_s
    chips = c.chips.astype(np.float64)
    tokens = float(s.job.tokens_per_step)
    model_flops = model_flops_per_token(s.model, s.job.seq_len, lora=s.job.lora_rank is not None) * tokens
    # hardware FLOPs add recomputed forward work: full recompute re-runs layers (Narayanan et al. 2021, Eq. 3)
    forward = (gemm_flops_per_token(s.model) + attention_flops_per_token(s.model, s.job.seq_len)) * tokens
    layer_fwd = forward - 2.0 * s.model.vocab * s.model.hidden * tokens  # forward minus the LM head
    extra = np.where(c.recompute == 2, c.recompute_frac * layer_fwd, 0.0)
    peak = s.accel.peak_flops(s.job.precision)
    return {
        "tokens_per_s_per_chip": tokens / step / chips,
        "mfu": model_flops / step / chips / peak,
        "model_tflops_per_chip": model_flops / step / chips / 1e12,
        "hardware_tflops_per_chip": (model_flops + extra) / step / chips / 1e12,
    }


def _result(c: Candidates, cols: StepColumns, s: TrainingSetup, i: int, fits: bool,
            energy: tuple[EnergyColumns, EnergySetup] | None = None,
            met: dict[str, FloatArray] | None = None,
            energy_of: Callable[[int], TrainingEnergy] | None = None) -> PlanResult:
    """Row ``i`` as a ``PlanResult``; ``energy_of``: a reader of the rows' energy (``energy_rows``)."""
    met = met if met is not None else _metrics(c, cols, s)
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
        energy=energy_row(energy[0], i, energy[1], steps) if energy_of is None else energy_of(i),
        comm_tiers=comm_tiers(c, s, i),
        constants=constants_used(s),
    )


def comm_tiers(c: Candidates, s: TrainingSetup, i: int) -> dict[str, str]:
    """Which tier each parallel group of plan ``i`` uses, under the plan's rank order."""
    row = c.take(np.array([i]))  # the row alone: its strides without those of the whole table
    groups = {
        "tp": (row.tp, np.ones(1, dtype=np.int64)), "cp": (row.cp, row.tp), "ep": (row.ep, row.tp * row.cp),
        "dp": (row.dp, row.dp_stride * row.cp), "pp": (row.pp, row.pp_stride),
    }
    crosses = s.network.spans_scaleout(np.concatenate([g for g, _ in groups.values()]),
                                       np.concatenate([st for _, st in groups.values()]))
    out = {}
    for j, (name, (size, _)) in enumerate(groups.items()):
        if size[0] > 1:
            out[name] = "scale-out" if bool(crosses[j]) else "scale-up"
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
    check_chips(plan.chips, "plan chips (tp x pp x dp x cp)")
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


_Cols = tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]


def _select(cols: _Cols, cap: float, k: int) -> npt.NDArray[np.int64]:
    """Rows worth keeping: the ``k`` best by objective (ties: more headroom first), the front of time vs
    memory headroom and the front of time vs energy. The selection of a union is the selection of the
    union of selections, so blocks can be reduced one at a time."""
    obj, mem, tm, etm, en = cols
    key = np.round(obj, 9)
    if 0 < k < len(key):  # only rows tied with or better than the k-th can be among the k best
        near = np.flatnonzero(key <= np.partition(key, k - 1)[k - 1])
        best = near[np.lexsort((mem[near], key[near]))[:k]]
    else:
        best = np.lexsort((mem, key))[:k]
    chosen = np.concatenate((best, pareto_front(tm, mem - cap), pareto_front(etm, en)))
    return np.unique(chosen)


@dataclass(slots=True)
class _Kept:
    """The rows kept so far across blocks: their plans and the columns the selection needs."""

    rows: Candidates
    cols: _Cols  # objective, memory, step time, step time under the settings, energy

    def merge(self, other: _Kept, cap: float, k: int) -> _Kept:
        rows = _concat(self.rows, other.rows)
        a, b = self.cols, other.cols
        cols: _Cols = (np.concatenate((a[0], b[0])), np.concatenate((a[1], b[1])), np.concatenate((a[2], b[2])),
                       np.concatenate((a[3], b[3])), np.concatenate((a[4], b[4])))
        keep = _select(cols, cap, k)
        return _Kept(rows.take(keep), _take(cols, keep))


def _take(cols: _Cols, i: npt.NDArray[np.int64]) -> _Cols:
    return cols[0][i], cols[1][i], cols[2][i], cols[3][i], cols[4][i]


def _concat(a: Candidates, b: Candidates) -> Candidates:
    cols: dict[str, Any] = {}
    for f in fields(Candidates):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "pp_inner":
            x, y = a.pipeline_inner, b.pipeline_inner
        cols[f.name] = np.concatenate((x, y))
    return Candidates(**cols)


def search_training(s: TrainingSetup, space: SearchSpace, top: int = 10,
                    progress: ProgressFn | None = None, ignore_memory: bool = False,
                    objective: str = "time", energy: EnergySetup | None = None,
                    max_step_time_s: float | None = None, block: int = 262_144) -> TrainingSearch:
    """Evaluate the whole space block by block (about ``block`` rows each); return the ``top`` feasible plans
    by ``objective`` (time, energy, cost or carbon per step), the Pareto front of time vs memory headroom
    and of time vs energy.

    Blocks are streamed: each is reduced to its best rows and Pareto fronts before the next is made, so
    memory stays that of one block whatever the size of the space; results are built once, from one
    small table of the kept rows."""
    if objective not in OBJECTIVES:
        raise SpecError(f"--objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    check_chips(space.chips)
    check_pinned(space, s.job.global_batch)
    e = energy or for_training(s)
    t0 = time.perf_counter()
    total = space_size(space, s.model, s.job)
    evaluated = feasible = 0
    rejected: dict[str, int] = {}
    kept: _Kept | None = None
    k = 4 * top
    # rules on the parallel layout alone are checked once per layout, for all its knob combinations
    layouts, knobs = space_axes(space, s.model, s.job)
    lm = layout_masks(layouts[:, 0], layouts[:, 1], layouts[:, 2], layouts[:, 4], layouts[:, 3], s.model, s.job,
                      s.system.domain_size, s.sites)
    for name, m in lm.items():
        rejected[name] = int((~m).sum()) * len(knobs)
    good_layouts = layouts[np.logical_and.reduce(list(lm.values()))] if len(layouts) else layouts
    evaluated = (len(layouts) - len(good_layouts)) * len(knobs)
    cap = 0.0
    # memory is cheap next to the step time: the plans that do not fit are dropped before timing them
    blocks = (((sub, counts, n_rows, len(sub), None) for sub, counts, n_rows in
               passing_blocks(space, s.model, s.job, good_layouts, block)) if ignore_memory
              else fitting_blocks(space, s, good_layouts, block))
    for sub, counts, n_rows, passing, mem in blocks:
        for name, n in counts.items():
            rejected[name] = rejected.get(name, 0) + n
        evaluated += n_rows
        if passing and not ignore_memory:
            rejected["fits_memory"] = rejected.get("fits_memory", 0) + passing - len(sub)
        if len(sub):
            cols = training_step(sub, s, mem)
            cap = cols.memory.capacity
            feasible += len(sub)
            ec = training_energy(sub, cols, s, e)
            etm = ec.step_time_s
            en = ec.step_energy_j  # once: the energy objective is the same column
            block_cols: _Cols = (en if objective == "energy" else ec.objective(objective), cols.memory.total,
                                 cols.step_time_s, etm, en)
            idx = None
            if max_step_time_s is not None:  # a time budget under the power settings
                idx = np.flatnonzero(etm <= max_step_time_s)
                block_cols = _take(block_cols, idx)
            if len(block_cols[0]):
                sel = _select(block_cols, cap, k)
                new = _Kept(sub.take(sel if idx is None else idx[sel]), _take(block_cols, sel))
                kept = new if kept is None else kept.merge(new, cap, k)
            del cols, sub
        if progress is not None:
            progress(evaluated, total)
    best: list[PlanResult] = []
    pareto: list[PlanResult] = []
    pareto_e: list[PlanResult] = []
    if kept is not None:
        # the kept rows again, as one small table: the same per-row columns, read without whole blocks;
        # the order and the fronts are found on the values the results carry, and results are built only
        # for the rows shown (the top and the two fronts)
        rows = kept.rows
        cols = training_step(rows, s)
        ec = training_energy(rows, cols, s, e)
        met = _metrics(rows, cols, s)
        _, _, step_j, _, _, cost_usd, co2_kg = row_totals(ec)
        obj_col = {"time": cols.step_time_s, "energy": step_j, "cost": cost_usd, "carbon": co2_kg}[objective]
        mem = cols.memory
        plan_cols = [rows.tp, rows.pp, rows.dp, rows.cp, rows.ep, rows.mbs, rows.vpp, rows.recompute,
                     rows.recompute_frac, rows.zero, rows.sp, rows.tp_overlap, rows.ep_overlap, rows.pipeline_inner]
        seen: set[tuple[Any, ...]] = set()
        order: list[int] = []
        for i, key in enumerate(zip(*(c.tolist() for c in plan_cols), strict=True)):
            if key not in seen:  # one result per plan
                seen.add(key)
                order.append(i)
        # PlanResult.memory_total_bytes: the sum of its memory_bytes values, in their order
        mem_total = [float(sum((float(mem.weights[i]), float(mem.gradients[i]), float(mem.optimizer[i]),
                                float(mem.activations[i]), float(mem.logits[i]), float(mem.reserved[i]))))
                     for i in range(len(rows))]
        order.sort(key=lambda i: (round(float(obj_col[i]), 9), mem_total[i]))  # ties: headroom
        times = np.array([float(cols.step_time_s[i]) for i in order])
        free = np.array([mem.capacity - mem_total[i] for i in order])
        front = pareto_front(times, -free)
        e_times = np.array([float(ec.step_time_s[i]) for i in order])
        energies = np.array([float(step_j[i]) for i in order])
        front_e = pareto_front(e_times, energies)
        built: dict[int, PlanResult] = {}
        energy_of = energy_rows(ec, e, s.job.tokens / s.job.tokens_per_step if s.job.tokens else None)

        def result(j: int) -> PlanResult:  # the j-th result in ranked order
            if j not in built:
                built[j] = _result(rows, cols, s, order[j], True, (ec, e), met, energy_of)
            return built[j]

        best = [result(j) for j in range(min(top, len(order)))]
        pareto = sorted((result(int(j)) for j in front), key=lambda r: r.step_time_s)
        pareto_e = [result(int(j)) for j in front_e]
    return TrainingSearch(
        objective=objective,
        pareto_time_energy=pareto_e,
        best=best,
        pareto=pareto,
        candidates_evaluated=evaluated,
        feasible=feasible,
        rejected_by=rejected,
        search_seconds=time.perf_counter() - t0,
        job=s.job,
    )


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

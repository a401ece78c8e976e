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

from fleetwise.errors import InfeasibleError
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.model_math import model_flops_per_token
from fleetwise.perf.training import ASSUMPTIONS, StepColumns, TrainingSetup, training_step
from fleetwise.plan import TrainingPlan
from fleetwise.search.pareto import pareto_front
from fleetwise.search.space import SearchSpace, generate, space_size, structural_masks
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

    @property
    def memory_total_bytes(self) -> float:
        return float(sum(self.memory_bytes.values()))


@dataclass(frozen=True, slots=True)
class TrainingSearch:
    """The ranked feasible plans of a search, its Pareto front and how the space was pruned."""

    best: list[PlanResult]
    pareto: list[PlanResult]
    candidates_evaluated: int
    feasible: int
    rejected_by: dict[str, int]
    search_seconds: float
    assumptions: tuple[str, ...] = field(default=ASSUMPTIONS)


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


def _result(c: Candidates, cols: StepColumns, s: TrainingSetup, i: int, fits: bool) -> PlanResult:
    met = _metrics(c, cols, s)
    mem = cols.memory
    step = float(cols.step_time_s[i])
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
    )


def evaluate_plan(s: TrainingSetup, plan: TrainingPlan, allow_over_memory: bool = False) -> PlanResult:
    """Predict one plan; raise ``InfeasibleError`` naming each rule it breaks."""
    c = Candidates.from_plans([plan])
    masks = structural_masks(c, s.model, s.job, s.system.domain_size)
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
    return _result(c, cols, s, 0, fits)


def search_training(s: TrainingSetup, space: SearchSpace, top: int = 10,
                    progress: ProgressFn | None = None, ignore_memory: bool = False) -> TrainingSearch:
    """Evaluate the whole space block by block; return the ``top`` fastest feasible plans and the Pareto front."""
    t0 = time.perf_counter()
    total = space_size(space, s.model, s.job)
    evaluated = feasible = 0
    rejected: dict[str, int] = {}
    keep: list[tuple[Candidates, StepColumns, npt.NDArray[np.int64]]] = []
    for block in generate(space, s.model, s.job):
        masks = structural_masks(block, s.model, s.job, s.system.domain_size)
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
                order = idx[np.argsort(cols.step_time_s[idx], kind="stable")]
                keep.append((sub, cols, order[: max(top, 64)]))
                # Pareto candidates: keep the front of this block (time vs free memory)
                free = cols.memory.capacity - cols.memory.total[idx]
                front = idx[pareto_front(cols.step_time_s[idx], -free)]
                keep.append((sub, cols, front))
        if progress is not None:
            progress(evaluated, total)
    results: list[PlanResult] = []
    seen: set[str] = set()
    for sub, cols, rows in keep:
        for i in rows:
            r = _result(sub, cols, s, int(i), True)
            key = r.plan.model_dump_json()
            if key not in seen:
                seen.add(key)
                results.append(r)
    results.sort(key=lambda r: (round(r.step_time_s, 9), r.memory_total_bytes))  # ties: more headroom first
    times = np.array([r.step_time_s for r in results])
    free = np.array([r.memory_capacity_bytes - r.memory_total_bytes for r in results])
    pareto = [results[i] for i in pareto_front(times, -free)] if results else []
    return TrainingSearch(
        best=results[:top],
        pareto=sorted(pareto, key=lambda r: r.step_time_s),
        candidates_evaluated=evaluated,
        feasible=feasible,
        rejected_by=rejected,
        search_seconds=time.perf_counter() - t0,
    )

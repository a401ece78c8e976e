"""The public Python API: resolve ids, search and explain training plans, compare and match fleets.

Every function takes ids (or specs) and returns typed results; the CLI and notebooks call these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwise.catalog.hf_import import model_from_hf_config
from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.catalog.types import ModelArch, Precision
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import TrainingSetup
from fleetwise.plan import TrainingJob, TrainingPlan
from fleetwise.search.evaluate import PlanResult, ProgressFn, TrainingSearch, evaluate_plan, search_training
from fleetwise.search.space import SearchSpace


def resolve_model(catalog: Catalog, model: str | ModelArch) -> ModelArch:
    """A catalog id, a path to a Hugging Face ``config.json``, or a ``ModelArch``."""
    if isinstance(model, ModelArch):
        return model
    if model.endswith(".json") or Path(model).is_file():
        return model_from_hf_config(Path(model))
    return catalog.model(model, "model")


def training_setup(
    model: str | ModelArch,
    hardware: str,
    *,
    system: str | None = None,
    seq_len: int = 4096,
    global_batch: int | None = None,
    precision: Precision = "bf16",
    tokens: float | None = None,
    chips: int | None = None,
    catalog: Catalog | None = None,
) -> TrainingSetup:
    """Resolve ids into a ``TrainingSetup``. ``global_batch`` defaults to ~4M tokens per step."""
    catalog = catalog or load_catalog()
    m = resolve_model(catalog, model)
    accel = catalog.accelerator(hardware, "hardware")
    sys_ = catalog.system(system, "system") if system else catalog.default_system(accel.id)
    if seq_len > m.max_seq:
        raise SpecError(f"--seq-len must be <= the model's max_seq {m.max_seq} for {m.id} (got {seq_len})")
    if global_batch is None:
        unit = chips or 1
        global_batch = max(1, round(4 * 2**20 / seq_len / unit)) * unit if chips else max(1, 4 * 2**20 // seq_len)
    job = TrainingJob(seq_len=seq_len, global_batch=global_batch, precision=precision, tokens=tokens)
    return make_training_setup(m, accel, sys_, job)


def _check_chips(chips: int) -> None:
    if chips < 1:
        raise SpecError(f"--chips must be a positive integer (got {chips})")


def plan_training(
    model: str | ModelArch,
    hardware: str,
    chips: int,
    *,
    system: str | None = None,
    seq_len: int = 4096,
    global_batch: int | None = None,
    precision: Precision = "bf16",
    tokens: float | None = None,
    pinned: Mapping[str, Any] | None = None,
    top: int = 10,
    progress: ProgressFn | None = None,
    catalog: Catalog | None = None,
    objective: str = "time",
) -> TrainingSearch:
    """Search every parallel plan of ``model`` on ``chips`` accelerators; the fastest feasible first."""
    _check_chips(chips)
    setup = training_setup(model, hardware, system=system, seq_len=seq_len, global_batch=global_batch,
                           precision=precision, tokens=tokens, chips=chips, catalog=catalog)
    result = search_training(setup, SearchSpace(chips=chips, pinned=dict(pinned or {})), top=top, progress=progress,
                             objective=objective)
    if not result.best:
        worst = sorted(result.rejected_by.items(), key=lambda kv: -kv[1])[:3]
        reasons = ", ".join(f"{k} ({v} plans)" for k, v in worst if v)
        raise InfeasibleError(
            f"no feasible plan for {setup.model.id} on {chips} x {hardware} "
            f"({result.candidates_evaluated} evaluated); most rejected by: {reasons}"
        )
    return result


def explain_training(
    model: str | ModelArch,
    hardware: str,
    plan: TrainingPlan,
    *,
    system: str | None = None,
    seq_len: int = 4096,
    global_batch: int | None = None,
    precision: Precision = "bf16",
    tokens: float | None = None,
    catalog: Catalog | None = None,
) -> PlanResult:
    """One plan's prediction with its breakdown, or ``InfeasibleError`` naming the rule that rejects it."""
    setup = training_setup(model, hardware, system=system, seq_len=seq_len, global_batch=global_batch,
                           precision=precision, tokens=tokens, chips=plan.chips, catalog=catalog)
    return evaluate_plan(setup, plan)


@dataclass(frozen=True, slots=True)
class MatchResult:
    """How many of our chips reach the reference fleet's step time."""

    ours: str
    theirs: str
    their_chips: int
    their_step_time_s: float
    our_chips: int | None
    our_step_time_s: float | None
    tried: list[tuple[int, float | None]]


def match_training(
    model: str | ModelArch,
    ours: str,
    theirs: str,
    their_chips: int,
    *,
    seq_len: int = 4096,
    global_batch: int | None = None,
    precision: Precision = "bf16",
    max_factor: float = 16.0,
    catalog: Catalog | None = None,
) -> MatchResult:
    """Smallest number of ``ours`` (in steps of a node) whose best plan is at least as fast as theirs."""
    catalog = catalog or load_catalog()
    _check_chips(their_chips)
    gbs = global_batch or max(1, round(4 * 2**20 / seq_len / their_chips)) * their_chips
    ref = plan_training(model, theirs, their_chips, seq_len=seq_len, global_batch=gbs, precision=precision,
                        top=1, catalog=catalog).best[0]
    our_system = catalog.default_system(ours)
    node = our_system.chips_per_node if our_system is not None else 8
    tried: list[tuple[int, float | None]] = []
    n = max(node, int(math.ceil(their_chips / node)) * node)
    while n <= their_chips * max_factor:
        try:
            best = plan_training(model, ours, n, seq_len=seq_len, global_batch=gbs, precision=precision,
                                 top=1, catalog=catalog).best[0]
            tried.append((n, best.step_time_s))
            if best.step_time_s <= ref.step_time_s:
                return MatchResult(ours, theirs, their_chips, ref.step_time_s, n, best.step_time_s, tried)
        except InfeasibleError:
            tried.append((n, None))
        n = _next_count(n, node, gbs)
    return MatchResult(ours, theirs, their_chips, ref.step_time_s, None, None, tried)


def _next_count(n: int, node: int, gbs: int) -> int:
    """Next chip count to try: grow ~12 %, rounded up to whole nodes."""
    return int(math.ceil(n * 1.125 / node)) * node


def compare_training(
    model: str | ModelArch, hardware: Sequence[str], chips: int, **kwargs: Any
) -> dict[str, TrainingSearch | InfeasibleError]:
    """The best plans of the same job on several accelerators (an error where none fits)."""
    out: dict[str, TrainingSearch | InfeasibleError] = {}
    for hw in hardware:
        try:
            out[hw] = plan_training(model, hw, chips, top=3, **kwargs)
        except InfeasibleError as exc:
            out[hw] = exc
    return out

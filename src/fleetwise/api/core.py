"""The public Python API, the one facade every front end (CLI, notebooks, HTTP) calls.

Training: ``plan_training``, ``explain_training``, ``compare_training``, ``match_training``,
``compare_mixed_training``, ``power_training``. Serving: ``plan_serving``, ``explain_serving``,
``simulate_serving``, ``compare_serving_systems``, ``compare_mixed_serving``, ``match_serving_fleets``.
Studies: ``run_study(kind, inputs) -> Study`` answers any of them from JSON inputs, with the resolved
inputs echoed; the CLI only builds those inputs and renders the study.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetwise.catalog.hf_import import model_from_hf_config
from fleetwise.catalog.loader import Catalog, is_file, load_catalog, validated
from fleetwise.catalog.types import ModelArch, Precision, SiteLink
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import TrainingSetup
from fleetwise.plan import TrainingJob, TrainingPlan, default_global_batch
from fleetwise.progress import ProgressFn
from fleetwise.search.evaluate import PlanResult, TrainingSearch, evaluate_plan, search_training
from fleetwise.search.fleet import FleetPart
from fleetwise.search.mixed import MixedSearch, search_mixed_training
from fleetwise.search.serving import Confirmation, ServingCandidate, ServingSearch, ServingWorkload
from fleetwise.search.space import SearchSpace

if TYPE_CHECKING:
    from fleetwise.perf.inference import Speculative

DEFAULT_GLOBAL_BATCH = "~4M tokens per step, 2^k x the odd part of the chip count (data-parallel widths divide it)"


def resolve_model(catalog: Catalog, model: str | ModelArch) -> ModelArch:
    """A catalog id, a path to a Hugging Face ``config.json``, or a ``ModelArch``."""
    if isinstance(model, ModelArch):
        return model
    if model.endswith(".json") or is_file(model):
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
    sites: int = 1,
    site_link: SiteLink | None = None,
    attention_kernel: str = "flash",
    lora_rank: int | None = None,
) -> TrainingSetup:
    """Resolve ids into a ``TrainingSetup``. ``global_batch`` defaults to ~4M tokens per step.

    ``sites`` > 1 spreads the data-parallel replicas over that many data centres joined by ``site_link``;
    ``lora_rank`` makes the job a LoRA fine-tune (base weights frozen, adapters of that rank).
    """
    catalog = catalog or load_catalog()
    m = resolve_model(catalog, model)
    accel = catalog.accelerator(hardware, "hardware")
    sys_ = catalog.system(system, "system") if system else catalog.default_system(accel.id)
    if seq_len > m.max_seq:
        raise SpecError(f"--seq-len must be <= the model's max_seq {m.max_seq} for {m.id} (got {seq_len})")
    basis = "given"
    if global_batch is None:
        global_batch, basis = default_global_batch(seq_len, chips)
    job = validated(TrainingJob, "job", dict(seq_len=seq_len, global_batch=global_batch, precision=precision,
                                             tokens=tokens, attention_kernel=attention_kernel,
                                             lora_rank=lora_rank, global_batch_basis=basis))
    return make_training_setup(m, accel, sys_, job, sites=sites, site_link=site_link)


def _check_chips(chips: int) -> None:
    from fleetwise.search.space import check_chips

    check_chips(chips)


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
    sites: int = 1,
    site_link: SiteLink | None = None,
    attention_kernel: str = "flash",
    lora_rank: int | None = None,
) -> TrainingSearch:
    """Search every parallel plan of ``model`` on ``chips`` accelerators; the fastest feasible first."""
    _check_chips(chips)
    setup = training_setup(model, hardware, system=system, seq_len=seq_len, global_batch=global_batch,
                           precision=precision, tokens=tokens, chips=chips, catalog=catalog, sites=sites,
                           site_link=site_link, attention_kernel=attention_kernel, lora_rank=lora_rank)
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
    sites: int = 1,
    site_link: SiteLink | None = None,
    attention_kernel: str = "flash",
    lora_rank: int | None = None,
) -> PlanResult:
    """One plan's prediction with its breakdown, or ``InfeasibleError`` naming the rule that rejects it."""
    setup = training_setup(model, hardware, system=system, seq_len=seq_len, global_batch=global_batch,
                           precision=precision, tokens=tokens, chips=plan.chips, catalog=catalog, sites=sites,
                           site_link=site_link, attention_kernel=attention_kernel, lora_rank=lora_rank)
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
    their_plan: PlanResult | None = None
    our_plan: PlanResult | None = None
    global_batch: int = 0  # the batch both sides train with
    our_system: str | None = None
    their_system: str | None = None

    def power_and_cost(self) -> dict[str, dict[str, float | str | None]]:
        """Facility power (kW, PUE included), $ per hour and J per token of each side's best plan, and the
        price its hardware cost used."""
        out: dict[str, dict[str, float | str | None]] = {}
        for side, r in (("theirs", self.their_plan), ("ours", self.our_plan)):
            e = r.energy if r is not None else None
            out[side] = {
                "facility_kw": None if e is None else e.step_energy_j / e.step_time_s / 1e3,
                "usd_per_hour": None if e is None else e.step_cost_usd / e.step_time_s * 3600.0,
                "energy_j_per_token": None if e is None else e.energy_j_per_token,
                "hardware_cost_known": None if e is None else float(bool(e.cost_breakdown_usd.get("hardware"))),
                "hardware_price": None if e is None else e.hardware_price,
            }
        return out


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
    system: str | None = None,
    their_system: str | None = None,
    tokens: float | None = None,
    attention_kernel: str = "flash",
    progress: ProgressFn | None = None,
    lora_rank: int | None = None,
) -> MatchResult:
    """Smallest number of ``ours`` (in steps of a node) whose best plan is at least as fast as theirs.

    ``system`` / ``their_system`` choose each side's system (default: the catalog's system for the chip);
    the answer is an upper bound: only whole-node, 3-smooth counts 4 % apart are tried.
    ``progress(chips tried, largest count)`` is called after each count tried.
    """
    catalog = catalog or load_catalog()
    _check_chips(their_chips)
    for sid, hw, name in ((system, ours, "system"), (their_system, theirs, "their_system")):
        if sid is not None and catalog.system(sid, name).accelerator_id != hw:
            raise SpecError(f"--{name.replace('_', '-')} {sid} is built from "
                            f"{catalog.system(sid).accelerator_id}, not {hw}")
    catalog.accelerator(ours, "ours")  # an unknown id fails before the reference search
    gbs = global_batch or default_global_batch(seq_len, their_chips)[0]
    common: dict[str, Any] = {"seq_len": seq_len, "global_batch": gbs, "precision": precision, "tokens": tokens,
                              "attention_kernel": attention_kernel, "lora_rank": lora_rank, "top": 1,
                              "catalog": catalog}
    ref = plan_training(model, theirs, their_chips, system=their_system, **common).best[0]
    our_sys = catalog.system(system) if system else catalog.default_system(ours)
    their_sys = catalog.system(their_system) if their_system else catalog.default_system(theirs)
    ids = (None if our_sys is None else our_sys.id, None if their_sys is None else their_sys.id)
    node = our_sys.chips_per_node if our_sys is not None else 8
    tried: list[tuple[int, float | None]] = []
    n = _next_count(max(node, their_chips) / 1.04, node, gbs)
    while n <= their_chips * max_factor:
        try:
            best = plan_training(model, ours, n, system=system, **common).best[0]
            tried.append((n, best.step_time_s))
            if progress is not None:
                progress(n if best.step_time_s > ref.step_time_s else int(their_chips * max_factor),
                         int(their_chips * max_factor))
            if best.step_time_s <= ref.step_time_s:
                return MatchResult(ours, theirs, their_chips, ref.step_time_s, n, best.step_time_s, tried, ref, best,
                                   gbs, *ids)
        except InfeasibleError:
            tried.append((n, None))
        n = _next_count(n, node, gbs)
    if progress is not None:
        progress(int(their_chips * max_factor), int(their_chips * max_factor))
    return MatchResult(ours, theirs, their_chips, ref.step_time_s, None, None, tried, ref, None, gbs, *ids)


def _next_count(n: float, node: int, gbs: int) -> int:
    """Next chip count to try: whole nodes, a node count with no prime factor above 3 (so that data, tensor
    and pipeline widths can divide it and the batch), at least 4 % above ``n``."""
    k = int(math.ceil(n * 1.04 / node))
    while True:
        m = k
        for p in (2, 3):
            while m % p == 0:
                m //= p
        if m == 1:
            return k * node
        k += 1


def compare_training(
    model: str | ModelArch, hardware: Sequence[str], chips: int, *, systems: Sequence[str] | None = None,
    catalog: Catalog | None = None, top: int = 3, progress: ProgressFn | None = None, **kwargs: Any
) -> dict[str, TrainingSearch | InfeasibleError]:
    """The best plans of the same job on several accelerators, or on several systems (each with its own chip
    and network), keyed by hardware or system id (an error where none fits); ``progress(done, total)``
    after each."""
    catalog = catalog or load_catalog()
    out: dict[str, TrainingSearch | InfeasibleError] = {}
    targets = [(catalog.system(s_, "systems").accelerator_id, s_, s_) for s_ in systems] if systems else \
        [(hw, None, hw) for hw in hardware]
    for hw, sys_id, key in targets:
        try:
            out[key] = plan_training(model, hw, chips, system=sys_id, top=top, catalog=catalog, **kwargs)
        except InfeasibleError as exc:
            out[key] = exc
        if progress is not None:
            progress(len(out), len(targets))
    return out


@dataclass(frozen=True, slots=True)
class MixedComparison:
    """The best mixed-fleet plan next to the best single-type plans it competes with."""

    mixed: MixedSearch
    alone: dict[str, PlanResult | None]  # each type on its own chips
    same_total: dict[str, PlanResult | None]  # each type with the fleet's total chip count
    global_batch: int = 0  # sequences per step, the same for every plan compared

    @property
    def verdict(self) -> str:
        if not self.mixed.best:
            return "no mixed plan fits"
        mixed_t = self.mixed.best[0].step_time_s
        alone = {k: v.step_time_s for k, v in self.alone.items() if v is not None}
        best_alone = min(alone.values()) if alone else float("inf")
        same = {k: v.step_time_s for k, v in self.same_total.items() if v is not None}
        parts = [f"mixed step {mixed_t:.2f} s vs best type alone {best_alone:.2f} s "
                 f"({'mix faster' if mixed_t < best_alone else 'mix slower'} by {abs(1 - mixed_t / best_alone):.0%})"]
        if same:
            k = min(same, key=lambda x: same[x])
            parts.append(f"vs {k} at the same total chips {same[k]:.2f} s "
                         f"({'mix faster' if mixed_t < same[k] else 'mix slower'} by {abs(1 - mixed_t / same[k]):.0%})")
        return "; ".join(parts)


def compare_mixed_training(
    model: str | ModelArch,
    fleet: Mapping[str, int],
    *,
    seq_len: int = 4096,
    global_batch: int | None = None,
    precision: Precision = "bf16",
    top: int = 5,
    catalog: Catalog | None = None,
    progress: ProgressFn | None = None,
) -> MixedComparison:
    """Search a two-type mixed fleet and the single-type plans it should beat (``progress(done, total)``
    after the mixed search and after each single-type search)."""
    catalog = catalog or load_catalog()
    m = resolve_model(catalog, model)
    total = sum(fleet.values())
    gbs, basis = (global_batch, "given") if global_batch else default_global_batch(seq_len, total)
    job = validated(TrainingJob, "job", dict(seq_len=seq_len, global_batch=gbs, precision=precision,
                                             global_batch_basis=basis))
    parts = tuple(FleetPart(catalog.accelerator(hw), catalog.default_system(hw), n) for hw, n in fleet.items())
    mixed = search_mixed_training(parts, m, job, top=top)  # type: ignore[arg-type]
    steps = [1, 1 + 2 * len(fleet)]
    if progress is not None:
        progress(*steps)

    def best(hw: str, n: int) -> PlanResult | None:
        try:
            return plan_training(m, hw, n, seq_len=seq_len, global_batch=gbs, precision=precision, top=1,
                                 catalog=catalog).best[0]
        except InfeasibleError:
            return None
        finally:
            steps[0] += 1
            if progress is not None:
                progress(*steps)

    return MixedComparison(mixed, {hw: best(hw, n) for hw, n in fleet.items()},
                           {hw: best(hw, total) for hw in fleet}, gbs)


@dataclass(frozen=True, slots=True)
class ServingPlans:
    """Ranked serving plans, each with its simulator replay where one was run (confirmed plans first)."""

    search: ServingSearch
    confirmations: list[Confirmation | None]
    workload: ServingWorkload

    @property
    def best(self) -> list[ServingCandidate]:
        return self.search.best


def plan_serving(
    model: str | ModelArch,
    hardware: str,
    *,
    ttft_ms: float,
    tpot_ms: float,
    input_tokens: float | None = None,
    output_tokens: float | None = None,
    trace: str | Path | None = None,
    rate: float | None = None,
    chips: int | None = None,
    percentile: float = 90.0,
    system: str | None = None,
    top: int = 10,
    objective: str = "cost",
    site: str | None = None,
    power_cap_w: float | None = None,
    confirm: bool = True,
    catalog: Catalog | None = None,
    speculative: Speculative | None = None,
) -> ServingPlans:
    """The cheapest deployments of ``model`` on ``hardware`` that meet TTFT/TPOT, for a rate or a chip count.

    Lengths come from ``input_tokens``/``output_tokens`` or a trace (a file, or a bundled name such as
    ``azure_conv``). With ``confirm``, plans are replayed in the simulator until three meet the SLO.
    """
    from fleetwise.energy.serving import serving_energy_setup
    from fleetwise.perf.inference import make_serving_setup
    from fleetwise.search.serving import confirm_in_simulation
    from fleetwise.search.systems import search_serving_plans
    from fleetwise.workload.traces import load_trace

    if (rate is None) == (chips is None):
        raise SpecError("give exactly one of --rate (requests/s) or --chips")
    for name, v in (("--rate", rate), ("--ttft-ms", ttft_ms), ("--tpot-ms", tpot_ms),
                    ("--input-tokens", input_tokens), ("--output-tokens", output_tokens)):
        if v is not None and not v > 0:
            raise SpecError(f"{name} must be > 0 (got {v})")
    if chips is not None and chips < 1:
        raise SpecError(f"--chips must be a positive integer (got {chips})")
    if not 0 < percentile <= 100:
        raise SpecError(f"--percentile must be in (0, 100] (got {percentile})")
    catalog = catalog or load_catalog()
    m = resolve_model(catalog, model)
    accel = catalog.accelerator(hardware, "hardware")
    sys_ = catalog.system(system, "system") if system else catalog.default_system(accel.id)
    tr = load_trace(trace) if trace is not None else None
    if tr is not None and rate is not None:
        tr = _at_rate(tr, rate)
    if tr is not None:
        i, o = float(tr.input_tokens.mean()), float(max(tr.output_tokens.mean(), 1.0))
    elif input_tokens is None or output_tokens is None:
        raise SpecError("give --input-tokens and --output-tokens, or --trace")
    else:
        i, o = float(input_tokens), float(output_tokens)
    s = make_serving_setup(m, accel, sys_)
    s_ep = make_serving_setup(m, accel, sys_, expert_parallel=True) if m.moe is not None else None
    if speculative is not None:  # a fact of the deployment: every plan decodes with the same draft
        from dataclasses import replace

        s = replace(s, speculative=speculative)
        s_ep = None if s_ep is None else replace(s_ep, speculative=speculative)
    w = ServingWorkload(i, o, ttft_ms / 1e3, tpot_ms / 1e3, rate, chips, percentile)
    result = search_serving_plans(s, w, top=top, objective=objective,  # type: ignore[arg-type]
                                  energy=serving_energy_setup(s, site, power_cap_w), ep_setup=s_ep)
    if not result.best:
        worst = max(result.rejected_by, key=lambda k: result.rejected_by[k])
        raise InfeasibleError(f"no plan meets the targets ({result.candidates_evaluated} tried; most rejected by "
                              f"{worst}: {result.rejected_by})")
    conf = confirm_in_simulation(s, result.best, w, tr, ep_setup=s_ep) if confirm else [None] * len(result.best)
    order = sorted(range(len(result.best)), key=lambda k: (0 if conf[k] and conf[k].meets_slo  # type: ignore[union-attr]
                                                          else 1 if conf[k] is None else 2, k))
    search = ServingSearch([result.best[k] for k in order], result.candidates_evaluated, result.rejected_by)
    return ServingPlans(search, [conf[k] for k in order], w)


def _at_rate(trace: Any, rate: float) -> Any:
    """The trace's requests (lengths, order, burstiness) with arrivals time-scaled to a mean of ``rate`` req/s,
    so that ``--rate R --trace T`` sizes for R and replays T at R."""
    from fleetwise.workload.traces import Trace

    span = float(trace.arrival_s[-1] - trace.arrival_s[0]) if len(trace) > 1 else 0.0
    if span <= 0:
        raise SpecError(f"--trace {trace.source}: all requests arrive at once; its arrivals cannot be scaled "
                        f"to --rate {rate:g}")
    scale = (len(trace) - 1) / span / rate
    return Trace(trace.arrival_s * scale, trace.input_tokens, trace.output_tokens,
                 f"{trace.source} (arrivals scaled to {rate:g} req/s)")

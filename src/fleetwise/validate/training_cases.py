"""Predict a training case: its plan as published, unknown fields chosen by the search or filled from the
source's software facts (``validate/software.py``). Entry point: ``predict_training(case, catalog, ...)``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import ValidationError

from fleetwise.catalog.loader import Catalog, format_validation_error
from fleetwise.catalog.types import Accelerator, ModelArch
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.perf.calibration import Calibration, GroupConstants
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.plan import TrainingJob, TrainingPlan
from fleetwise.search.evaluate import PlanResult, evaluate_plan, search_training
from fleetwise.search.space import SearchSpace
from fleetwise.units import DAY
from fleetwise.validate.cases import ENERGY_METRICS, Case
from fleetwise.validate.software import NO_FACTS, SoftwareFacts, software_facts
from fleetwise.validate.specs import CasePrediction, resolve_specs

# plan knobs no case publishes: filled from software facts, else searched
KNOB_FIELDS = ("tp_comm_overlap", "ep_comm_overlap", "rank_order")
PLAN_FIELDS = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "vpp", "sequence_parallel", "recompute", "zero")
# Sequences per step when a source does not publish its global batch: ~16M tokens, the order of
# magnitude of frontier pre-training batches (Llama 3: 16M; DeepSeek-V3: 63M after warm-up).
DEFAULT_TOKENS_PER_STEP = 16 * 2**20
# Defaults for fields a source leaves out (FORMAT.md: null = the tool chooses, and says so).
DEFAULT_SEQ_LEN = 4096
DEFAULT_RUN_DAYS = 60.0


def _default_chips(case: Case, model: ModelArch, accel: Accelerator) -> int:
    """A chip count that trains the case's tokens in about two months at 40 % MFU (power of two, 8..16384)."""
    from fleetwise.perf.model_math import model_flops_per_token

    assert case.training is not None and case.training.seq_len is not None
    tokens = case.training.tokens or 1e12
    flops = model_flops_per_token(model, case.training.seq_len) * tokens
    rate = 0.4 * accel.peak_flops(case.precision or "bf16")
    need = flops / rate / (DEFAULT_RUN_DAYS * DAY)
    return int(min(16384, max(8, 2 ** int(np.ceil(np.log2(max(need, 1.0)))))))


def _training_job(case: Case, chips: int, facts: SoftwareFacts) -> tuple[TrainingJob, list[str]]:
    t = case.training
    assert t is not None and t.seq_len is not None
    notes = []
    gbs = t.global_batch
    if gbs is None:
        # a multiple of the chip count, so that every data-parallel width divides it
        gbs = max(1, round(DEFAULT_TOKENS_PER_STEP / t.seq_len / chips)) * chips
        notes.append(f"global_batch not published: assumed {gbs} sequences ({gbs * t.seq_len / 1e6:.1f}M tokens a "
                     f"step: ~{DEFAULT_TOKENS_PER_STEP / 1e6:.0f}M rounded to a multiple of the chip count)")
    precision = case.precision or "bf16"
    lora = None
    if t.fine_tune:
        if str(t.fine_tune.get("method", "")).lower() != "lora":
            raise SpecError(f"case {case.id}: training.fine_tune.method: only 'lora' is modelled "
                            f"(got {t.fine_tune.get('method')!r})")
        lora = int(t.fine_tune.get("rank", 16))
    if facts is not NO_FACTS:
        stated = {**facts.job_fields(), **facts.plan_knobs(), **facts.plan_defaults()}
        notes.append(f"software facts of the source (validate/data/software.yaml): "
                     f"{', '.join(f'{k}={v}' for k, v in stated.items())}")
    if facts.mfu_flops_per_token is not None and facts.mfu_peak_tflops is not None:
        notes.append(f"mfu scored by the source's own formula: tokens/s/chip x {facts.mfu_flops_per_token:.3g} FLOPs "
                     f"/ {facts.mfu_peak_tflops:g} TFLOP/s")
    job = TrainingJob(seq_len=t.seq_len, global_batch=gbs, precision=precision, tokens=t.tokens, lora_rank=lora,
                      **facts.job_fields())
    return job, notes


def _training_metrics(case: Case, r: PlanResult, job: TrainingJob) -> dict[str, float]:
    # a source that published MFU by its own formula is scored by that formula (validate/data/software.yaml)
    source_mfu = software_facts().get(case.url or "", NO_FACTS).source_mfu(r.tokens_per_s_per_chip)
    out = {
        "step_time_s": r.step_time_s,
        "mfu": r.mfu if source_mfu is None else source_mfu,
        "tokens_per_s_per_chip": r.tokens_per_s_per_chip,
        "tflops_per_chip": r.hardware_tflops_per_chip if case.flops_convention == "hardware"
        else r.model_tflops_per_chip,
    }
    if job.tokens:
        days = job.tokens / job.tokens_per_step * r.step_time_s / DAY
        out["time_to_train_days"] = days
        out["chip_hours"] = days * 24.0 * r.chips
    out.update(_energy_metrics(case, r, job))
    return out


def _energy_metrics(case: Case, r: PlanResult, job: TrainingJob) -> dict[str, float]:
    """Energy metrics at the case's power boundary (chip: accelerators only; node: wall power of the servers,
    host and network share included), with the case's PUE when it states one (FORMAT.md), else none."""
    wanted = [k for k in ENERGY_METRICS if k in case.measured]
    if r.energy is None or not wanted:
        return {}
    e = r.energy
    node_per_chip = e.step_energy_j / e.pue / (r.chips * e.step_time_s)  # chips + host + network, per chip
    per_chip = node_per_chip if case.power_boundary == "node" else e.avg_power_w_per_chip
    pue = case.pue or 1.0
    out = {"avg_power_w_per_chip": per_chip, "avg_power_w": per_chip * r.chips,
           "energy_j_per_token": per_chip * r.chips * r.step_time_s * pue / job.tokens_per_step}
    if job.tokens:
        out["energy_mwh"] = per_chip * r.chips * r.step_time_s * job.tokens / job.tokens_per_step * pue / 3.6e9
    return {k: v for k, v in out.items() if k in wanted}


def predict_training(case: Case, catalog: Catalog, eff: EfficiencyTable, calib: Calibration,
                     constants: GroupConstants | None = None) -> CasePrediction:
    """Predict a training case: its plan as published, with unknown fields chosen by the search."""
    model, accel, system = resolve_specs(case, catalog)
    assert case.training is not None
    seq_notes: list[str] = []
    if case.training.seq_len is None:
        seq = min(model.max_seq, DEFAULT_SEQ_LEN)
        case = case.model_copy(update={"training": case.training.model_copy(update={"seq_len": seq})})
        seq_notes.append(f"seq_len not published: assumed {seq}")
    if case.chips is None:
        chips = _default_chips(case, model, accel)
        case = case.model_copy(update={"chips": chips})
        seq_notes.append(f"chips not published: assumed {chips} (a ~{DEFAULT_RUN_DAYS:.0f}-day run at 40 % MFU, "
                         f"rounded up to a power of two)")
    assert case.chips is not None
    facts = software_facts().get(case.url or "", NO_FACTS)
    job, notes = _training_job(case, case.chips, facts)
    notes = seq_notes + notes
    setup = make_training_setup(model, accel, system, job, eff, calib)
    if setup.eff.is_default:
        notes.append(f"no micro-benchmarks for {accel.id} or its family: generic efficiency defaults")
    elif setup.eff.borrowed_from and accel.id not in eff.chips:
        notes.append(f"no micro-benchmarks for {accel.id}: efficiencies inherited from {setup.eff.borrowed_from} "
                     f"(nearest fitted chip of its family)")
    if system is None:
        notes.append(f"no system given: synthesised {setup.system.name}")
    if constants is not None:
        setup = replace(setup, constants=constants)
    t = case.training
    assert t is not None
    pinned = {k: getattr(t, k) for k in PLAN_FIELDS if getattr(t, k) is not None}
    pinned = {**facts.plan_defaults(), **pinned}  # what the source's software of its date could not do
    if "sequence_parallel" in pinned and pinned.get("tp", 0) == 1:
        pinned["sequence_parallel"] = False
    if pinned.get("recompute") is not None:
        pinned["recompute_layers_frac"] = 1.0  # a published "full" means every layer
    missing = [k for k in PLAN_FIELDS if k not in pinned]
    # knobs the case format never publishes (TP/EP overlap, rank order): the source's software facts
    # where recorded, else chosen by the search like the unpublished fields
    knobs = facts.plan_knobs()
    if knobs.get("tp_comm_overlap") and (pinned.get("tp") == 1 or pinned.get("sequence_parallel") is False):
        knobs["tp_comm_overlap"] = False  # nothing to overlap without TP (and the overlap needs SP)
    pinned.update(knobs)
    unknown_knobs = [k for k in KNOB_FIELDS if k not in knobs and (k != "ep_comm_overlap" or model.moe)]
    if not missing and not unknown_knobs:
        # every field known: evaluate the published plan directly (no search)
        try:
            plan = TrainingPlan(**pinned)
        except ValidationError as exc:
            raise SpecError(format_validation_error(f"case {case.id}: training", exc)) from None
        r = evaluate_plan(setup, plan, allow_over_memory=True)
        if not r.fits_memory:
            notes.append("the published plan exceeds memory in our model")
    else:
        result = search_training(setup, SearchSpace(chips=case.chips, pinned=pinned), top=1)
        if not result.best:
            # the published run did fit: take the fastest plan that breaks only our memory estimate
            result = search_training(setup, SearchSpace(chips=case.chips, pinned=pinned), top=1,
                                     ignore_memory=True)
            notes.append("every plan with the published fields exceeds memory in our model")
        if not result.best:
            worst = max(result.rejected_by, key=lambda k: result.rejected_by[k])
            raise InfeasibleError(f"case {case.id}: no feasible plan with the published fields "
                                  f"({result.candidates_evaluated} tried; most rejected by {worst})")
        r = result.best[0]
        notes.append(f"chosen by search: {', '.join(missing + unknown_knobs)}")
    chosen = r.plan.model_dump()
    if any(k in case.measured for k in ENERGY_METRICS):
        boundary = "node: chips + host + network share" if case.power_boundary == "node" else "chip: accelerators only"
        notes.append(f"energy predicted at the {boundary} boundary, PUE {case.pue or 'not applied (none stated)'}, "
                     f"stock clocks; power parameters: energy/data/power.yaml (none fitted on cases)")
    return CasePrediction(case, chosen, _training_metrics(case, r, job), tuple(notes))



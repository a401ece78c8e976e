"""Predict every measured metric of every case and report the errors (``validation/FORMAT.md``).

Entry points: ``predict_case(case, catalog, ...)`` → ``CasePrediction``; ``validate_files(paths)`` →
``Report`` (``Report.to_json()`` is exactly the published report layout).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from fleetwise.catalog.loader import Catalog, format_validation_error, load_catalog, load_yaml_file
from fleetwise.catalog.types import Accelerator, ModelArch, System
from fleetwise.errors import FleetwiseError, InfeasibleError, SpecError
from fleetwise.perf.calibration import Calibration, GroupConstants, load_calibration
from fleetwise.perf.efficiency import EfficiencyTable, load_efficiency
from fleetwise.perf.setup import make_training_setup
from fleetwise.plan import TrainingJob
from fleetwise.search.evaluate import PlanResult, search_training
from fleetwise.search.space import SearchSpace
from fleetwise.units import DAY
from fleetwise.validate.cases import ENERGY_METRICS, Case, load_cases

PLAN_FIELDS = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "vpp", "sequence_parallel", "recompute", "zero")
# Sequences per step when a source does not publish its global batch: ~16M tokens, the order of
# magnitude of frontier pre-training batches (Llama 3: 16M; DeepSeek-V3: 63M after warm-up).
DEFAULT_TOKENS_PER_STEP = 16 * 2**20
BUNDLED_CASES = Path(__file__).parent / "data"
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


@dataclass(frozen=True, slots=True)
class CasePrediction:
    case: Case
    chosen: dict[str, Any]
    predicted: dict[str, float]
    notes: tuple[str, ...] = ()

    def errors(self) -> dict[str, float]:
        return {k: (self.predicted[k] - v) / v for k, v in self.case.measured.items() if k in self.predicted}


def _apply(spec: Any, overrides: dict[str, Any] | None, where: str, field_name: str) -> Any:
    if not overrides:
        return spec
    data = spec.model_dump()
    for k, v in overrides.items():
        if k.endswith("_tflops") or k == "int8_tops":
            data.setdefault("peak_tflops", {})[k.split("_")[0]] = v
        else:
            data[k] = v
    try:
        return type(spec).model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(f"{where}: {field_name}", exc)) from None


def resolve_specs(case: Case, catalog: Catalog) -> tuple[ModelArch, Accelerator, System | None]:
    where = f"case {case.id}"
    model = _apply(catalog.model(case.model, "model"), case.model_overrides, where, "model_overrides")
    accel = _apply(catalog.accelerator(case.hardware, "hardware"), case.hardware_overrides, where, "hardware_overrides")
    system = None
    if case.system is not None:
        system = _apply(catalog.system(case.system, "system"), case.system_overrides, where, "system_overrides")
    return model, accel, system


def _training_job(case: Case, chips: int) -> tuple[TrainingJob, list[str]]:
    t = case.training
    assert t is not None and t.seq_len is not None
    notes = []
    gbs = t.global_batch
    if gbs is None:
        # a multiple of the chip count, so that every data-parallel width divides it
        gbs = max(1, round(DEFAULT_TOKENS_PER_STEP / t.seq_len / chips)) * chips
        notes.append(f"global_batch not published: assumed {gbs} sequences (~16M tokens per step)")
    precision = case.precision or "bf16"
    lora = None
    if t.fine_tune:
        if str(t.fine_tune.get("method", "")).lower() != "lora":
            raise SpecError(f"case {case.id}: training.fine_tune.method: only 'lora' is modelled "
                            f"(got {t.fine_tune.get('method')!r})")
        lora = int(t.fine_tune.get("rank", 16))
    facts = software_facts().get(case.url or "", {})
    kernel = facts.get("attention_kernel", "flash")
    if kernel != "flash":
        notes.append(f"attention kernel {kernel} (validate/data/software.yaml: {facts.get('why', '')})")
    job = TrainingJob(seq_len=t.seq_len, global_batch=gbs, precision=precision, tokens=t.tokens, lora_rank=lora,
                      attention_kernel=kernel)
    return job, notes


@lru_cache(maxsize=1)
def software_facts() -> dict[str, dict[str, str]]:
    """Per-source software facts the case format has no field for (``validate/data/software.yaml``)."""
    path = BUNDLED_CASES / "software.yaml"
    data = load_yaml_file(path)
    sources = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(sources, dict):
        raise SpecError(f"{path}: expected a 'sources' mapping of url -> facts")
    allowed = {"attention_kernel": ("flash", "unfused"), "why": None}
    for url, facts in sources.items():
        for k, v in facts.items():
            if k not in allowed:
                raise SpecError(f"{path}: sources.{url}.{k}: unknown field (allowed: {', '.join(allowed)})")
            if allowed[k] is not None and v not in allowed[k]:  # type: ignore[operator]
                raise SpecError(f"{path}: sources.{url}.{k}: must be one of {allowed[k]} (got {v!r})")
    return {str(u): {k: str(v) for k, v in f.items()} for u, f in sources.items()}


def _training_metrics(case: Case, r: PlanResult, job: TrainingJob) -> dict[str, float]:
    out = {
        "step_time_s": r.step_time_s,
        "mfu": r.mfu,
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
    job, notes = _training_job(case, case.chips)
    notes = seq_notes + notes
    setup = make_training_setup(model, accel, system, job, eff, calib)
    if constants is not None:
        setup = replace(setup, constants=constants)
    t = case.training
    assert t is not None
    pinned = {k: getattr(t, k) for k in PLAN_FIELDS if getattr(t, k) is not None}
    if "sequence_parallel" in pinned and pinned.get("tp", 0) == 1:
        pinned["sequence_parallel"] = False
    if pinned.get("recompute") is not None:
        pinned["recompute_layers_frac"] = 1.0  # a published "full" means every layer
    missing = [k for k in PLAN_FIELDS if k not in pinned]
    # tp/ep communication overlap is never published in the case format: it is always chosen
    if True:
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
        notes.append(f"chosen by search: {', '.join(missing)}")
    chosen = r.plan.model_dump()
    if any(k in case.measured for k in ENERGY_METRICS):
        boundary = "node: chips + host + network share" if case.power_boundary == "node" else "chip: accelerators only"
        notes.append(f"energy predicted at the {boundary} boundary, PUE {case.pue or 'not applied (none stated)'}, "
                     f"stock clocks; power parameters: energy/data/power.yaml (none fitted on cases)")
    return CasePrediction(case, chosen, _training_metrics(case, r, job), tuple(notes))


def predict_case(case: Case, catalog: Catalog, eff: EfficiencyTable, calib: Calibration,
                 constants: GroupConstants | None = None) -> CasePrediction:
    if case.kind == "training":
        if case.training is None:
            raise SpecError(f"case {case.id}: training: required for kind 'training'")
        return predict_training(case, catalog, eff, calib, constants)
    if case.kind == "inference":
        from fleetwise.validate.inference_cases import predict_inference  # imports this module

        return predict_inference(case, catalog, eff)
    raise FleetwiseError(f"case {case.id}: kind {case.kind!r} is not predicted")


def _group_of(metric: str, case: Case) -> str:
    return "energy" if metric in ENERGY_METRICS else case.kind


def summarise(preds: Iterable[CasePrediction], error_of: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Per group: count, median/mean |error|, share within 10 % and 25 %, worst case (FORMAT.md)."""
    by_group: dict[str, list[tuple[str, float, str, float]]] = {}
    for p in preds:
        if error_of is not None and p.case.id not in error_of:
            continue  # leave-one-source-out covers the training cases only
        errs = error_of[p.case.id] if error_of is not None else p.errors()
        groups: dict[str, list[tuple[str, float]]] = {}
        for metric, e in errs.items():
            groups.setdefault(_group_of(metric, p.case), []).append((metric, e))
        for g, items in groups.items():
            mean_abs = float(np.mean([abs(e) for _, e in items]))
            worst_metric, worst_err = max(items, key=lambda x: abs(x[1]))
            by_group.setdefault(g, []).append((p.case.id, mean_abs, worst_metric, worst_err))
    summary: dict[str, Any] = {}
    for g, rows in by_group.items():
        abs_err = np.array([r[1] for r in rows])
        w = max(rows, key=lambda r: r[1])
        summary[g] = {
            "count": len(rows),
            "median_ape": round(float(np.median(abs_err)), 4),
            "mean_ape": round(float(np.mean(abs_err)), 4),
            "within_10": round(float(np.mean(abs_err <= 0.10)), 4),
            "within_25": round(float(np.mean(abs_err <= 0.25)), 4),
            "worst": {"id": w[0], "metric": w[2], "error": round(w[3], 4)},
        }
    return summary


@dataclass(frozen=True, slots=True)
class Report:
    predictions: list[CasePrediction]
    errors: list[dict[str, str]]
    loso_errors: dict[str, dict[str, float]] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        cases = []
        for p in self.predictions:
            entry: dict[str, Any] = {
                "id": p.case.id,
                "kind": p.case.kind,
                "chosen": p.chosen,
                "metrics": {
                    k: {"predicted": _r(p.predicted[k]), "measured": v, "error": _r(e)}
                    for k, v in p.case.measured.items() if k in p.predicted for e in [p.errors()[k]]
                },
            }
            if p.notes:
                entry["notes"] = list(p.notes)
            if self.loso_errors is not None:
                entry["loso_errors"] = {k: _r(v) for k, v in self.loso_errors.get(p.case.id, {}).items()}
            cases.append(entry)
        out: dict[str, Any] = {"summary": summarise(self.predictions), "cases": cases, "errors": self.errors}
        if self.loso_errors is not None:
            out["summary_leave_one_source_out"] = summarise(self.predictions, self.loso_errors)
        from fleetwise.validate.intervals import annotate_report  # intervals on every metric (FORMAT.md)

        annotate_report(out, [p.case for p in self.predictions], self.loso_errors)
        return out


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def bundled_case_files() -> list[Path]:
    """The shipped case files (``software.yaml`` beside them holds per-source facts, not cases)."""
    return sorted(p for p in BUNDLED_CASES.glob("*.yaml") if p.name != "software.yaml")


def validate_files(paths: Iterable[Path], catalog: Catalog | None = None, loso: bool = False) -> Report:
    """Predict every case of every file; cases that cannot be predicted become errors naming why."""
    catalog = catalog or load_catalog()
    eff = load_efficiency()
    calib = load_calibration()
    preds: list[CasePrediction] = []
    errors: list[dict[str, str]] = []
    cases: list[Case] = []
    for path in paths:
        file_cases, file_errors = load_cases(Path(path))
        cases += file_cases
        errors += file_errors
    for case in cases:
        measured = [k for k in case.measured if k not in ENERGY_METRICS]
        try:
            if not measured and case.kind != "training":
                raise FleetwiseError(f"case {case.id}: only energy metrics, which are not predicted yet")
            preds.append(predict_case(case, catalog, eff, calib))
        except FleetwiseError as exc:
            errors.append({"id": case.id, "message": str(exc)})
    loso_errors = None
    if loso:
        from fleetwise.validate.calibrate import leave_one_source_out

        loso_errors = leave_one_source_out(preds, catalog, eff, calib)
    return Report(preds, errors, loso_errors)

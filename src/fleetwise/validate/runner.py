"""Predict every measured metric of every case and report the errors (``validation/FORMAT.md``).

Entry points: ``validate_files(paths)`` → ``Report`` (``Report.to_json()`` is exactly the published report
layout); ``predict_case`` (``validate/predict.py``) and the case helpers are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fleetwise.catalog.loader import Catalog, is_file, load_catalog
from fleetwise.errors import FleetwiseError, SpecError, cut
from fleetwise.perf.calibration import load_calibration
from fleetwise.perf.efficiency import load_efficiency
from fleetwise.progress import ProgressFn
from fleetwise.validate.cases import ENERGY_METRICS, Case, load_cases
from fleetwise.validate.predict import predict_case
from fleetwise.validate.specs import BUNDLED_CASES, CasePrediction, bundled_case_files, resolve_specs
from fleetwise.validate.sweeps import score_sweeps
from fleetwise.validate.training_cases import predict_training

__all__ = ["BUNDLED_CASES", "CasePrediction", "Report", "bundled_case_files", "predict_case", "predict_training",
           "resolve_specs", "summarise", "validate_files"]


def _group_of(metric: str, case: Case) -> str:
    return "energy" if metric in ENERGY_METRICS else case.kind


def summarise(preds: Iterable[CasePrediction], error_of: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Per group: count, median/mean |error|, share within 10 % and 25 %, worst case (FORMAT.md)."""
    by_group: dict[str, list[tuple[str, float, str, float]]] = {}
    for p in preds:
        if error_of is not None and p.case.id not in error_of:
            continue  # leave-one-source-out: cases with fitted constants (not energy-only ones)
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
    invalid: list[dict[str, str]] = field(default_factory=list)  # case files or entries that do not parse

    @property
    def invalid_summary(self) -> str:
        """One line naming the first invalid case file or entry and how many there are ('' when none)."""
        if not self.invalid:
            return ""
        more = f" (and {len(self.invalid) - 1} more)" if len(self.invalid) > 1 else ""
        return f"{self.invalid[0]['message'].splitlines()[0][:240]}{more}; the valid cases ran"

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
        out: dict[str, Any] = {"summary": summarise(self.predictions), "cases": cases, "errors": self.errors,
                               "invalid": self.invalid}
        sweeps, sweep_summary = score_sweeps(self.predictions)
        if sweep_summary is not None:  # FORMAT.md "Sweeps": ranking of measured plan sweeps
            out["summary"]["sweeps"] = sweep_summary
            out["sweeps"] = sweeps
        if self.loso_errors is not None:
            out["summary_leave_one_source_out"] = summarise(self.predictions, self.loso_errors)
        from fleetwise.validate.intervals import annotate_report  # intervals on every metric (FORMAT.md)

        annotate_report(out, [p.case for p in self.predictions], self.loso_errors)
        return out


def _r(x: float) -> float:
    return float(f"{x:.6g}")


def validate_files(paths: Iterable[Path], catalog: Catalog | None = None, loso: bool = False,
                   progress: ProgressFn | None = None) -> Report:
    """Predict every case of every file; cases that cannot be predicted become errors naming why.

    ``progress(done, total)`` after each case (and, with ``loso``, after each case's refit curve)."""
    catalog = catalog or load_catalog()
    eff = load_efficiency()
    calib = load_calibration()
    preds: list[CasePrediction] = []
    errors: list[dict[str, str]] = []
    cases: list[Case] = []
    invalid: list[dict[str, str]] = []
    for path in paths:
        if not is_file(path):
            invalid.append({"id": str(path), "message": f"{cut(str(path), 200)}: no such case file"})
            continue
        try:
            file_cases, file_errors = load_cases(Path(path))
        except SpecError as exc:  # the whole file is unreadable: report it, run the other files
            invalid.append({"id": str(path), "message": str(exc)})
            continue
        cases += file_cases
        invalid += file_errors
    total = len(cases) * (2 if loso else 1)
    for done, case in enumerate(cases):
        if progress is not None:
            progress(done, total)
        measured = [k for k in case.measured if k not in ENERGY_METRICS]
        try:
            if not measured and case.kind != "training":
                raise FleetwiseError(f"case {case.id}: only energy metrics, which are not predicted yet")
            preds.append(predict_case(case, catalog, eff, calib))
        except FleetwiseError as exc:
            errors.append({"id": case.id, "message": str(exc)})
    loso_errors = None
    if loso:
        from fleetwise.validate.calibrate import leave_one_source_out  # refits; only when asked

        step = None if progress is None else (lambda done, _n: progress(len(cases) + done, total))
        loso_errors = leave_one_source_out(preds, catalog, eff, calib, progress=step)
    if progress is not None:
        progress(total, total)
    return Report(preds, errors, loso_errors, invalid)

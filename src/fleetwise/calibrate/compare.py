"""What a calibrated catalog folder changes: the validation cases of its chips, without and with the folder.

Entry point: ``compare_folder(folder, files, base)`` returns a ``Comparison`` (per case and metric the measured
value and the prediction and error before and after; per group the summary before and after).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwise.catalog.loader import data_layers, is_dir, is_file, load_catalog, load_yaml_file
from fleetwise.errors import FleetwiseError, SpecError, cut
from fleetwise.perf.calibration import load_calibration
from fleetwise.perf.efficiency import load_efficiency
from fleetwise.validate.cases import Case, load_cases
from fleetwise.validate.predict import predict_case
from fleetwise.validate.runner import summarise
from fleetwise.validate.specs import CasePrediction, bundled_case_files


@dataclass(frozen=True, slots=True)
class MetricChange:
    case_id: str
    kind: str
    metric: str
    measured: float
    before: float
    after: float

    @property
    def error_before(self) -> float:
        return (self.before - self.measured) / self.measured

    @property
    def error_after(self) -> float:
        return (self.after - self.measured) / self.measured


@dataclass(frozen=True, slots=True)
class Comparison:
    folder: str
    chips: tuple[str, ...]
    rows: tuple[MetricChange, ...]
    summary_before: dict[str, Any]
    summary_after: dict[str, Any]
    errors: tuple[dict[str, str], ...]

    @property
    def changed(self) -> int:
        """How many predicted metrics the folder moved (relative change above 1e-9)."""
        return sum(abs(r.after - r.before) > 1e-9 * max(abs(r.before), 1e-30) for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "chips": list(self.chips), "changed_metrics": self.changed,
                "cases": [{"id": r.case_id, "kind": r.kind, "metric": r.metric, "measured": r.measured,
                           "before": {"predicted": _r6(r.before), "error": _r6(r.error_before)},
                           "after": {"predicted": _r6(r.after), "error": _r6(r.error_after)}} for r in self.rows],
                "summary": {g: {"before": self.summary_before[g], "after": self.summary_after.get(g)}
                            for g in self.summary_before},
                "errors": list(self.errors)}


def _r6(x: float) -> float:
    return float(f"{x:.6g}")


def folder_chips(folder: Path) -> tuple[str, ...]:
    """The chips a calibrated folder's ``efficiency.yaml`` gives parameters of (chips, device collectives)."""
    path = Path(folder) / "efficiency.yaml"
    if not is_dir(folder):
        raise SpecError(f"{cut(str(folder), 200)}: no such catalog folder (write one with 'fleetwise calibrate fit')")
    if not is_file(path):
        raise SpecError(f"{path}: missing; a calibrated folder holds efficiency.yaml ('fleetwise calibrate fit')")
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping with chips and/or collectives, got {type(data).__name__}")
    chips = set((data.get("chips") or {}).keys())
    for c in (data.get("collectives") or {}).values():  # entries that model a fabric, not applies_to overrides
        if isinstance(c, dict) and ("busbw_frac" in c or "by_group_size" in c):
            chips.update(a for a in c.get("applies_to") or [] if a != "any")
    if not chips:
        raise SpecError(f"{path}: chips: names no chip, so no validation case can change")
    return tuple(sorted(chips))


def _cases(files: Sequence[Path], chips: tuple[str, ...]) -> list[Case]:
    out = []
    for path in files:
        if not is_file(path):
            raise SpecError(f"{cut(str(path), 200)}: no such case file")
        cases, _invalid = load_cases(Path(path))
        out += [c for c in cases if c.hardware in chips]
    return out


def _predict(cases: list[Case], layers: list[Path]) -> tuple[dict[str, CasePrediction], dict[str, str]]:
    catalog = load_catalog(layers)
    eff, calib = load_efficiency(), load_calibration()
    preds, errors = {}, {}
    for case in cases:
        try:
            preds[case.id] = predict_case(case, catalog, eff, calib)
        except FleetwiseError as exc:
            errors[case.id] = str(exc).splitlines()[0]
    return preds, errors


def compare_folder(folder: Path, files: Sequence[Path] | None = None,
                   base: Sequence[Path] | None = None) -> Comparison:
    """Predict the cases of the folder's chips with the base catalog, then with the folder layered on top.

    Args:
        folder: a calibrated user catalog folder (``fleetwise calibrate fit --out``).
        files: case files (default: the shipped ones); only cases on the folder's chips are run.
        base: other user catalog folders under it, in both runs (default: none).

    Returns:
        The comparison; cases that cannot be predicted are in ``errors``.
    """
    chips = folder_chips(Path(folder))
    cases = _cases(list(files) if files else bundled_case_files(), chips)
    if not cases:
        raise SpecError(f"no validation case runs on {', '.join(chips)} in "
                        f"{', '.join(str(f) for f in files) if files else 'the shipped case files'}")
    previous = data_layers()
    base_layers = [Path(b) for b in base or []]
    try:
        before, err_before = _predict(cases, base_layers)
        after, err_after = _predict(cases, [*base_layers, Path(folder)])
    finally:
        load_catalog(previous)  # leave the process's data layers as they were
    rows = []
    for case in cases:
        if case.id not in before or case.id not in after:
            continue
        b, a = before[case.id], after[case.id]
        rows += [MetricChange(case.id, case.kind, k, v, b.predicted[k], a.predicted[k])
                 for k, v in case.measured.items() if k in b.predicted and k in a.predicted]
    both = [c.id for c in cases if c.id in before and c.id in after]
    errors = [{"id": i, "before": err_before.get(i, ""), "after": err_after.get(i, "")}
              for i in dict.fromkeys([*err_before, *err_after])]
    return Comparison(str(folder), chips, tuple(rows), summarise([before[i] for i in both]),
                      summarise([after[i] for i in both]), tuple(errors))

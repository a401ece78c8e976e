"""Fit group constants on published runs, and measure error the way a new case would see it.

Entry points: ``scale_curves`` (each case's predictions over a grid of ``compute_scale``),
``fit_groups`` (one constant per chip family, from whole groups, never one case), and
``leave_one_source_out`` (refit without a source's cases, then predict them; inference cases through the
serving fitter of ``inference_cases``).
Run ``python -m fleetwise.validate.calibrate`` to rewrite ``perf/data/calibration.yaml``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

from fleetwise.catalog.loader import Catalog, is_file, load_catalog
from fleetwise.errors import FleetwiseError
from fleetwise.perf.calibration import DATA_FILE, Calibration, GroupConstants, family_of
from fleetwise.perf.efficiency import EfficiencyTable, load_efficiency
from fleetwise.progress import ProgressFn
from fleetwise.validate.cases import ENERGY_METRICS, Case, load_cases
from fleetwise.validate.inference_cases import serving_leave_one_source_out
from fleetwise.validate.predict import predict_case
from fleetwise.validate.specs import CasePrediction, bundled_case_files

FloatArray = npt.NDArray[np.float64]
GRID = np.geomspace(0.6, 2.4, 13)


@dataclass(frozen=True, slots=True)
class Curve:
    """A case's predicted metrics at each grid scale: ``preds[metric]`` has one value per grid point."""

    case: Case
    preds: dict[str, FloatArray]

    def abs_log_error(self, scale: float) -> float:
        """Mean |log(predicted/measured)| over the case's metrics at ``scale`` (log-linear interpolation)."""
        errs = []
        for metric, series in self.preds.items():
            p = np.exp(np.interp(np.log(scale), np.log(GRID), np.log(series)))
            errs.append(abs(np.log(p / self.case.measured[metric])))
        return float(np.mean(errs))

    def errors(self, scale: float) -> dict[str, float]:
        out = {}
        for metric, series in self.preds.items():
            p = float(np.exp(np.interp(np.log(scale), np.log(GRID), np.log(series))))
            out[metric] = (p - self.case.measured[metric]) / self.case.measured[metric]
        return out


def scale_curves(cases: Iterable[Case], catalog: Catalog, eff: EfficiencyTable,
                 progress: ProgressFn | None = None) -> list[Curve]:
    curves = []
    calib = Calibration({})
    cases = list(cases)
    for done, case in enumerate(cases):
        if progress is not None:
            progress(done, len(cases))
        metrics = [k for k in case.measured if k not in ENERGY_METRICS]
        if case.kind != "training" or not metrics:
            continue
        series: dict[str, list[float]] = {k: [] for k in metrics}
        try:
            for scale in GRID:
                p = predict_case(case, catalog, eff, calib, GroupConstants(float(scale)))
                for k in metrics:
                    series[k].append(p.predicted[k])
        except FleetwiseError:
            continue
        curves.append(Curve(case, {k: np.array(v) for k, v in series.items() if len(v) == len(GRID)}))
    return curves


def fit_scale(curves: Sequence[Curve]) -> float:
    """The scale minimising the mean |log error| over the curves (grid search, then a fine grid)."""
    if not curves:
        return 1.0
    fine = np.geomspace(GRID[0], GRID[-1], 400)
    cost = [np.mean([c.abs_log_error(float(s)) for c in curves]) for s in fine]
    return float(fine[int(np.argmin(cost))])


def fit_groups(curves: Sequence[Curve]) -> dict[str, GroupConstants]:
    groups: dict[str, list[Curve]] = {}
    for c in curves:
        groups.setdefault(family_of(c.case.hardware), []).append(c)
    out = {"global": GroupConstants(fit_scale(curves), "global", tuple(c.case.id for c in curves))}
    for fam, cs in groups.items():
        out[fam] = GroupConstants(fit_scale(cs), fam, tuple(c.case.id for c in cs))
    return out


WHOLE_RUN_METRICS = ("time_to_train_days", "chip_hours")


def fits_constants(c: Curve) -> bool:
    """Step-level measurements fit kernel-time constants; whole production runs (GPU-hours, days only)
    include restarts and idle time, so they are predicted but never fitted on."""
    return any(k not in WHOLE_RUN_METRICS for k in c.preds)


def loso_curve_errors(curves: Sequence[Curve]) -> dict[str, dict[str, float]]:
    """Errors of each case when its whole source is left out of the fit of its family's constant."""
    out: dict[str, dict[str, float]] = {}
    for source in sorted({c.case.source_key for c in curves}):
        held = [c for c in curves if c.case.source_key == source]
        rest = [c for c in curves if c.case.source_key != source and fits_constants(c)]
        for c in held:
            fam = family_of(c.case.hardware)
            same = [r for r in rest if family_of(r.case.hardware) == fam]
            scale = fit_scale(same if same else rest)
            out[c.case.id] = c.errors(scale)
    return out


def leave_one_source_out(preds: Sequence[CasePrediction], catalog: Catalog, eff: EfficiencyTable,
                         calib: Calibration, progress: ProgressFn | None = None) -> dict[str, dict[str, float]]:
    """Errors of every predicted case with its source left out of the fit of its group's constants.

    Training cases: the family compute scale (``scale_curves``, ``loso_curve_errors``). Inference cases: the
    serving constants, refitted as ``serving.yaml`` is (``serving_leave_one_source_out``). Energy metrics get
    none (their parameters are not fitted on cases). ``progress(done, total)`` once per case."""
    del calib  # refitted from scratch
    training = [p.case for p in preds if p.case.kind == "training"]
    inference = [p.case for p in preds if p.case.kind == "inference"]
    total = len(training) + len(inference)
    step = None if progress is None else (lambda done, _n: progress(done, total))
    out = loso_curve_errors(scale_curves(training, catalog, eff, step))
    step = None if progress is None else (lambda done, _n: progress(len(training) + done, total))
    serving = serving_leave_one_source_out(inference, catalog, eff, progress=step) if inference else {}
    for cid, errs in serving.items():
        kept = {k: v for k, v in errs.items() if k not in ENERGY_METRICS}
        if kept:
            out[cid] = kept
    return out


def _median_ape(errs: Iterable[dict[str, float]]) -> float:
    per_case = [float(np.mean([abs(e) for e in d.values()])) for d in errs if d]
    return round(float(np.median(per_case)), 4) if per_case else float("nan")


def write_calibration(paths: Sequence[Path], out: Path = DATA_FILE) -> dict[str, object]:
    catalog = load_catalog()
    eff = load_efficiency()
    cases: list[Case] = []
    for p in paths:
        cases += load_cases(p)[0]
    curves = scale_curves(cases, catalog, eff)
    groups = fit_groups([c for c in curves if fits_constants(c)])
    loso = loso_curve_errors(curves)
    doc: dict[str, object] = {"groups": {}}
    for name, g in groups.items():
        members = [c for c in curves if name == "global" or family_of(c.case.hardware) == name]
        doc["groups"][name] = {  # type: ignore[index]
            "compute_scale": round(g.compute_scale, 4),
            "fitted_on": list(g.fitted_on),
            "in_sample_median_ape": _median_ape(c.errors(g.compute_scale) for c in members),
            "leave_one_source_out_median_ape": _median_ape(loso[c.case.id] for c in members),
        }
    header = ("# Group constants fitted by `python -m fleetwise.validate.calibrate` on the shipped validation\n"
              "# cases (training kind). compute_scale multiplies kernel time of every chip of the family.\n"
              "# Fitted per chip family on whole groups of published runs, never on a single case.\n")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=100), encoding="utf-8")
    tmp.replace(out)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fleetwise.validate.calibrate [CASES.yaml ...]``: refit and rewrite the calibration file."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m fleetwise.validate.calibrate",
        description=f"Fit the group constants on published training runs and rewrite {DATA_FILE.name} "
                    "(in-sample and leave-one-source-out error per group).")
    parser.add_argument("files", nargs="*", type=Path,
                        help="case files to fit on (default: the shipped training.yaml; step-level measurements "
                             "only, since whole-run GPU-hours include restarts and idle time)")
    args = parser.parse_args(argv)
    files = list(args.files) or [p for p in bundled_case_files() if p.name == "training.yaml"]
    try:
        missing = [f for f in files if not is_file(f)]
        if missing:
            raise FleetwiseError(f"{missing[0]}: no such case file")
        result = write_calibration(files)
    except FleetwiseError as exc:
        print(f"calibrate: error: {exc}", file=sys.stderr)
        return 2
    for name, g in result["groups"].items():  # type: ignore[attr-defined]
        print(f"{name:22s} scale={g['compute_scale']:.3f} n={len(g['fitted_on']):3d} "
              f"in-sample={g['in_sample_median_ape']:.3f} loso={g['leave_one_source_out_median_ape']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

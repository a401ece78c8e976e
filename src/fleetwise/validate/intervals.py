"""Fit the prediction intervals (``perf/data/intervals.yaml``) from leave-one-source-out residuals.

Run ``python -m fleetwise.validate.intervals`` after any change to the models or the bundled cases (one
command refits everything it needs: training and serving leave-one-source-out predictions, then the groups).

Method (Mondrian split-conformal, Vovk et al. 2005): each bundled case is predicted with constants fitted
without its source; its oriented residual ``log(measured / predicted)`` (times inverted) joins the group of
its kind, metric class and chip family. A group's interval is the conformal pair of order statistics
``k_lo = floor(0.1 (n + 1))`` and ``k_hi = ceil(0.9 (n + 1))``, finite only from n = 9 residuals on. A family
with fewer is widened honestly: its class's interval pooled over all families, stretched to cover every
residual the family has, and the file says so. Coverage is then checked once more leaving each source out
of the interval fit too (``loso_coverage``): the share of held-out residuals inside their interval.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.errors import FleetwiseError
from fleetwise.perf.calibration import family_of
from fleetwise.perf.efficiency import EfficiencyTable, load_efficiency
from fleetwise.perf.intervals import COVERAGE, DATA_FILE, metric_class, oriented_residual
from fleetwise.validate.cases import Case, load_cases

MIN_RESIDUALS = 9  # the smallest n for which both conformal order statistics of a central 80 % interval exist


@dataclass(frozen=True, slots=True)
class Residual:
    case_id: str
    source: str
    group: str  # kind/class
    family: str
    metric: str
    value: float  # oriented log residual


def residuals_from_errors(cases: Iterable[Case], errors: dict[str, dict[str, float]]) -> list[Residual]:
    """Oriented residuals from relative errors ``(predicted - measured) / measured`` per case and metric."""
    out = []
    for c in cases:
        for metric, e in errors.get(c.id, {}).items():
            # request_rate_at_slo is scored against the published request rate (validate/inference_cases.py)
            measured = c.measured.get(metric) or (c.inference.request_rate if c.inference is not None and
                                                  metric == "request_rate_at_slo" else None)
            if measured is None or not math.isfinite(e) or e <= -1.0:
                continue
            kind, cls = metric_class(c.kind, metric)
            out.append(Residual(c.id, c.source_key, f"{kind}/{cls}", family_of(c.hardware), metric,
                                oriented_residual(metric, measured * (1.0 + e), measured)))
    return out


def _upper_rank(q: float, n: int) -> int:
    """1-based rank of the split-conformal upper ``q`` quantile among ``n`` sorted residuals."""
    return min(int(math.ceil(q * (n + 1))), n)


def _conformal(values: Sequence[float]) -> tuple[float, float] | None:
    n = len(values)
    if n < MIN_RESIDUALS:
        return None
    v = np.sort(np.asarray(values, dtype=np.float64))
    alpha = (1.0 - COVERAGE) / 2.0
    k_lo = max(int(math.floor(alpha * (n + 1))), 1)
    return float(min(v[k_lo - 1], 0.0)), float(max(v[_upper_rank(1.0 - alpha, n) - 1], 0.0))


def fit_groups(res: Sequence[Residual]) -> dict[str, dict[str, Any]]:
    """Per kind/class/family (and kind/class/* pooled): oriented log quantiles, count and how they were got."""
    out: dict[str, dict[str, Any]] = {}
    by_group: dict[str, list[Residual]] = {}
    for r in res:
        by_group.setdefault(r.group, []).append(r)
    for group, members in sorted(by_group.items()):
        pooled = _conformal([r.value for r in members])
        vals = [r.value for r in members]
        if pooled is None:
            # too few residuals of this kind even pooled: their own range, doubled outwards
            span = max(abs(min(vals)), abs(max(vals)), math.log(1.25))
            pooled = (-2.0 * span, 2.0 * span)
            how_pooled = (f"{len(vals)} residuals (< {MIN_RESIDUALS} for a conformal 80 % interval): twice their "
                          f"largest deviation either way")
        else:
            how_pooled = f"split-conformal over all families ({len(vals)} residuals)"
        out[f"{group}/*"] = {"lo": pooled[0], "hi": pooled[1], "n": len(vals), "how": how_pooled}
        fams: dict[str, list[float]] = {}
        for r in members:
            fams.setdefault(r.family, []).append(r.value)
        for fam, fv in sorted(fams.items()):
            own = _conformal(fv)
            if own is not None:
                out[f"{group}/{fam}"] = {"lo": own[0], "hi": own[1], "n": len(fv),
                                         "how": f"split-conformal on the family's own {len(fv)} residuals"}
            else:
                lo, hi = min(pooled[0], min(fv)), max(pooled[1], max(fv))
                out[f"{group}/{fam}"] = {
                    "lo": lo, "hi": hi, "n": len(fv),
                    "how": (f"widened: only {len(fv)} residuals (< {MIN_RESIDUALS} needed for its own 80 % "
                            f"interval), so the interval pooled over families, stretched to cover all of them")}
    return out


def _band(groups: dict[str, dict[str, Any]], r: Residual) -> tuple[float, float]:
    g = groups.get(f"{r.group}/{r.family}") or groups[f"{r.group}/*"]
    return float(g["lo"]), float(g["hi"])


def loso_coverage(res: Sequence[Residual]) -> dict[str, dict[str, float]]:
    """Per kind: share of residuals inside an interval fitted without their source, and its median width."""
    hits: dict[str, list[bool]] = {}
    widths: dict[str, list[float]] = {}
    for src in sorted({r.source for r in res}):
        held = [r for r in res if r.source == src]
        rest = [r for r in res if r.source != src]
        groups = fit_groups(rest)
        for r in held:
            if f"{r.group}/*" not in groups:
                continue
            lo, hi = _band(groups, r)
            kind = r.group.split("/")[0]
            hits.setdefault(kind, []).append(lo <= r.value <= hi)
            widths.setdefault(kind, []).append(math.exp(hi) - math.exp(lo))
    return {k: {"interval_coverage": round(float(np.mean(v)), 4), "count": len(v),
                "interval_median_width": round(float(np.median(widths[k])), 4)} for k, v in hits.items()}


def training_loso_errors(cases: list[Case], catalog: Catalog, eff: EfficiencyTable) -> dict[str, dict[str, float]]:
    from fleetwise.validate.calibrate import loso_curve_errors, scale_curves

    return loso_curve_errors(scale_curves([c for c in cases if c.kind == "training"], catalog, eff))


def inference_loso_errors(cases: list[Case], catalog: Catalog, eff: EfficiencyTable
                          ) -> dict[str, dict[str, float]]:
    from fleetwise.validate.inference_cases import serving_leave_one_source_out

    return serving_leave_one_source_out([c for c in cases if c.kind == "inference"], catalog, eff)


def loso_errors(cases: list[Case], catalog: Catalog, eff: EfficiencyTable) -> dict[str, dict[str, float]]:
    """Leave-one-source-out relative errors of every training and inference case."""
    return training_loso_errors(cases, catalog, eff) | inference_loso_errors(cases, catalog, eff)


def lead_band(sweep_cases: Sequence[Case]) -> dict[str, Any] | None:
    """How far the model's predicted lead of one plan over the next (same model, chips and software) is from the
    measured lead: over every sweep, the plans in predicted order and each adjacent pair's error
    ``|log(pred_a/pred_b) - log(meas_a/meas_b)|`` (step times); the conformal 80 % quantile of those errors.
    Two ranked plans whose predicted lead is under it are a tie (``perf.intervals.ties_with_next``)."""
    from fleetwise.perf.calibration import load_calibration
    from fleetwise.validate.predict import predict_case

    catalog, eff, calib = load_catalog(), load_efficiency(), load_calibration()
    by_sweep: dict[str, list[tuple[float, float]]] = {}
    for c in sweep_cases:
        if "step_time_s" not in c.measured:
            continue
        try:
            pred = predict_case(c, catalog, eff, calib).predicted.get("step_time_s")
        except FleetwiseError:
            continue
        if pred:
            by_sweep.setdefault(str(c.sweep), []).append((float(pred), float(c.measured["step_time_s"])))
    errs: list[float] = []
    for runs in by_sweep.values():
        runs.sort()
        errs += [abs(math.log(a[0] / b[0]) - math.log(a[1] / b[1])) for a, b in zip(runs, runs[1:], strict=False)]
    if len(errs) < MIN_RESIDUALS:
        return None
    v = np.sort(np.asarray(errs))
    q = float(v[_upper_rank(COVERAGE, len(v)) - 1])
    return {"log_error": round(q, 4), "pairs": len(errs), "sweeps": len(by_sweep),
            "how": f"conformal 80 % quantile of |predicted - measured| log lead between adjacent plans in predicted "
                   f"order, over {len(errs)} pairs of {len(by_sweep)} measured plan sweeps"}


def fit_intervals(paths: Sequence[Path], out: Path = DATA_FILE,
                  errors: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Predict every case leave-one-source-out (unless ``errors`` are given), fit the interval groups, check
    coverage, write ``out``."""
    cases: list[Case] = []
    for p in paths:
        cases += load_cases(Path(p))[0]
    # runs of one measured plan sweep are one source's correlated errors on one setup (hundreds of vTrain runs
    # would swamp every other A100 source): they score ranking, and are the held-out check of these intervals
    held_out = sum(1 for c in cases if c.sweep is not None)
    lead = lead_band([c for c in cases if c.sweep is not None])
    cases = [c for c in cases if c.sweep is None]
    if errors is None:
        errors = loso_errors(cases, load_catalog(), load_efficiency())
    res = residuals_from_errors(cases, errors)
    groups = fit_groups(res)
    coverage = loso_coverage(res)
    doc: dict[str, Any] = {
        "coverage": COVERAGE,
        "method": "Mondrian split-conformal on leave-one-source-out residuals log(measured/predicted) (times "
                  "inverted), per kind/metric class/chip family; conformal order statistics floor(0.1(n+1)) and "
                  f"ceil(0.9(n+1)); groups under {MIN_RESIDUALS} residuals widened (see how)",
        "fitted_on": {"files": [Path(p).name for p in paths], "residuals": len(res),
                      "cases": len({r.case_id for r in res}), "sources": len({r.source for r in res}),
                      "sweep_runs_held_out": held_out,
                      "date": datetime.date.today().isoformat()},
        "loso_coverage": coverage,
        **({"lead": lead} if lead else {}),
        "groups": {k: {"low": round(math.exp(v["lo"]), 4), "high": round(math.exp(v["hi"]), 4), "n": v["n"],
                       "how": v["how"]} for k, v in groups.items()},
    }
    import yaml

    header = ("# Prediction intervals (central 80 %) fitted by `python -m fleetwise.validate.intervals` on the\n"
              "# leave-one-source-out residuals of the bundled cases. low/high: measured/predicted ratios for rates\n"
              "# (a time's interval is the inverse). Do not edit by hand; refit after any model change.\n")
    out.write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110))
    return doc


def main() -> None:
    from fleetwise.validate.specs import bundled_case_files

    doc = fit_intervals(bundled_case_files())
    print(f"wrote {DATA_FILE}: {doc['fitted_on']}")
    for kind, c in doc["loso_coverage"].items():
        print(f"  {kind:10s} LOSO coverage {c['interval_coverage']:.2f} over {c['count']} metrics, "
              f"median width {c['interval_median_width']:.2f}")
    for k, g in doc["groups"].items():
        print(f"  {k:45s} [{g['low']:.3f}, {g['high']:.3f}] n={g['n']:3d}  {g['how']}")



def annotate_report(out: dict[str, Any], cases: Sequence[Case], loso_errors: dict[str, dict[str, float]] | None
                    ) -> None:
    """Add ``low``/``high`` to every metric of a ``validate --json`` report and ``interval_coverage`` /
    ``interval_median_width`` to each summary group (FORMAT.md, "Intervals"); with leave-one-source-out
    errors, the same for the leave-one-source-out summary."""
    from fleetwise.perf.intervals import load_intervals

    table = load_intervals()
    by_id = {c.id: c for c in cases}
    stats: dict[str, tuple[list[bool], list[float]]] = {}
    loso_stats: dict[str, tuple[list[bool], list[float]]] = {}
    for entry in out.get("cases", []):
        case = by_id.get(entry["id"])
        if case is None:
            continue
        for metric, m in entry.get("metrics", {}).items():
            iv = table.interval(case.kind, metric, case.hardware, float(m["predicted"]))
            m["low"], m["high"] = iv.to_json()["low"], iv.to_json()["high"]
            group = "energy" if metric_class(case.kind, metric)[0] == "energy" else case.kind
            hit, width = stats.setdefault(group, ([], []))
            hit.append(iv.contains(float(m["measured"])))
            width.append(iv.width_frac(float(m["predicted"])))
            e = (loso_errors or {}).get(case.id, {}).get(metric)
            if e is not None and e > -1.0:
                pred = float(m["measured"]) * (1.0 + e)
                iv2 = table.interval(case.kind, metric, case.hardware, pred)
                h2, w2 = loso_stats.setdefault(group, ([], []))
                h2.append(iv2.contains(float(m["measured"])))
                w2.append(iv2.width_frac(pred))
    for key, st in (("summary", stats), ("summary_leave_one_source_out", loso_stats)):
        for grp, (hit, width) in st.items():
            if grp in out.get(key, {}) and hit:
                out[key][grp]["interval_coverage"] = round(float(np.mean(hit)), 4)
                out[key][grp]["interval_median_width"] = round(float(np.median(width)), 4)


if __name__ == "__main__":
    main()

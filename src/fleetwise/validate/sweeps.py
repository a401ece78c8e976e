"""Ranking quality on measured plan sweeps (``validation/FORMAT.md``, "Sweeps").

Cases that share a ``sweep`` id ran the same model on the same chips with the same global batch under
different plans. For every sweep of three or more predicted runs: Spearman ρ between predicted and
measured step time, and the regret of the plan the model ranks fastest. Entry point:
``score_sweeps(predictions)`` → ``(per-sweep rows, summary)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

MIN_RUNS = 3
WITHIN = 0.05
# metrics that rank a sweep, in order of preference, and whether larger means faster
RANK_METRICS: tuple[tuple[str, bool], ...] = (
    ("step_time_s", False), ("tokens_per_s_per_chip", True), ("tflops_per_chip", True), ("mfu", True),
)


class _Prediction(Protocol):
    @property
    def predicted(self) -> dict[str, float]: ...

    @property
    def case(self) -> Any: ...


def _ranks(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1, dtype=np.float64)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a: Sequence[float] | npt.NDArray[np.float64], b: Sequence[float] | npt.NDArray[np.float64]) -> float:
    """Spearman rank correlation (Pearson on mean ranks); 0 when either side is constant."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    da, db = ra - ra.mean(), rb - rb.mean()
    den = float(np.sqrt((da * da).sum() * (db * db).sum()))
    return float((da * db).sum() / den) if den > 0 else 0.0


def _time_like(p: _Prediction) -> tuple[str, float, float] | None:
    """(metric, predicted, measured) as a time (smaller is faster) for the first ranking metric present."""
    for metric, larger_is_faster in RANK_METRICS:
        if metric in p.case.measured and metric in p.predicted:
            pred, meas = float(p.predicted[metric]), float(p.case.measured[metric])
            if larger_is_faster:
                pred, meas = 1.0 / pred, 1.0 / meas
            return metric, pred, meas
    return None


def score_sweeps(preds: Iterable[_Prediction]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per sweep of >= 3 predicted runs: spearman, regret, predicted and measured best; and their summary."""
    by_sweep: dict[str, list[tuple[str, str, float, float]]] = {}
    for p in preds:
        sweep = getattr(p.case, "sweep", None)
        got = _time_like(p) if sweep else None
        if sweep and got is not None:
            by_sweep.setdefault(sweep, []).append((p.case.id, *got))
    rows: list[dict[str, Any]] = []
    for sid in sorted(by_sweep):
        runs = by_sweep[sid]
        metric = runs[0][1]
        runs = [r for r in runs if r[1] == metric]  # one ranking metric per sweep
        if len(runs) < MIN_RUNS:
            continue
        pred = np.array([r[2] for r in runs])
        meas = np.array([r[3] for r in runs])
        pick, best = int(np.argmin(pred)), int(np.argmin(meas))
        rows.append({
            "id": sid, "runs": len(runs),
            "spearman": round(spearman(pred, meas), 4),
            "regret": round(float(meas[pick] / meas[best] - 1.0), 4),
            "predicted_best": runs[pick][0], "measured_best": runs[best][0],
        })
    if not rows:
        return rows, None
    regret = np.array([r["regret"] for r in rows])
    summary = {
        "count": len(rows),
        "median_regret": round(float(np.median(regret)), 4),
        "max_regret": round(float(regret.max()), 4),
        "within_5": round(float(np.mean(regret <= WITHIN)), 4),
        "median_spearman": round(float(np.median([r["spearman"] for r in rows])), 4),
    }
    return rows, summary

"""Prediction intervals: how sure a predicted number is.

Entry points: ``load_intervals()`` returns ``IntervalTable``; ``IntervalTable.interval(kind, metric, chip_id,
predicted)`` gives a central 80 % interval ``Interval(low, high, group, how)`` around a prediction, and
``tie(a, b, ...)`` says whether two predictions are closer than their intervals can tell apart.

The intervals are Mondrian split-conformal (Vovk et al. 2005; Angelopoulos & Bates 2021, Sec. 4.1): from the
leave-one-source-out residuals ``log(measured / predicted)`` of the bundled validation cases, per kind
(training, inference, energy), metric class and chip family, the 10th and 90th conformal quantiles. The table
``perf/data/intervals.yaml`` is written by ``python -m fleetwise.validate.intervals`` (it records what each
group was fitted on and why a group with too few residuals was widened); nothing is fitted at run time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwise.catalog.loader import load_yaml_file
from fleetwise.errors import SpecError
from fleetwise.perf.calibration import families, family_of

DATA_FILE = Path(__file__).parent / "data" / "intervals.yaml"
COVERAGE = 0.8  # central interval: 10th to 90th percentile

# Metrics where a smaller number is better (times): their residuals are taken the other way round, so that
# one pool holds "the model was optimistic" on one side for times and rates alike.
TIME_METRICS = frozenset({"step_time_s", "time_to_train_days", "chip_hours", "ttft_ms", "tpot_ms", "ttft_s",
                          "tpot_s", "latency_s"})
ENERGY_METRICS = frozenset({"energy_mwh", "energy_j_per_token", "avg_power_w", "avg_power_w_per_chip"})
LATENCY_METRICS = frozenset({"ttft_ms", "tpot_ms", "ttft_s", "tpot_s", "latency_s"})


def metric_class(kind: str, metric: str) -> tuple[str, str]:
    """(group kind, metric class) of a metric: energy metrics pool apart, serving latency apart from rates."""
    if metric in ENERGY_METRICS:
        return "energy", "energy"
    if kind == "inference" and metric in LATENCY_METRICS:
        return "inference", "latency"
    return kind, "throughput"


def oriented_residual(metric: str, predicted: float, measured: float) -> float:
    """``log(measured / predicted)`` for rates, ``log(predicted / measured)`` for times (> 0: pessimistic)."""
    r = math.log(measured / predicted)
    return -r if metric in TIME_METRICS else r


@dataclass(frozen=True, slots=True)
class Interval:
    """A central interval around a prediction, and the residual group it came from."""

    low: float
    high: float
    group: str
    how: str

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def width_frac(self, predicted: float) -> float:
        return (self.high - self.low) / predicted if predicted else math.inf

    def to_json(self) -> dict[str, Any]:
        return {"low": _r(self.low), "high": _r(self.high), "group": self.group}


@dataclass(frozen=True, slots=True)
class GroupBand:
    """Oriented log-residual quantiles of one group."""

    lo: float
    hi: float
    n: int
    how: str


@dataclass(frozen=True, slots=True)
class IntervalTable:
    groups: dict[str, GroupBand]
    coverage: float = COVERAGE
    lead_log_error: float | None = None  # 80 % error of a predicted lead between plans of one setup (sweeps)

    def band(self, kind: str, metric: str, chip_id: str | None) -> tuple[str, GroupBand]:
        """The group for this kind, metric class and chip family, else the class pooled over families."""
        k, cls = metric_class(kind, metric)
        fam = chip_id if chip_id in set(families().values()) else family_of(chip_id) if chip_id else "global"
        for key in (f"{k}/{cls}/{fam}", f"{k}/{cls}/*", f"{k}/throughput/*"):
            if key in self.groups:
                return key, self.groups[key]
        return "none", GroupBand(-math.log(2.0), math.log(2.0), 0, "no residuals of this kind: a factor of 2 "
                                 "either way, not fitted")

    def interval(self, kind: str, metric: str, chip_id: str | None, predicted: float) -> Interval:
        """The central interval of ``predicted`` (a value of ``metric``) on ``chip_id`` (or a chip family)."""
        key, b = self.band(kind, metric, chip_id)
        if metric in TIME_METRICS:
            lo, hi = predicted * math.exp(-b.hi), predicted * math.exp(-b.lo)
        else:
            lo, hi = predicted * math.exp(b.lo), predicted * math.exp(b.hi)
        return Interval(min(lo, hi), max(lo, hi), key, b.how)


def tie(a: float, b: float, ia: Interval, ib: Interval, lead_log_error: float | None = None) -> bool:
    """Whether the lead of one prediction over the other lies inside what the model can resolve.

    The two predictions share most of their error (same model, chip and software), so the test is on the
    relative lead. With ``lead_log_error`` (the 80 % error of predicted leads between the plans of measured
    sweeps, ``IntervalTable.lead_log_error``): a tie when the log lead is under it. Without: when the lead is
    smaller than half the relative width of the narrower interval (what a prediction of either may be off by).
    """
    if a <= 0 or b <= 0:
        return False
    if lead_log_error is not None:
        return abs(math.log(a / b)) < lead_log_error
    lead = abs(a - b) / min(a, b)
    half = 0.5 * min(ia.width_frac(a), ib.width_frac(b))
    return lead < half


def _r(x: float) -> float:
    return float(f"{x:.6g}")


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> IntervalTable:
    data = load_yaml_file(path)
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict):
        raise SpecError(f"{path}: expected a 'groups' mapping of kind/class/family -> {{low, high, n, how}}")
    out = {}
    for key, raw in groups.items():
        try:
            lo, hi = float(raw["low"]), float(raw["high"])
        except (KeyError, TypeError, ValueError):
            raise SpecError(f"{path}: groups.{key}: needs numeric low and high (measured/predicted ratios)") from None
        if not 0 < lo <= 1.0 <= hi or hi > 100:
            raise SpecError(f"{path}: groups.{key}: need 0 < low <= 1 <= high <= 100 (got low {lo}, high {hi})")
        out[str(key)] = GroupBand(math.log(lo), math.log(hi), int(raw.get("n", 0)), str(raw.get("how", "")))
    lead = data.get("lead")
    lead_err = None
    if lead is not None:
        try:
            lead_err = float(lead["log_error"])
        except (KeyError, TypeError, ValueError):
            raise SpecError(f"{path}: lead: needs a numeric log_error (got {lead!r})") from None
        if not 0.0 <= lead_err <= 2.0:
            raise SpecError(f"{path}: lead.log_error must be in [0, 2] (got {lead_err})")
    return IntervalTable(out, float(data.get("coverage", COVERAGE)), lead_err)


def load_intervals(path: Path = DATA_FILE) -> IntervalTable:
    """The fitted interval table (a missing file: no groups, every interval a factor of 2 either way)."""
    if not path.exists():
        return IntervalTable({})
    return _load(path, path.stat().st_mtime_ns)


def intervals_of(kind: str, chip: str | None, values: dict[str, float]) -> dict[str, Interval]:
    """Intervals of several predicted metrics of one prediction (``chip``: an accelerator id or a family)."""
    table = load_intervals()
    return {m: table.interval(kind, m, chip, v) for m, v in values.items() if v is not None and math.isfinite(v)}


def ties_with_next(values: list[float], intervals: list[Interval], by_lead: bool = False) -> list[bool]:
    """For a ranked list, whether each entry's lead over the next one is inside the intervals (a tie); with
    ``by_lead`` (training plans of one setup), inside the fitted error of a predicted lead where there is one."""
    lead = load_intervals().lead_log_error if by_lead else None
    return [tie(values[i], values[i + 1], intervals[i], intervals[i + 1], lead)
            for i in range(len(values) - 1)] + [False]

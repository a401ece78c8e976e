"""Prediction intervals: the split-conformal fit, widening of small families, ties, and the validate report."""

from __future__ import annotations

import math

import numpy as np

from fleetwise.perf.batching import ttft_under_load_s
from fleetwise.perf.intervals import GroupBand, Interval, IntervalTable, load_intervals, tie, ties_with_next
from fleetwise.validate.intervals import MIN_RESIDUALS, Residual, _conformal, fit_groups, loso_coverage
from fleetwise.validate.runner import BUNDLED_CASES, validate_files


def _res(family: str, values: list[float], source: str = "s") -> list[Residual]:
    return [Residual(f"{family}-{k}", f"{source}{k % 3}", "training/throughput", family, "mfu", v)
            for k, v in enumerate(values)]


def test_conformal_needs_nine_residuals_and_brackets_zero() -> None:
    assert _conformal([0.1] * (MIN_RESIDUALS - 1)) is None
    lo, hi = _conformal(list(np.linspace(-0.2, 0.3, 19)))  # type: ignore[misc]
    assert -0.2 <= lo < 0.0 < hi <= 0.3


def test_a_family_with_few_residuals_is_widened_to_cover_them_and_says_why() -> None:
    big = _res("nvidia_hopper", list(np.linspace(-0.1, 0.1, 30)))
    small = _res("huawei_ascend", [0.4, -0.3, 0.05])
    groups = fit_groups(big + small)
    asc = groups["training/throughput/huawei_ascend"]
    assert asc["lo"] <= -0.3 and asc["hi"] >= 0.4
    assert "widened" in asc["how"] and "3 residuals" in asc["how"]
    own = groups["training/throughput/nvidia_hopper"]
    assert "own 30 residuals" in own["how"] and own["hi"] < 0.11


def test_loso_coverage_of_well_behaved_residuals_is_near_the_nominal_80_percent() -> None:
    rng = np.random.default_rng(0)
    res = [Residual(f"c{k}", f"src{k % 12}", "inference/throughput", "nvidia_hopper", "output_tokens_per_s",
                    float(v)) for k, v in enumerate(rng.normal(0.0, 0.1, 240))]
    cov = loso_coverage(res)["inference"]["interval_coverage"]
    assert 0.7 <= cov <= 0.9


def test_time_metrics_get_the_inverse_band_and_every_interval_holds_its_prediction() -> None:
    t = IntervalTable({"training/throughput/*": GroupBand(math.log(0.8), math.log(1.1), 20, "")})
    rate = t.interval("training", "tokens_per_s_per_chip", "nvidia_h100_sxm", 100.0)
    time = t.interval("training", "step_time_s", "nvidia_h100_sxm", 100.0)
    assert abs(rate.low - 80.0) < 1e-9 and abs(rate.high - 110.0) < 1e-9
    assert abs(time.low - 100 / 1.1) < 1e-9 and abs(time.high - 125.0) < 1e-9
    table = load_intervals()
    for kind, metric in (("training", "mfu"), ("inference", "ttft_ms"), ("energy", "energy_mwh")):
        iv = table.interval(kind, metric, "huawei_ascend_910b", 3.0)
        assert iv.low <= 3.0 <= iv.high and iv.how


def test_ties_are_leads_inside_the_interval() -> None:
    iv = Interval(0.9, 1.1, "g", "")
    assert tie(1.0, 1.02, iv, iv) and not tie(1.0, 1.5, iv, Interval(1.35, 1.65, "g", ""))
    assert ties_with_next([1.0, 1.01, 2.0], [iv, iv, Interval(1.8, 2.2, "g", "")]) == [True, False, False]


def test_ttft_queues_for_the_prefill_share_of_each_step() -> None:
    t = np.array([0.05])
    low = ttft_under_load_s(t, 1000.0, np.array([8192.0]), np.array([100.0]), np.array([1.0]))
    high = ttft_under_load_s(t, 1000.0, np.array([8192.0]), np.array([100.0]), np.array([150.0]))
    over = ttft_under_load_s(t, 1000.0, np.array([8192.0]), np.array([100.0]), np.array([170.0]))
    assert abs(low[0] - 0.05 * 1.5) < 1e-3 and high[0] > 1.4 * low[0] and math.isinf(over[0])


def test_validate_json_carries_intervals_and_their_coverage() -> None:
    out = validate_files([BUNDLED_CASES / "inference.yaml"]).to_json()
    m = out["cases"][0]["metrics"]
    first = next(iter(m.values()))
    assert first["low"] <= first["predicted"] <= first["high"]
    s = out["summary"]["inference"]
    assert 0.0 <= s["interval_coverage"] <= 1.0 and s["interval_median_width"] > 0
    server = next(c for c in out["cases"] if c["id"] == "mlperf41-llama2-70b-h100x8-server")
    assert "request_rate_at_slo" in server["metrics"]  # the highest rate meeting the case's SLO, scored


def test_plans_of_one_setup_tie_by_the_fitted_error_of_a_lead_not_by_the_absolute_interval() -> None:
    # the absolute interval of a step time is wide (sources differ); the lead between two plans of one setup is
    # judged by the measured sweeps' error on such leads (perf/data/intervals.yaml 'lead')
    wide = Interval(0.5, 3.0, "g", "")
    assert tie(1.0, 1.5, wide, wide)  # inside half the absolute interval
    assert not tie(1.0, 1.5, wide, wide, lead_log_error=0.18)  # log(1.5) = 0.41 > 0.18
    assert tie(1.0, 1.1, wide, wide, lead_log_error=0.18)
    table = load_intervals()
    assert table.lead_log_error is not None and 0.0 < table.lead_log_error < 0.5
    assert ties_with_next([1.0, 1.5], [wide, wide], by_lead=True) == [False, False]
    assert ties_with_next([1.0, 1.5], [wide, wide]) == [True, False]


def test_lead_error_is_fitted_on_the_sweeps_adjacent_pairs() -> None:
    from pathlib import Path

    from fleetwise.validate.cases import load_cases
    from fleetwise.validate.intervals import lead_band

    path = Path(__file__).resolve().parents[2] / "src/fleetwise/validate/data/vtrain-sweeps.yaml"
    cases = [c for c in load_cases(path)[0] if c.sweep and c.sweep.startswith("vtrain-single-h1024-l16-c8")]
    band = lead_band(cases)
    assert band is not None and band["sweeps"] == 7 and band["pairs"] == sum(
        len([c for c in cases if c.sweep == s]) - 1 for s in {c.sweep for c in cases})
    assert 0.0 < band["log_error"] < 1.0

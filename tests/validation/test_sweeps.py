"""Ranking of measured plan sweeps (FORMAT.md "Sweeps") and the shipped vTrain sweeps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleetwise.catalog import Catalog
from fleetwise.validate.runner import BUNDLED_CASES, bundled_case_files, validate_files
from fleetwise.validate.sweeps import score_sweeps, spearman


@dataclass
class _Case:
    id: str
    sweep: str | None
    measured: dict[str, float]


@dataclass
class _Pred:
    case: Any
    predicted: dict[str, float]


def _pred(i: int, sweep: str | None, measured: float, predicted: float) -> _Pred:
    return _Pred(_Case(f"run{i}", sweep, {"step_time_s": measured}), {"step_time_s": predicted})


def test_spearman_is_one_for_the_same_order_and_minus_one_for_the_reverse() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0


def test_regret_is_the_measured_time_of_the_predicted_best_over_the_measured_best() -> None:
    preds = [_pred(0, "s", 1.0, 3.0), _pred(1, "s", 1.2, 1.0), _pred(2, "s", 2.0, 2.0)]
    rows, summary = score_sweeps(preds)
    assert rows[0]["predicted_best"] == "run1" and rows[0]["measured_best"] == "run0"
    assert abs(rows[0]["regret"] - 0.2) < 1e-9
    assert summary is not None and summary["within_5"] == 0.0 and summary["count"] == 1


def test_sweeps_of_fewer_than_three_runs_and_unswept_cases_are_not_scored() -> None:
    rows, summary = score_sweeps([_pred(0, "s", 1.0, 1.0), _pred(1, "s", 2.0, 2.0), _pred(2, None, 1.0, 1.0)])
    assert rows == [] and summary is None


def test_vtrain_sweeps_ship_with_their_licence_and_run_by_default() -> None:
    assert (BUNDLED_CASES / "vtrain-LICENSE.txt").read_text(encoding="utf-8").startswith("Copyright")
    assert BUNDLED_CASES / "vtrain-sweeps.yaml" in bundled_case_files()


def test_report_scores_a_subset_of_the_vtrain_sweeps(catalog: Catalog, tmp_path: Path) -> None:
    cases = yaml.safe_load((BUNDLED_CASES / "vtrain-sweeps.yaml").read_text(encoding="utf-8"))
    keep = {"vtrain-single-h1024-l16-c8-gb4", "vtrain-single-h2048-l20-c4-gb8"}
    subset = tmp_path / "subset.yaml"
    subset.write_text(yaml.safe_dump([c for c in cases if c["sweep"] in keep]), encoding="utf-8")
    report = validate_files([subset], catalog).to_json()
    assert report["errors"] == []
    assert {s["id"] for s in report["sweeps"]} == keep
    assert set(report["summary"]["sweeps"]) == {"count", "median_regret", "max_regret", "within_5",
                                                "median_spearman"}
    for s in report["sweeps"]:
        assert set(s) == {"id", "runs", "spearman", "regret", "predicted_best", "measured_best"}
        assert s["regret"] >= 0.0 and -1.0 <= s["spearman"] <= 1.0


def test_domestic_cases_ship_and_every_training_case_is_predicted(catalog: Catalog, tmp_path: Path) -> None:
    cases = yaml.safe_load((BUNDLED_CASES / "domestic.yaml").read_text(encoding="utf-8"))
    subset = tmp_path / "domestic-training.yaml"
    subset.write_text(yaml.safe_dump([c for c in cases if c["kind"] == "training"]), encoding="utf-8")
    report = validate_files([subset], catalog).to_json()
    assert report["errors"] == []
    assert report["summary"]["training"]["count"] == sum(c["kind"] == "training" for c in cases)

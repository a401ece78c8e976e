"""Leave-one-source-out error of inference cases: the serving constants refitted without the case's source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from fleetwise.catalog import Catalog
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.inference import ServingConstants, load_serving_constants
from fleetwise.validate import inference_cases as ic
from fleetwise.validate.cases import Case, load_cases
from fleetwise.validate.runner import BUNDLED_CASES, validate_files


def _case(cid: str, source: str, hardware: str, measured: float = 100.0) -> Case:
    return Case.model_validate({"id": cid, "kind": "inference", "source": source, "model": "llama2-70b",
                                "hardware": hardware, "chips": 8,
                                "inference": {"input_tokens": 1000, "output_tokens": 1000, "tp": 8},
                                "measured": {"output_tokens_per_s": measured}})


# synthetic cases: each source's runs are best predicted at its own kernel-time scale
PREFERRED = {"paper-a": 0.9, "paper-b": 1.6, "paper-c": 1.2, "paper-d": 1.2, "paper-e": 1.2}
SYNTHETIC = [_case("a1", "paper-a", "nvidia_h100_sxm"), _case("a2", "paper-a", "nvidia_h200_sxm"),
             _case("b1", "paper-b", "nvidia_h100_sxm"), _case("c1", "paper-c", "amd_mi300x"),
             _case("d1", "paper-d", "amd_mi300x"), _case("e1", "paper-e", "amd_mi300x")]
AMD = "amd_instinct"


@pytest.fixture
def synthetic(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, float]]:
    """Replace the prediction by a cheap synthetic one; returns the log of (case, constants) evaluated."""
    calls: list[tuple[str, float, float]] = []

    def fake(case: Case, catalog: Catalog, eff: EfficiencyTable, c: ServingConstants
             ) -> tuple[float | None, dict[str, float] | None]:
        calls.append((case.id, c.compute_scale, c.step_overhead_s))
        ratio = PREFERRED[case.source] / c.compute_scale * (1.0 - 10.0 * c.step_overhead_s)  # predicted/measured
        return abs(math.log(ratio)), {"output_tokens_per_s": ratio - 1.0}

    monkeypatch.setattr(ic, "_case_fit_uncached", fake)
    return calls


def test_leaving_a_source_out_moves_its_group_only(synthetic: list, catalog: Catalog, eff: EfficiencyTable) -> None:
    full = ic.fit_all(SYNTHETIC, catalog, eff)
    assert {"global", "nvidia_hopper", AMD} <= set(full)
    without_a = ic.fit_all([c for c in SYNTHETIC if c.source != "paper-a"], catalog, eff)
    assert "nvidia_hopper" not in without_a  # one Hopper source left: no family group, the global one serves it
    assert without_a[AMD] == full[AMD]
    for c in SYNTHETIC:  # paper-a's runs (Hopper) move; the AMD group's do not
        moved = ic._constants_for(without_a, c, catalog) != ic._constants_for(full, c, catalog)
        if c.source == "paper-a" or c.hardware == "amd_mi300x":
            assert moved == (c.source == "paper-a"), c.id
    loso = ic.serving_leave_one_source_out(SYNTHETIC, catalog, eff)
    assert set(loso) == {c.id for c in SYNTHETIC}
    in_sample = {c.id: ic._case_fit(c, catalog, eff, ic._constants_for(full, c, catalog))[1] for c in SYNTHETIC}
    # paper-a's runs are scored with constants fitted without them: farther off than in-sample
    for cid in ("a1", "a2"):
        assert abs(loso[cid]["output_tokens_per_s"]) > abs(in_sample[cid]["output_tokens_per_s"]) + 0.05  # type: ignore[index]
    # an AMD source left out: the two other AMD sources still fit the same scale, so its error stays put
    assert loso["c1"] == pytest.approx(in_sample["c1"], abs=0.02)


def test_folds_re_score_cached_curves(synthetic: list, catalog: Catalog, eff: EfficiencyTable) -> None:
    ic.serving_leave_one_source_out(SYNTHETIC, catalog, eff)
    assert len(synthetic) == len(set(synthetic))  # every (case, constants) evaluated once over all folds
    grid = len(ic.SCALE_GRID) * len(ic.OVERHEAD_GRID_S)
    assert len(synthetic) <= len(SYNTHETIC) * grid


def test_group_lookup_is_the_one_serving_yaml_is_read_with(tmp_path: Path, catalog: Catalog) -> None:
    cases = [c for f in ("inference.yaml", "domestic.yaml") for c in load_cases(BUNDLED_CASES / f)[0]
             if c.kind == "inference"]
    names = sorted(ic._groups(cases, catalog))
    for dropped in ((), tuple(n for n in names if "@" in n), tuple(n for n in names if not n.startswith("global"))):
        fitted = {n: ServingConstants(0.5 + 0.1 * i, 0.001 * i, n) for i, n in enumerate(names) if n not in dropped}
        path = tmp_path / "serving.yaml"
        path.write_text(yaml.safe_dump({"groups": {n: {"compute_scale": c.compute_scale,
                                                       "step_overhead_s": c.step_overhead_s}
                                                   for n, c in fitted.items()}}))
        for case in cases:
            ours = ic._constants_for(fitted, case, catalog)
            shipped = load_serving_constants(case.hardware, ic._is_ep(case, catalog), path,
                                             engine=ic.serving_facts(case).get("engine"))
            assert (ours.compute_scale, ours.step_overhead_s) == (shipped.compute_scale, shipped.step_overhead_s), \
                (case.id, dropped)


REAL = ("mlperf41-llama2-70b-h100x8-offline", "mlperf41-llama2-70b-mi300x8-offline", "trtllm-llama3.1-8b-h100-128-128")


def test_validate_loso_fills_inference_cases_and_round_trips(tmp_path: Path, catalog: Catalog,
                                                               eff: EfficiencyTable) -> None:
    cases = [c for c in load_cases(BUNDLED_CASES / "inference.yaml")[0] if c.id in REAL]
    assert len(cases) == len(REAL) and len({c.source_key for c in cases}) == 2
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump([c.model_dump(exclude_none=True) for c in cases], sort_keys=False))
    seen: list[tuple[int, int]] = []
    out = validate_files([path], catalog, loso=True, progress=lambda done, total: seen.append((done, total))).to_json()
    # one tick per case predicted, one per case's refit curve, then done
    assert [d for d, _ in seen] == list(range(2 * len(REAL) + 1)) and {t for _, t in seen} == {2 * len(REAL)}
    assert json.loads(json.dumps(out)) == out
    assert out["summary_leave_one_source_out"]["inference"]["count"] == len(REAL)
    for entry in out["cases"]:
        assert set(entry["loso_errors"]) == set(entry["metrics"]), entry["id"]
    # the TRT-LLM source left out: both Hopper/AMD runs left are MLPerf's, so its case is predicted with the
    # global constants fitted on those alone, exactly as a fresh prediction with them gives
    mlperf = [c for c in cases if c.id != REAL[2]]
    constants = ic.fit_serving_constants(mlperf, catalog, eff, "global")[0]
    held = next(c for c in cases if c.id == REAL[2])
    fresh = ic.predict_inference(held, catalog, eff, constants).errors()
    got = next(e for e in out["cases"] if e["id"] == REAL[2])["loso_errors"]
    assert got == pytest.approx(fresh, rel=1e-5)

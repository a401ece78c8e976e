"""Every study kind runs through ``run_study``, echoes its resolved inputs and round-trips exactly; study files
feed ``explain``, ``power`` and ``simulate`` back with ``--plan`` and reproduce the searched numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetwise.api import run_study
from fleetwise.api.studies import RUNNERS
from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.cli.main import main
from fleetwise.study import Study
from fleetwise.validate.runner import bundled_case_files

H100, ASCEND, H20 = "nvidia_h100_sxm", "huawei_ascend_910b", "nvidia_h20"
TRAIN = {"model": "llama3-8b", "hardware": H100}


def _inputs(tmp: Path) -> dict[str, dict[str, Any]]:
    trace = tmp / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
        f"2023-11-16 18:15:{10 + k // 4:02d}.{k % 4 * 25:02d}00000,{300 + 37 * k % 500},{20 + 13 * k % 90}\n"
        for k in range(40)))
    cases = yaml.safe_load(next(p for p in bundled_case_files() if p.name == "training.yaml").read_text())
    one = tmp / "one_case.yaml"
    one.write_text(yaml.safe_dump(cases[:1]))
    serve = {"model": "llama3.1-8b", "hardware": H100}
    return {
        "plan_train": {**TRAIN, "chips": 8, "top": 3},
        "explain_train": {**TRAIN, "plan": {"tp": 2, "dp": 4}, "global_batch": 256},
        "power_train": {**TRAIN, "plan": {"tp": 2, "dp": 4}, "global_batch": 256},
        "compare_train": {"model": "llama2-7b", "hardware": [H100, ASCEND], "chips": 4, "top": 1},
        "match_train": {"model": "llama2-7b", "ours": "nvidia_h800_sxm", "theirs": H100, "their_chips": 8},
        "plan_train_mixed": {"model": "llama2-7b", "fleet": f"{ASCEND}:8,{H20}:8", "global_batch": 32, "top": 1},
        "plan_serve": {**serve, "rate": 4.0, "trace": str(trace), "ttft_ms": 2000, "tpot_ms": 60, "top": 3},
        "explain_serve": {**serve, "plan": {"tp": 2}, "input_tokens": 512, "output_tokens": 128, "tpot_ms": 30},
        "simulate": {**serve, "plan": {"tp": 8}, "trace": str(trace)},
        "compare_serve": {"model": "llama3.1-8b", "systems": ["nvidia_dgx_h100_h200"], "input_tokens": 512,
                          "output_tokens": 128},
        "match_serve": {"model": "llama3.1-8b", "ours": ASCEND, "theirs": H20, "their_chips": 2,
                        "input_tokens": 512, "output_tokens": 128},
        "validate": {"files": [str(one)]},
        "place_serve": {"scenario": "china", "pareto": 0, "heuristics": False},
        "place_train": {"scenario": "china"},
    }


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog([])


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> dict[str, Study]:
    return {k: run_study(k, v, catalog=catalog) for k, v in _inputs(tmp_path_factory.mktemp("kinds")).items()}


def test_every_runnable_kind_is_covered(tmp_path: Path) -> None:
    assert set(_inputs(tmp_path)) == set(RUNNERS)


@pytest.mark.parametrize("kind", sorted(RUNNERS))
def test_every_kind_round_trips_exactly_and_echoes_its_inputs(studies: dict[str, Study], kind: str,
                                                             tmp_path: Path) -> None:
    s = studies[kind]
    assert s.kind == kind
    back = Study.from_json(s.to_json())
    assert back == s and back.to_json() == s.to_json() and back.id == s.id
    assert Study.load(s.save(tmp_path / "s.json")) == s
    given = _inputs(tmp_path)[kind]
    assert set(given) <= set(s.inputs)
    if kind not in ("validate", "place_serve", "place_train"):
        assert s.inputs["model_id"]
    assert not set(given) & set(s.inputs["defaults"])  # what was given is not reported as defaulted
    if kind in ("plan_train", "explain_train", "power_train", "compare_train", "match_train", "plan_train_mixed"):
        assert s.inputs["seq_len"] == 4096 and s.inputs["precision"] == "bf16"
        assert {"seq_len", "precision"} <= set(s.inputs["defaults"])
        rule = s.inputs["global_batch_rule"]
        assert rule == "given" if "global_batch" in given else rule.startswith("default")


def test_rows_carry_the_plan_fields(studies: dict[str, Study]) -> None:
    for kind in ("plan_train", "explain_train", "power_train", "compare_train", "match_train", "plan_serve",
                 "explain_serve", "simulate"):
        assert studies[kind].rows and all(isinstance(r["plan"], dict) for r in studies[kind].rows), kind


def test_match_train_says_its_answer_is_an_upper_bound(studies: dict[str, Study]) -> None:
    res = studies["match_train"].results
    assert res["our_chips"] > 8 and res["answer"].startswith("upper bound")
    assert res["our_step_time_s"] <= res["their_step_time_s"]


def test_plan_serve_with_rate_and_trace_replays_the_trace_at_the_rate(studies: dict[str, Study]) -> None:
    s = studies["plan_serve"]
    assert s.inputs["trace_replay"] == "trace arrivals time-scaled to 4 req/s"
    assert any("simulated" in r for r in s.rows)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_explain_plan_of_every_searched_row_gives_its_step_time(studies: dict[str, Study], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    s = studies["plan_train"]
    f = s.save(tmp_path / "plan.json")
    for n, row in enumerate(s.rows):
        e = _cli(capsys, "explain", "train", "--plan", str(f), "--row", str(n))
        assert e["kind"] == "explain_train"
        assert e["results"]["rows"][0]["step_time_s"] == row["step_time_s"]  # to the last digit
        assert e["results"]["rows"][0]["plan"] == row["plan"]
        assert e["inputs"]["global_batch"] == s.inputs["global_batch"]


def test_power_of_the_best_plan_reproduces_its_numbers(studies: dict[str, Study], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    s = studies["plan_train"]
    best = s.rows[0]
    p = _cli(capsys, "power", "train", "--plan", str(s.save(tmp_path / "plan.json")))
    row = p["results"]["rows"][0]
    assert row["step_time_s"] == best["step_time_s"]
    assert row["energy"]["energy_j_per_token"] == best["energy"]["energy_j_per_token"]


def test_a_compare_row_explains_on_its_own_hardware(studies: dict[str, Study], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    s = studies["compare_train"]
    n = next(k for k, r in enumerate(s.rows) if r["hardware"] == ASCEND)
    e = _cli(capsys, "explain", "train", "--plan", str(s.save(tmp_path / "c.json")), "--row", str(n))
    assert e["inputs"]["hardware"] == ASCEND
    assert e["results"]["rows"][0]["step_time_s"] == s.rows[n]["step_time_s"]


def test_simulate_takes_a_plan_serve_row(studies: dict[str, Study], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    s = studies["plan_serve"]
    out = _cli(capsys, "simulate", "--plan", str(s.save(tmp_path / "serve.json")), "--row", "0")
    assert out["inputs"]["plan"] == s.rows[0]["plan"] and out["inputs"]["trace"] == s.inputs["trace"]
    r = out["results"]["rows"][0]
    assert r["completed"] == r["requests"] == 40 and r["simulator"]["requests_per_wall_second"] > 0


def test_a_plan_file_of_the_wrong_kind_or_row_is_one_clear_error(studies: dict[str, Study], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    f = studies["plan_serve"].save(tmp_path / "serve.json")
    assert main(["explain", "train", "--plan", str(f)]) == 2
    assert "plan_serve study has no plans for this command" in capsys.readouterr().err
    g = studies["plan_train"].save(tmp_path / "train.json")
    assert main(["explain", "train", "--plan", str(g), "--row", "7"]) == 2
    assert "--row must be in 0..2" in capsys.readouterr().err


def test_to_dataframe_flattens_rows(studies: dict[str, Study]) -> None:
    pd = pytest.importorskip("pandas")  # the notebook extra (also in the test extra)
    df = studies["plan_train"].to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 3
    assert {"plan.tp", "step_time_s", "energy.energy_j_per_token"} <= set(df.columns)


def test_no_two_printed_rows_look_the_same(studies: dict[str, Study], capsys: pytest.CaptureFixture[str]) -> None:
    from fleetwise.cli.display import study

    for kind in ("plan_train", "plan_serve"):
        rows = studies[kind].rows
        assert len({json.dumps(r["plan"], sort_keys=True) for r in rows}) == len(rows)
        study(studies[kind])
        lines = capsys.readouterr().out.splitlines()
        if kind == "plan_train":  # job line, header, rule, then one line per row
            assert set(lines[2]) == {"-"}
            body = lines[3:3 + len(rows)]
        else:
            body = [ln for ln in lines if "goodput" in ln and " chips " in ln]
        assert len(body) == len(rows) and len(set(body)) == len(body), lines


def test_explain_serve_plan_of_every_searched_row_gives_its_tpot_and_ttft(studies: dict[str, Study], tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    s = studies["plan_serve"]
    f = s.save(tmp_path / "serve.json")
    for n, row in enumerate(s.rows):
        e = _cli(capsys, "explain", "serve", "--plan", str(f), "--row", str(n))["results"]["rows"][0]
        assert e["plan"] == row["plan"]
        assert (e["tpot_ms"], e["ttft_ms"]) == (row["tpot_ms"], row["ttft_ms"]), row["label"]

"""The command line: one clear line and exit 2 on bad input; JSON carries the search statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetwise.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_train_json_reports_candidates_and_time(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "train", "--model", "llama2-7b", "--hardware", "huawei_ascend_910b",
                       "--chips", "64", "--tokens", "1e11", "--json", "--top", "3")
    assert code == 0
    data = json.loads(out)["results"]
    assert data["candidates_evaluated"] > 10_000 and data["search_seconds"] > 0
    best = data["rows"][0]
    assert best["days"] > 0 and best["memory_per_device_gb"] <= best["memory_capacity_gb"]
    assert best["plan"]["tp"] * best["plan"]["pp"] * best["plan"]["dp"] * best["plan"]["cp"] == 64


def test_unknown_model_id_is_one_line_with_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "train", "--model", "llama3.1-70", "--hardware", "nvidia_h100_sxm",
                         "--chips", "8")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown model id 'llama3.1-70'" in err and "llama3.1-70b" in err


def test_negative_chip_count_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "train", "--model", "llama2-7b", "--hardware", "nvidia_h100_sxm",
                       "--chips", "-8")
    assert code == 2 and "positive integer" in err and "Traceback" not in err


def test_impossible_plan_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "explain", "train", "--model", "llama3.1-405b", "--hardware", "nvidia_h100_sxm",
                       "--tp", "1", "--pp", "1", "--dp", "8", "--zero", "0")
    assert code == 2 and "fits_memory" in err and "GB" in err


def test_explain_prints_the_breakdown(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "explain", "train", "--model", "llama3-70b", "--hardware", "nvidia_h100_sxm",
                       "--tp", "8", "--pp", "4", "--dp", "2", "--vpp", "5", "--json")
    data = json.loads(out)["results"]["rows"][0]
    assert code == 0 and set(data["breakdown_s"]) >= {"compute_s", "tp_comm_s", "bubble_s", "dp_comm_s"}
    assert data["memory_stage"] == "first" and data["memory_gb"]["logits"] == 0.0


def test_explain_says_which_pipeline_stage_holds_the_most_memory(capsys: pytest.CaptureFixture[str]) -> None:
    # a 152K vocabulary at 2 x 8K tokens with full recompute: the last stage's logits outweigh the first's
    # activations in flight
    args = ["explain", "train", "--model", "qwen2.5-7b", "--hardware", "nvidia_h100_sxm", "--tp", "1", "--pp", "2",
            "--dp", "4", "--mbs", "2", "--recompute", "full", "--zero", "1", "--seq-len", "8192",
            "--global-batch", "64"]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "on the last pipeline stage (LM head, logits and loss)" in out
    code, out, _ = run(capsys, *args, "--json")
    row = json.loads(out)["results"]["rows"][0]
    assert row["memory_stage"] == "last" and row["memory_gb"]["logits"] > row["memory_gb"]["activations"]


def test_malformed_case_file_is_one_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- id: x\n  kind: [oops\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 2 and "bad.yaml" in err and "line" in err


def test_malformed_hf_config_is_one_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "llama", "hidden_size": 4096,')
    code, _, err = run(capsys, "plan", "train", "--model", str(cfg), "--hardware", "nvidia_h100_sxm", "--chips", "8")
    assert code == 2 and "config.json" in err and "Traceback" not in err


def test_catalog_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "catalog", "list", "accelerators")
    assert code == 0 and "huawei_ascend_910b" in out
    code, out, _ = run(capsys, "catalog", "show", "huawei_cloudmatrix_384")
    assert code == 0 and '"domain_size": 384' in out
    code, _, err = run(capsys, "catalog", "show", "t5-11b")  # in the reference, left out on purpose
    assert code == 2 and "left out of the bundled catalog: encoder-decoder" in err and "did you mean" not in err


def test_match_finds_how_many_of_ours_equal_theirs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "match", "train", "--model", "llama2-7b", "--ours", "huawei_ascend_910b",
                       "--theirs", "nvidia_h100_sxm:16", "--json")
    data = json.loads(out)["results"]
    assert code == 0 and data["our_chips"] is not None
    assert data["our_chips"] > 16 and data["our_step_time_s"] <= data["their_step_time_s"]
    assert data["answer"].startswith("upper bound")


def test_compare_train_across_systems_reports_power_and_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compare", "train", "--model", "llama2-7b", "--systems",
                       "huawei_atlas_800t_a2,nvidia_dgx_h100_h200", "--chips", "16", "--json")
    rows = json.loads(out)["results"]["rows"]
    best = {r["target"]: r for r in rows if r["rank"] == 0}
    assert code == 0 and set(best) == {"huawei_atlas_800t_a2", "nvidia_dgx_h100_h200"}
    h100 = best["nvidia_dgx_h100_h200"]
    ascend = best["huawei_atlas_800t_a2"]
    assert h100["tokens_per_s_per_chip"] > ascend["tokens_per_s_per_chip"]  # 989 vs 313 dense TFLOP/s


def test_mixed_fleet_plan_compares_with_single_types(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "train", "--model", "llama2-7b", "--hardware",
                       "huawei_ascend_910b:32,nvidia_h20:16", "--global-batch", "96", "--json", "--top", "1")
    data = json.loads(out)["results"]
    assert code == 0 and data["rows"] and "verdict" in data
    assert set(data["same_total_chips"]) == {"huawei_ascend_910b", "nvidia_h20"}


@pytest.mark.parametrize("flag,value", [("--rate", "-5"), ("--ttft-ms", "0"), ("--percentile", "150")])
def test_bad_serving_numbers_are_rejected_without_traceback(capsys: pytest.CaptureFixture[str], flag: str,
                                                             value: str) -> None:
    args = {"--rate": "10", "--ttft-ms": "2000", "--tpot-ms": "50", "--percentile": "90"}
    args[flag] = value
    argv = ["plan", "serve", "--model", "llama3.1-8b", "--hardware", "nvidia_h100_sxm", "--input-tokens", "512",
            "--output-tokens", "64"] + [x for kv in args.items() for x in kv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and flag in err and "Traceback" not in err


def test_validate_prints_a_table_with_intervals_and_sweeps(capsys: pytest.CaptureFixture[str]) -> None:
    from fleetwise.validate.specs import bundled_case_files

    sweeps = next(p for p in bundled_case_files() if p.name == "vtrain-sweeps.yaml")
    code, out, err = run(capsys, "validate", str(sweeps))
    assert code == 0, err
    header = out.splitlines()[0].split()
    assert header[:5] == ["case", "metric", "measured", "predicted", "80%"]
    assert "median regret" in out and "pick within 5%" in out


def test_commands_list_matches_the_parser_and_each_partial_parser_equals_the_whole() -> None:
    import argparse

    from fleetwise.cli.main import COMMANDS, build_parser

    def commands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        act = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        return dict(act.choices)

    full = commands(build_parser())
    assert sorted(full) == sorted(COMMANDS)
    for name in COMMANDS:  # only the command being run is built in full; it is the same parser
        part = commands(build_parser(only=name))
        assert sorted(part) == sorted(full)
        assert part[name].format_help() == full[name].format_help()


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from fleetwise.cli.main import COMMANDS

    code, out, _ = run(capsys, "--help")
    assert code == 0 and all(f"    {c} " in out for c in COMMANDS)


def test_lora_rank_is_honoured_by_plan_explain_and_refused_by_emit(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["--model", "llama2-7b", "--hardware", "nvidia_h100_sxm", "--seq-len", "4096", "--global-batch", "64"]
    plan = ["--tp", "1", "--pp", "1", "--dp", "8", "--zero", "1", "--recompute", "full"]
    code, out, _ = run(capsys, "explain", "train", *base, *plan, "--json")
    full = json.loads(out)["results"]["rows"][0]
    code_l, out_l, _ = run(capsys, "explain", "train", *base, *plan, "--lora-rank", "16", "--json")
    study = json.loads(out_l)
    lora = study["results"]["rows"][0]
    assert code == code_l == 0 and study["inputs"]["lora_rank"] == 16
    # frozen base: only the adapters carry gradients and Adam states; no weight-gradient GEMMs, so a faster step
    assert lora["memory_gb"]["gradients"] < 0.05 * full["memory_gb"]["gradients"]
    assert lora["step_time_s"] < full["step_time_s"]
    saved = tmp_path / "lora.json"
    saved.write_text(out_l)
    code, _, err = run(capsys, "emit", "--plan", str(saved), "--target", "mindspeed-llm")
    assert code == 2 and "LoRA fine-tune (lora_rank 16)" in err and "pre-training launch files only" in err
    code, _, err = run(capsys, "plan", "train", "--model", "llama2-7b", "--hardware",
                       "huawei_ascend_910b:8,nvidia_h20:8", "--lora-rank", "16")
    assert code == 2 and "lora_rank (--lora-rank) does not apply here" in err

"""Over a hundred bad inputs through the CLI in-process: each exits 2 with one short line naming the field.

Every case is a real mistake a user can make (a wrong number, an impossible setting, a hostile file). The
contract: exit status 2, exactly one ``error:`` line of at most 300 characters that contains the name of the
field or file at fault, no traceback, and no case runs longer than a few seconds.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import fleetwise.cli.main as cli_main
from fleetwise.catalog.loader import Catalog, load_catalog
from fleetwise.cli.main import main

MAX_LINE = 300
CASE_TIMEOUT_S = 20

A100 = "nvidia_a100_80gb_sxm"
TRAIN = ["--model", "gpt3-13b", "--hardware", A100, "--seq-len", "2048"]
PLAN = ["plan", "train", *TRAIN, "--chips", "64"]
EXPLAIN = ["explain", "train", *TRAIN, "--tp", "8", "--pp", "1", "--dp", "8"]
POWER = ["power", "train", *TRAIN, "--tp", "8", "--pp", "1", "--dp", "8"]
SERVE_JOB = ["--model", "llama3-8b", "--hardware", A100]
SLO = ["--ttft-ms", "1000", "--tpot-ms", "100"]
LENGTHS = ["--input-tokens", "512", "--output-tokens", "128"]
SERVE = ["plan", "serve", *SERVE_JOB, *SLO, *LENGTHS, "--no-confirm"]
EXPLAIN_SERVE = ["explain", "serve", *SERVE_JOB, *SLO, *LENGTHS]
SIMULATE = ["simulate", *SERVE_JOB, "--trace", str(Path(__file__).parents[1] / "data" / "traces" / "azure_tiny.csv")]
COMPARE = ["compare", "train", "--model", "gpt3-13b", "--seq-len", "2048", "--chips", "64"]
MATCH = ["match", "train", "--model", "gpt3-13b", "--seq-len", "2048", "--ours", "huawei_ascend_910b"]

BAD_NUMBERS = ["0", "-1", "2.5", "abc", "nan", "inf", "1e400", "", "0x10"]


def _cases(files: dict[str, str]) -> Iterator[tuple[list[str], str]]:
    """(argv, text the error line must contain) for every bad input."""
    for v in BAD_NUMBERS:
        yield [*PLAN[:-2], "--chips", v], "--chips"
    yield [*PLAN[:-2], "--chips", "1e12"], "chips"
    yield [*PLAN[:-2], "--chips", "10000000000000000000000000000"], "chips"
    for v in ("0", "-3", "1e15", "1.5"):
        yield [*PLAN, "--global-batch", v], "global"
    for v in ("0", "4096", "1e9"):
        yield [*PLAN[:6], "--chips", "64", "--seq-len", v], "seq"
    yield [*PLAN, "--precision", "fp8"], "--precision fp8"
    yield [*PLAN, "--precision", "int4"], "--precision"
    yield ["plan", "train", "--model", "gpt3-13b", "--hardware", "huawei_ascend_910b", "--seq-len", "2048",
           "--chips", "64", "--precision", "fp8"], "--precision fp8"
    yield ["plan", "train", "--model", "gpt3-13b", "--hardware", "huawei_ascend_910b", "--seq-len", "2048",
           "--chips", "64", "--precision", "tf32"], "--precision tf32"
    yield [*PLAN, "--model", "no-such-model"], "model"
    yield [*PLAN, "--model", "/no/such/config.json"], "config.json"
    yield [*PLAN, "--model", files["zero_heads"]], "num_attention_heads"
    yield [*PLAN, "--model", files["huge_hidden"]], "hidden"
    yield [*PLAN, "--model", files["bad_json"]], "JSON"
    yield [*PLAN, "--model", files["list_json"]], "JSON object"
    yield [*PLAN, "--model", files["unknown_type"]], "model_type"
    yield [*PLAN, "--hardware", "no-such-chip"], "hardware"
    yield [*PLAN, "--system", "no-such-system"], "system"
    for flag in ("--tp", "--pp", "--dp", "--mbs", "--vpp"):
        yield [*PLAN, flag, "0"], flag
    yield [*PLAN, "--tp", "1e15"], "tp"
    yield [*PLAN, "--zero", "7"], "--zero"
    yield [*PLAN, "--recompute", "sometimes"], "--recompute"
    yield [*PLAN, "--rank-order", "dp-tp"], "--rank-order"
    for v in ("0", "-1", "nan"):
        yield [*PLAN, "--tokens", v], "--tokens"
    yield [*PLAN, "--top", "0"], "--top"
    yield [*PLAN, "--objective", "beauty"], "--objective"
    yield [*PLAN, "--sites", "0"], "--sites"
    yield [*PLAN, "--sites", "2"], "--site-link"
    yield [*PLAN, "--site-link-gbit", "-1"], "--site-link-gbit"
    yield [*PLAN, "--site-link-gbit", "100", "--site-link-rtt-ms", "-1"], "rtt"
    yield [*PLAN, "--attention-kernel", "magic"], "--attention-kernel"
    yield [*PLAN, "--catalog", "/no/such/folder"], "/no/such/folder"
    yield [*PLAN, "--catalog", files["alias_catalog"]], "aliases"
    yield [*PLAN, "--catalog", files["bad_yaml_catalog"]], "malformed YAML"
    yield [*PLAN, "--catalog", files["bad_value_catalog"]], "hbm_gb"
    yield [*PLAN, "--catalog", files["unknown_field_catalog"]], "unknown field"
    yield [*PLAN, "--catalog", files["long_value_catalog"]], "vendor"
    yield ["plan", "train", "--model", "gpt3-13b", "--hardware", "nvidia_a100_80gb_sxm:a,huawei_ascend_910b:2",
           "--seq-len", "2048"], "--hardware"
    yield ["plan", "train", "--model", "gpt3-13b", "--hardware", "nope:8,huawei_ascend_910b:8",
           "--seq-len", "2048"], "nope"
    # explain train
    yield [*EXPLAIN[:-6], "--tp", "3", "--pp", "1", "--dp", "8"], "tp"
    yield [*EXPLAIN[:-6], "--tp", "1e15", "--pp", "1e15", "--dp", "1e15"], "tp"
    yield [*EXPLAIN, "--ep", "3"], "ep"
    yield [*EXPLAIN, "--global-batch", "3"], "batch"
    yield [*EXPLAIN, "--precision", "fp8"], "--precision fp8"
    yield [*EXPLAIN, "--mbs", "1e12"], "micro"
    # power train: caps and clocks outside what the chip can run
    for v in ("1", "100", "-5", "nan", "0"):
        yield [*POWER, "--cap", v], "--cap"
    for v in ("0", "2", "0.1", "nan", "-1"):
        yield [*POWER, "--clock", v], "--clock"
    yield [*POWER, "--site", "atlantis"], "site"
    # plan serve
    for flag in ("--rate", "--ttft-ms", "--tpot-ms"):
        for v in ("0", "nan", "-1"):
            argv = [*SERVE, "--rate", "1"]
            argv[argv.index(flag) + 1] = v
            yield argv, flag
    yield [*SERVE, "--rate", "1e300"], "rate"
    yield [*SERVE, "--rate", "inf"], "rate"
    yield [*SERVE, "--chips", "1e12"], "chips"
    yield [*SERVE, "--rate", "1", "--input-tokens", "1e12"], "input"
    yield [*SERVE, "--rate", "1", "--output-tokens", "0"], "--output-tokens"
    yield [*SERVE, "--rate", "1", "--percentile", "0"], "--percentile"
    yield [*SERVE, "--rate", "1", "--percentile", "101"], "--percentile"
    yield [*SERVE, "--rate", "1", "--chips", "8"], "--chips"
    yield [*SERVE], "--chips"
    yield [*SERVE, "--rate", "1", "--trace", "/no/such/trace.csv"], "trace"
    yield [*SERVE, "--rate", "1", "--trace", files["bad_trace"]], "trace"
    yield [*SERVE, "--rate", "1", "--power-cap-w", "1"], "cap"
    yield [*SERVE, "--rate", "1", "--site", "atlantis"], "site"
    yield [*SERVE, "--rate", "1", "--objective", "vibes"], "--objective"
    yield [*SERVE, "--rate", "1", "--hardware", "huawei_ascend_910x"], "hardware"
    yield [*SERVE, "--rate", "1", "--model", files["zero_heads"]], "num_attention_heads"
    # explain serve / simulate: plans that cannot run
    yield [*EXPLAIN_SERVE, "--tp", "3"], "tp"
    yield [*EXPLAIN_SERVE, "--model", "llama3-70b", "--tp", "1"], "memory"
    yield [*EXPLAIN_SERVE, "--tp", "1e15"], "tp"
    yield [*EXPLAIN_SERVE, "--weights", "fp3"], "--weights"
    yield [*EXPLAIN_SERVE, "--tp", "1", "--max-batch", "0"], "--max-batch"
    yield [*EXPLAIN_SERVE, "--tp", "1", "--percentile", "99"], "--percentile"  # would be silently ignored
    yield [*SIMULATE, "--tp", "3"], "tp"
    yield [*SIMULATE, "--model", "llama3-70b", "--tp", "1"], "memory"
    yield [*SIMULATE, "--plan", files["big_plan"]], "plan"
    yield [*SIMULATE, "--plan", files["bad_json"]], "plan"
    yield [*SIMULATE, "--plan", "/no/such/plan.json"], "plan"
    yield [*SIMULATE, "--plan", files["list_json"]], "plan"
    yield [*SIMULATE, "--trace", "/no/such/trace.csv"], "trace"
    yield [*SIMULATE, "--until-s", "0"], "--until-s"
    yield [*SIMULATE, "--chips", "7", "--tp", "2"], "--chips"
    yield [*SIMULATE, "--chips", "8", "--replicas", "2", "--tp", "1"], "--chips"  # would drop --chips
    yield [*EXPLAIN_SERVE, "--chips", "4", "--replicas", "1", "--tp", "1"], "--chips"
    # compare / match
    yield [*COMPARE, "--hardware", "no-such-chip"], "hardware"
    yield [*COMPARE], "--hardware"
    yield [*COMPARE, "--systems", "no-such-system"], "system"
    yield [*COMPARE, "--hardware", A100, "--chips", "0"], "--chips"
    yield [*MATCH, "--theirs", A100], "--theirs"
    yield [*MATCH, "--theirs", f"{A100}:0"], "--theirs"
    yield [*MATCH, "--theirs", f"{A100}:abc"], "--theirs"
    yield [*MATCH, "--theirs", "no-such-chip:8"], "no-such-chip"
    yield [*MATCH, "--theirs", f"{A100}:8", "--ours", "no-such-chip"], "no-such-chip"
    # compare serve / match serve
    cs = ["compare", "serve", "--model", "deepseek-v3", "--systems", "huawei_cloudmatrix_384"]
    yield [*cs, "--input-tokens", "nan"], "--input-tokens"
    yield [*cs, "--output-tokens", "-5"], "--output-tokens"
    yield [*cs, "--tpot-ms", "0"], "--tpot-ms"
    yield [*cs, "--price", "huawei_ascend_910c"], "--price"
    yield [*cs, "--price", "huawei_ascend_910c=-3"], "--price"
    yield [*cs[:4], "--systems", "no-such-system"], "system"
    yield ["match", "serve", "--model", "llama3-8b", "--ours", "huawei_ascend_910b", "--theirs",
           "nvidia_h100_sxm:8", "--ttft-ms", "-1"], "--ttft-ms"
    # validate / catalog
    yield ["validate", "/no/such/cases.yaml"], "cases.yaml"
    yield ["catalog", "show", "no-such-id"], "no-such-id"
    yield ["catalog", "list", "planets"], "planets"
    yield ["catalog", "list", "--catalog", files["alias_catalog"]], "aliases"
    yield ["teleport"], "teleport"


def _write_files(root: Path) -> dict[str, str]:
    hf = {"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32,
          "intermediate_size": 11008, "vocab_size": 32000, "max_position_embeddings": 4096}
    files: dict[str, str] = {}

    def put(name: str, text: str) -> str:
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return str(p)

    files["zero_heads"] = put("zero/config.json", json.dumps({**hf, "num_attention_heads": 0}))
    files["huge_hidden"] = put("huge/config.json", json.dumps({**hf, "hidden_size": 10**30}))
    files["bad_json"] = put("bad/config.json", "{not json")
    files["list_json"] = put("list/config.json", "[1, 2, 3]")
    files["unknown_type"] = put("gpt9/config.json", json.dumps({**hf, "model_type": "gpt9" * 500}))
    laughs = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    put("alias/models/laughs.yaml", laughs)
    files["alias_catalog"] = str(root / "alias")
    put("badyaml/accelerators/x.yaml", "id: x\nvendor: [unclosed\n")
    files["bad_yaml_catalog"] = str(root / "badyaml")
    chip = "id: x1\nvendor: v\nname: X1\npeak_tflops: {{bf16: 100}}\nhbm_gb: {hbm}\nhbm_tbps: 1\n"
    put("badvalue/accelerators/x1.yaml", chip.format(hbm=-96))
    files["bad_value_catalog"] = str(root / "badvalue")
    put("unknownfield/accelerators/x1.yaml", chip.format(hbm=96) + "colour: blue\n")
    files["unknown_field_catalog"] = str(root / "unknownfield")
    put("longvalue/accelerators/x1.yaml", chip.format(hbm=96).replace("vendor: v", "vendor: [" + "9, " * 5_000 + "9]"))
    files["long_value_catalog"] = str(root / "longvalue")
    files["big_plan"] = put("big_plan.json", json.dumps({"plans": [{"plan": {"tp": "x" * 442_000}}]}))
    files["bad_trace"] = put("bad_trace.csv", "not,a,trace\n1,2\n")
    return files


@cache
def _bundled_catalog() -> Catalog:
    return load_catalog([])


def _cached_load_catalog(extra_dirs: Any = None) -> Catalog:
    return _bundled_catalog() if not extra_dirs else load_catalog(extra_dirs)


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code) if isinstance(exc.code, int) else 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return code, capsys.readouterr().err


def test_bad_inputs_exit_2_with_one_short_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_main, "load_catalog", _cached_load_catalog)
    monkeypatch.delenv("FLEETWISE_CATALOG", raising=False)
    cases = list(_cases(_write_files(tmp_path)))
    assert len(cases) >= 100
    problems = []
    for argv, needle in cases:
        try:
            code, err = _run(argv, capsys)
        except _Hang:
            problems.append(f"HANG > {CASE_TIMEOUT_S} s: {argv}")
            continue
        except Exception as exc:  # the point of the test: nothing but a clean exit 2
            problems.append(f"TRACEBACK {type(exc).__name__}: {str(exc)[:200]}: {argv}")
            continue
        lines = [ln for ln in err.splitlines() if "error:" in ln]
        if code != 2 or len(lines) != 1:
            problems.append(f"exit {code}, {len(lines)} error lines ({err[-200:]!r}): {argv}")
        elif len(lines[0]) > MAX_LINE:
            problems.append(f"{len(lines[0])}-char message ({lines[0][:120]}...): {argv}")
        elif needle.lower() not in lines[0].lower():
            problems.append(f"message lacks {needle!r}: {lines[0]}: {argv}")
    assert not problems, f"{len(problems)} of {len(cases)} bad inputs misbehaved:\n" + "\n".join(problems)


def test_calibrate_module_has_help_and_a_clean_error(capsys: pytest.CaptureFixture[str]) -> None:
    from fleetwise.validate.calibrate import main as calibrate_main

    with pytest.raises(SystemExit) as exc:
        calibrate_main(["--help"])
    assert exc.value.code == 0 and "calibrate" in capsys.readouterr().out
    assert calibrate_main(["/no/such/cases.yaml"]) == 2  # fails before anything is fitted or written
    assert "no such case file" in capsys.readouterr().err

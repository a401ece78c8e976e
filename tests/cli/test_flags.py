"""No flag is silently dropped: every flag of every command changes the study's inputs or is rejected, every
flag has help text, and the flags the issue found ignored are now rejected (or applied) with a message."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from fleetwise.api import run_study
from fleetwise.catalog.loader import load_catalog
from fleetwise.cli.args import percentile, positive_float, positive_int
from fleetwise.cli.main import build_parser, main
from fleetwise.cli.request import NOT_INPUTS, study_request
from fleetwise.errors import SpecError

BASE = {  # the smallest command line of each command (ids need not exist: nothing is computed)
    ("plan", "train"): ["--model", "m", "--hardware", "h", "--chips", "8"],
    ("explain", "train"): ["--model", "m", "--hardware", "h"],
    ("compare", "train"): ["--model", "m", "--hardware", "a,b", "--chips", "8"],
    ("match", "train"): ["--model", "m", "--ours", "a", "--theirs", "b:8"],
    ("power", "train"): ["--model", "m", "--hardware", "h"],
    ("plan", "serve"): ["--model", "m", "--hardware", "h", "--ttft-ms", "100", "--tpot-ms", "10"],
    ("explain", "serve"): ["--model", "m", "--hardware", "h"],
    ("compare", "serve"): ["--model", "m"],
    ("match", "serve"): ["--model", "m", "--ours", "a", "--theirs", "b:8"],
    ("simulate",): ["--model", "m", "--hardware", "h"],
    ("validate",): [],
    ("place", "serve"): ["china"],
    ("place", "train"): ["china"],
    ("place", "rtt"): [],
}
SAMPLE = {"--theirs": "c:16", "--price": "chip=5", "--mixed": "a:1,b:2", "--hardware": "g", "--trace": "azure_conv"}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    out = []
    for name, p in subs[0].choices.items():
        out.extend(_leaves(p, (*path, name)))
    return out


def _value(action: argparse.Action) -> list[str]:
    opt = action.option_strings[0]
    if action.nargs == 0:
        return [opt]
    if action.choices is not None:
        return [opt, str(list(action.choices)[-1])]
    typ = action.type
    if typ is positive_int or typ is int:
        return [opt, "3"]
    if typ in (positive_float, float, percentile):
        return [opt, "3.5"]
    return [opt, SAMPLE.get(opt, "sample")]


PARSER = build_parser()


def _request(path: tuple[str, ...], argv: list[str]) -> tuple[str, dict[str, Any]]:
    return study_request(PARSER.parse_args([*path, *argv]))


# commands that read, store or serve studies, or (calibrate) measure a device and write data files
NOT_STUDIES = ("catalog", "report", "server", "studies", "emit", "sweep", "calibrate")
LEAVES = [(p, a) for p, parser in _leaves(PARSER) if p[0] not in NOT_STUDIES
          for a in parser._actions if a.option_strings and a.dest not in ("help",)]


def test_every_command_has_a_base_line() -> None:
    missing = {p for p, _ in LEAVES} - set(BASE)
    assert not missing, f"add the smallest command line of {sorted(missing)} to BASE: every flag of every " \
                        "command must change its study inputs or be rejected"
    assert set(BASE) <= {p for p, _ in LEAVES}


@pytest.mark.parametrize("path, action", LEAVES, ids=[f"{' '.join(p)} {a.option_strings[0]}" for p, a in LEAVES])
def test_every_flag_changes_the_inputs_or_is_rejected(path: tuple[str, ...], action: argparse.Action) -> None:
    if action.dest in NOT_INPUTS:  # output and catalog choice (--json, --catalog) and study files (--plan, --row)
        assert action.dest in ("json", "catalog", "plan", "row", "map", "plot", "save")
        return
    base = BASE[path]
    flag = _value(action)
    argv = [*base[: base.index(flag[0])], *base[base.index(flag[0]) + 2:]] if flag[0] in base else base
    try:
        kind, inputs = _request(path, [*argv, *flag])
    except SpecError:
        return  # rejected with a message
    assert (kind, inputs) != _request(path, argv), f"{flag} does not change the study inputs"


def test_every_flag_has_help_text() -> None:
    for path, parser in _leaves(build_parser()):
        for a in parser._actions:
            assert a.help and a.help != argparse.SUPPRESS, f"{' '.join(path)} {a.option_strings or a.dest}"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("fleetwise 0.")


@pytest.mark.parametrize("argv, message", [
    (["plan", "train", "--model", "llama2-7b", "--hardware", "huawei_ascend_910b:32,nvidia_h20:16", "--tp", "2"],
     "plan flags (--tp, --pp, ...) do not apply to a mixed fleet"),
    (["plan", "train", "--model", "llama2-7b", "--hardware", "huawei_ascend_910b:32,nvidia_h20:16", "--objective",
      "energy"], "ranked by step time only"),
    (["plan", "train", "--model", "llama2-7b", "--hardware", "huawei_ascend_910b:32,nvidia_h20:16", "--tokens",
      "1e9"], "tokens (--tokens) does not apply"),
    (["plan", "train", "--model", "llama2-7b", "--hardware", "huawei_ascend_910b:32,nvidia_h20:16", "--chips", "48"],
     "chips (--chips) does not apply"),
    (["plan", "train", "--model", "llama2-7b", "--hardware", "huawei_ascend_910b:32,nvidia_h20:16", "--system",
      "nvidia_dgx_h100_h200"], "system (--system) does not apply"),
    (["match", "train", "--model", "llama2-7b", "--ours", "huawei_ascend_910b", "--theirs", "nvidia_h100_sxm:8",
      "--sites", "2"], "sites (--sites) does not apply"),
    (["match", "train", "--model", "llama2-7b", "--ours", "huawei_ascend_910b", "--theirs", "nvidia_h100_sxm:8",
      "--system", "nvidia_dgx_h100_h200"], "is built from nvidia_h100_sxm, not huawei_ascend_910b"),
    (["compare", "train", "--model", "llama2-7b", "--hardware", "nvidia_h100_sxm", "--chips", "8", "--system",
      "nvidia_dgx_h100_h200"], "give systems (--systems A,B) instead"),
    (["compare", "train", "--model", "llama2-7b", "--hardware", "nvidia_h100_sxm", "--chips", "8", "--systems",
      "nvidia_dgx_h100_h200"], "exactly one of hardware"),
    (["plan", "train", "--model", "llama2-7b", "--hardware", "nvidia_h100_sxm", "--chips", "8",
      "--site-link-rtt-ms", "5"], "needs site_link_gbit"),
    (["explain", "serve", "--model", "llama3.1-8b", "--hardware", "nvidia_h100_sxm", "--input-tokens", "10",
      "--output-tokens", "10", "--trace", "azure_conv"], "not both"),
    (["compare", "serve", "--model", "llama3.1-8b", "--mixed", "huawei_ascend_910b:8,nvidia_h20:8", "--site",
      "eu_average"], "applies to --systems only"),
])
def test_flags_that_were_ignored_are_rejected(capsys: pytest.CaptureFixture[str], argv: list[str],
                                              message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and len(err) <= 300 + len("fleetwise: error: \n")


def test_an_input_a_study_kind_does_not_take_is_rejected_not_dropped() -> None:
    with pytest.raises(SpecError, match=r"explain_serve: rate \(--rate\) does not apply here"):
        run_study("explain_serve", {"model": "llama3.1-8b", "hardware": "nvidia_h100_sxm", "rate": 3},
                  catalog=load_catalog([]))


def test_every_runnable_kind_declares_its_inputs() -> None:
    from fleetwise.api.studies import INPUTS, RUNNERS

    assert set(INPUTS) == set(RUNNERS)
    for kind, names in INPUTS.items():
        with pytest.raises(SpecError, match="does not apply here"):
            run_study(kind, {"no_such_input": 1}, catalog=load_catalog([]))
        assert "model" in names or kind in ("validate", "place_serve", "place_train")

"""Speculative decoding / MTP from the command line: the accept length is an input, echoed, and it moves TPOT."""

from __future__ import annotations

import json

import pytest

from fleetwise.cli.main import main

BASE = ["explain", "serve", "--model", "deepseek-v3", "--hardware", "nvidia_h20", "--tp", "8", "--ep", "8",
        "--weights", "fp8", "--kv", "fp8", "--input-tokens", "1024", "--output-tokens", "512", "--json"]


def _row(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    assert main([*BASE, *extra]) == 0
    study = json.loads(capsys.readouterr().out)
    return study["inputs"], study["results"]["rows"][0]


def test_accepted_draft_tokens_cut_tpot_and_a_useless_draft_costs_time(capsys: pytest.CaptureFixture[str]) -> None:
    _, plain = _row(capsys)
    inputs, mtp = _row(capsys, "--spec-steps", "1", "--accept-length", "1.85")
    _, wasted = _row(capsys, "--spec-steps", "1", "--accept-length", "1")
    assert inputs["spec_steps"] == 1 and inputs["accept_length"] == 1.85
    assert mtp["tpot_ms"] < plain["tpot_ms"] < wasted["tpot_ms"]  # nothing accepted: the draft and verify cost


def test_accept_length_needs_steps_and_stays_in_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*BASE, "--accept-length", "1.8"]) == 2
    assert "needs spec_steps (--spec-steps)" in capsys.readouterr().err
    assert main([*BASE, "--spec-steps", "1", "--accept-length", "2.5"]) == 2
    assert "accept_length must be in [1, steps + 1 = 2]" in capsys.readouterr().err

"""The ``power train`` command and the ``--objective`` flag of ``plan train``."""

from __future__ import annotations

import json

import pytest

from fleetwise.cli.main import main

JOB = ["--model", "llama3-8b", "--hardware", "nvidia_h100_sxm", "--seq-len", "4096", "--global-batch", "256"]


def test_power_train_json_reports_energy_and_sweeps(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["power", "train", *JOB, "--tp", "2", "--pp", "2", "--dp", "8", "--json", "--site", "eu_average"])
    out = json.loads(capsys.readouterr().out)["results"]
    assert rc == 0
    assert out["rows"][0]["energy"]["site"] == "eu_average"
    assert {"stage_plan", "clock", "cap"} <= set(out["sweeps"])


def test_power_train_unknown_site_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["power", "train", *JOB, "--tp", "2", "--dp", "16", "--site", "atlantis"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown site 'atlantis'" in err and err.count("\n") == 1


def test_plan_train_objective_energy(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["plan", "train", *JOB, "--chips", "16", "--tp", "2", "--objective", "energy", "--top", "2", "--json"])
    out = json.loads(capsys.readouterr().out)["results"]
    assert rc == 0 and len(out["rows"]) == 2

"""``--save``/``--plot`` on plan train, ``fleetwise studies list|show|export|delete`` and ``fleetwise report``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetwise import api
from fleetwise.catalog import Catalog
from fleetwise.cli.main import main
from fleetwise.study import Study

pytest.importorskip("sqlalchemy")
ARGS = ["plan", "train", "--model", "gpt3-125m", "--hardware", "nvidia_h100_sxm", "--chips", "8", "--seq-len",
        "2048", "--top", "3", "--tp", "1", "--pp", "1", "--recompute", "none", "--zero", "1"]


def test_plan_train_saves_the_same_study_run_study_computes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            catalog: Catalog) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert main([*ARGS, "--save", db, "--plot", str(tmp_path / "p.svg")]) == 0
    assert (tmp_path / "p.svg").read_bytes().lstrip().startswith(b"<?xml")
    expected = api.run_study("plan_train", {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "chips": 8,
                                            "seq_len": 2048, "top": 3,
                                            "pinned": {"tp": 1, "pp": 1, "recompute": "none", "zero": 1}},
                             catalog=catalog)
    assert f"study {expected.id} stored" in capsys.readouterr().err
    assert main(["studies", "list", "gpt3", "--db", db]) == 0
    assert expected.id in capsys.readouterr().out
    assert main(["studies", "show", expected.id, "--db", db]) == 0
    shown = Study.from_json(capsys.readouterr().out)
    assert shown.id == expected.id and [r["plan"] for r in shown.rows] == [r["plan"] for r in expected.rows]
    assert main(["studies", "export", expected.id, "--format", "csv", "-o", str(tmp_path / "s.csv"), "--db", db]) == 0
    assert (tmp_path / "s.csv").read_text().count("\n") == 1 + len(expected.rows)
    assert main(["studies", "delete", expected.id, "--db", db]) == 0
    assert main(["studies", "show", expected.id, "--db", db]) == 2
    assert "no stored study" in capsys.readouterr().err


def test_report_writes_html_from_a_study_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              catalog: Catalog) -> None:
    study = api.run_study("explain_train", {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "seq_len": 2048,
                                            "plan": {"dp": 8}}, catalog=catalog)
    path = study.save(tmp_path / "s.json")
    assert main(["report", str(path), "--html", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert study.id in html and "vegaEmbed" in html
    assert main(["report", str(path)]) == 2
    assert "--html" in capsys.readouterr().err


def test_bad_ids_and_paths_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert main(["studies", "show", "../../etc/passwd", "--db", db]) == 2
    assert "not a study id" in capsys.readouterr().err
    assert main([*ARGS, "--plot", str(tmp_path / "p.gif")]) == 2
    assert ".png or .svg" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "plan_train", "inputs": {}, "id": "0" * 16}))
    assert main(["report", str(bad), "--html", str(tmp_path / "r.html")]) == 2
    assert "does not match the content" in capsys.readouterr().err

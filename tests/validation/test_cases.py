"""Case files: bad cases become errors that name the field; the other cases still run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetwise.catalog import Catalog
from fleetwise.errors import SpecError
from fleetwise.validate.cases import load_cases
from fleetwise.validate.runner import validate_files

GOOD = """
- id: good
  kind: training
  source: test
  model: llama2-7b
  hardware: nvidia_h100_sxm
  system: nvidia_dgx_h100_h200
  chips: 8
  precision: bf16
  flops_convention: model
  training: {seq_len: 4096, global_batch: 128, tp: 1, pp: 1, dp: 8, cp: 1, ep: 1, micro_batch: 1, vpp: 1,
             sequence_parallel: false, recompute: none, zero: 1}
  measured: {tokens_per_s_per_chip: 10000}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cases.yaml"
    p.write_text(text)
    return p


def test_unknown_hardware_is_an_error_naming_the_field(tmp_path: Path, catalog: Catalog) -> None:
    bad = GOOD.replace("id: good", "id: bad").replace("nvidia_h100_sxm", "nvidia_h999")
    report = validate_files([_write(tmp_path, GOOD + bad)], catalog).to_json()
    assert [c["id"] for c in report["cases"]] == ["good"]
    assert report["errors"][0]["id"] == "bad"
    assert "field: hardware" in report["errors"][0]["message"]


def test_out_of_range_field_is_an_error_naming_it(tmp_path: Path) -> None:
    cases, errors = load_cases(_write(tmp_path, GOOD.replace("chips: 8", "chips: -8")))
    assert cases == []
    assert "chips" in errors[0]["message"] and "-8" in errors[0]["message"]


def test_unknown_metric_is_rejected(tmp_path: Path) -> None:
    _, errors = load_cases(_write(tmp_path, GOOD.replace("tokens_per_s_per_chip", "tokens_per_fortnight")))
    assert "tokens_per_fortnight" in errors[0]["message"]


def test_a_yaml_alias_shared_by_two_cases_reads_as_the_value_written_out(tmp_path: Path, catalog: Catalog) -> None:
    # the shared domestic.yaml gives three cases one system_overrides through &id001 / *id001
    one = GOOD.replace("chips: 8", "chips: 8\n  system_overrides: &net\n    scaleout_gbit_per_node: 1600")
    two = GOOD.replace("id: good", "id: twin").replace("chips: 8", "chips: 8\n  system_overrides: *net")
    written = GOOD.replace("id: good", "id: twin").replace(
        "chips: 8", "chips: 8\n  system_overrides:\n    scaleout_gbit_per_node: 1600")
    aliased = validate_files([_write(tmp_path, one + two)], catalog).to_json()
    assert not aliased["errors"] and not aliased["invalid"]
    plain = validate_files([_write(tmp_path, written)], catalog).to_json()
    assert aliased["cases"][1]["metrics"] == plain["cases"][0]["metrics"]


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"cases.yaml: line \d+"):
        load_cases(_write(tmp_path, GOOD + "\n  - : [unclosed\n"))


def test_validate_runs_the_valid_cases_and_exits_2_on_an_invalid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetwise.cli.main import main

    good = _write(tmp_path, GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("id: good", "id: bad").replace("chips: 8", "chips: -8"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("- id: [unclosed\n")
    code = main(["validate", str(good), str(bad), str(broken), str(tmp_path / "missing.yaml"), "--json"])
    out, err = capsys.readouterr()
    report = json.loads(out)["results"]
    assert code == 2
    assert [c["id"] for c in report["cases"]] == ["good"]  # the valid case still ran
    assert [e["id"] for e in report["invalid"]] == ["bad", str(broken), str(tmp_path / "missing.yaml")]
    assert err.count("error:") == 1 and "chips" in err and "(and 2 more)" in err

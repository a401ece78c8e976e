"""Energy metrics of training cases are predicted at the case's power boundary, with its PUE."""

from __future__ import annotations

from pathlib import Path

import yaml

from fleetwise.catalog import Catalog
from fleetwise.validate.runner import BUNDLED_CASES, validate_files


def test_metered_node_boundary_training_case_gets_energy_predictions(catalog: Catalog, tmp_path: Path) -> None:
    cases = yaml.safe_load((BUNDLED_CASES / "energy.yaml").read_text())
    one = tmp_path / "patterson.yaml"
    one.write_text(yaml.safe_dump([c for c in cases if c["id"] == "patterson21-gpt3-175b-v100-10000"]))
    report = validate_files([one], catalog)
    preds = {p.case.id: p for p in report.predictions}
    p = preds["patterson21-gpt3-175b-v100-10000"]
    assert {"energy_mwh", "avg_power_w_per_chip"} <= set(p.predicted)
    assert any("node" in n and "PUE 1.1" in n for n in p.notes)
    # energy = chips x time x node power per chip x PUE (Patterson Table 4's definition)
    days = p.predicted["time_to_train_days"]
    expect = 10000 * days * 24 * p.predicted["avg_power_w_per_chip"] * 1.1 / 1e6
    assert abs(p.predicted["energy_mwh"] / expect - 1) < 1e-6
    assert "energy" in report.to_json()["summary"]

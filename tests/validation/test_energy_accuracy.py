"""Energy accuracy against metered published measurements (validation/energy.yaml, energy metrics)."""

from __future__ import annotations

from pathlib import Path

import yaml

from fleetwise.catalog import Catalog
from fleetwise.validate.cases import ENERGY_METRICS
from fleetwise.validate.runner import BUNDLED_CASES, validate_files

from ..conftest import SHARED_VALIDATION


def test_energy_median_error_within_20_percent(catalog: Catalog, tmp_path: Path) -> None:
    source = SHARED_VALIDATION / "energy.yaml"
    cases = yaml.safe_load((source if source.is_file() else BUNDLED_CASES / "energy.yaml").read_text())
    metered = [c for c in cases if any(k in ENERGY_METRICS for k in c["measured"])]
    path = tmp_path / "energy_metered.yaml"
    path.write_text(yaml.safe_dump(metered))
    report = validate_files([path], catalog).to_json()
    energy = report["summary"]["energy"]
    # every metered case whose model the catalog holds is predicted (T5 and GShard are encoder-decoders)
    assert energy["count"] >= 3
    assert energy["median_ape"] <= 0.20

"""Shared fixtures: the bundled catalog and efficiency table, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetwise.catalog import Catalog, load_catalog
from fleetwise.perf.calibration import Calibration, load_calibration
from fleetwise.perf.efficiency import EfficiencyTable, load_efficiency

REPO = Path(__file__).resolve().parents[1]
SHARED_VALIDATION = REPO.parent / "shared" / "validation"


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog([])


@pytest.fixture(scope="session")
def eff() -> EfficiencyTable:
    return load_efficiency()


@pytest.fixture(scope="session")
def calib() -> Calibration:
    return load_calibration()

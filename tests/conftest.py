"""Shared fixtures: the bundled catalog and efficiency table, loaded once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from fleetwise.catalog import Catalog, load_catalog
from fleetwise.perf.calibration import Calibration, load_calibration
from fleetwise.perf.efficiency import EfficiencyTable, load_efficiency

# Property tests explore the same examples on every run (reproducible CI); widen locally with
# HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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

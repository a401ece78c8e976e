"""Training across data-centre sites: the site link is priced, and more of it never slows a plan."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetwise.catalog import Catalog
from fleetwise.catalog.types import SiteLink
from fleetwise.errors import SpecError
from fleetwise.perf.candidates import Candidates
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import make_training_setup
from fleetwise.perf.training import training_step
from fleetwise.plan import TrainingJob, TrainingPlan

PLANS = [TrainingPlan(tp=8, pp=2, dp=8, zero=1), TrainingPlan(tp=8, pp=1, dp=16, zero=3)]


def _step(catalog: Catalog, eff: EfficiencyTable, sites: int, link: SiteLink | None) -> np.ndarray:
    s = make_training_setup(catalog.model("llama3-70b"), catalog.accelerator("nvidia_h100_sxm"),
                            catalog.system("nvidia_dgx_h100_h200"), TrainingJob(seq_len=4096, global_batch=128),
                            eff, sites=sites, site_link=link)
    return training_step(Candidates.from_plans(PLANS), s).step_time_s


def test_two_sites_are_never_faster_than_one(catalog: Catalog, eff: EfficiencyTable) -> None:
    one = _step(catalog, eff, 1, None)
    two = _step(catalog, eff, 2, SiteLink(gbit_per_s=400, rtt_ms=5))
    assert np.all(two > one)


@settings(max_examples=20)
@given(gbit=st.floats(10, 10_000), factor=st.floats(1.01, 20.0), rtt=st.floats(0, 50))
def test_more_site_bandwidth_never_slows(gbit: float, factor: float, rtt: float) -> None:
    from fleetwise.catalog import load_catalog
    from fleetwise.perf.efficiency import load_efficiency

    catalog, eff = load_catalog([]), load_efficiency()
    slow = _step(catalog, eff, 2, SiteLink(gbit_per_s=gbit, rtt_ms=rtt))
    fast = _step(catalog, eff, 2, SiteLink(gbit_per_s=gbit * factor, rtt_ms=rtt))
    assert np.all(fast <= slow + 1e-12)


def test_sites_without_a_link_are_rejected(catalog: Catalog, eff: EfficiencyTable) -> None:
    with pytest.raises(SpecError, match="site-link"):
        _step(catalog, eff, 2, None)

"""Synthesised systems and chips without micro-benchmarks (they inherit from their family and say so)."""

from __future__ import annotations

from fleetwise.catalog import Catalog
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.setup import synthetic_system


def test_a_tpu_without_a_system_keeps_its_ici_domain(catalog: Catalog) -> None:
    s = synthetic_system(catalog.accelerator("google_tpu_v5e"))
    assert s.domain_size == 256 and s.chips_per_node <= 8


def test_a_chip_without_micro_benchmarks_inherits_from_its_nearest_fitted_sibling(eff: EfficiencyTable) -> None:
    assert "google_tpu_v5e" not in eff.chips
    got = eff.chip("google_tpu_v5e")
    assert not got.is_default and got.borrowed_from in eff.chips and got.chip_id == "google_tpu_v5e"
    assert eff.chip("nvidia_gb300_per_gpu").borrowed_from == "nvidia_gb200_per_gpu"


def test_a_chip_of_no_known_family_gets_the_flagged_defaults(eff: EfficiencyTable) -> None:
    # (MetaX C500 has its own FlagPerf entry now; an id of no family and no data still gets the defaults)
    assert "metax_c550" not in eff.chips and eff.chip("metax_c550").is_default

"""Physical invariants of the chip power model (DVFS, caps) and of the serving phase-mix energy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetwise.catalog import Catalog
from fleetwise.energy.power import PHASES, chip_power
from fleetwise.energy.serving import phase_mix_energy
from fleetwise.errors import SpecError

CHIPS = ("huawei_ascend_910b", "nvidia_h100_sxm", "nvidia_a100_80gb_sxm", "google_tpu_v3", "nvidia_v100_sxm2_32gb")


@settings(max_examples=200, deadline=None)
@given(chip=st.sampled_from(CHIPS), phase=st.sampled_from(PHASES),
       cap_hi=st.floats(10.0, 1500.0), frac=st.floats(0.0, 1.0))
def test_lower_power_cap_never_raises_power(catalog: Catalog, chip: str, phase: str, cap_hi: float,
                                            frac: float) -> None:
    cp = chip_power(catalog.accelerator(chip))
    cap_lo = cap_hi * frac
    p_hi = float(cp.power_w(phase, cp.capped_clock(phase, cap_hi)))  # type: ignore[arg-type]
    p_lo = float(cp.power_w(phase, cp.capped_clock(phase, max(cap_lo, 1e-3))))  # type: ignore[arg-type]
    assert p_lo <= p_hi + 1e-9


@settings(max_examples=100, deadline=None)
@given(chip=st.sampled_from(CHIPS), f=st.floats(0.5, 1.0))
def test_memory_bound_phase_loses_less_time_at_lower_clock_than_compute_bound(catalog: Catalog, chip: str,
                                                                              f: float) -> None:
    cp = chip_power(catalog.accelerator(chip))
    assert float(cp.time_factor("memory", f)) <= float(cp.time_factor("compute", f))
    assert float(cp.time_factor("compute", f)) == pytest.approx(1.0 / f)


def test_cap_is_inert_where_the_phase_draws_less(catalog: Catalog) -> None:
    cp = chip_power(catalog.accelerator("nvidia_h200_sxm"))
    cap = float(cp.power_w("memory", 1.0)) + 1.0  # above memory-bound draw, below compute-bound draw
    assert cp.capped_clock("memory", cap) == 1.0
    assert cp.capped_clock("compute", cap) < 1.0


def test_capped_compute_draws_the_cap(catalog: Catalog) -> None:
    cp = chip_power(catalog.accelerator("nvidia_h100_sxm"))
    f = cp.capped_clock("compute", 500.0)
    assert float(cp.power_w("compute", f)) == pytest.approx(500.0, rel=1e-6)


def test_measured_idle_power_is_used_where_the_catalog_has_it(catalog: Catalog) -> None:
    cp = chip_power(catalog.accelerator("google_tpu_v3"))
    assert cp.idle_w == 123.0
    assert float(cp.power_w("wait", cp.f_min)) >= cp.idle_w


def test_tdp_derived_defaults_are_marked(catalog: Catalog) -> None:
    cp = chip_power(catalog.accelerator("nvidia_h100_sxm"))
    assert any("idle" in d for d in cp.derived)


def test_decode_at_lower_clock_saves_energy_with_little_slowdown(catalog: Catalog) -> None:
    cp = chip_power(catalog.accelerator("nvidia_h200_sxm"))
    mix = {"memory": 0.9, "comm": 0.1}
    full = phase_mix_energy(cp, 1.0, mix)
    slow = phase_mix_energy(cp, 1.0, mix, clock=0.6)
    assert slow.energy_j < full.energy_j
    assert slow.time_s / full.time_s < 1.0 / 0.6  # less than a compute-bound phase would lose


def test_phase_mix_rejects_shares_not_summing_to_one(catalog: Catalog) -> None:
    cp = chip_power(catalog.accelerator("nvidia_h200_sxm"))
    with pytest.raises(SpecError, match="sum to 1"):
        phase_mix_energy(cp, 1.0, {"compute": 0.5})

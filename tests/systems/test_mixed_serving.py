"""Mixed-fleet serving (prefill on one chip type, decode on another) and ``match serve``."""

from __future__ import annotations

import json

import pytest

from fleetwise.catalog import Catalog
from fleetwise.cli.main import main
from fleetwise.errors import SpecError
from fleetwise.perf.inference import make_serving_setup
from fleetwise.search.fleet import FleetPart, parse_fleet
from fleetwise.search.mixed_serving import best_single, match_serving, search_mixed_serving
from fleetwise.search.serving import ServingWorkload
from fleetwise.search.systems import prefill_options

W = ServingWorkload(2048.0, 256.0, 2.0, 0.05)
FLEET = "huawei_ascend_910b:512,nvidia_h20:256"


@pytest.fixture(scope="module")
def comparison(catalog: Catalog):  # type: ignore[no-untyped-def]
    return search_mixed_serving(catalog.model("llama3.1-70b"), parse_fleet(FLEET, catalog), W)


def test_mix_beats_the_same_fleet_run_as_two_clusters_for_2048_in_256_out(comparison) -> None:  # type: ignore[no-untyped-def]
    assert comparison.mixed is not None
    # prefill on one type and decode on the other serves more than each type serving alone on its own chips
    assert comparison.mixed_rps > comparison.split_fleet_rps
    assert comparison.best_same_total.accelerator_id == "nvidia_h20"  # the better single type on 768 chips


def test_mix_puts_prefill_on_the_compute_chip_and_decode_on_the_bandwidth_chip(comparison) -> None:  # type: ignore[no-untyped-def]
    assert comparison.mixed.prefill_type == "huawei_ascend_910b"
    assert comparison.mixed.decode_type == "nvidia_h20"


def test_mixed_plan_fits_the_fleet_and_meets_the_slos(comparison) -> None:  # type: ignore[no-untyped-def]
    m = comparison.mixed
    assert m.pair.prefill_chips + m.leftover[0].chips == 512
    assert m.pair.decode_chips + m.leftover[1].chips == 256
    assert m.pair.prefill.latency_s <= W.ttft_s and m.pair.decode.latency_s <= W.tpot_s


def test_kv_handoff_between_types_runs_at_the_slower_nic(catalog: Catalog) -> None:
    model = catalog.model("llama3.1-70b")
    fast, slow = catalog.accelerator("nvidia_h20"), catalog.accelerator("huawei_ascend_910b")
    sf = make_serving_setup(model, fast, catalog.default_system(fast.id))
    ss = make_serving_setup(model, slow, catalog.default_system(slow.id))
    own = {o.engine_chips: o.handoff_s for o in prefill_options(sf, W, 8, peer=sf)}
    mixed = {o.engine_chips: o.handoff_s for o in prefill_options(sf, W, 8, peer=ss)}
    assert all(mixed[k] > own[k] for k in own.keys() & mixed.keys())


def test_single_type_goodput_never_falls_with_more_chips(catalog: Catalog) -> None:
    part = parse_fleet(FLEET, catalog)[1]
    model = catalog.model("llama3.1-70b")
    rates = [best_single(model, part, n, W).goodput_rps for n in (8, 16, 24, 32)]
    assert rates == sorted(rates) and rates[0] > 0


def test_matching_a_fleet_with_its_own_chip_needs_no_more_chips(catalog: Catalog) -> None:
    h20 = catalog.accelerator("nvidia_h20")
    part = FleetPart(h20, catalog.default_system(h20.id), 32)
    m = match_serving(catalog.model("llama3.1-70b"), part, part, W)
    assert m.ours.chips <= 32 and m.ours.goodput_rps >= m.theirs.goodput_rps * (1 - 1e-9)


def test_parse_fleet_rejects_one_type_or_a_bad_count(catalog: Catalog) -> None:
    with pytest.raises(SpecError, match="HW:N"):
        parse_fleet("nvidia_h20:0,huawei_ascend_910b:8", catalog)
    with pytest.raises(SpecError, match="two different chip types"):
        parse_fleet("nvidia_h20:8", catalog)


def test_cli_match_serve_reports_chips_power_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["match", "serve", "--model", "llama3.1-70b", "--ours", "huawei_ascend_910b", "--theirs",
                 "nvidia_h20:32", "--input-tokens", "2048", "--output-tokens", "256", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["results"]
    assert out["ours"]["goodput_rps"] >= out["theirs"]["goodput_rps"]
    assert out["ours"]["facility_kw"] > 0 and out["theirs"]["usd_per_hour"] > 0


def test_cli_compare_serve_mixed_prints_the_comparison(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "serve", "--model", "llama3.1-70b", "--mixed", "huawei_ascend_910b:64,nvidia_h20:32",
                 "--input-tokens", "2048", "--output-tokens", "256"]) == 0
    assert "mixed / best single type" in capsys.readouterr().out

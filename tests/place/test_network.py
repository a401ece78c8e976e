"""The distance RTT model against the measured sets, bandwidth per pair, KV transfer."""

from __future__ import annotations

import pytest

from fleetwise.errors import SpecError
from fleetwise.place.network import (
    great_circle_km,
    kv_cache_bytes,
    kv_transfer_s,
    measured_rtt,
    pair_gbit_per_s,
    region,
    rtt_fit_report,
    throughput_model,
)


def test_fit_on_skyplane_predicts_azure_p50_within_15_percent() -> None:
    forward, reverse = rtt_fit_report()
    assert (forward.model.fitted_on, forward.checked_on) == ("skyplane", "azure")
    assert forward.pairs > 1000  # pairs more than 500 km apart
    assert forward.median_abs_error <= 0.15
    assert 1.2 < forward.model.route_factor < 2.2  # fibre paths are longer than the great circle
    assert (reverse.model.fitted_on, reverse.checked_on) == ("azure", "skyplane")
    assert reverse.median_abs_error < 0.25  # reported beside the forward fit; GCP pings are the noisiest


def test_measured_sets_cover_both_sources() -> None:
    assert len(measured_rtt("azure").pairs) > 1500
    assert len(measured_rtt("skyplane").pairs) > 3000
    with pytest.raises(SpecError, match="azure, skyplane"):
        measured_rtt("gcp")


def test_geometry_and_region_errors() -> None:
    bj, sh = region("alibaba:cn-beijing"), region("alibaba:cn-shanghai")
    assert float(great_circle_km(bj.lat, bj.lon, sh.lat, sh.lon)) == pytest.approx(1070, rel=0.03)
    with pytest.raises(SpecError, match="cn-hub:guizhou-guian"):
        region("cn-hub:guizhou")


def test_bandwidth_falls_with_distance_and_measured_pairs_win() -> None:
    m = throughput_model()
    assert m.gbit_per_s(500) > m.gbit_per_s(10_000) > 0
    v, how = pair_gbit_per_s("aws:eu-west-3", "gcp:europe-west6", 500.0)
    assert how == "measured" and v > 0
    assert pair_gbit_per_s("x:a", "x:b", 1000.0)[1] == "model"


def test_kv_transfer_of_a_prompt() -> None:
    # llama-70B-like: 80 layers, 8 KV heads x 128, bf16, 4k tokens -> 1.34 GB; at 10 Gbit/s ~1.07 s + RTT/2
    kv = kv_cache_bytes(80, 8, 128, 4096, 2.0)
    assert kv == pytest.approx(1.342e9, rel=1e-3)
    assert kv_transfer_s(kv, 0.030, 10.0) == pytest.approx(0.015 + kv * 8 / 10e9)


def test_pd_split_report_prices_the_kv_cache_over_the_wan(catalog: object) -> None:
    from fleetwise.catalog.loader import Catalog
    from fleetwise.place.pd_split import pd_split_report
    from fleetwise.place.problem import site_arrays
    from fleetwise.place.spec import load_scenario

    assert isinstance(catalog, Catalog)
    sc = load_scenario("china")
    rows = pd_split_report(sc, site_arrays(sc, catalog), catalog)
    assert rows and all(r["prefill_chip"] != r["decode_chip"] for r in rows)
    # qwen2.5-72b: 80 layers x 8 KV heads x 128 x 1 B x 1024 tokens = 168 MB per prompt
    assert rows[0]["kv_mb_per_prompt"] == pytest.approx(2 * 80 * 8 * 128 * 1024 / 1e6, rel=1e-6)
    assert [r["transfer_ms"] for r in rows] == sorted(r["transfer_ms"] for r in rows)

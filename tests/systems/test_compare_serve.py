"""Supernode serving comparison: the published picture, and that every number follows the catalog."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fleetwise.catalog import Catalog
from fleetwise.cli.main import main
from fleetwise.search.serving import ServingWorkload
from fleetwise.search.systems import compare_systems, system_chips

CM, NVL = "huawei_cloudmatrix_384", "nvidia_gb200_nvl72"
W = ServingWorkload(2048.0, 512.0, 2.0, 0.05)


def _compare(catalog: Catalog) -> list:
    model = catalog.model("deepseek-v3")
    return compare_systems(model, [catalog.system(CM), catalog.system(NVL)], W, catalog)


def _with(catalog: Catalog, **changes: object) -> Catalog:
    return dataclasses.replace(catalog, **changes)


def test_whole_system_power_ratio_is_near_the_analysts_estimate(catalog: Catalog) -> None:
    cm, nvl = _compare(catalog)
    assert 3.0 <= cm.power.nameplate_w / nvl.power.nameplate_w <= 4.8


def test_nameplate_power_is_node_power_times_nodes_of_the_whole_system(catalog: Catalog) -> None:
    for r in _compare(catalog):
        sys_ = catalog.system(r.system_id)
        assert r.chips == sys_.domain_size
        assert r.power.nameplate_w == pytest.approx(sys_.node_power_w * sys_.domain_size / sys_.chips_per_node)


def test_per_chip_decode_and_prefill_favour_gb200(catalog: Catalog) -> None:
    cm, nvl = _compare(catalog)
    assert nvl.decode_best.tokens_per_s_per_chip > cm.decode_best.tokens_per_s_per_chip
    assert nvl.prefill_best.tokens_per_s_per_chip > cm.prefill_best.tokens_per_s_per_chip


def test_deployments_use_large_ep_and_meet_the_slos(catalog: Catalog) -> None:
    for r in _compare(catalog):
        d = r.deployment
        assert d.chips_used <= r.chips
        assert min(d.prefill.ep, d.decode.ep) >= 32
        assert d.prefill.latency_s <= W.ttft_s and d.decode.latency_s <= W.tpot_s


def test_system_power_follows_catalog_node_power(catalog: Catalog) -> None:
    cm = catalog.system(CM)
    bigger = cm.model_copy(update={"node_power_w": 2 * cm.node_power_w})
    doubled = _with(catalog, systems={**catalog.systems, CM: bigger})
    base, more = _compare(catalog)[0], _compare(doubled)[0]
    assert more.power.nameplate_w == pytest.approx(2 * base.power.nameplate_w)


def test_decode_throughput_follows_catalog_hbm_bandwidth(catalog: Catalog) -> None:
    chip = catalog.accelerator("huawei_ascend_910c")
    faster = _with(catalog, accelerators={**catalog.accelerators,
                                          chip.id: chip.model_copy(update={"hbm_tbps": 2 * chip.hbm_tbps})})
    base = _compare(catalog)[0].decode_best.tokens_per_s_per_chip
    assert _compare(faster)[0].decode_best.tokens_per_s_per_chip > base


def test_cost_uses_the_sourced_price_and_follows_one_when_given(catalog: Catalog) -> None:
    model = catalog.model("deepseek-v3")
    cm = [catalog.system(CM)]
    sourced = compare_systems(model, cm, W, catalog)[0]  # 910C: press-reported purchase price (prices.yaml)
    assert sourced.usd_per_million_output_tokens is not None and sourced.hardware_price.startswith("purchase $")
    cheap = compare_systems(model, cm, W, catalog, prices={"huawei_ascend_910c": 10_000.0})[0]
    dear = compare_systems(model, cm, W, catalog, prices={"huawei_ascend_910c": 20_000.0})[0]
    assert 0 < cheap.usd_per_million_output_tokens < dear.usd_per_million_output_tokens


def test_node_systems_default_to_the_largest_supernode_compared(catalog: Catalog) -> None:
    h800 = catalog.system("nvidia_hgx_h800")
    assert system_chips(h800, system_chips(catalog.system(CM))) == 384
    assert system_chips(h800) == 8


def test_cli_compare_serve_json_reports_ratios_and_assumptions(catalog: Catalog, capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    assert main(["compare", "serve", "--model", "deepseek-v3", "--systems", f"{CM},{NVL}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["results"]
    cm, nvl = out["rows"]
    assert out["ratios"]["power_ratio_first_over_second"] == pytest.approx(
        cm["power"]["nameplate_w"] / nvl["power"]["nameplate_w"], rel=1e-3)
    assert out["ratios"]["per_chip_decode_second_over_first"] > 1.0
    assert any("node_power_w" in a for a in out["assumptions"])


def test_cli_compare_serve_rejects_an_unknown_system(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", "serve", "--model", "deepseek-v3", "--systems", "no_such_system"]) == 2
    assert "no_such_system" in capsys.readouterr().err

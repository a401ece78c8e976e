"""Sourced prices: every fact is complete and self-consistent, and every cost says which price it used."""

from __future__ import annotations

import re

import pytest

from fleetwise import api
from fleetwise.catalog import Catalog
from fleetwise.energy.prices import (
    QUALITY_RANK,
    SCOPE_RANK,
    hardware_cost,
    load_prices,
    planning_purchase,
    planning_rent,
)


def test_every_fact_has_a_source_quality_and_a_catalog_chip(catalog: Catalog) -> None:
    prices = load_prices()
    assert len(prices.accelerators) >= 20
    for chip_id, chip in prices.accelerators.items():
        assert chip_id in catalog.accelerators, chip_id
        for fact in (*chip.purchase, *chip.rent_per_chip_hour):
            assert fact.source.startswith("http"), (chip_id, fact.source)


def test_converted_prices_match_their_exchange_rate() -> None:
    prices = load_prices()
    checked = 0
    for chip in prices.accelerators.values():
        for fact in chip.purchase:
            m = re.fullmatch(r"CNY ([\d,]+)", fact.original or "")
            if m and fact.fx:
                rate = prices.fx[fact.fx]["cny_per_usd"]
                assert fact.usd == pytest.approx(int(m.group(1).replace(",", "")) / rate, rel=0.01)
                checked += 1
    assert checked >= 1


def test_planning_prices_never_use_low_quality_or_system_shares() -> None:
    for chip_id in load_prices().accelerators:
        p = planning_purchase(chip_id)
        if p is not None:
            assert p.quality in QUALITY_RANK and p.scope in SCOPE_RANK
        r = planning_rent(chip_id)
        if r is not None:
            assert r.quality in QUALITY_RANK and r.pricing == "on_demand"


def test_precedence_site_rent_then_catalog_price_then_sourced_then_none(catalog: Catalog) -> None:
    b910 = catalog.accelerator("huawei_ascend_910b")
    assert b910.price_usd is None
    sourced = hardware_cost(b910, "s", None, 4.0, 0.8)
    assert sourced.usd_per_chip_hour == pytest.approx(16713 / (4 * 8760 * 0.8))
    assert "purchase $16,713" in sourced.basis and sourced.source and sourced.source.startswith("http")
    assert "rent $2.00" in hardware_cost(b910, "s", 2.0, 4.0, 0.8).basis
    mine = b910.model_copy(update={"price_usd": 10_000.0})  # a user catalog's price overrides the sourced one
    assert "catalog price_usd $10,000" in hardware_cost(mine, "s", None, 4.0, 0.8).basis
    rented = hardware_cost(catalog.accelerator("nvidia_h100_sxm"), "s", None, 4.0, 0.8, pricing="rent")
    assert rented.basis.startswith("rent $")
    unknown = hardware_cost(catalog.accelerator("cambricon_mlu590"), "s", None, 4.0, 0.8)
    assert unknown.usd_per_chip_hour is None and "electricity only" in unknown.basis


def test_compare_train_prices_910b_and_a100_on_the_same_basis(catalog: Catalog) -> None:
    results = api.compare_training("llama2-7b", ["huawei_ascend_910b", "nvidia_a100_80gb_sxm"], 16,
                                   catalog=catalog, seq_len=4096)
    for hw, r in results.items():
        assert not isinstance(r, Exception), hw
        e = r.best[0].energy
        assert e is not None and e.cost_breakdown_usd["hardware"] > 0  # never electricity only for these
        assert e.hardware_price.startswith("purchase $"), e.hardware_price

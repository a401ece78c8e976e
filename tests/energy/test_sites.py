"""Bad site or price data gives one clear error naming the file, field and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetwise.energy.facility import SITES_FILE, load_sites
from fleetwise.errors import SpecError

GOOD_NODE = """node: {host_load_frac: 0.5, host_w_per_chip: 90, nic_w: 20, switch_w_per_port: 25,
       switch_ports_per_nic: 3, lifetime_years: 4, utilisation: 0.8}
"""


def _write(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "sites.yaml"
    p.write_text(body + GOOD_NODE, encoding="utf-8")
    return p


def test_negative_pue_names_file_field_and_value(tmp_path: Path) -> None:
    p = _write(tmp_path, "default_site: a\nsites:\n  a: {pue: -1.2, gco2_per_kwh: 400, usd_per_kwh: 0.1}\n")
    with pytest.raises(SpecError) as err:
        load_sites(p)
    msg = str(err.value)
    assert str(p) in msg and "sites.a.pue" in msg and "-1.2" in msg


def test_negative_price_is_rejected(tmp_path: Path) -> None:
    p = _write(tmp_path, "default_site: a\nsites:\n  a: {pue: 1.2, gco2_per_kwh: 400, usd_per_kwh: -0.1}\n")
    with pytest.raises(SpecError, match="usd_per_kwh"):
        load_sites(p)


def test_unknown_site_lists_the_known_ones() -> None:
    with pytest.raises(SpecError) as err:
        load_sites(SITES_FILE).site("atlantis")
    assert "atlantis" in str(err.value) and "world_average" in str(err.value)


def test_default_site_must_exist(tmp_path: Path) -> None:
    p = _write(tmp_path, "default_site: b\nsites:\n  a: {pue: 1.2, gco2_per_kwh: 400, usd_per_kwh: 0.1}\n")
    with pytest.raises(SpecError, match="default_site"):
        load_sites(p)


def test_bundled_sites_load() -> None:
    sf = load_sites(SITES_FILE)
    assert sf.site(None)[0] == sf.default_site

"""User catalog folders layer every data file over the bundled one, not only chips and models; chip families
are data (perf/data/families.yaml), so a user chip can join a family."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetwise.catalog.loader import load_catalog, load_data_file
from fleetwise.energy.facility import load_sites
from fleetwise.errors import SpecError
from fleetwise.perf.calibration import FAMILIES_FILE, family_of
from fleetwise.perf.efficiency import DATA_FILE as EFFICIENCY_FILE


def test_a_user_folder_layers_families_sites_and_efficiency(tmp_path: Path) -> None:
    (tmp_path / "families.yaml").write_text("chips:\n  huawei_ascend_310p: nvidia_hopper\n")
    (tmp_path / "sites.yaml").write_text("sites:\n  my_dc: {pue: 1.2, gco2_per_kwh: 100, usd_per_kwh: 0.05, "
                                         "source: test}\n")
    (tmp_path / "efficiency.yaml").write_text("chips:\n  nvidia_h100_sxm:\n    hbm: {e: 0.5}\n")
    try:
        assert family_of("huawei_ascend_310p") == "global"
        load_catalog([tmp_path])
        assert family_of("huawei_ascend_310p") == "nvidia_hopper" and family_of("nvidia_h20") == "nvidia_hopper"
        sites = load_sites()
        assert sites.sites["my_dc"].pue == 1.2 and "world_average" in sites.sites  # added, bundled kept
        eff = load_data_file(EFFICIENCY_FILE)
        assert eff["chips"]["nvidia_h100_sxm"]["hbm"]["e"] == 0.5
        assert "gemm" in eff["chips"]["nvidia_h100_sxm"] and "nvidia_a100_80gb_sxm" in eff["chips"]
    finally:
        load_catalog([])
    assert family_of("huawei_ascend_310p") == "global" and "my_dc" not in load_sites().sites


def test_a_user_data_file_of_the_wrong_shape_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "families.yaml").write_text("chips: [a, b]\n")
    try:
        load_catalog([tmp_path])
        with pytest.raises(SpecError, match="families.yaml"):
            load_data_file(FAMILIES_FILE)
    finally:
        load_catalog([])


def test_a_study_echoes_the_user_catalog_it_was_answered_with(tmp_path: Path) -> None:
    from fleetwise.api import run_study

    (tmp_path / "sites.yaml").write_text("sites:\n  my_dc: {pue: 1.2, gco2_per_kwh: 100, usd_per_kwh: 0.05, "
                                         "source: test}\n")
    q = {"model": "llama3-8b", "hardware": "nvidia_h100_sxm", "plan": {"tp": 8}, "global_batch": 64}
    try:
        layered = run_study("explain_train", q, catalog=load_catalog([tmp_path]))
    finally:
        plain = run_study("explain_train", q, catalog=load_catalog([]))
    assert layered.inputs["catalog"]["user_folders"] == [str(tmp_path)]
    assert plain.inputs["catalog"] == {"user_folders": []}
    assert layered.id != plain.id and layered.rows[0]["step_time_s"] == plain.rows[0]["step_time_s"]

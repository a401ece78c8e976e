"""The bundled catalog loads, user folders layer over it, and bad entries fail with located errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from fleetwise.catalog import load_catalog
from fleetwise.catalog.loader import BUNDLED_DIR, Catalog
from fleetwise.errors import SpecError, UnknownIdError

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference"

# Reference entries build_catalog.py skips on purpose (reasons printed by the script).
SKIPPED = {
    "accelerators": {"kunlunxin_p800"},
    "models": {"t5-11b", "meena-2.6b", "gshard-600b", "switch-c-1.6t", "pangu-sigma", "pangu-ultra-moe-718b"},
}
# Entries added beyond the reference.
ADDED = {"systems": {"nvidia_hgx_h800", "metax_c500_8x"}, "accelerators": {"metax_c500"},
         "fabrics": {"metaxlink_c500"},
         "models": {"codellama-34b", "qwen3-8b", "qwen3-30b-a3b", "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b",
                    "qwen3-14b", "qwen3-32b", "gpt-oss-20b", "glm-4.5-air", "pangu-ultra-moe-718b",
                    "qwen2.5-14b", "qwen2.5-32b", "glm-4.5", "kimi-k2"}}

BUNDLED_IDS = {
    "accelerators": [
        "amd_mi250x",
        "amd_mi300x",
        "amd_mi325x",
        "biren_br100",
        "biren_br104",
        "cambricon_mlu370_x8",
        "cambricon_mlu590",
        "google_tpu_v3",
        "google_tpu_v4",
        "google_tpu_v5e",
        "google_tpu_v5p",
        "google_tpu_v6e",
        "huawei_ascend_310",
        "huawei_ascend_310p",
        "huawei_ascend_910",
        "huawei_ascend_910b",
        "huawei_ascend_910b1",
        "huawei_ascend_910b2",
        "huawei_ascend_910b3",
        "huawei_ascend_910b4",
        "huawei_ascend_910c",
        "huawei_atlas_200i_a2",
        "hygon_dcu_k100_ai",
        "hygon_dcu_z100",
        "intel_gaudi2",
        "intel_gaudi3",
        "kunlunxin_r200",
        "metax_c500",
        "moorethreads_mtt_s4000",
        "nvidia_a100_40gb_sxm",
        "nvidia_a100_80gb_sxm",
        "nvidia_a800_80gb_sxm",
        "nvidia_b200_hgx",
        "nvidia_gb200_per_gpu",
        "nvidia_gb300_per_gpu",
        "nvidia_h100_pcie",
        "nvidia_h100_sxm",
        "nvidia_h20",
        "nvidia_h200_sxm",
        "nvidia_h800_sxm",
        "nvidia_jetson_agx_orin_64gb",
        "nvidia_jetson_orin_nano_8gb",
        "nvidia_l20",
        "nvidia_l4",
        "nvidia_l40s",
        "nvidia_v100_sxm2_32gb",
    ],
    "systems": [
        "amd_mi300x_platform",
        "google_tpu_v4_pod",
        "google_tpu_v5e_v6e_pod",
        "google_tpu_v5p_pod",
        "huawei_atlas_800t_a2",
        "huawei_atlas_900_a2_pod",
        "huawei_cloudmatrix_384",
        "metax_c500_8x",
        "nvidia_dgx_a100",
        "nvidia_dgx_h100_h200",
        "nvidia_gb200_nvl72",
        "nvidia_gb300_nvl72",
        "nvidia_hgx_dgx_b200",
        "nvidia_hgx_h800",
    ],
    "fabrics": [
        "amd_infinity_fabric_mi300",
        "google_ici",
        "huawei_hccs_910",
        "huawei_hccs_910b",
        "huawei_unified_bus_cm384",
        "infiniband_hdr",
        "infiniband_ndr",
        "infiniband_xdr",
        "intel_gaudi_roce",
        "metaxlink_c500",
        "nvlink2",
        "nvlink3",
        "nvlink4",
        "nvlink5",
        "other_china_scaleup",
        "pcie",
        "roce_200g",
        "roce_400g",
    ],
    "models": [
        "bloom-176b",
        "codellama-34b",
        "deepseek-v2",
        "deepseek-v3",
        "gemma-2-9b",
        "glm-4-9b",
        "glm-4.5",
        "glm-4.5-air",
        "gpt-oss-120b",
        "gpt-oss-20b",
        "gpt3-1.3b",
        "gpt3-125m",
        "gpt3-13b",
        "gpt3-175b",
        "gpt3-2.7b",
        "gpt3-350m",
        "gpt3-6.7b",
        "gpt3-760m",
        "kimi-k2",
        "llama2-13b",
        "llama2-70b",
        "llama2-7b",
        "llama3-70b",
        "llama3-8b",
        "llama3.1-405b",
        "llama3.1-70b",
        "llama3.1-8b",
        "llama4-maverick-17b-128e",
        "llama4-scout-17b-16e",
        "maxtext-synthetic-128b",
        "maxtext-synthetic-32b",
        "megatron-gpt-1.7b",
        "megatron-gpt-145.6b",
        "megatron-gpt-18.4b",
        "megatron-gpt-1t",
        "megatron-gpt-22b",
        "megatron-gpt-3.6b",
        "megatron-gpt-310.1b",
        "megatron-gpt-39.1b",
        "megatron-gpt-530b",
        "megatron-gpt-7.5b",
        "megatron-gpt-76.1b",
        "mistral-7b-v0.1",
        "mixtral-8x22b",
        "mixtral-8x7b",
        "nemotron-4-340b",
        "opt-175b",
        "pangu-ultra-135b",
        "pangu-ultra-moe-718b",
        "phi-3-mini-4k",
        "qwen2.5-14b",
        "qwen2.5-32b",
        "qwen2.5-72b",
        "qwen2.5-7b",
        "qwen3-0.6b",
        "qwen3-1.7b",
        "qwen3-14b",
        "qwen3-235b-a22b",
        "qwen3-30b-a3b",
        "qwen3-32b",
        "qwen3-4b",
        "qwen3-8b",
    ],
}

H100_ENTRY = {
    "id": "nvidia_h100_sxm",
    "vendor": "NVIDIA",
    "name": "H100 (user override)",
    "peak_tflops": {"bf16": 900.0},
    "hbm_gb": 80,
    "hbm_tbps": 3.0,
}
NEW_ENTRY = {
    "id": "acme_x1",
    "vendor": "Acme",
    "name": "X1",
    "peak_tflops": {"bf16": 100.0},
    "hbm_gb": 96,
    "hbm_tbps": 2.0,
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog([])


def write_entry(root: Path, kind: str, name: str, body: dict[str, object] | str) -> Path:
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        body if isinstance(body, str) else yaml.safe_dump(body, sort_keys=False), encoding="utf-8"
    )
    return path


@pytest.mark.parametrize("kind", sorted(BUNDLED_IDS))
def test_every_bundled_id_loads(catalog: Catalog, kind: str) -> None:
    assert sorted(catalog.kind(kind)) == sorted(BUNDLED_IDS[kind])


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference folder ../shared/reference not present")
def test_every_reference_id_is_bundled_or_deliberately_skipped(catalog: Catalog) -> None:
    hardware = yaml.safe_load((REFERENCE / "hardware.yaml").read_text(encoding="utf-8"))
    models = yaml.safe_load((REFERENCE / "models.yaml").read_text(encoding="utf-8"))
    sections = {
        "accelerators": hardware["accelerators"],
        "systems": hardware["systems"],
        "fabrics": hardware["fabrics"],
        "models": models["models"],
    }
    for kind, entries in sections.items():
        reference_ids = {e["id"] for e in entries}
        expected = (reference_ids - SKIPPED.get(kind, set())) | ADDED.get(kind, set())
        assert set(catalog.kind(kind)) == expected, kind


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference folder ../shared/reference not present")
def test_build_script_reproduces_bundled_files(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("build_catalog", REPO / "scripts" / "build_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([str(REFERENCE), "--out", str(tmp_path)])
    built = {p.relative_to(tmp_path): p.read_text(encoding="utf-8") for p in tmp_path.rglob("*.yaml")}
    bundled = {p.relative_to(BUNDLED_DIR): p.read_text(encoding="utf-8") for p in BUNDLED_DIR.rglob("*.yaml")}
    assert built == bundled


def test_every_system_references_known_accelerator_and_fabrics(catalog: Catalog) -> None:
    for sys_ in catalog.systems.values():
        assert sys_.accelerator_id in catalog.accelerators
        assert sys_.scaleup.fabric_id in catalog.fabrics
        assert sys_.scaleout_fabric_id is None or sys_.scaleout_fabric_id in catalog.fabrics


def test_full_mesh_systems_carry_per_pair_bandwidth(catalog: Catalog) -> None:
    meshes = {
        s.id: s.scaleup.per_pair_gbps_bidir
        for s in catalog.systems.values()
        if s.scaleup.topology == "full_mesh"
    }
    assert meshes == {"huawei_atlas_800t_a2": 56, "huawei_atlas_900_a2_pod": 56, "amd_mi300x_platform": 128,
                      "metax_c500_8x": 128}


def test_rack_power_is_split_per_node(catalog: Catalog) -> None:
    # The reference gives whole-rack/supernode power; our node is chips_per_node chips.
    assert catalog.system("nvidia_gb200_nvl72").node_power_w == pytest.approx(132_000 / 18, abs=1)
    assert catalog.system("huawei_cloudmatrix_384").node_power_w == pytest.approx(559_000 / 48, abs=1)


def test_maverick_alternates_moe_and_dense_layers(catalog: Catalog) -> None:
    model = catalog.model("llama4-maverick-17b-128e")
    assert (model.n_moe_layers, model.n_dense_layers) == (24, 24)


def test_gpt3_13b_uses_corrected_width(catalog: Catalog) -> None:
    model = catalog.model("gpt3-13b")
    assert model.hidden == model.heads * model.head_dim == 5120


def test_unknown_field_names_file_and_field(tmp_path: Path) -> None:
    write_entry(tmp_path, "accelerators", "x1.yaml", {**NEW_ENTRY, "hbm_gib": 96})
    with pytest.raises(SpecError) as info:
        load_catalog([tmp_path])
    message = str(info.value)
    assert "x1.yaml" in message and "hbm_gib" in message and "unknown field" in message


def test_negative_hbm_names_file_field_and_value(tmp_path: Path) -> None:
    write_entry(tmp_path, "accelerators", "x1.yaml", {**NEW_ENTRY, "hbm_gb": -96})
    with pytest.raises(SpecError) as info:
        load_catalog([tmp_path])
    message = str(info.value)
    assert "x1.yaml" in message and "hbm_gb" in message and "-96" in message


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    write_entry(
        tmp_path, "accelerators", "broken.yaml", "id: broken\nvendor: Acme\nname: [unclosed\nhbm_gb: 1\n"
    )
    with pytest.raises(SpecError) as info:
        load_catalog([tmp_path])
    message = str(info.value)
    assert "broken.yaml" in message and "line 4" in message


def test_user_folder_overrides_bundled_entry_and_adds_new(tmp_path: Path) -> None:
    write_entry(tmp_path, "accelerators", "h100.yaml", H100_ENTRY)
    write_entry(tmp_path, "accelerators", "acme_x1.yaml", NEW_ENTRY)
    catalog = load_catalog([tmp_path])
    assert catalog.accelerator("nvidia_h100_sxm").hbm_tbps == 3.0
    assert catalog.accelerator("acme_x1").hbm_gb == 96
    assert catalog.origin["accelerators/nvidia_h100_sxm"] == str(tmp_path / "accelerators" / "h100.yaml")


def test_env_var_adds_user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_entry(tmp_path, "accelerators", "acme_x1.yaml", NEW_ENTRY)
    monkeypatch.setenv("FLEETWISE_CATALOG", str(tmp_path))
    assert load_catalog().accelerator("acme_x1").vendor == "Acme"


def test_system_with_unknown_accelerator_names_file_and_field(tmp_path: Path) -> None:
    system = yaml.safe_load((BUNDLED_DIR / "systems" / "nvidia_dgx_a100.yaml").read_text(encoding="utf-8"))
    write_entry(
        tmp_path, "systems", "mine.yaml", {**system, "id": "mine", "accelerator_id": "nvidia_a100_80gb"}
    )
    with pytest.raises(SpecError) as info:
        load_catalog([tmp_path])
    message = str(info.value)
    assert "mine.yaml" in message and "accelerator_id" in message and "nvidia_a100_80gb_sxm" in message


def test_unknown_id_suggests_close_matches(catalog: Catalog) -> None:
    with pytest.raises(UnknownIdError) as info:
        catalog.model("llama3.1-70")
    assert "'llama3.1-70b'" in str(info.value)


def test_a_reference_entry_left_out_says_why(catalog: Catalog) -> None:
    with pytest.raises(UnknownIdError, match=r"model id 't5-11b'.*left out of the bundled catalog: encoder-decoder"):
        catalog.model("t5-11b")
    with pytest.raises(UnknownIdError, match=r"accelerator id 'kunlunxin_p800'.*left out.*hbm_gb"):
        catalog.accelerator("kunlunxin_p800")
    # an id the reference never had still gets the close matches
    with pytest.raises(UnknownIdError, match=r"unknown model id 'llama3-8bb'.*did you mean 'llama3-8b'"):
        catalog.model("llama3-8bb")
    # and every id the file names is really absent from the bundled catalog (no stale entries)
    from fleetwise.catalog.loader import not_modelled
    for kind, ids in not_modelled().items():
        assert ids and not set(ids) & set(catalog.kind(kind)), kind

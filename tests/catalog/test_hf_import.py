"""Hugging Face config.json import: fixtures match the bundled catalog; bad files fail with located errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetwise.catalog import ModelArch, load_catalog
from fleetwise.catalog.hf_import import model_from_hf_config
from fleetwise.errors import SpecError

HF_DIR = Path(__file__).resolve().parents[1] / "data" / "hf"
KEY_FIELDS = (
    "arch",
    "layers",
    "hidden",
    "ffn_hidden",
    "heads",
    "kv_heads",
    "head_dim",
    "vocab",
    "activation",
    "norm",
    "positional",
    "tied_embeddings",
    "parallel_block",
    "linear_bias",
    "attention",
    "moe",
    "mtp_modules",
)
# config.json max_position_embeddings differs from the catalog's usable context for DeepSeek-V3
# (163840 = the YaRN target; 128K advertised).
MAX_SEQ_DIFFERS = {"deepseek-v3"}


def write_config(tmp_path: Path, body: dict[str, object] | str, folder: str = "some-model") -> Path:
    path = tmp_path / folder / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else json.dumps(body, indent=2), encoding="utf-8")
    return path


def fixture_config(model_id: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((HF_DIR / model_id / "config.json").read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("model_id", ["llama3.1-70b", "qwen2.5-72b", "mixtral-8x7b", "deepseek-v3", "qwen3-8b",
                                      "qwen3-30b-a3b", "glm-4.5-air", "kimi-k2", "gpt-oss-20b"])
def test_import_matches_bundled_entry(model_id: str) -> None:
    imported = model_from_hf_config(HF_DIR / model_id / "config.json")
    bundled = load_catalog([]).model(model_id)
    assert imported.id == model_id
    for field in KEY_FIELDS:
        assert getattr(imported, field) == getattr(bundled, field), field
    if model_id not in MAX_SEQ_DIFFERS:
        assert imported.max_seq == bundled.max_seq


def test_qwen2_has_qkv_bias_only() -> None:
    model = model_from_hf_config(HF_DIR / "qwen2.5-72b" / "config.json")
    assert model.attention.qkv_bias and not model.linear_bias


def test_deepseek_v3_has_mla_and_one_mtp_module() -> None:
    model = model_from_hf_config(HF_DIR / "deepseek-v3" / "config.json")
    assert model.attention.type == "MLA" and model.attention.kv_lora_rank == 512 and model.mtp_modules == 1


def test_qwen2_moe_shared_expert_becomes_moe_width_experts(tmp_path: Path) -> None:
    config = {
        **fixture_config("qwen2.5-72b"),
        "model_type": "qwen2_moe",
        "num_experts": 60,
        "num_experts_per_tok": 4,
        "moe_intermediate_size": 1408,
        "shared_expert_intermediate_size": 5632,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
    }
    model = model_from_hf_config(write_config(tmp_path, config))
    assert model.moe is not None
    assert (model.moe.experts, model.moe.shared_experts, model.moe.top_k) == (60, 4, 4)
    assert model.ffn_hidden is None


def test_mistral_sliding_window_is_kept(tmp_path: Path) -> None:
    config = {**fixture_config("mixtral-8x7b"), "model_type": "mistral", "sliding_window": 4096}
    model = model_from_hf_config(write_config(tmp_path, config))
    assert model.attention.sliding_window == 4096 and model.moe is None and model.ffn_hidden == 14336


def test_id_falls_back_to_name_or_path_in_cache_snapshot(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, fixture_config("llama3.1-70b"), folder="0123456789abcdef0123456789abcdef01234567"
    )
    assert model_from_hf_config(path).id == "Llama-3.1-70B"


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, '{\n  "model_type": "llama",\n  "hidden_size": 8192,,\n}\n')
    with pytest.raises(SpecError) as info:
        model_from_hf_config(path)
    assert str(path) in str(info.value) and "line 3" in str(info.value)


def test_missing_key_names_file_and_key(tmp_path: Path) -> None:
    config = fixture_config("llama3.1-70b")
    del config["num_hidden_layers"]
    path = write_config(tmp_path, config)
    with pytest.raises(SpecError) as info:
        model_from_hf_config(path)
    assert str(path) in str(info.value) and "num_hidden_layers" in str(info.value)


def test_unsupported_model_type_lists_supported(tmp_path: Path) -> None:
    path = write_config(tmp_path, {**fixture_config("llama3.1-70b"), "model_type": "t5"})
    with pytest.raises(SpecError) as info:
        model_from_hf_config(path)
    message = str(info.value)
    assert "'t5'" in message and "llama" in message and "deepseek_v2/3" in message and "mixtral" in message
    assert "qwen3[_moe]" in message and "glm4_moe" in message and "gpt_oss" in message and "kimi_k2" in message


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write_config(tmp_path, {**fixture_config("llama3.1-70b"), "hidden_size": "8192"})
    with pytest.raises(SpecError) as info:
        model_from_hf_config(path)
    assert "hidden_size" in str(info.value) and "'8192'" in str(info.value)


def test_inconsistent_heads_fail_with_file_and_field(tmp_path: Path) -> None:
    path = write_config(tmp_path, {**fixture_config("llama3.1-70b"), "num_key_value_heads": 7})
    with pytest.raises(SpecError) as info:
        model_from_hf_config(path)
    assert str(path) in str(info.value) and "kv_heads" in str(info.value)


def test_import_returns_model_arch() -> None:
    assert isinstance(model_from_hf_config(HF_DIR / "mixtral-8x7b" / "config.json"), ModelArch)


@pytest.mark.parametrize("bad", [3, 1.5, "x", [0, "1"], [-1], [True]])
def test_mlp_only_layers_must_be_layer_indices(tmp_path: Path, bad: object) -> None:
    config = fixture_config("qwen3-30b-a3b")
    config["mlp_only_layers"] = bad
    with pytest.raises(SpecError, match=r"config\.json: mlp_only_layers must be a list of layer indices"):
        model_from_hf_config(write_config(tmp_path, config))

"""Import a Hugging Face ``config.json`` as a ``ModelArch``.

Entry point: ``model_from_hf_config(path)``. ``IMPORTERS`` maps each supported ``model_type`` (Llama,
Mistral/Mixtral, Qwen2/Qwen2-MoE, Qwen3/Qwen3-MoE, GLM-4.5 (glm4_moe), gpt-oss, DeepSeek-V2/V3, Kimi K2) to a
function that reads its fields; adding a family is one function and one line. Problems raise ``SpecError``
naming the file and the key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetwise.catalog.loader import format_validation_error
from fleetwise.catalog.types import ModelArch
from fleetwise.errors import SpecError, shown

# Keys that may be 0 (counts of optional parts); every other integer is a size or count that must be >= 1.
_MAY_BE_ZERO = frozenset({"shared_expert_intermediate_size", "decoder_sparse_step", "num_nextn_predict_layers",
                          "n_routed_experts", "n_shared_experts", "first_k_dense_replace", "moe_layer_freq",
                          "num_experts", "sliding_window"})
_HASH_DIR = re.compile(r"^[0-9a-f]{40}$")  # Hugging Face cache snapshot folders


class HfConfig:
    """A parsed config.json with located accessors: every error names the file and the key."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path = path
        self.data = data
        self.model_type = str(data.get("model_type"))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def int_(self, key: str, default: int | None = None) -> int:
        """A positive integer field (or non-negative, for the keys of ``_MAY_BE_ZERO``); absent (or null)
        falls back to ``default`` when one is given."""
        value = self.data.get(key)
        if value is None:
            if default is not None:
                return default
            raise SpecError(
                f"{self.path}: missing required key {key!r} (needed for model_type {shown(self.model_type)})"
            )
        low = 0 if key in _MAY_BE_ZERO else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "a non-negative" if low == 0 else "a positive"
            raise SpecError(f"{self.path}: {key} must be {kind} integer (got {shown(value)})")
        return value

    def opt_int(self, key: str) -> int | None:
        """An optional integer field: None when absent or null."""
        return self.int_(key) if self.has(key) else None

    def index_list(self, key: str) -> list[int]:
        """A list of layer indices (non-negative integers); absent or null is empty."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in value):
            raise SpecError(f"{self.path}: {key} must be a list of layer indices (non-negative integers)"
                            f" (got {shown(value)})")
        return list(value)

    def bool_(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise SpecError(f"{self.path}: {key} must be true or false (got {shown(value)})")
        return value


def _read_json(path: Path) -> Mapping[str, Any]:
    try:
        if path.stat().st_size > 10_000_000:
            raise SpecError(f"{path}: too large for a config.json ({path.stat().st_size:,} bytes; at most 10 MB)")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise SpecError(f"{path}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: line {exc.lineno}, column {exc.colno}: malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _model_id(path: Path, data: Mapping[str, Any]) -> str:
    """The parent folder's name, unless it is a cache hash or empty; then the tail of ``_name_or_path``."""
    parent = path.resolve().parent.name
    name_or_path = str(data.get("_name_or_path") or "").rstrip("/")
    if parent and not _HASH_DIR.match(parent):
        return parent
    if name_or_path:
        return name_or_path.rsplit("/", 1)[-1]
    return parent or path.stem


def _gated_activation(cfg: HfConfig) -> str:
    """These families all use gated MLPs: SiLU gate -> swiglu, GELU gate -> geglu."""
    act = str(cfg.data.get("hidden_act", "silu"))
    if act in ("silu", "swish"):
        return "swiglu"
    if act.startswith("gelu"):
        return "geglu"
    raise SpecError(f"{cfg.path}: hidden_act must be one of silu, swish, gelu* for a gated MLP (got {shown(act)})")


def _attention_kind(heads: int, kv_heads: int) -> str:
    if kv_heads == heads:
        return "MHA"
    return "MQA" if kv_heads == 1 else "GQA"


def _decoder_common(cfg: HfConfig) -> dict[str, Any]:
    """Fields shared by the Llama-style decoders (Llama, Mistral, Mixtral, Qwen2, Qwen2-MoE)."""
    heads = cfg.int_("num_attention_heads")
    hidden = cfg.int_("hidden_size")
    kv_heads = cfg.int_("num_key_value_heads", heads)
    return {
        "layers": cfg.int_("num_hidden_layers"),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": kv_heads,
        "head_dim": cfg.int_("head_dim", hidden // heads),
        "vocab": cfg.int_("vocab_size"),
        "max_seq": cfg.int_("max_position_embeddings"),
        "activation": _gated_activation(cfg),
        "norm": "rmsnorm",
        "positional": "rope",
        "tied_embeddings": cfg.bool_("tie_word_embeddings", False),
        "attention": {"type": _attention_kind(heads, kv_heads)},
    }


def _llama(cfg: HfConfig) -> dict[str, Any]:
    out = _decoder_common(cfg)
    attention_bias = cfg.bool_("attention_bias", False)  # HF Llama: bias on q, k, v and o
    out["attention"]["qkv_bias"] = attention_bias
    out["linear_bias"] = attention_bias and cfg.bool_("mlp_bias", False)
    out["ffn_hidden"] = cfg.int_("intermediate_size")
    return out


def _mistral(cfg: HfConfig) -> dict[str, Any]:
    out = _decoder_common(cfg)
    window = cfg.opt_int("sliding_window")  # Mistral applies the window on every layer
    if window is not None and window < out["max_seq"]:
        out["attention"]["sliding_window"] = window
    if cfg.model_type == "mixtral":
        out["moe"] = {
            "experts": cfg.int_("num_local_experts"),
            "top_k": cfg.int_("num_experts_per_tok"),
            "moe_ffn_hidden": cfg.int_("intermediate_size"),
        }
    else:
        out["ffn_hidden"] = cfg.int_("intermediate_size")
    return out


def _qwen2(cfg: HfConfig) -> dict[str, Any]:
    # Qwen2 always has q/k/v biases (no o_proj or MLP bias); Qwen3 drops them (attention_bias false) and adds
    # QK-norm (negligible cost). The optional sliding window (use_sliding_window, max_window_layers) is
    # ignored: released models ship it off, and ignoring it only overestimates the KV cache.
    out = _decoder_common(cfg)
    out["attention"]["qkv_bias"] = cfg.bool_("attention_bias", False) if cfg.model_type.startswith("qwen3") else True
    if cfg.model_type in ("qwen2_moe", "qwen3_moe") and cfg.int_("num_experts", 0):
        out["moe"] = _qwen2_moe_block(cfg)
        if out["moe"]["dense_layers"] or out["moe"]["layer_step"] > 1:
            out["ffn_hidden"] = cfg.int_("intermediate_size")
    else:
        out["ffn_hidden"] = cfg.int_("intermediate_size")
    return out


def _qwen2_moe_block(cfg: HfConfig) -> dict[str, Any]:
    """Qwen2-MoE: routed experts plus ONE gated shared expert of shared_expert_intermediate_size.

    Approximation: the shared expert is represented as ceil(shared / moe_intermediate) shared experts of
    width moe_intermediate_size (exact in weights and FLOPs when it divides, as in the released models:
    5632 = 4 x 1408, 20480 = 8 x 2560); its sigmoid gate (hidden x 1) is ignored.
    """
    moe_ffn = cfg.int_("moe_intermediate_size")
    shared_width = cfg.int_("shared_expert_intermediate_size", 0)
    step = cfg.int_("decoder_sparse_step", 1) or 1
    dense = sorted(cfg.index_list("mlp_only_layers"))
    if dense and (dense != list(range(len(dense))) or step > 1):
        raise SpecError(
            f"{cfg.path}: mlp_only_layers must be a leading range 0..k-1 with decoder_sparse_step 1"
            f" (got {dense}, step {step})"
        )
    return {
        "experts": cfg.int_("num_experts"),
        "shared_experts": -(-shared_width // moe_ffn),
        "top_k": cfg.int_("num_experts_per_tok"),
        "moe_ffn_hidden": moe_ffn,
        "dense_layers": len(dense),
        "layer_step": step,
    }


def _deepseek(cfg: HfConfig) -> dict[str, Any]:
    """DeepSeek-V2/V3: MLA attention, shared + routed experts after ``first_k_dense_replace`` dense layers."""
    qk_nope = cfg.int_("qk_nope_head_dim")
    qk_rope = cfg.int_("qk_rope_head_dim")
    out: dict[str, Any] = {
        "layers": cfg.int_("num_hidden_layers"),
        "hidden": cfg.int_("hidden_size"),
        "ffn_hidden": cfg.int_("intermediate_size"),
        "heads": cfg.int_("num_attention_heads"),
        "head_dim": qk_nope + qk_rope,  # query/key width per head; values use v_head_dim
        "vocab": cfg.int_("vocab_size"),
        "max_seq": cfg.int_("max_position_embeddings"),
        "activation": _gated_activation(cfg),
        "norm": "rmsnorm",
        "positional": "rope",
        "tied_embeddings": cfg.bool_("tie_word_embeddings", False),
        "attention": {
            "type": "MLA",
            "q_lora_rank": cfg.opt_int("q_lora_rank"),  # null in V2-Lite: queries are not compressed
            "kv_lora_rank": cfg.int_("kv_lora_rank"),
            "qk_nope_head_dim": qk_nope,
            "qk_rope_head_dim": qk_rope,
            "v_head_dim": cfg.int_("v_head_dim"),
            "qkv_bias": cfg.bool_("attention_bias", False),
        },
        "mtp_modules": cfg.int_("num_nextn_predict_layers", 0),
    }
    if cfg.int_("n_routed_experts", 0):
        out["moe"] = {**_routed_and_shared(cfg), "layer_step": cfg.int_("moe_layer_freq", 1) or 1}
    return out


def _routed_and_shared(cfg: HfConfig) -> dict[str, Any]:
    """The DeepSeek-style expert keys (GLM-4.5 reuses them): routed + shared experts after
    ``first_k_dense_replace`` dense layers."""
    return {
        "experts": cfg.int_("n_routed_experts"),
        "shared_experts": cfg.int_("n_shared_experts", 0),
        "top_k": cfg.int_("num_experts_per_tok"),
        "moe_ffn_hidden": cfg.int_("moe_intermediate_size"),
        "dense_layers": cfg.int_("first_k_dense_replace", 0),
    }


def _glm4_moe(cfg: HfConfig) -> dict[str, Any]:
    """GLM-4.5: GQA with q/k/v bias (attention_bias), ``first_k_dense_replace`` dense layers then shared +
    routed experts, MTP layers (num_nextn_predict_layers); partial rotary and QK-norm do not change the cost."""
    out = _decoder_common(cfg)
    out["attention"]["qkv_bias"] = cfg.bool_("attention_bias", False)
    out["ffn_hidden"] = cfg.int_("intermediate_size")
    out["mtp_modules"] = cfg.int_("num_nextn_predict_layers", 0)
    if cfg.int_("n_routed_experts", 0):
        out["moe"] = _routed_and_shared(cfg)
    return out


def _gpt_oss(cfg: HfConfig) -> dict[str, Any]:
    """gpt-oss: every layer MoE (num_local_experts of width intermediate_size, no shared expert), biases on
    attention and experts. Its alternating 128-token sliding window (layer_types) is not represented: the
    KV cache comes out as an upper bound, as for the bundled entries."""
    out = _decoder_common(cfg)
    out["attention"]["qkv_bias"] = cfg.bool_("attention_bias", True)
    out["linear_bias"] = True
    out["moe"] = {
        "experts": cfg.int_("num_local_experts"),
        "shared_experts": 0,
        "top_k": cfg.int_("num_experts_per_tok" if cfg.has("num_experts_per_tok") else "experts_per_token"),
        "moe_ffn_hidden": cfg.int_("intermediate_size"),
        "dense_layers": 0,
    }
    return out


IMPORTERS: dict[str, Callable[[HfConfig], dict[str, Any]]] = {
    "llama": _llama,
    "mistral": _mistral,
    "mixtral": _mistral,
    "qwen2": _qwen2,
    "qwen2_moe": _qwen2,
    "qwen3": _qwen2,
    "qwen3_moe": _qwen2,
    "glm4_moe": _glm4_moe,
    "gpt_oss": _gpt_oss,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,  # Kimi K2 ships the DeepSeek-V3 architecture (DeepseekV3ForCausalLM)
}


def supported_model_types() -> str:
    """The importable ``model_type`` values, compactly: ``qwen2[_moe]`` for qwen2 and qwen2_moe, ``deepseek_v2/3``
    for deepseek_v2 and deepseek_v3 (an error line stays short enough to read)."""
    names = sorted(IMPORTERS)
    merged = [f"{n}[_moe]" if f"{n}_moe" in IMPORTERS else n
              for n in names if not (n.endswith("_moe") and n[:-4] in IMPORTERS)]
    out: list[str] = []
    for n in merged:
        stem, digit = n.rstrip("0123456789"), n[len(n.rstrip("0123456789")):]
        if digit and out and out[-1].startswith(stem) and out[-1][len(stem):].replace("/", "").isdigit():
            out[-1] += f"/{digit}"
        else:
            out.append(n)
    return ", ".join(out)


def model_from_hf_config(path: Path, *, model_id: str | None = None) -> ModelArch:
    """Read a Hugging Face ``config.json`` into a ``ModelArch``.

    Args:
        path: the config.json file.
        model_id: id to give the model; default the parent folder's name (or ``_name_or_path``).

    Returns:
        The validated ``ModelArch`` (params_total is left unset: count it with the perf model).
    """
    path = Path(path)
    return model_from_hf_dict(_read_json(path), path, model_id=model_id)


def model_from_hf_dict(data: Mapping[str, Any], path: Path, *, model_id: str | None = None) -> ModelArch:
    """A parsed ``config.json`` (``path`` names it in errors and gives the default id) as a ``ModelArch``."""
    cfg = HfConfig(path, data)
    if "model_type" not in data:
        raise SpecError(
            f"{path}: missing required key 'model_type' (one of {supported_model_types()})"
        )
    importer = IMPORTERS.get(cfg.model_type)
    if importer is None:
        raise SpecError(
            f"{path}: model_type {shown(cfg.model_type)} unsupported (one of {supported_model_types()})"
        )
    fields = importer(cfg)
    name = str(data.get("_name_or_path") or model_id or _model_id(path, data))
    spec = {
        "id": model_id or _model_id(path, data),
        "name": name,
        "family": cfg.model_type,
        "arch": "moe" if fields.get("moe") else "dense",
        "confidence": "medium",
        "notes": f"Imported from a Hugging Face config.json (model_type {cfg.model_type}).",
        "sources": (f"config.json of {name}",),
        **fields,
    }
    try:
        return ModelArch.model_validate(spec)
    except ValidationError as exc:
        raise SpecError(format_validation_error(str(path), exc)) from None

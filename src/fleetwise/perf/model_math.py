"""Shapes, parameter counts and FLOPs of a decoder transformer, from its ``ModelArch``.

Entry points: ``layer_gemms`` (the GEMMs of one layer, with how tensor parallelism shards them),
``param_counts`` and ``model_flops_per_token``. Everything here is per layer or per token and does
not depend on a parallel plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fleetwise.catalog.types import ModelArch

Shard = Literal["col", "row", "none"]


@dataclass(frozen=True, slots=True)
class Gemm:
    """One weight GEMM of a layer: ``tokens x k`` times ``k x n``.

    ``shard`` says how tensor parallelism splits it (column-parallel splits n, row-parallel splits k).
    ``tokens_per_token`` is how many rows each input token contributes (top-k for routed experts,
    ``1`` otherwise); ``experts`` is how many such weight matrices exist (routed experts).
    """

    name: str
    n: int
    k: int
    shard: Shard
    tokens_per_token: float = 1.0
    experts: int = 1

    @property
    def params(self) -> int:
        return self.n * self.k * self.experts


def attention_dims(m: ModelArch) -> tuple[int, int, int]:
    """(query width, key width, value width) per token summed over heads."""
    a = m.attention
    if a.type == "MLA":
        assert a.qk_nope_head_dim and a.qk_rope_head_dim and a.v_head_dim
        qk = m.heads * (a.qk_nope_head_dim + a.qk_rope_head_dim)
        return qk, qk, m.heads * a.v_head_dim
    q = m.heads * m.head_dim
    kv = m.n_kv_heads * m.head_dim
    return q, kv, kv


def attention_gemms(m: ModelArch) -> list[Gemm]:
    """Weight GEMMs of the attention block (QKV or MLA projections, output projection)."""
    a = m.attention
    h = m.hidden
    if a.type == "MLA":
        assert a.kv_lora_rank and a.qk_rope_head_dim and a.qk_nope_head_dim and a.v_head_dim
        qk_head = a.qk_nope_head_dim + a.qk_rope_head_dim
        gemms: list[Gemm] = []
        if a.q_lora_rank:
            gemms.append(Gemm("q_down", a.q_lora_rank, h, "none"))
            gemms.append(Gemm("q_up", m.heads * qk_head, a.q_lora_rank, "col"))
        else:
            gemms.append(Gemm("q_proj", m.heads * qk_head, h, "col"))
        gemms.append(Gemm("kv_down", a.kv_lora_rank + a.qk_rope_head_dim, h, "none"))
        gemms.append(Gemm("kv_up", m.heads * (a.qk_nope_head_dim + a.v_head_dim), a.kv_lora_rank, "col"))
        gemms.append(Gemm("o_proj", h, m.heads * a.v_head_dim, "row"))
        return gemms
    q, k, v = attention_dims(m)
    return [Gemm("qkv", q + k + v, h, "col"), Gemm("o_proj", h, q, "row")]


def mlp_gemms(m: ModelArch, ffn: int, prefix: str = "mlp", experts: int = 1, top_k: float = 1.0) -> list[Gemm]:
    """Weight GEMMs of one (gated or plain) MLP of width ``ffn``; ``experts`` copies routed ``top_k``."""
    up_n = 2 * ffn if m.gated_mlp else ffn
    return [
        Gemm(f"{prefix}_up", up_n, m.hidden, "col", top_k, experts),
        Gemm(f"{prefix}_down", m.hidden, ffn, "row", top_k, experts),
    ]


def lora_params_per_layer(m: ModelArch, rank: int) -> tuple[float, float]:
    """(dense, routed-expert) LoRA adapter parameters of an average layer: a rank-``rank`` pair A (r x k) and
    B (n x r) beside every weight matrix, r (k + n) each (Hu et al. 2021, Sec. 4.1); adapting every linear
    layer, routed experts included, is the upper bound (most recipes adapt attention only, a few % of this).
    The router is not adapted. Dense and MoE layers are averaged by their share, as ``ParamCounts``."""
    def pairs(gemms: list[Gemm]) -> float:
        return float(sum(rank * (g.k + g.n) * g.experts for g in gemms if g.name != "router"))

    dense_share = m.n_dense_layers / m.layers
    dense = dense_share * pairs(dense_layer_gemms(m)) if m.n_dense_layers else 0.0
    experts = 0.0
    if m.n_moe_layers:
        local, routed = moe_layer_gemms(m)
        dense += (1.0 - dense_share) * pairs(local)
        experts = (1.0 - dense_share) * pairs(routed)
    return dense, experts


def dense_layer_gemms(m: ModelArch) -> list[Gemm]:
    assert m.ffn_hidden is not None
    return attention_gemms(m) + mlp_gemms(m, m.ffn_hidden)


def moe_layer_gemms(m: ModelArch) -> tuple[list[Gemm], list[Gemm]]:
    """(GEMMs every token runs on its own device: attention, router, shared experts; routed expert GEMMs)."""
    assert m.moe is not None
    mo = m.moe
    local = attention_gemms(m) + [Gemm("router", mo.experts, m.hidden, "none")]
    if mo.shared_experts:
        local += mlp_gemms(m, mo.moe_ffn_hidden * mo.shared_experts, "shared")
    routed = mlp_gemms(m, mo.moe_ffn_hidden, "expert", experts=mo.experts, top_k=float(mo.top_k))
    return local, routed


def _norm_params(m: ModelArch) -> int:
    return m.hidden * (2 if m.norm == "layernorm" else 1)


def _bias_params(m: ModelArch, gemms: list[Gemm]) -> int:
    if m.linear_bias:
        return sum(g.n * g.experts for g in gemms if g.name != "router")
    if m.attention.qkv_bias:
        return sum(g.n for g in gemms if g.name == "qkv")
    return 0


def _layer_params(m: ModelArch, gemms: list[Gemm]) -> int:
    extra = 2 * _norm_params(m)
    if m.attention.type == "MLA":
        a = m.attention
        extra += (a.q_lora_rank or 0) + (a.kv_lora_rank or 0)  # latent RMSNorms
    return sum(g.params for g in gemms) + _bias_params(m, gemms) + extra


@dataclass(frozen=True, slots=True)
class ParamCounts:
    """Parameters of the model, split the way parallelism shards them."""

    embedding: int  # input embedding (+ learned positions)
    lm_head: int  # 0 when tied
    dense_layer: int  # one layer with a dense MLP
    moe_layer_local: int  # one MoE layer minus its routed experts
    moe_layer_experts: int  # the routed experts of one MoE layer
    final_norm: int
    mtp: int

    def total(self, m: ModelArch) -> int:
        return (
            self.embedding
            + self.lm_head
            + self.final_norm
            + m.n_dense_layers * self.dense_layer
            + m.n_moe_layers * (self.moe_layer_local + self.moe_layer_experts)
            + self.mtp
        )

    def active(self, m: ModelArch) -> int:
        routed_active = 0
        if m.moe is not None:
            routed_active = self.moe_layer_experts * m.moe.top_k // m.moe.experts
        return (
            self.embedding
            + self.lm_head
            + self.final_norm
            + m.n_dense_layers * self.dense_layer
            + m.n_moe_layers * (self.moe_layer_local + routed_active)
        )


def param_counts(m: ModelArch) -> ParamCounts:
    """Count parameters from the architecture (weights, biases, norms, embeddings)."""
    embedding = m.vocab * m.hidden + (m.max_seq * m.hidden if m.positional == "learned" else 0)
    lm_head = 0 if m.tied_embeddings else m.vocab * m.hidden
    dense = _layer_params(m, dense_layer_gemms(m)) if m.ffn_hidden is not None else 0
    moe_local = moe_experts = 0
    if m.moe is not None:
        local, routed = moe_layer_gemms(m)
        moe_local = _layer_params(m, local)
        moe_experts = sum(g.params for g in routed) + (_bias_params(m, routed) if m.linear_bias else 0)
    mtp = 0
    if m.mtp_modules:
        # DeepSeek-V3 MTP module: two norms, a 2h->h projection and one full (MoE) layer; shares
        # embedding and head (arXiv:2412.19437, Sec. 2.2).
        layer = moe_local + moe_experts if m.moe is not None else dense
        mtp = m.mtp_modules * (layer + 2 * m.hidden * m.hidden + 2 * _norm_params(m))
    return ParamCounts(embedding, lm_head, dense, moe_local, moe_experts, _norm_params(m), mtp)


def gemm_flops_per_token(m: ModelArch) -> float:
    """Forward weight-GEMM FLOPs per token of the whole model (active experts only), LM head included."""
    total = 0.0
    if m.n_dense_layers:
        total += m.n_dense_layers * sum(2.0 * g.n * g.k for g in dense_layer_gemms(m))
    if m.moe is not None:
        local, routed = moe_layer_gemms(m)
        per_layer = sum(2.0 * g.n * g.k for g in local) + sum(2.0 * g.n * g.k * g.tokens_per_token for g in routed)
        total += m.n_moe_layers * per_layer
    total += 2.0 * m.vocab * m.hidden  # LM head
    return total


def attention_flops_per_token(m: ModelArch, seq_len: int, causal: bool = False) -> float:
    """Forward attention-core FLOPs per token (QK^T and AV) over ``seq_len`` context.

    ``causal=False`` is the convention of Megatron-LM's MFU formula (Narayanan et al. 2021, Eq. 3):
    the full score matrix is counted. Kernels that skip masked blocks do about half (``causal=True``).
    """
    q, _, v = attention_dims(m)
    window = min(seq_len, m.attention.sliding_window or seq_len)
    flops = 2.0 * window * (q + v) * m.layers
    return flops * (0.5 if causal and window == seq_len else 1.0)


def model_flops_per_token(m: ModelArch, seq_len: int, lora: bool = False) -> float:
    """Training model FLOPs per token (forward + backward = 3x forward, no recompute). With ``lora`` the frozen
    weights get no weight gradient: the GEMMs cost forward + activation gradient (2x forward), attention still
    3x (its backward has no weights); the rank-r adapters' own FLOPs are negligible and not counted."""
    gemm_factor = 2.0 if lora else 3.0
    return gemm_factor * gemm_flops_per_token(m) + 3.0 * attention_flops_per_token(m, seq_len)

"""Serving cost model: time of one engine step (prefill chunk + decode batch) and KV-cache capacity.

Entry points: ``ServingSetup`` (model, chip, network, fitted efficiencies, resolved once),
``ServingShape`` (plan columns: tp, pp, dp, ep, bytes per weight and KV element), ``step_time``
(seconds of one continuous-batching step, with its breakdown) and ``kv_capacity`` (KV bytes a rank
can hold, and sequences per rank). Every argument is an array, so one call prices a whole table.

A step runs ``prefill_tokens`` prompt tokens (attending to ``prefill_ctx`` earlier tokens on average)
and one token of each of ``decode_seqs`` sequences (attending to ``decode_ctx`` tokens). Each weight
GEMM costs the larger of its FLOPs at the fitted GEMM efficiency and its weight bytes at the fitted HBM
efficiency (roofline per GEMM, Williams et al. 2009), so decode is memory-bound at small batch and
compute-bound at large batch without a switch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.loader import load_data_file
from fleetwise.catalog.types import Accelerator, ModelArch, Precision, System
from fleetwise.errors import SpecError
from fleetwise.network.collectives import Network, build_network
from fleetwise.perf.calibration import family_of
from fleetwise.perf.efficiency import DATA_FILE as EFFICIENCY_FILE
from fleetwise.perf.efficiency import ChipEfficiency, EfficiencyTable, load_efficiency
from fleetwise.perf.model_math import (
    Gemm,
    ParamCounts,
    attention_dims,
    attention_gemms,
    mlp_gemms,
    param_counts,
)
from fleetwise.perf.moe import token_copies
from fleetwise.perf.setup import adapt_system, synthetic_system
from fleetwise.plan import ServingPlan

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CONSTANTS_FILE = Path(__file__).parent / "data" / "serving.yaml"

ACT_BYTES = 2.0  # activations in 16 bit
# Memory-bound elementwise traffic per token per layer (norms, residuals, rotary, activation, casts),
# in units of hidden * ACT_BYTES; the same count the training model uses for one forward pass.
ELEMENTWISE_HIDDEN_PASSES = 10.0
DISPATCH_BYTES = 1.0  # EP dispatch in fp8 (DeepEP, SGLang), combine in bf16
COMBINE_BYTES = 2.0
RESERVED_BYTES = 3.0e9  # runtime context, communicator buffers, CUDA graphs (vLLM/TRT-LLM order of magnitude)
KV_MEMORY_FRACTION = 0.90  # share of free memory the engine gives the KV cache (vLLM 0.9, TRT-LLM 0.9-0.95)
BLOCK_TOKENS = 32  # paged KV block (vLLM 16, TRT-LLM 32/64, SGLang 1); half a block per sequence wasted on average

BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}
PRECISION_CODES: tuple[str, ...] = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")

ASSUMPTIONS: tuple[str, ...] = (
    "each weight GEMM: max(FLOPs at fitted GEMM efficiency, weight bytes at fitted HBM efficiency) + launch",
    "int4 weights are dequantised to 16 bit (W4A16): bytes halve again, compute runs at bf16",
    "fp8/int8/fp4 weights compute at the chip's native rate for that format, else at bf16",
    "attention: flash kernels; prefill causal (half the score blocks), decode reads the whole KV cache",
    "MLA decode in absorbed form (scores against the compressed latent); prefill in expanded form",
    "MoE: uniform routing; expected distinct experts per rank 1-(1-k/E)^tokens, run as one grouped GEMM "
    "(one launch per layer and projection); EP all-to-all dispatch fp8, "
    "combine bf16, overlapped with the other micro-batch's compute (two-batch overlap) when dp > 1",
    "TP: two all-reduces of the activations per layer; PP: micro-batches of batch/pp fill the stages",
    "group constants (fitted on published serving runs of the chip family) scale kernel time and add a "
    "per-step host overhead",
    "an engine whose facts give a host time per kernel: a step lasts at least its kernel count times that "
    "(host issue and device run asynchronously; the device idles when issuing is slower)",
)


@dataclass(frozen=True, slots=True)
class ServingConstants:
    """Constants fitted per chip family on published serving runs (``validate/inference_cases.py``)."""

    compute_scale: float = 1.0  # multiplies kernel time (1.0 = micro-benchmark speed)
    step_overhead_s: float = 0.0  # host scheduling, sampling, launch gaps per engine step
    family: str = "global"


# FlashAttention-3 FP8 forward reaches ~1.2 PFLOP/s on H100 SXM against ~740 TFLOP/s in BF16 (Shah et al. 2024,
# arXiv:2407.08608, Sec. 4.1): 0.81 of the BF16 kernel's share of peak, against the doubled FP8 peak.
FP8_ATTENTION_EFF_RATIO = 0.81


@dataclass(frozen=True, slots=True)
class Speculative:
    """Speculative decoding (multi-token prediction, EAGLE, draft models) as a fact of the deployment.

    Every decode step the draft runs ``steps`` forwards of one token per sequence, then the target model
    verifies ``steps + 1`` tokens per sequence in one pass (its weights are read once, attention scores
    ``steps + 1`` queries against the same KV cache), and emits ``accept_length`` tokens per sequence on
    average (1 = nothing accepted, ``steps + 1`` = every draft accepted). ``accept_length`` is an input:
    it depends on the data and the draft, not on the hardware.
    """

    steps: int = 1
    accept_length: float = 1.0
    draft_layers: int = 1  # transformer layers of the draft (DeepSeek-V3 MTP module: 1)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.draft_layers < 1:
            raise SpecError(f"speculative decoding: steps and draft_layers must be >= 1 (got {self.steps}, "
                            f"{self.draft_layers})")
        if not 1.0 <= self.accept_length <= self.steps + 1:
            raise SpecError(f"speculative decoding: accept_length must be in [1, steps + 1 = {self.steps + 1}] "
                            f"(got {self.accept_length:g})")


@dataclass(frozen=True, slots=True)
class ServingSetup:
    """Everything the serving cost model needs besides the plan columns."""

    model: ModelArch
    accel: Accelerator
    system: System
    network: Network
    eff: ChipEfficiency
    params: ParamCounts
    constants: ServingConstants
    a2a_floor: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())  # (EP sizes, dispatch+combine s)
    speculative: Speculative | None = None
    attention_precision: str = "bf16"  # "fp8": QK^T and PV in FP8 (FlashMLA-FP8, FA3-FP8) on an fp8 KV cache
    host_s_per_kernel: float = 0.0  # host time to issue one kernel where the engine launches them one by one
    # (serving facts of the engine; 0: graph-launched, issue time hidden)


@dataclass(frozen=True, slots=True)
class ServingShape:
    """Plan columns that shape one engine: parallel degrees and bytes per element.

    ``wcode``/``kvcode`` index ``PRECISION_CODES``. All arrays share one shape (or broadcast).
    """

    tp: IntArray
    pp: IntArray
    dp: IntArray
    ep: IntArray
    wcode: IntArray
    kvcode: IntArray

    @staticmethod
    def of(tp: int, pp: int = 1, dp: int = 1, ep: int = 1, weights: str = "bf16", kv: str = "bf16") -> ServingShape:
        """A one-row shape."""
        return ServingShape(np.array([tp]), np.array([pp]), np.array([dp]), np.array([ep]),
                            np.array([PRECISION_CODES.index(weights)]), np.array([PRECISION_CODES.index(kv)]))

    def take(self, index: IntArray | npt.NDArray[np.bool_]) -> ServingShape:
        return ServingShape(self.tp[index], self.pp[index], self.dp[index], self.ep[index],
                            self.wcode[index], self.kvcode[index])

    @property
    def weight_bytes(self) -> FloatArray:
        return np.asarray(np.array([BYTES[p] for p in PRECISION_CODES])[self.wcode], dtype=np.float64)

    @property
    def kv_bytes(self) -> FloatArray:
        return np.asarray(np.array([BYTES[p] for p in PRECISION_CODES])[self.kvcode], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class StepTimes:
    """Seconds of one engine step on the critical rank, by part (arrays of the broadcast shape)."""

    gemm_s: FloatArray  # weight GEMMs (dense, shared and routed experts, LM head)
    attention_s: FloatArray  # attention core: prefill FLOPs, decode KV reads
    elementwise_s: FloatArray
    tp_comm_s: FloatArray
    ep_comm_s: FloatArray  # exposed part
    pp_comm_s: FloatArray
    overhead_s: FloatArray

    @property
    def total_s(self) -> FloatArray:
        return np.asarray(self.gemm_s + self.attention_s + self.elementwise_s + self.tp_comm_s + self.ep_comm_s
                          + self.pp_comm_s + self.overhead_s)

    def parts(self) -> dict[str, FloatArray]:
        return {"gemm_s": self.gemm_s, "attention_s": self.attention_s, "elementwise_s": self.elementwise_s,
                "tp_comm_s": self.tp_comm_s, "ep_comm_s": self.ep_comm_s, "pp_comm_s": self.pp_comm_s,
                "overhead_s": self.overhead_s}


def _compute_peaks(s: ServingSetup, wcode: IntArray) -> tuple[FloatArray, list[str]]:
    """Peak FLOP/s per row for the GEMM precision its weights run at, and the precision names."""
    names: list[str] = []
    peaks = []
    for p in PRECISION_CODES:
        run: Precision = "bf16" if p in ("int4", "bf16", "fp16") else p  # type: ignore[assignment]
        if not s.accel.supports(run):
            run = "bf16"
        names.append(run)
        peaks.append(s.accel.peak_flops(run))
    return np.asarray(np.array(peaks)[wcode], dtype=np.float64), names


def _gemm_s(s: ServingSetup, g: Gemm, rows: FloatArray, shard: FloatArray, count: FloatArray,
            wbytes: FloatArray, peak: FloatArray, wcode: IntArray, grouped: bool = False) -> FloatArray:
    """Roofline time of ``count`` GEMMs of ``rows`` tokens each with weight ``g`` split ``shard`` ways.

    ``grouped``: the ``count`` GEMMs run as one grouped kernel (one launch), as every MoE serving engine runs
    its routed experts (DeepGEMM m_grouped, vLLM/SGLang fused_moe, TRT-LLM MoE plugin, Ascend GroupedMatmul).
    """
    n = g.n / shard if g.shard == "col" else float(g.n)
    k = g.k / shard if g.shard == "row" else float(g.k)
    flops = 2.0 * rows * n * k
    e = np.zeros_like(peak)
    t0 = np.zeros_like(peak)
    for code, p in enumerate(PRECISION_CODES):
        run = "bf16" if p in ("int4", "bf16", "fp16") else p
        gp = s.eff.gemm_params(run if s.accel.supports(run) else "bf16")  # type: ignore[arg-type]
        e = np.where(wcode == code, gp.e_max, e)
        t0 = np.where(wcode == code, gp.t0_s, t0)
    k_arr = np.asarray(k, dtype=np.float64)
    # small reduction dims cost efficiency relative to the K >= k_ref GEMMs e_max was fitted on (the same
    # factor the training model applies, ChipEfficiency.gemm_time_s)
    small_k = np.maximum(1.0, (1.0 + s.eff.k_half / np.maximum(k_arr, 1.0)) / (1.0 + s.eff.k_half / s.eff.k_ref))
    compute = flops / (peak * e) * small_k
    memory = n * k * wbytes / (s.accel.hbm_bw_bytes_per_s * s.eff.hbm)
    launches = np.minimum(count, 1.0) if grouped else count
    return np.asarray(count * np.maximum(compute, memory) + launches * t0, dtype=np.float64)


def kv_bytes_per_token(m: ModelArch, tp: IntArray | FloatArray, kv_bytes: FloatArray) -> FloatArray:
    """KV-cache bytes per token per layer on one rank: K and V of the rank's KV heads, or MLA's latent.

    GQA heads split over TP down to one head per rank (replicated beyond); MLA keeps one compressed
    latent (kv_lora_rank + rope dims) per token, replicated over TP (DeepSeek-V2, arXiv:2405.04434, Sec. 2.1).
    """
    a = m.attention
    if a.type == "MLA":
        assert a.kv_lora_rank and a.qk_rope_head_dim
        return np.asarray((a.kv_lora_rank + a.qk_rope_head_dim) * kv_bytes * np.ones_like(tp, dtype=np.float64))
    heads = np.ceil(m.n_kv_heads / np.minimum(np.asarray(tp, dtype=np.float64), m.n_kv_heads))
    return np.asarray(2.0 * heads * m.head_dim * kv_bytes, dtype=np.float64)


def _attention_s(s: ServingSetup, sh: ServingShape, prefill_tokens: FloatArray, prefill_ctx: FloatArray,
                 decode_seqs: FloatArray, decode_ctx: FloatArray, queries: float = 1.0) -> FloatArray:
    """Attention core of one layer on one rank (``queries`` tokens per decoding sequence score its KV cache)."""
    m = s.model
    tp = sh.tp.astype(np.float64)
    q, _, v = attention_dims(m)
    window = float(m.attention.sliding_window or 1e12)
    peak16 = s.accel.peak_flops("bf16")
    if s.attention_precision == "fp8" and s.accel.supports("fp8"):
        peak16 = s.accel.peak_flops("fp8") * FP8_ATTENTION_EFF_RATIO  # FA3-FP8 / FlashMLA-FP8
    bw = s.accel.hbm_bw_bytes_per_s * s.eff.hbm
    pctx = np.minimum(prefill_ctx, window)
    # prefill: each token scores against pctx earlier tokens (QK^T and AV, 2 FLOPs per MAC)
    head_share = np.minimum(tp, m.heads)
    pre_flops = 2.0 * prefill_tokens * pctx * (q + v) / head_share
    pre = pre_flops / (peak16 * s.eff.attention_eff(np.maximum(pctx, 1.0)))
    dctx = np.minimum(decode_ctx, window)
    kv_read = decode_seqs * dctx * kv_bytes_per_token(m, sh.tp, sh.kv_bytes)
    if m.attention.type == "MLA":
        a = m.attention
        assert a.kv_lora_rank and a.qk_rope_head_dim
        # absorbed MLA: every head scores the latent (kv_lora + rope) and mixes it (kv_lora) per position
        dec_flops = 2.0 * decode_seqs * queries * dctx * m.heads / head_share * (2 * a.kv_lora_rank
                                                                                  + a.qk_rope_head_dim)
    else:
        dec_flops = 2.0 * decode_seqs * queries * dctx * (q + v) / head_share
    dec = np.maximum(kv_read / bw, dec_flops / (peak16 * s.eff.attn_fwd))
    return np.asarray(pre + dec, dtype=np.float64)


def _moe_layer_s(s: ServingSetup, sh: ServingShape, tokens: FloatArray, wbytes: FloatArray, peak: FloatArray
                 ) -> tuple[FloatArray, FloatArray]:
    """(routed-expert GEMM seconds, EP all-to-all seconds) of one MoE layer on one rank."""
    m = s.model
    assert m.moe is not None
    mo = m.moe
    ranks = (sh.tp * sh.dp).astype(np.float64)
    ep = sh.ep.astype(np.float64)
    etp = ranks / ep  # each expert's weights split this many ways
    local_experts = mo.experts / ep
    group_tokens = tokens * sh.dp  # every attention rank's tokens reach the expert layer
    # expected distinct experts touched: P(expert untouched by one token) = 1 - k/E (uniform routing)
    touched_frac = 1.0 - np.power(1.0 - mo.top_k / mo.experts, group_tokens)
    touched = np.maximum(local_experts * touched_frac, np.minimum(local_experts, 1.0))
    rows = group_tokens * mo.top_k / mo.experts / np.maximum(touched_frac, 1e-12)  # tokens per touched expert
    t = np.zeros_like(tokens)
    for g in mlp_gemms(m, mo.moe_ffn_hidden, "expert"):
        t = t + _gemm_s(s, g, rows, etp, touched, wbytes, peak, sh.wcode, grouped=True)
    per_rank = tokens * sh.dp / ranks  # tokens each rank sends
    # across nodes a token crosses the network once per distinct node its experts sit on, then fans out
    # over scale-up (DeepEP normal kernels; DeepSeek-V3 limits routing to 4 nodes, arXiv:2412.19437 Sec. 2.1.2)
    copies = token_copies(mo.top_k, np.maximum(ep / s.system.domain_size, 1.0))
    a2a_bytes = per_rank * copies * m.hidden
    stride = np.ones_like(sh.ep)
    comm = (s.network.all_to_all_s(a2a_bytes * DISPATCH_BYTES, sh.ep, stride)
            + s.network.all_to_all_s(a2a_bytes * COMBINE_BYTES, sh.ep, stride))
    sizes, floors = s.a2a_floor
    if sizes:
        # measured low-latency dispatch + combine at small batches: the cost no batch goes under
        comm = np.maximum(comm, np.interp(np.log2(ep), np.log2(np.array(sizes)), np.array(floors)))
    return t, np.asarray(np.where(sh.ep > 1, comm, 0.0), dtype=np.float64)


def tp_all_reduce_s(s: ServingSetup, bytes_: FloatArray, tp: IntArray) -> FloatArray:
    """All-reduce of a step's activations over the TP group.

    Serving engines use one-shot / two-shot kernels for these small messages (TRT-LLM custom all-reduce,
    vLLM custom_all_reduce), so inside a scale-up domain the cost is the fitted latency floor plus the
    bytes at the fitted plateau bus bandwidth (alpha-beta, no ring ramp-up); across domains, the ring model.
    """
    up = s.network.scaleup
    g = np.asarray(tp, dtype=np.float64)
    bw = up.busbw_max(g, up.eff)
    inside = up.eff.alpha_s + 2.0 * (g - 1.0) / g * bytes_ / bw
    across = s.network.all_reduce_s(bytes_, tp, np.ones_like(tp))
    t = np.where(s.network.spans_scaleout(tp, np.ones_like(tp)), across, inside)
    return np.asarray(np.where(tp > 1, t, 0.0), dtype=np.float64)


# Kernels one decoder layer issues, counted in vLLM-Ascend v0.9.1's Qwen3 layers (tag v0.9.1):
# attention block (vllm_ascend/models/qwen3.py CustomQwen3Attention, vllm's Qwen3MoeAttention): input norm,
# QKV GEMM, Q-norm, K-norm, rotary, KV-cache write, attention, O GEMM, post-attention norm;
ATTENTION_BLOCK_KERNELS = 9
# dense MLP (CustomQwen3MLP): gate-up GEMM, SwiGLU, down GEMM;
DENSE_MLP_KERNELS = 3
# MoE block (vllm_ascend/ops/fused_moe.py AscendSparseMoeBlock -> AscendUnquantizedFusedMoEMethod.apply ->
# select_experts + fused_experts, the all-gather path every TP-only deployment takes): router GEMM,
# npu_moe_gating_top_k_softmax, renormalise (sum, divide), cast, row-index build (arange, permute-contiguous),
# npu_moe_init_routing, npu_moe_compute_expert_tokens, cast, grouped GEMM, concat, npu_swiglu, grouped GEMM,
# concat, npu_moe_finalize_routing;
MOE_BLOCK_KERNELS = 16
# per step outside the layers: embedding, final norm, LM head.
STEP_KERNELS = 3


def kernels_per_step(m: ModelArch, tp: IntArray) -> FloatArray:
    """Kernels one forward pass issues on a rank: the layers' kernels plus one all-reduce after the attention
    block and one after the MLP / MoE block under TP (RowParallelLinear, AscendFusedMoE's all-reduce)."""
    reduce = np.where(np.asarray(tp) > 1, 2.0, 0.0)
    per_dense = ATTENTION_BLOCK_KERNELS + DENSE_MLP_KERNELS
    per_moe = ATTENTION_BLOCK_KERNELS + MOE_BLOCK_KERNELS
    return np.asarray(m.n_dense_layers * per_dense + m.n_moe_layers * per_moe + m.layers * reduce + STEP_KERNELS,
                      dtype=np.float64)


def step_time(s: ServingSetup, sh: ServingShape, prefill_tokens: FloatArray, prefill_ctx: FloatArray,
              prefill_seqs: FloatArray, decode_seqs: FloatArray, decode_ctx: FloatArray) -> StepTimes:
    """Seconds of one continuous-batching step of one engine, per attention rank's batch.

    Args:
        s: resolved setup.
        sh: plan columns.
        prefill_tokens: prompt tokens processed this step on each attention rank.
        prefill_ctx: mean number of earlier tokens each of them attends to.
        prefill_seqs: sequences whose prompt finishes this step (they emit their first token).
        decode_seqs: sequences generating one token this step on each attention rank.
        decode_ctx: mean context (tokens in the KV cache) of the decoding sequences.

    Returns:
        ``StepTimes`` broadcast over all arguments.
    """
    m = s.model
    tp = sh.tp.astype(np.float64)
    pp = sh.pp.astype(np.float64)
    wbytes = sh.weight_bytes
    peak, _ = _compute_peaks(s, sh.wcode)
    # pipeline: the batch is cut into pp micro-batches that fill the stages; one iteration moves every
    # micro-batch through all layers, so it costs layers x (layer time at batch/pp)
    pf, pfs, ds = prefill_tokens / pp, prefill_seqs / pp, decode_seqs / pp
    spec = s.speculative
    queries = float(spec.steps + 1) if spec is not None else 1.0  # tokens each decoding sequence verifies
    tokens = pf + ds * queries
    one = np.ones_like(tokens)

    def dense_gemms(gemms: list[Gemm], rows: FloatArray) -> FloatArray:
        t = np.zeros_like(rows)
        for g in gemms:
            t = t + _gemm_s(s, g, rows, tp if g.shard != "none" else np.ones_like(tp), one, wbytes, peak, sh.wcode)
        return t

    attn_gemm = dense_gemms(attention_gemms(m), tokens)
    attn = _attention_s(s, sh, pf, prefill_ctx, ds, decode_ctx, queries)
    h = float(m.hidden)
    elementwise = tokens * ELEMENTWISE_HIDDEN_PASSES * h * ACT_BYTES / (s.accel.hbm_bw_bytes_per_s * s.eff.hbm)
    ar = tp_all_reduce_s(s, tokens * h * ACT_BYTES, sh.tp)

    gemm = m.n_dense_layers * attn_gemm
    ep_comm = np.zeros_like(tokens)
    if m.n_dense_layers and m.ffn_hidden:
        gemm = gemm + m.n_dense_layers * dense_gemms(mlp_gemms(m, m.ffn_hidden), tokens)
    if m.moe is not None and m.n_moe_layers:
        mo = m.moe
        shared = [Gemm("router", mo.experts, m.hidden, "none")]
        if mo.shared_experts:
            shared += mlp_gemms(m, mo.moe_ffn_hidden * mo.shared_experts, "shared")
        routed, a2a = _moe_layer_s(s, sh, tokens, wbytes, peak)
        local = attn_gemm + dense_gemms(shared, tokens)
        gemm = gemm + m.n_moe_layers * (local + routed)
        # two micro-batches overlap one's all-to-all with the other's compute (DeepSeek, SGLang TBO)
        compute = local + routed + attn + elementwise
        exposed = np.where(sh.dp > 1, np.maximum(a2a - compute, 0.0), a2a)
        ep_comm = m.n_moe_layers * exposed
    # LM head on the last stage, once per micro-batch, for the sequences that emit a token
    head = pp * _gemm_s(s, Gemm("lm_head", m.vocab, m.hidden, "col"), pfs + ds * queries, tp, one, wbytes, peak,
                        sh.wcode)
    scale = s.constants.compute_scale
    attention = m.layers * attn
    elem = m.layers * elementwise
    tp_comm = np.where(sh.tp > 1, 2.0 * m.layers * ar, 0.0)
    crosses = s.network.spans_scaleout(sh.pp, sh.tp * sh.dp)
    pp_comm = np.where(sh.pp > 1, pp * s.network.p2p_s(tokens * h * ACT_BYTES, crosses), 0.0)
    out = StepTimes(
        gemm_s=np.asarray((gemm + head) * scale, dtype=np.float64),
        attention_s=np.asarray(attention * scale, dtype=np.float64),
        elementwise_s=np.asarray(elem * scale, dtype=np.float64),
        tp_comm_s=np.asarray(tp_comm, dtype=np.float64),
        ep_comm_s=np.asarray(ep_comm, dtype=np.float64),
        pp_comm_s=np.asarray(pp_comm, dtype=np.float64),
        overhead_s=np.asarray(np.full_like(tokens, s.constants.step_overhead_s), dtype=np.float64),
    )
    if s.host_s_per_kernel > 0:
        # an engine that issues its kernels one by one from the host: host issue and device execution run
        # asynchronously (torch_npu's task queue), so the device idles only where issuing the step's kernels
        # takes longer than running them (Ascend's host-bound definition, MindStudio 'Host Bound Issue
        # Classification'); the idle time goes to the step's overhead
        host = kernels_per_step(m, sh.tp) * s.host_s_per_kernel
        idle = np.maximum(host - (out.total_s - out.overhead_s), 0.0)
        out = replace(out, overhead_s=np.asarray(out.overhead_s + idle, dtype=np.float64))
    if spec is None:
        return out
    # the draft: ``steps`` one-token forwards of ``draft_layers`` layers for every decoding sequence
    z = np.zeros_like(decode_seqs)
    one_token = step_time(replace(s, speculative=None), sh, z, z, z, decode_seqs, decode_ctx)
    frac = np.where(decode_seqs > 0, spec.steps * spec.draft_layers / m.layers, 0.0)
    parts = {k: v + frac * getattr(one_token, k) for k, v in out.parts().items() if k != "overhead_s"}
    return StepTimes(**parts, overhead_s=out.overhead_s)


@dataclass(frozen=True, slots=True)
class MemoryPerRank:
    """Bytes on one rank: weights, reserve, and what is left for the KV cache."""

    weights: FloatArray
    reserved: FloatArray
    kv_capacity: FloatArray
    capacity: float

    @property
    def fits(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.kv_capacity > 0)


def weight_bytes_per_rank(s: ServingSetup, sh: ServingShape) -> FloatArray:
    """Weights held by one rank: its pipeline stage's layers, TP-sharded; experts EP- and TP-sharded."""
    m, pc = s.model, s.params
    tp = sh.tp.astype(np.float64)
    pp = sh.pp.astype(np.float64)
    ranks = tp * sh.dp
    layers_stage = np.ceil(m.layers / pp)
    dense_share = m.n_dense_layers / m.layers
    local = layers_stage * (dense_share * pc.dense_layer + (1 - dense_share) * pc.moe_layer_local) / tp
    experts = layers_stage * (1 - dense_share) * pc.moe_layer_experts / ranks  # ep x (tp*dp/ep) = ranks
    emb = (pc.embedding + pc.lm_head) / tp  # both ends when pp = 1; one end otherwise (upper bound)
    # embeddings and norms stay 16 bit in quantised checkpoints
    return np.asarray((local + experts) * sh.weight_bytes + emb * 2.0, dtype=np.float64)


def kv_capacity(s: ServingSetup, sh: ServingShape, token_budget: FloatArray) -> MemoryPerRank:
    """KV-cache bytes available on one rank after weights, reserve and the step's activations."""
    w = weight_bytes_per_rank(s, sh)
    acts = token_budget * (4.0 * s.model.hidden + 2.0 * s.model.vocab / sh.tp) * ACT_BYTES
    reserved = np.full_like(w, RESERVED_BYTES) + acts
    free = s.accel.hbm_bytes - w - reserved
    return MemoryPerRank(w, reserved, np.asarray(np.maximum(free, 0.0) * KV_MEMORY_FRACTION * (free > 0)),
                         s.accel.hbm_bytes)


def kv_bytes_per_sequence(s: ServingSetup, sh: ServingShape, tokens: FloatArray) -> FloatArray:
    """KV bytes a sequence of ``tokens`` holds on one rank, in whole paged blocks."""
    layers_stage = np.ceil(s.model.layers / sh.pp.astype(np.float64))
    blocks = np.ceil(tokens / BLOCK_TOKENS)
    return np.asarray(blocks * BLOCK_TOKENS * layers_stage * kv_bytes_per_token(s.model, sh.tp, sh.kv_bytes))


def constants_group(chip_id: str, expert_parallel: bool) -> str:
    """Name of the constants group: the chip family, with ``_ep`` for expert-parallel MoE deployments.

    EP deployments run different kernels (grouped GEMMs, dispatch/combine, absorbed MLA) and scheduling
    (two-batch overlap), so they get their own group.
    """
    return family_of(chip_id) + ("_ep" if expert_parallel else "")


def load_serving_constants(chip_id: str, expert_parallel: bool = False,
                           path: Path = CONSTANTS_FILE, engine: str | None = None) -> ServingConstants:
    """The fitted serving constants of ``chip_id``'s group (its own, else the global one, else none).

    ``engine``: a serving stack fitted apart (``family@engine``, e.g. an eager-mode engine far from its
    family's usual speed); used only when asked for, never for plans.
    """
    if not path.exists():
        return ServingConstants()
    data = load_data_file(path)
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict):
        raise SpecError(f"{path}: expected a 'groups' mapping")
    fam = constants_group(chip_id, expert_parallel)
    if engine and groups.get(f"{fam}@{engine}"):
        fam = f"{fam}@{engine}"
    raw = groups.get(fam)
    if raw is None and "@" not in fam:
        # no group of this flavour for the chip family: the family's other flavour (same chips, same kernel
        # library) before the global group fitted on other vendors' chips
        base = family_of(chip_id)
        other = base if expert_parallel else base + "_ep"
        if base != "global" and groups.get(other):
            raw, fam = groups[other], f"{base} (inherits {other})"
    raw = raw or groups.get("global_ep" if expert_parallel else "global")
    if raw is None:
        return ServingConstants(family=fam)
    scale = float(raw.get("compute_scale", 1.0))
    overhead = float(raw.get("step_overhead_s", 0.0))
    if not 0.2 <= scale <= 5.0:
        raise SpecError(f"{path}: groups.{fam}.compute_scale must be in [0.2, 5] (got {scale})")
    if not 0.0 <= overhead <= 1.0:
        raise SpecError(f"{path}: groups.{fam}.step_overhead_s must be in [0, 1] (got {overhead})")
    return ServingConstants(scale, overhead, fam)


def make_serving_setup(model: ModelArch, accel: Accelerator, system: System | None,
                       eff: EfficiencyTable | None = None, constants: ServingConstants | None = None,
                       expert_parallel: bool = False) -> ServingSetup:
    """Bundle everything the serving cost model needs; a missing system is synthesised from the chip."""
    eff = eff or load_efficiency()
    sys_ = adapt_system(system, accel) if system is not None else synthetic_system(accel)
    return ServingSetup(model, accel, sys_, build_network(sys_, accel, eff), eff.chip(accel.id),
                        param_counts(model), constants or load_serving_constants(accel.id, expert_parallel),
                        a2a_latency_floor(accel.id))


@functools.lru_cache(maxsize=4)
def _latency_entries(path: Path) -> tuple[dict[str, Any], ...]:
    """The latency-only all-to-all entries of the efficiency file (read once per file)."""
    data = load_data_file(path)
    return tuple(e for e in (data.get("alltoall") or {}).values()
                 if isinstance(e, dict) and e.get("tier") == "mixed" and e.get("by_group_size"))


def a2a_latency_floor(chip_id: str, path: Path = EFFICIENCY_FILE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Measured low-latency EP dispatch + combine seconds by group size (DeepEP, MORI, Ascend EP kernels).

    Micro-benchmarks of the chip, else of a chip of the same family (same NICs and scale-up design).
    """
    entries = _latency_entries(path)
    fam = family_of(chip_id)
    def same_chip(ids: tuple[str, ...]) -> bool:
        return chip_id in ids

    def same_family(ids: tuple[str, ...]) -> bool:
        return any(family_of(i) == fam != "global" for i in ids)

    for match in (same_chip, same_family):
        for e in entries:
            if match(tuple(e.get("applies_to") or ())):
                rows = sorted((int(k), float(v["dispatch_s"]) + float(v["combine_s"]))
                              for k, v in e["by_group_size"].items())
                return tuple(float(r[0]) for r in rows), tuple(r[1] for r in rows)
    return (), ()


def with_constants(s: ServingSetup, constants: ServingConstants) -> ServingSetup:
    return replace(s, constants=constants)


def check_serving_plan(s: ServingSetup, plan: ServingPlan) -> None:
    """Raise ``InfeasibleError`` when ``plan`` cannot run ``s.model`` on ``s.accel``; the message says why.

    The rules an inference engine enforces at start-up (vLLM, SGLang): tensor parallelism splits whole
    attention heads, K/V heads are split or replicated whole (``tp`` divides the K/V heads or is a multiple
    of them), a pipeline stage holds at least one layer, and the weights with the runtime reserve fit in
    the chip's memory with room left for a KV cache.
    """
    from fleetwise.errors import InfeasibleError

    m, tp = s.model, plan.tp
    where = f"plan {plan.label()}"
    if m.heads % tp:
        ok = [d for d in range(1, min(m.heads, 1024) + 1) if m.heads % d == 0]
        raise InfeasibleError(f"{where}: tp {tp} must divide the {m.heads} attention heads of {m.id} "
                              f"(allowed tp: {', '.join(map(str, ok[:12]))}{', ...' if len(ok) > 12 else ''})")
    kv = m.n_kv_heads
    if m.attention.type != "MLA" and kv % tp and tp % kv:
        raise InfeasibleError(f"{where}: tp {tp} must divide the {kv} KV heads of {m.id} or be a multiple "
                              "of them (each rank holds whole KV heads)")
    if plan.pp > m.layers:
        raise InfeasibleError(f"{where}: pp {plan.pp} exceeds the {m.layers} layers of {m.id}")
    if m.moe is not None and m.moe.experts % plan.ep:
        raise InfeasibleError(f"{where}: ep {plan.ep} must divide the {m.moe.experts} experts of {m.id}")
    sh = ServingShape.of(plan.tp, plan.pp, plan.dp, plan.ep, plan.weight_precision, plan.kv_precision)
    mem = kv_capacity(s, sh, np.array([float(plan.token_budget)]))
    if not bool(mem.fits[0]):
        raise InfeasibleError(
            f"{where}: weights {float(mem.weights[0]) / 1e9:.1f} GB + reserve {float(mem.reserved[0]) / 1e9:.1f} GB "
            f"per device exceed the {s.accel.hbm_bytes / 1e9:.0f} GB memory of {s.accel.id}, leaving no KV cache; "
            "use more tp/pp or smaller --weights")

"""Training step time of every plan in a candidate table, with its breakdown.

Entry points: ``TrainingSetup`` (model, chip, system, job and fitted constants, resolved once) and
``training_step(c, setup)`` returning ``StepColumns``. One code path for one plan or millions.

Per micro-batch and pipeline stage: weight GEMMs (shard shapes after TP/CP/EP, achieved efficiency
by shape), attention core (flash, causal), memory-bound kernels (bytes / HBM), TP / CP / EP
communication; then 1F1B pipelining with its bubble (Narayanan et al. 2021, Sec. 2.2), the exposed
part of data-parallel gradient traffic, and the optimiser step. Assumptions are listed in
``ASSUMPTIONS`` and carried into every result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetwise.perf.candidates import Candidates
from fleetwise.perf.memory import GRAD_BYTES_BY_DTYPE, MemoryColumns, training_memory
from fleetwise.perf.model_math import (
    Gemm,
    attention_dims,
    attention_gemms,
    dense_layer_gemms,
    mlp_gemms,
    moe_layer_gemms,
)
from fleetwise.perf.moe import token_copies
from fleetwise.perf.setup import TrainingSetup as TrainingSetup  # defined beside make_training_setup; re-exported

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ACT_BYTES = 2.0  # activations and their gradients travel in 16 bit (also in fp8 training)
KERNEL_GAP_S = 2.0e-6  # idle gap between dependent kernels (launch overhead partly hidden by queueing)
KERNELS_PER_LAYER_FWD = 14
BWD_OVER_FWD_ATTN_FLOPS = 2.5  # flash-attention backward does 2.5x the forward FLOPs (Dao 2023)
UNFUSED_ATTENTION_KERNELS = 5.0  # baddbmm, scale-mask-softmax, dropout, bmm, context permute copy
# HBM bytes per score element the elementwise kernels stream (16 bit): forward softmax read+write (4), dropout
# mask + read + write (5); backward dropout reads the probabilities' gradient and the mask and writes (5),
# softmax reads it and the saved probabilities and writes the scores' gradient (6). The batched GEMMs' own
# score writes (QK^T forward, dO V^T backward) are not streamed here: both reduce over the head dim, and the
# small-K penalty of their GEMM time already prices a GEMM whose output write outweighs its FLOPs.
UNFUSED_SCORE_BYTES_FWD = 9.0
UNFUSED_SCORE_BYTES_BWD = 11.0
# Megatron's fused causal scale-mask-softmax runs only when the key length is in (16, 2048] and the attention
# batches (micro-batch x heads per TP rank) and the query length divide by 4 (FusedScaleMaskSoftmax.forward,
# megatron/model/fused_softmax.py, Megatron-DeepSpeed; batch_per_block = 4 for keys up to 2048); otherwise it
# falls back to eager torch ops on fp32 scores (apply_query_key_layer_scaling forces the fp32 softmax): cast to
# fp32, scale, masked_fill, softmax, cast back - 5 kernels for 1 forward, and their 5 autograd kernels for 1
# backward; the extra fp32 streams add 33 B per score element forward, 35 backward
SOFTMAX_FALLBACK_KERNELS = 4.0
SOFTMAX_FALLBACK_BYTES_FWD = 33.0
SOFTMAX_FALLBACK_BYTES_BWD = 35.0
FUSED_SOFTMAX_MAX_KEYS = 2048

ASSUMPTIONS: tuple[str, ...] = (
    "weight GEMM efficiency from micro-benchmarks: e_max * t/(t + t0) by the shard's shape",
    "attention: flash kernel, causal masking skips half the score blocks; backward 2.5x forward FLOPs",
    "TP communication exposed unless tp_comm_overlap (then hidden behind GEMMs up to their length)",
    "CP ring-attention KV exchange overlapped with attention compute",
    "EP all-to-all exposed unless ep_comm_overlap (then hidden behind expert GEMMs up to their length)",
    "DP gradient reduce-scatter/all-reduce overlapped with the cool-down backward passes unless the job says "
    "dp_overlap=false; gradients reduced in the job's grad_dtype (default fp32)",
    "ZeRO-3 parameter all-gathers overlapped with each micro-batch's compute",
    "pipeline: 1F1B (interleaved when vpp>1) at the pace of the slowest stage (ceil(layers/pp) layers; the last "
    "also carries the LM head and loss), bubble (pp-1)/vpp body-stage times (layers only; slowest-stage times "
    "when the job's pipeline runs lock-step, DeepSpeed's PipelineEngine); p2p scatter-gather 1/tp per rank",
    "optimizer: Adam, fp32 master weights and moments, memory-bound",
    "across sites: in-site reduce-scatter, then a ring all-reduce of one fp32 gradient replica over the site link",
    "group constant compute_scale (fitted on published runs of the chip family) multiplies kernel time",
    "host floor: a layer pass takes at least its kernels (counted from the layer's structure; backward 2x the "
    "compute kernels + the conjugate TP collectives + one accumulation per parameter tensor) x the job's host "
    "time per kernel",
    "unfused attention: QK^T and dO V^T reduce over the head dim (small-K penalty), AV, dV, dQ, dK over the "
    "sequence; softmax and dropout stream 9 B per score element forward, 11 backward; Megatron's fused softmax "
    "only when micro-batch x heads per TP rank divides by 4 and keys <= 2048, else 4 more eager kernels on fp32 "
    "scores forward and backward",
)


@dataclass(frozen=True, slots=True)
class StepColumns:
    """Per-plan step time and its parts (seconds per optimiser step), plus memory."""

    compute_s: FloatArray  # GEMM + attention + memory-bound kernels on the critical stage, all micro-batches
    recompute_s: FloatArray
    tp_comm_s: FloatArray
    cp_comm_s: FloatArray
    ep_comm_s: FloatArray
    pp_comm_s: FloatArray
    bubble_s: FloatArray
    dp_comm_s: FloatArray  # exposed part
    optimizer_s: FloatArray
    memory: MemoryColumns
    n_micro: FloatArray
    # for the energy model (fleetwise.energy): parts of compute_s + recompute_s that are memory-bound
    # kernels, and the LM head (+ MTP) work only the last pipeline stage does. None = not split.
    membound_s: FloatArray | None = None
    head_s: FloatArray | None = None

    @property
    def step_time_s(self) -> FloatArray:
        return np.asarray(
            self.compute_s + self.recompute_s + self.tp_comm_s + self.cp_comm_s + self.ep_comm_s
            + self.pp_comm_s + self.bubble_s + self.dp_comm_s + self.optimizer_s
        )

    def parts(self) -> dict[str, FloatArray]:
        return {
            "compute_s": self.compute_s,
            "recompute_s": self.recompute_s,
            "tp_comm_s": self.tp_comm_s,
            "cp_comm_s": self.cp_comm_s,
            "ep_comm_s": self.ep_comm_s,
            "pp_comm_s": self.pp_comm_s,
            "bubble_s": self.bubble_s,
            "dp_comm_s": self.dp_comm_s,
            "optimizer_s": self.optimizer_s,
        }


@dataclass(frozen=True, slots=True)
class _LayerTimes:
    """Seconds per layer per micro-batch on one device, by kind."""

    gemm_fwd: FloatArray
    gemm_bwd: FloatArray
    attn_fwd: FloatArray
    attn_bwd: FloatArray
    mem_fwd: FloatArray
    tp_comm: FloatArray  # fwd + bwd
    ep_comm: FloatArray
    cp_comm: FloatArray

    def scaled(self, k: float) -> _LayerTimes:
        return _LayerTimes(self.gemm_fwd * k, self.gemm_bwd * k, self.attn_fwd * k, self.attn_bwd * k,
                           self.mem_fwd * k, self.tp_comm * k, self.ep_comm * k, self.cp_comm * k)

    def take(self, index: npt.NDArray[np.int64]) -> _LayerTimes:
        return _LayerTimes(self.gemm_fwd[index], self.gemm_bwd[index], self.attn_fwd[index], self.attn_bwd[index],
                           self.mem_fwd[index], self.tp_comm[index], self.ep_comm[index], self.cp_comm[index])

    def __add__(self, o: _LayerTimes) -> _LayerTimes:
        return _LayerTimes(self.gemm_fwd + o.gemm_fwd, self.gemm_bwd + o.gemm_bwd, self.attn_fwd + o.attn_fwd,
                           self.attn_bwd + o.attn_bwd, self.mem_fwd + o.mem_fwd, self.tp_comm + o.tp_comm,
                           self.ep_comm + o.ep_comm, self.cp_comm + o.cp_comm)


def _gemm_times(gemms: list[Gemm], tokens: FloatArray, tp: FloatArray, s: TrainingSetup,
                expert_tokens: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
    """(forward, backward) seconds of a list of weight GEMMs for ``tokens`` rows per device."""
    peak = s.accel.peak_flops(s.job.precision)
    fwd = np.zeros_like(tokens)
    bwd = np.zeros_like(tokens)
    for g in gemms:
        n = g.n / tp if g.shard == "col" else np.full_like(tp, float(g.n))
        k = g.k / tp if g.shard == "row" else np.full_like(tp, float(g.k))
        if g.experts > 1 and expert_tokens is not None:
            rows = expert_tokens  # tokens per local expert; the device runs experts_local such GEMMs
            count = tokens * g.tokens_per_token / np.maximum(rows, 1e-9)
        else:
            rows, count = tokens, np.ones_like(tokens)
        flops = 2.0 * rows * n * k
        fwd += count * s.eff.gemm_time_s(flops, peak, s.job.precision, k)
        # backward: activation gradient (reduces over n) and weight gradient (reduces over rows);
        # LoRA freezes the base weight, so only the activation gradient runs
        bwd += count * s.eff.gemm_time_s(flops, peak, s.job.precision, n)
        if s.job.lora_rank is None:
            bwd += count * s.eff.gemm_time_s(flops, peak, s.job.precision, rows)
    return fwd, bwd


def _layer_times(c: Candidates, s: TrainingSetup, moe_layer: bool) -> _LayerTimes:
    m, net = s.model, s.network
    tp = c.tp.astype(np.float64)
    cp = c.cp.astype(np.float64)
    seq = float(s.job.seq_len)
    tokens = c.mbs * seq / cp  # rows each device's GEMMs see, (n,)
    expert_tokens = None
    if moe_layer:
        local, routed = moe_layer_gemms(m)
        assert m.moe is not None
        # balanced routing: each of the ep ranks' tokens picks top_k of `experts` experts
        expert_tokens = c.ep * tokens * m.moe.top_k / m.moe.experts
        gf, gb = _gemm_times(local, tokens, tp, s)
        ef, eb = _gemm_times(routed, tokens, tp, s, expert_tokens)
        gemm_fwd, gemm_bwd = gf + ef, gb + eb
    else:
        gemm_fwd, gemm_bwd = _gemm_times(dense_layer_gemms(m), tokens, tp, s)

    # attention core: queries of this CP shard against the whole (causal) context, heads split by TP
    q, _, v = attention_dims(m)
    window = min(seq, float(m.attention.sliding_window or seq))
    causal = 0.5 if window == seq else 1.0
    attn_flops = 2.0 * tokens * window * (q + v) / tp * causal
    peak16 = s.accel.peak_flops("bf16")
    kv_ctx = np.full_like(tokens, window)
    attn_fwd = attn_flops / (peak16 * s.eff.attention_eff(kv_ctx))
    attn_bwd = BWD_OVER_FWD_ATTN_FLOPS * attn_flops / (peak16 * s.eff.attention_eff(kv_ctx, backward=True))
    if s.job.attention_kernel == "unfused":
        attn_fwd, attn_bwd = _unfused_attention_s(c, s, tokens, window, tp)

    # memory-bound kernels: norms, residual adds, activation function, rotary, casts (bytes per token)
    h = float(m.hidden)
    f = float(m.moe.moe_ffn_hidden * m.moe.top_k if moe_layer and m.moe else (m.ffn_hidden or 0))
    inside = ACT_BYTES * ((3.0 if m.gated_mlp else 2.0) * f + 2.0 * q)
    outside = ACT_BYTES * 10.0 * h
    per_token = np.where(c.sp, outside / tp, outside) + inside / tp
    if moe_layer and m.moe is not None:
        # permute / unpermute copies: of the rank's 1/tp shard (all-to-all dispatch), or of every token of the
        # TP group when the all-gather dispatcher gathers the group's tokens onto each rank first
        # (Megatron-core MoEAllGatherTokenDispatcher: gather across the TP x EP group, permute, experts on
        # TP-sharded weights, unpermute, reduce-scatter)
        gathered = 1.0 if s.job.moe_token_dispatcher == "allgather" else 1.0 / tp
        per_token = per_token + ACT_BYTES * 4.0 * h * m.moe.top_k * gathered
    mem_fwd = tokens * per_token / (s.accel.hbm_bw_bytes_per_s * s.eff.hbm) + KERNELS_PER_LAYER_FWD * KERNEL_GAP_S

    # TP: 2 all-reduces (or 2 all-gather + 2 reduce-scatter with SP) forward, the same backward
    act_bytes = tokens * h * ACT_BYTES
    stride1 = np.ones_like(c.tp)
    per_collective = net.all_reduce_s(act_bytes, c.tp, stride1)
    tp_comm = 4.0 * per_collective
    gemm_total = gemm_fwd + gemm_bwd
    if s.job.tp_overlap_scope == "per_gemm":
        hidden = _per_gemm_tp_exposed(c, s, moe_layer, tokens, tp, act_bytes)
    else:
        hidden = np.maximum(tp_comm - 0.8 * gemm_total, 0.1 * tp_comm)
    tp_comm = np.where(c.tp_overlap, hidden, tp_comm)

    # CP: ring attention passes K/V blocks around the cp ranks, overlapped with attention compute
    _, kdim, vdim = attention_dims(m)
    kv_bytes = tokens * (kdim + vdim) / tp * ACT_BYTES
    ring = net.p2p_s(kv_bytes, net.spans_scaleout(c.cp, c.tp)) * (cp - 1.0)
    cp_comm = np.where(c.cp > 1, np.maximum(ring - attn_fwd, 0.0) + np.maximum(2.0 * ring - attn_bwd, 0.0), 0.0)

    ep_comm = np.zeros_like(tokens)
    if moe_layer and m.moe is not None:
        # dispatch + combine forward, and again backward; each rank sends top_k copies of its tokens
        # each rank's tokens cross to their experts' domains once per domain (node de-duplication);
        # dispatch travels in fp8 when training in fp8 (DeepSeek-V3), combine and gradients in 16 bit
        ranks_per_domain = net.ranks_in_domain(c.ep, c.tp * c.cp).astype(np.float64)
        copies = token_copies(m.moe.top_k, c.ep / ranks_per_domain)
        per_copy = tokens / np.where(c.sp, tp, 1.0) * copies * h
        dispatch = 1.0 if s.job.precision == "fp8" else ACT_BYTES
        stride = c.tp * c.cp
        ep_comm = (net.all_to_all_s(per_copy * dispatch, c.ep, stride)  # forward dispatch
                   + 3.0 * net.all_to_all_s(per_copy * ACT_BYTES, c.ep, stride))  # combine, and both backward
        # overlapped with another micro-batch's compute (DualPipe, Megatron's a2a overlap) up to its length
        ep_comm = np.where(c.ep_overlap, np.maximum(ep_comm - 0.8 * (gemm_fwd + gemm_bwd), 0.1 * ep_comm), ep_comm)
    return _LayerTimes(gemm_fwd, gemm_bwd, attn_fwd, attn_bwd, mem_fwd, tp_comm, ep_comm, cp_comm)


def _per_gemm_tp_exposed(c: Candidates, s: TrainingSetup, moe_layer: bool, tokens: FloatArray, tp: FloatArray,
                         act_bytes: FloatArray) -> FloatArray:
    """Exposed TP traffic of a layer pass pair (fwd + bwd) when each collective is fused with one GEMM.

    MindSpeed's MC2 (ascend_turbo/mc2_linears_seq_parallel.py) fuses all-gather + matmul (column-parallel
    forward, row-parallel backward dgrad: npu_all_gather_base_mm) and matmul + reduce-scatter (row-parallel
    forward: npu_mm_reduce_scatter_base), pipelining the two in chunks; the column-parallel backward
    reduce-scatters its dgrad asynchronously behind the wgrad matmul. So a collective hides only behind
    its own GEMM (up to 80 %, the layer scope's share): forward behind the whole GEMM, backward behind one
    of the two equal backward GEMMs, never behind the rest of the layer. Without sequence parallelism:
    one all-reduce after the row GEMM forward and one behind the column wgrad backward. MC2 is not enabled
    for the MLP of mcore MoE models (MindSpeed-LLM docs/en/pytorch/features/mcore/mc2.md, "Notes"): an MoE
    layer's MLP-side collectives are exposed.
    """
    m, net = s.model, s.network
    one = np.ones_like(c.tp)
    if moe_layer:
        assert m.moe is not None
        blocks = [(attention_gemms(m), True), ([], False)]
    else:
        assert m.ffn_hidden is not None
        blocks = [(attention_gemms(m), True), (mlp_gemms(m, m.ffn_hidden), True)]
    sp = c.sp
    gather = net.all_gather_s(act_bytes, c.tp, one)  # = a reduce-scatter of the same tensor
    reduce = net.all_reduce_s(act_bytes, c.tp, one)
    exposed = np.zeros_like(tokens)

    def part(comm: FloatArray, gemm: FloatArray) -> FloatArray:
        return np.asarray(np.maximum(comm - 0.8 * gemm, 0.1 * comm))

    for gemms, fused in blocks:
        if not fused:
            exposed = exposed + 2.0 * np.where(sp, 2.0 * gather, reduce)
            continue
        col_f, col_b = _gemm_times([g for g in gemms if g.shard == "col"], tokens, tp, s)
        row_f, row_b = _gemm_times([g for g in gemms if g.shard == "row"], tokens, tp, s)
        with_sp = (part(gather, col_f) + part(gather, row_f) + part(gather, 0.5 * col_b)
                   + part(gather, 0.5 * row_b))
        without = part(reduce, row_f) + part(reduce, 0.5 * col_b)
        exposed = exposed + np.where(sp, with_sp, without)
    return np.asarray(exposed)


def softmax_fallback(c: Candidates, s: TrainingSetup) -> npt.NDArray[np.bool_]:
    """Plans whose unfused attention misses Megatron's fused softmax kernel (``FUSED_SOFTMAX_MAX_KEYS`` and the
    divisibility rule above) and runs the eager fp32 softmax instead; never with a flash kernel."""
    if s.job.attention_kernel != "unfused":
        return np.zeros(len(c.tp), dtype=bool)
    seq = int(s.job.seq_len)
    heads_rank = np.maximum(s.model.heads // c.tp, 1)
    batches = c.mbs * heads_rank
    bad_len = not (16 < seq <= FUSED_SOFTMAX_MAX_KEYS and seq % 4 == 0)
    return np.asarray((batches % 4 != 0) | bad_len, dtype=bool)


def _unfused_attention_s(c: Candidates, s: TrainingSetup, tokens: FloatArray, window: float,
                         tp: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(forward, backward) seconds of attention with the score matrix materialised (no flash kernel).

    QK^T and AV run as batched GEMMs over the full (masked, not skipped) score matrix; only QK^T (forward)
    and dO V^T (backward) reduce over the head dimension and pay the small-K penalty, the other four reduce
    over the sequence; scale-mask-softmax and dropout stream the s^2 scores through HBM (Korthikanti et al.
    2022, Sec. 4.1: 9 bytes per score element forward, 11 backward, besides the GEMMs' own writes).
    """
    m = s.model
    q, _, v = attention_dims(m)
    heads = max(m.heads, 1)
    # forward, no causal skipping: QK^T reduces over the head dim, AV over the key length; backward:
    # dP = dO V^T reduces over the head dim, dV = P^T dO, dQ = dS K and dK = dS^T Q over the sequence
    qk = 2.0 * tokens * window * q / tp
    av = 2.0 * tokens * window * v / tp
    peak16 = s.accel.peak_flops("bf16")
    t = s.eff.gemm_time_s
    long_k = np.full_like(tokens, window)
    qk_fwd = t(qk, peak16, "bf16", np.full_like(tokens, float(q // heads)))
    av_fwd = t(av, peak16, "bf16", long_k)
    dp = t(av, peak16, "bf16", np.full_like(tokens, float(v // heads)))
    gemm_fwd = qk_fwd + av_fwd
    gemm_bwd = dp + av_fwd + 2.0 * t(qk, peak16, "bf16", long_k)
    scores = tokens * window * (m.heads / tp)  # elements of the score matrix on this device
    stream = scores / (s.accel.hbm_bw_bytes_per_s * s.eff.hbm)
    fallback = softmax_fallback(c, s)
    fwd_bytes = np.where(fallback, UNFUSED_SCORE_BYTES_FWD + SOFTMAX_FALLBACK_BYTES_FWD, UNFUSED_SCORE_BYTES_FWD)
    bwd_bytes = np.where(fallback, UNFUSED_SCORE_BYTES_BWD + SOFTMAX_FALLBACK_BYTES_BWD, UNFUSED_SCORE_BYTES_BWD)
    return np.asarray(gemm_fwd + fwd_bytes * stream), np.asarray(gemm_bwd + bwd_bytes * stream)


def _layer_shapes(c: Candidates) -> tuple[Candidates, IntArray] | None:
    """The distinct (tp, cp, ep, mbs, sp, overlaps) rows of ``c`` (one row each) and each row's index into
    them, or None when there are too many for sharing to save work.

    A layer's time does not depend on pp, dp, vpp, ZeRO or recomputation, so a block of a million
    candidates holds only a few hundred distinct layer shapes. The search emits a layout's knob rows
    together: (tp, cp, ep) come in runs, and the knob part is a small integer, so the shapes are found by
    a table of (run shape, knob) codes instead of sorting every row; other inputs are sorted.
    """
    n = len(c)
    if n < 4:
        return None
    change = np.empty(n, dtype=np.bool_)
    change[0] = True
    np.not_equal(c.tp[1:], c.tp[:-1], out=change[1:])
    change[1:] |= c.cp[1:] != c.cp[:-1]
    change[1:] |= c.ep[1:] != c.ep[:-1]
    starts = np.flatnonzero(change)
    mbs_radix = int(c.mbs.max()) + 1
    if 4 * len(starts) <= n and int(c.mbs.min()) >= 0 and 8 * mbs_radix * len(starts) <= 4 * n:
        trip = np.stack((c.tp[starts], c.cp[starts], c.ep[starts]), axis=1)
        shapes, shape_of_run = np.unique(trip, axis=0, return_inverse=True)
        radix = 8 * mbs_radix
        knob = ((c.mbs * 2 + c.sp) * 2 + c.tp_overlap) * 2 + c.ep_overlap
        code = shape_of_run.reshape(-1)[np.cumsum(change) - 1] * radix + knob
        present = np.zeros(len(shapes) * radix, dtype=np.bool_)
        present[code] = True
        codes = np.flatnonzero(present)
        if 4 * len(codes) > n:
            return None
        inverse = (np.cumsum(present) - 1)[code]
        lay, k = codes // radix, codes % radix
        tp, cp, ep, mbs = shapes[lay, 0], shapes[lay, 1], shapes[lay, 2], k >> 3
        sp, tp_ov, ep_ov = (k >> 2) & 1, (k >> 1) & 1, k & 1
    else:
        cols = [np.asarray(x, dtype=np.int64) for x in (c.tp, c.cp, c.ep, c.mbs, c.sp, c.tp_overlap, c.ep_overlap)]
        radixes = [int(x.max()) + 1 for x in cols]
        if float(np.prod(np.array(radixes, dtype=np.float64))) >= 2.0**62:
            return None
        code = np.zeros(n, dtype=np.int64)
        for x, r in zip(cols, radixes, strict=True):  # one integer per distinct layer shape (mixed radix)
            code = code * r + x
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
        if 4 * len(first) > n:
            return None
        tp, cp, ep, mbs, sp, tp_ov, ep_ov = (x[first] for x in cols)
    one = np.ones(len(tp), dtype=np.int64)
    u = Candidates(
        tp=np.asarray(tp, dtype=np.int64), pp=one, dp=one, cp=np.asarray(cp, dtype=np.int64),
        ep=np.asarray(ep, dtype=np.int64), mbs=np.asarray(mbs, dtype=np.int64), vpp=one, recompute=0 * one,
        recompute_frac=one.astype(np.float64), zero=0 * one, sp=sp.astype(np.bool_),
        tp_overlap=tp_ov.astype(np.bool_), ep_overlap=ep_ov.astype(np.bool_),
    )
    return u, np.asarray(inverse, dtype=np.int64).reshape(-1)


def _head_times(c: Candidates, s: TrainingSetup) -> FloatArray:
    """LM head + loss forward and backward per micro-batch (on the last stage)."""
    tp = c.tp.astype(np.float64)
    tokens = c.mbs * float(s.job.seq_len) / c.cp
    head = [Gemm("lm_head", s.model.vocab, s.model.hidden, "col")]
    f, b = _gemm_times(head, tokens, tp, s)
    softmax = 3.0 * tokens * s.model.vocab / tp * 4.0 / (s.accel.hbm_bw_bytes_per_s * s.eff.hbm)
    return np.asarray(f + b + softmax)


@dataclass(frozen=True, slots=True)
class LayerCosts:
    """Seconds per average layer and per micro-batch on one device (compute scaled by the group constant)."""

    kernel_fwd: FloatArray
    kernel_bwd: FloatArray
    recompute: FloatArray
    tp_comm: FloatArray
    cp_comm: FloatArray
    ep_comm: FloatArray
    mem_fwd: FloatArray  # memory-bound share of kernel_fwd
    head: FloatArray  # LM head and loss, forward and backward (last stage)
    mtp: FloatArray  # multi-token-prediction modules (last stage)

    @property
    def layer_total(self) -> FloatArray:
        return np.asarray(self.kernel_fwd + self.kernel_bwd + self.recompute + self.tp_comm + self.cp_comm
                          + self.ep_comm)


def kernels_per_layer_fwd(c: Candidates, s: TrainingSetup) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(kernels of one layer's forward pass, of which the attention core, of which the eager softmax fallback's
    extra ones: ``softmax_fallback``), counted from its structure.

    Megatron-style layer: 2 norms, 4 weight GEMMs (QKV, output, MLP up, MLP down; gate and up fused),
    3 fused elementwise kernels (bias-dropout-add twice, bias-activation); attention 1 kernel when fused
    (flash), 5 unfused (baddbmm QK^T, fused scale-mask-softmax, dropout, bmm AV, one permute-contiguous
    copy of the context; Q, K and V enter the batched GEMMs as strided views, no copy: Megatron-LM's
    ``CoreAttention``, mirrored op for op by vTrain's profiled layer, src/model/gpt_modeling.py); TP adds 2 all-reduces
    (4 all-gather/reduce-scatter with SP); an MoE layer adds router, top-k, permute, unpermute and a
    grouped GEMM pair. Backward issues about twice the forward's compute kernels (activation and weight
    grads) and its own TP collectives (``tp_collectives_per_layer``).
    """
    m = s.model
    fallback = np.where(softmax_fallback(c, s), SOFTMAX_FALLBACK_KERNELS, 0.0)
    attn = (UNFUSED_ATTENTION_KERNELS if s.job.attention_kernel == "unfused" else 1.0) + fallback
    base = 9.0
    if m.moe is not None:
        base += (1.0 - m.n_dense_layers / m.layers) * 6.0
    tp_kernels = tp_collectives_per_layer(c)[0]
    return (np.asarray(base + attn + tp_kernels, dtype=np.float64), np.asarray(attn, dtype=np.float64),
            np.asarray(fallback, dtype=np.float64))


def tp_collectives_per_layer(c: Candidates) -> tuple[FloatArray, FloatArray]:
    """(forward, backward) TP collectives of one layer, Megatron's conjugate f/g operators (Shoeybi et al.
    2019, Sec. 3): forward all-reduces after the two row-parallel GEMMs (g), backward all-reduces before the
    two column-parallel GEMMs (f; g's backward is the identity): 2 and 2. With sequence parallelism
    (Korthikanti et al. 2022, Sec. 4.2.2): forward 2 all-gathers + 2 reduce-scatters, backward their 4
    conjugates plus the all-gather of each column-parallel input again for its weight gradient: 4 and 6."""
    on = c.tp > 1
    return (np.where(on, np.where(c.sp, 4.0, 2.0), 0.0).astype(np.float64),
            np.where(on, np.where(c.sp, 6.0, 2.0), 0.0).astype(np.float64))


def param_tensors_per_layer(s: TrainingSetup) -> float:
    """Parameter tensors of one layer, each accumulating its gradient once per backward pass: two norms
    (weight, and bias for LayerNorm), four weight matrices (gate and up fused) and their biases when the
    model has them; an MoE layer adds the router and each local expert's matrices (all experts, ep=1)."""
    m = s.model
    per_norm = 2.0 if m.norm == "layernorm" else 1.0
    dense = 2.0 * per_norm + 4.0 * (2.0 if m.linear_bias else 1.0)
    if m.moe is None:
        return dense
    moe_share = 1.0 - m.n_dense_layers / m.layers
    return dense + moe_share * (1.0 + 2.0 * m.moe.experts - 2.0)


def _shape_costs(c: Candidates, s: TrainingSetup) -> tuple[FloatArray, ...]:
    """The per-layer costs that depend on the layer shape alone (tp, cp, ep, mbs, sp, overlaps): kernel
    forward and backward, TP, CP and EP traffic, memory-bound share, LM head, MTP, and the selective
    recompute term (the attention core again; full recompute is priced on the rows by ``_costs``)."""
    m = s.model
    scale = s.constants.compute_scale
    dense_share = m.n_dense_layers / m.layers
    lt = _layer_times(c, s, False).scaled(dense_share) if m.n_dense_layers else None
    if m.n_moe_layers:
        moe = _layer_times(c, s, True).scaled(1.0 - dense_share)
        lt = moe if lt is None else lt + moe
    assert lt is not None
    kernel_fwd = (lt.gemm_fwd + lt.attn_fwd + lt.mem_fwd) * scale
    kernel_bwd = (lt.gemm_bwd + lt.attn_bwd + 2.0 * lt.mem_fwd) * scale
    # host floor: a pass cannot finish before the host has issued its kernels (eager frameworks);
    # the excess of kernels x host time over the GPU time (kernels + their TP traffic) is exposed
    n_fwd, n_attn, fb = kernels_per_layer_fwd(c, s)
    tp_fwd, tp_bwd = tp_collectives_per_layer(c)
    # backward: two kernels per forward compute kernel (activation and weight grads), the TP collectives
    # of the conjugate operators, and one gradient accumulation per parameter tensor; the eager softmax
    # fallback's elementwise ops (fb) have one autograd kernel each
    n_bwd = 2.0 * (n_fwd - tp_fwd - fb) + fb + tp_bwd + param_tensors_per_layer(s)
    host = s.job.host_s_per_kernel
    kernel_fwd = kernel_fwd + np.maximum(n_fwd * host - kernel_fwd - 0.5 * lt.tp_comm, 0.0)
    kernel_bwd = kernel_bwd + np.maximum(n_bwd * host - kernel_bwd - 0.5 * lt.tp_comm, 0.0)
    # recompute: full re-runs the layer forward (with its TP traffic) for a share of layers;
    # selective re-runs the attention core only (Korthikanti et al. 2022, Sec. 5)
    attn_again = np.maximum(lt.attn_fwd * scale, n_attn * host)
    return (np.asarray(kernel_fwd), np.asarray(kernel_bwd), lt.tp_comm, lt.cp_comm, lt.ep_comm,
            np.asarray(lt.mem_fwd * scale), np.asarray(_head_times(c, s) * scale),
            np.asarray(m.mtp_modules * (kernel_fwd + kernel_bwd)), np.asarray(attn_again))


def _pp_shape_terms(c: Candidates, s: TrainingSetup) -> tuple[FloatArray, FloatArray]:
    """Pipeline p2p terms of the layer shape: (bytes each rank sends, the TP all-gather on the next stage).

    Megatron's scatter-gather sends 1/tp of the activation per rank and all-gathers it on the next stage
    inside its TP group (Narayanan et al. 2021, Sec. 4.1); with SP the shard is already 1/tp."""
    act = c.mbs * float(s.job.seq_len) / c.cp * s.model.hidden * ACT_BYTES
    gather = np.where(c.sp, 0.0, s.network.all_gather_s(act, c.tp, np.ones_like(c.tp)))
    return np.asarray(act / c.tp), np.asarray(gather)


def _costs(c: Candidates, s: TrainingSetup, pipeline: bool, full_frac: FloatArray | None = None
           ) -> tuple[LayerCosts, tuple[FloatArray, FloatArray, IntArray | None] | None]:
    """``layer_costs`` and, with ``pipeline``, the ``_pp_shape_terms`` (p2p bytes per distinct shape, the
    TP all-gather per row, each row's shape index; p2p bytes per row and no index when shapes are not
    shared), from one pass over the layer shapes."""
    shapes = _layer_shapes(c)
    x, inverse = (c, None) if shapes is None else shapes
    kernel_fwd, kernel_bwd, tp_comm, cp_comm, ep_comm, mem_fwd, head, mtp, attn_again = _shape_costs(x, s)
    pp_terms = _pp_shape_terms(x, s) if pipeline else None

    def spread(v: FloatArray) -> FloatArray:  # a column of the shapes at the rows (all +0.0: one zero column)
        if inverse is None:
            return v
        if not v.any() and not np.signbit(v).any():
            return np.zeros(len(c))
        return np.asarray(v[inverse])

    kernel_fwd, kernel_bwd, tp_comm, attn_again = (spread(v) for v in (kernel_fwd, kernel_bwd, tp_comm, attn_again))
    full_again = kernel_fwd + 0.5 * tp_comm  # full recompute: the layer forward with its TP traffic, on the rows
    if full_frac is None:
        full_frac = np.where(c.recompute == 2, c.recompute_frac, 0.0)
    recomp = full_frac * full_again + np.where(c.recompute == 1, attn_again, 0.0)
    lc = LayerCosts(
        kernel_fwd=kernel_fwd, kernel_bwd=kernel_bwd, recompute=np.asarray(recomp), tp_comm=tp_comm,
        cp_comm=spread(cp_comm), ep_comm=spread(ep_comm), mem_fwd=spread(mem_fwd), head=spread(head),
        mtp=spread(mtp),
    )
    if pp_terms is None:
        return lc, None
    return lc, (pp_terms[0], spread(pp_terms[1]), inverse)


def layer_costs(c: Candidates, s: TrainingSetup) -> LayerCosts:
    """Per-layer, per-micro-batch costs of every plan (dense and MoE layers averaged by their share).

    The terms of the layer shape are computed once per distinct shape and gathered back to the rows
    (elementwise the same arithmetic); only recomputation depends on the plan's recompute knobs."""
    return _costs(c, s, False)[0]


_CROSSES = np.array([[False, True]])  # the two columns of a per-shape p2p table: inside a domain, across


def training_step(c: Candidates, s: TrainingSetup, memory: MemoryColumns | None = None) -> StepColumns:
    """Step time and breakdown of every plan in ``c``; ``memory``: their ``training_memory`` when already
    computed (the search prices memory first to drop the plans that do not fit)."""
    m = s.model
    pp = c.pp.astype(np.float64)
    n_micro = (s.job.global_batch / (c.dp * c.mbs)).astype(np.float64)
    # the slowest stage sets the pace: ceil(layers/pp) when pp does not divide the layers
    layers_stage = np.ceil(m.layers / pp - 1e-9)
    full_frac = np.where(c.recompute == 2, c.recompute_frac, 0.0)
    lc, pp_terms = _costs(c, s, True, full_frac)
    assert pp_terms is not None
    p2p_bytes, gather, shape_of_row = pp_terms
    kernel_fwd, kernel_bwd, recomp_layer, head, mtp = lc.kernel_fwd, lc.kernel_bwd, lc.recompute, lc.head, lc.mtp
    runs = _layout_runs(c, layers_stage)  # terms of the layout and rank order: once per run of rows

    layer_total = kernel_fwd + kernel_bwd
    stage_compute = layers_stage * layer_total + head + mtp  # per micro-batch, last stage
    stage_recompute = layers_stage * recomp_layer
    stage_tp = layers_stage * lc.tp_comm
    stage_cp = layers_stage * lc.cp_comm
    stage_ep = layers_stage * lc.ep_comm
    # pipeline p2p: activations forward and gradients backward at each of the vpp chunk boundaries
    # (bytes per rank and the next stage's TP all-gather: ``_pp_shape_terms``)
    if runs is None:
        crosses = s.network.spans_scaleout(c.pp, c.pp_stride)
    else:
        red, _, idx = runs
        crosses = s.network.spans_scaleout(red.pp, red.pp_stride)[idx]
    if shape_of_row is None:
        p2p = s.network.p2p_s(p2p_bytes, crosses)
    else:  # per distinct shape, inside and across domains, read by each row's shape and crossing
        p2p = s.network.p2p_s(p2p_bytes[:, None], _CROSSES).reshape(-1)[shape_of_row * 2 + crosses]
    stage_pp = np.where(c.pp > 1, 2.0 * c.vpp * (p2p + gather), 0.0)

    stage_total = stage_compute + stage_recompute + stage_tp + stage_cp + stage_ep + stage_pp
    # 1F1B with unequal stages: the steady state runs at the slowest (last) stage's pace, n_micro of its stage
    # times; the warm-up and cool-down add the other pp-1 stages' passes of one micro-batch (/vpp interleaved),
    # so the bubble holds pp-1 body-stage times (the layers alone), not the last stage's LM head and loss (and
    # MTP) pp-1 times over. DeepSpeed's PipelineEngine instead runs 2(m+pp-1) lock-step instruction steps,
    # each closed by blocking p2p with the neighbours (deepspeed/runtime/pipe/schedule.py TrainSchedule), so
    # every slot, bubble included, lasts as long as the slowest stage's. The p2p of those slots is counted above.
    last_only = 0.0 if s.job.pipeline_lockstep else head + mtp
    bubble = np.where(c.pp > 1, (pp - 1.0) / c.vpp * (stage_total - stage_pp - last_only), 0.0)

    dp_exposed = _dp_exposed(c, s, layers_stage, kernel_bwd, layer_total, n_micro, runs)
    optimizer = _optimizer(c, s, layers_stage, runs)
    if s.job.lora_rank is not None:  # adapters only: their gradients and optimiser step are negligible
        dp_exposed = np.zeros_like(dp_exposed)
        optimizer = np.zeros_like(optimizer)
    return StepColumns(
        compute_s=np.asarray(n_micro * stage_compute),
        recompute_s=np.asarray(n_micro * stage_recompute),
        tp_comm_s=np.asarray(n_micro * stage_tp),
        cp_comm_s=np.asarray(n_micro * stage_cp),
        ep_comm_s=np.asarray(n_micro * stage_ep),
        pp_comm_s=np.asarray(n_micro * stage_pp),
        bubble_s=np.asarray(bubble),
        dp_comm_s=dp_exposed,
        optimizer_s=optimizer,
        memory=training_memory(c, s) if memory is None else memory,
        n_micro=n_micro,
        membound_s=np.asarray(n_micro * layers_stage * (3.0 + full_frac) * lc.mem_fwd),
        head_s=np.asarray(n_micro * (head + mtp)),
    )


def _stage_params(c: Candidates, s: TrainingSetup, layers_stage: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(dense, expert) parameters held per device on the critical stage."""
    m, pc = s.model, s.params
    tp = c.tp.astype(np.float64)
    dense_share = m.n_dense_layers / m.layers
    dense = layers_stage * (dense_share * pc.dense_layer + (1 - dense_share) * pc.moe_layer_local) / tp
    dense = dense + np.where(c.pp > 1, pc.lm_head, pc.lm_head + pc.embedding) / tp
    experts = layers_stage * (1 - dense_share) * pc.moe_layer_experts / (c.ep * tp)
    return np.asarray(dense), np.asarray(experts)


def _layout_runs(c: Candidates, layers_stage: FloatArray) -> tuple[Candidates, FloatArray, IntArray] | None:
    """The distinct parallel layouts of ``c`` as runs of consecutive rows (the search emits a layout's knob
    rows together): (one row per run and rank order, first all runs with the data-parallel group outside the
    pipeline then all with it inside; their ``layers_stage``; each row's index into them), or None when
    runs would not save work. Terms that depend only on the layout and rank order are computed once per
    run and gathered back, elementwise the same arithmetic as on every row."""
    n = len(c)
    if n < 2:
        return None
    change = np.zeros(n, dtype=np.bool_)
    change[0] = True
    for col in (c.tp, c.pp, c.dp, c.cp, c.ep, layers_stage):
        change[1:] |= col[1:] != col[:-1]
    starts = np.flatnonzero(change)
    runs = len(starts)
    if 2 * runs >= n:
        return None
    run_of_row = np.cumsum(change) - 1
    idx = np.asarray(run_of_row + runs * c.pipeline_inner.astype(np.int64), dtype=np.int64)
    two = np.concatenate((starts, starts))
    inner = np.zeros(2 * runs, dtype=np.bool_)
    inner[runs:] = True
    red = Candidates(tp=c.tp[two], pp=c.pp[two], dp=c.dp[two], cp=c.cp[two], ep=c.ep[two], mbs=c.mbs[two],
                     vpp=c.vpp[two], recompute=c.recompute[two], recompute_frac=c.recompute_frac[two],
                     zero=c.zero[two], sp=c.sp[two], tp_overlap=c.tp_overlap[two], ep_overlap=c.ep_overlap[two],
                     pp_inner=inner)
    return red, np.asarray(layers_stage[two], dtype=np.float64), idx


def _dp_collectives(c: Candidates, s: TrainingSetup, layers_stage: FloatArray) -> tuple[FloatArray, ...]:
    """Per plan: gradient all-gather and all-reduce of the dense and expert parameters, the post-step
    parameter gather (half-exposed) and the ZeRO-3 per-micro-batch gather of one pass."""
    dense, experts = _stage_params(c, s, layers_stage)
    net = s.network
    dps = c.dp * c.cp // s.sites  # the data-parallel group inside one site
    edp = np.maximum(dps // c.ep, 1)
    stride = c.dp_stride
    gb = GRAD_BYTES_BY_DTYPE[s.job.grad_dtype]
    ag16_dense = net.all_gather_s(dense * 2.0, dps, stride)
    return (net.all_gather_s(dense * gb, dps, stride), net.all_reduce_s(dense * gb, dps, stride),
            net.all_gather_s(experts * gb, edp, stride * c.ep), net.all_reduce_s(experts * gb, edp, stride * c.ep),
            0.5 * (ag16_dense + net.all_gather_s(experts * 2.0, edp, stride * c.ep)),
            ag16_dense + net.all_gather_s(experts * 2.0, edp, stride))


def _dp_exposed_s(c: Candidates, s: TrainingSetup, layers_stage: FloatArray, bwd_layer: FloatArray,
                  layer_total: FloatArray, n_micro: FloatArray) -> FloatArray:
    """Exposed data-parallel traffic per step: gradient reduction (and ZeRO-3 parameter gathers)."""
    return _dp_exposed(c, s, layers_stage, bwd_layer, layer_total, n_micro, _layout_runs(c, layers_stage))


_ZERO1 = np.array([[False, True]])  # the two columns of a per-run table: without and with ZeRO >= 1


def _by_zero1(c: Candidates, runs: tuple[Candidates, FloatArray, IntArray] | None) -> IntArray | None:
    """Each row's cell in a (run, ZeRO >= 1) table, flattened; None without runs."""
    return None if runs is None else np.asarray(runs[2] * 2 + (c.zero >= 1), dtype=np.int64)


def _dp_exposed(c: Candidates, s: TrainingSetup, layers_stage: FloatArray, bwd_layer: FloatArray,
                layer_total: FloatArray, n_micro: FloatArray,
                runs: tuple[Candidates, FloatArray, IntArray] | None) -> FloatArray:
    if runs is None:
        ag_dense, ar_dense, ag_exp, ar_exp, gather16, z3_pass = _dp_collectives(c, s, layers_stage)
        zero1 = c.zero >= 1
        inter = _inter_site_s(c, s)
    else:  # once per layout and rank order, for both ZeRO >= 1 cases, read back by the rows
        red, ls_red, idx = runs
        ag_dense, ar_dense, ag_exp, ar_exp, gather16, z3_run = (v[:, None] for v in _dp_collectives(red, s, ls_red))
        zero1 = _ZERO1
        inter = _inter_site_s(red, s)[:, None]
        z3_pass = z3_run[idx, 0]
    grad_dense = np.where(zero1, ag_dense, ar_dense)
    grad_exp = np.where(zero1, ag_exp, ar_exp)
    # distributed optimiser: updated 16-bit parameters all-gathered after the step (overlapped with
    # the next forward in current Megatron-LM, counted half-exposed here)
    gather = np.where(zero1, gather16, 0.0)
    grads = grad_dense + grad_exp + inter
    cell = _by_zero1(c, runs)
    if cell is not None:
        grads, gather = grads.reshape(-1)[cell], gather.reshape(-1)[cell]
    # gradients of a stage are ready chunk by chunk during the cool-down of 1F1B, whose backward
    # passes (up to pp of them) hide the bucketed reduction
    window = layers_stage * bwd_layer * np.minimum(n_micro, c.pp)
    # without overlap (Megatron-DeepSpeed of 2023: one reduction after the last backward) all of it is exposed
    exposed = (np.maximum(grads - window, 0.05 * grads) if s.job.dp_overlap else grads) + gather
    # ZeRO-3: parameters gathered for forward and backward of every micro-batch, hidden behind compute
    z3 = n_micro * 2.0 * z3_pass
    z3_exposed = np.maximum(z3 - n_micro * layers_stage * layer_total, 0.05 * z3)
    return np.asarray(np.where(c.zero >= 3, exposed + z3_exposed, exposed), dtype=np.float64)


def _inter_site_s(c: Candidates, s: TrainingSetup) -> FloatArray:
    """Hierarchical all-reduce across sites: after the in-site reduce-scatter, each site's full gradient
    (one model replica, fp32) crosses the site link as a ring all-reduce among the sites."""
    if s.sites <= 1 or s.site_link is None:
        return np.zeros(len(c))
    pc, m = s.params, s.model
    grad_bytes = 4.0 * (pc.total(m) - pc.embedding * int(m.tied_embeddings))
    n = float(s.sites)
    t = 2.0 * (n - 1.0) / n * grad_bytes / s.site_link.bw_bytes_per_s + 2.0 * (n - 1.0) * s.site_link.rtt_ms * 1e-3
    return np.full(len(c), t)


def _optimizer_s(c: Candidates, s: TrainingSetup, layers_stage: FloatArray) -> FloatArray:
    """Adam step: reads grads, master weights and moments, writes them and the 16-bit weights."""
    return _optimizer(c, s, layers_stage, None)


def _optimizer(c: Candidates, s: TrainingSetup, layers_stage: FloatArray,
               runs: tuple[Candidates, FloatArray, IntArray] | None) -> FloatArray:
    """``_optimizer_s``, with ``runs`` once per layout run for both ZeRO >= 1 cases, read back by the rows."""
    if runs is None:
        lay, ls, zero1 = c, layers_stage, c.zero >= 1
    else:
        lay, ls, zero1 = runs[0], runs[1], _ZERO1
    dense, experts = _stage_params(lay, s, ls)
    dps = (lay.dp * lay.cp).astype(np.float64)
    edp = np.maximum(dps / lay.ep, 1.0)
    if runs is not None:
        dense, experts, dps, edp = dense[:, None], experts[:, None], dps[:, None], edp[:, None]
    params = np.where(zero1, dense / dps + experts / edp, dense + experts)
    bytes_ = params * 30.0
    out = np.asarray(bytes_ / (s.accel.hbm_bw_bytes_per_s * s.eff.hbm))
    cell = _by_zero1(c, runs)
    return out if cell is None else np.asarray(out.reshape(-1)[cell])

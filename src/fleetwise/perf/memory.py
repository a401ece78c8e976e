"""Memory per device of a training plan: weights, gradients, optimiser states, activations, buffers.

Entry point: ``training_memory(c, setup)`` returns ``MemoryColumns``. Activation sizes follow
Korthikanti et al. 2022 ("Reducing Activation Recomputation", Sec. 4 and Table 2), generalised to
GQA/MLA attention, gated MLPs and MoE, with flash attention (no s² score matrix kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from fleetwise.perf.candidates import Candidates
from fleetwise.perf.model_math import attention_dims, lora_params_per_layer

if TYPE_CHECKING:
    from fleetwise.perf.setup import TrainingSetup

FloatArray = npt.NDArray[np.float64]

# Bytes per parameter (mixed precision with Adam; Rajbhandari et al. 2020, Sec. 3.1): 16-bit weights,
# the gradient buffer backward accumulates into and the data-parallel reduction moves, in the job's
# grad_dtype (fp32: Megatron's main_grad; fp16/bf16: DeepSpeed's fp16 engine keeps param.grad in the
# 16-bit dtype), fp32 master weights + two Adam moments.
WEIGHT_BYTES = 2.0
GRAD_BYTES_BY_DTYPE = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
GRAD_BYTES = GRAD_BYTES_BY_DTYPE["fp32"]  # LoRA adapters' gradients
OPTIMIZER_BYTES = 12.0
# Framework reserve: CUDA/CANN context, communicator buffers, workspace, allocator fragmentation.
RESERVED_BYTES = 3.0e9
USABLE_FRACTION = 0.95


@dataclass(frozen=True, slots=True)
class MemoryColumns:
    """Bytes per device, by component (the most loaded pipeline stage)."""

    weights: FloatArray
    gradients: FloatArray
    optimizer: FloatArray
    activations: FloatArray
    logits: FloatArray
    reserved: FloatArray
    capacity: float

    @property
    def total(self) -> FloatArray:
        return np.asarray(
            self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.reserved
        )

    @property
    def fits(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.total <= self.capacity * USABLE_FRACTION)

    def take(self, index: npt.NDArray[np.int64]) -> MemoryColumns:
        """The rows ``index`` (as ``Candidates.take``)."""
        return MemoryColumns(self.weights[index], self.gradients[index], self.optimizer[index],
                             self.activations[index], self.logits[index], self.reserved[index], self.capacity)

    def at(self, shape: tuple[int, ...], lead: npt.NDArray[np.int64], cell: npt.NDArray[np.int64]) -> MemoryColumns:
        """Columns computed on a grid of plans (arrays that broadcast to ``shape``), read at the positions
        (``lead``, ``cell``): an index on the first axis and a C-order index over the other axes; one row
        per position. Each column is read where it lies (a column on fewer axes is not spread out first)."""
        index: dict[tuple[int, ...], npt.NDArray[np.int64]] = {}

        def read(x: FloatArray) -> FloatArray:
            dims = np.shape(x)
            if len(dims) != len(shape):
                x = np.broadcast_to(x, shape)
                dims = shape
            if dims not in index:  # where each grid cell of the other axes lies in x, then the first axis
                inner = int(np.prod(dims[1:]))
                offsets = np.broadcast_to(np.arange(inner).reshape(dims[1:]), shape[1:]).reshape(-1)
                index[dims] = offsets[cell] + lead * inner if dims[0] > 1 else offsets[cell]
            return np.asarray(np.ascontiguousarray(x).reshape(-1)[index[dims]])

        return MemoryColumns(read(self.weights), read(self.gradients), read(self.optimizer), read(self.activations),
                             read(self.logits), read(self.reserved), self.capacity)


def _states_bytes(params: FloatArray, shard: FloatArray, zero: npt.NDArray[np.int64],
                  grad_bytes: float) -> tuple[FloatArray, ...]:
    """(weights, grads, optimiser) bytes of ``params`` per device under ZeRO ``zero`` sharded ``shard`` ways."""
    w, g, o = WEIGHT_BYTES * params, grad_bytes * params, OPTIMIZER_BYTES * params  # each product once
    w = np.where(zero >= 3, w / shard, w)
    g = np.where(zero >= 2, g / shard, g)
    o = np.where(zero >= 1, o / shard, o)
    return np.asarray(w), np.asarray(g), np.asarray(o)


def activation_bytes_per_token(c: Candidates, s: TrainingSetup, moe_layer: bool) -> FloatArray:
    """Activation bytes kept per token for one layer, with no recomputation (16-bit activations)."""
    m = s.model
    tp = c.tp.astype(np.float64)
    q, k, v = attention_dims(m)
    h = float(m.hidden)
    # kept outside the TP region unless sequence parallelism shards it: the two norm inputs, the
    # attention and MLP inputs, and dropout masks (Korthikanti Table 2: the "10sbh" term)
    outside = 4 * h + 2 * h + 2 * h + 2 * h
    inside_attn = 2 * (q + k + v) + 2 * v + 4 * (q // max(m.heads, 1))  # q,k,v, attention out, softmax stats
    if moe_layer and m.moe is not None:
        mo = m.moe
        per_expert = (6 if m.gated_mlp else 4) * mo.moe_ffn_hidden
        inside_mlp = mo.top_k * (per_expert + 4 * h) + mo.shared_experts * per_expert + 4 * mo.experts
    else:
        f = float(m.ffn_hidden or 0)
        inside_mlp = (6 if m.gated_mlp else 4) * f
    out_sharded = np.where(c.sp, outside / tp, outside)
    per_token = out_sharded + (inside_attn + inside_mlp) / tp
    if s.job.attention_kernel == "unfused":
        # the materialised softmax output, its dropout mask and dropout output: 5·a·s bytes per token
        # (Korthikanti et al. 2022, Table 2); selective recomputation drops exactly these
        scores = 5.0 * m.heads * s.job.seq_len / tp
        per_token = per_token + np.where(c.recompute == 1, 0.0, scores)
    return np.asarray(per_token, dtype=np.float64)


def training_memory(c: Candidates, s: TrainingSetup, layers_stage: FloatArray | None = None) -> MemoryColumns:
    """Memory per device on the most loaded pipeline stage.

    The first stage holds the embedding and the most micro-batches in flight (1F1B: stage i holds pp - i,
    Narayanan et al. 2021, Sec. 2.2; interleaved: pp + (pp-1)/vpp, Korthikanti et al. 2022, Sec. 4.2.3); the
    last holds the LM head, the logits and their loss, and fewest micro-batches (one; (vpp-1)·pp + 1 chunks of
    1/vpp of its layers interleaved). Each is priced on its own and the larger one is the device's need; with
    pp = 1 the one stage holds all of them. ``layers_stage`` overrides the layers held per stage (uneven splits
    of mixed fleets). The columns of ``c`` may also be arrays that broadcast together (a grid of plans:
    layouts down one axis, knobs along others); each term is then computed on the axes it depends on, by the
    same elementwise arithmetic.
    """
    m, pc = s.model, s.params
    tp = c.tp.astype(np.float64)
    pp = c.pp.astype(np.float64)
    if layers_stage is None:
        layers_stage = np.ceil(m.layers / pp)  # the first stage holds a whole number of layers
    dense_frac = m.n_dense_layers / m.layers
    moe_frac = 1.0 - dense_frac
    # params per device: layers of the stage (TP-sharded), embedding on the first stage, head on the last
    layer_local = layers_stage * (dense_frac * pc.dense_layer + moe_frac * pc.moe_layer_local) / tp
    experts = layers_stage * moe_frac * pc.moe_layer_experts / (c.ep * tp)
    body = layer_local + (pc.mtp / tp) / pp
    emb, head = pc.embedding / tp, pc.lm_head / tp + pc.final_norm  # the final norm sits with the head
    multi = pp > 1
    shard_dense = (c.dp * c.cp).astype(np.float64)
    shard_expert = np.maximum(shard_dense / c.ep, 1.0)
    gbytes = GRAD_BYTES_BY_DTYPE[s.job.grad_dtype]
    we, ge, oe = _states_bytes(np.asarray(experts), shard_expert, c.zero, gbytes)

    if s.job.lora_rank is not None:
        # adapters beside every weight matrix of the stage's layers (model_math.lora_params_per_layer), sharded
        # with their base matrices: their own 16-bit weights, fp32 gradients and Adam states
        lora_dense, lora_experts = lora_params_per_layer(m, s.job.lora_rank)
        adapter_params = layers_stage * (lora_dense / tp + lora_experts / (c.ep * tp))
        aw, ag, ao = _states_bytes(np.asarray(adapter_params), shard_dense, c.zero, GRAD_BYTES)

    def states(dense_params: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(weights, gradients, optimiser) bytes of a stage holding ``dense_params`` besides its experts."""
        wd, gd, od = _states_bytes(dense_params, shard_dense, c.zero, gbytes)
        if s.job.lora_rank is None:
            return np.asarray(wd + we), np.asarray(gd + ge), np.asarray(od + oe)
        # LoRA: frozen base weights (fp8 when training in fp8) without gradients or optimiser states, and
        # the adapters with theirs
        wbytes = 1.0 if s.job.precision == "fp8" else WEIGHT_BYTES
        base = np.where(c.zero >= 3, (dense_params / shard_dense + experts / shard_expert),
                        dense_params + experts) * wbytes
        return np.asarray(base + aw), np.asarray(ag), np.asarray(ao)

    tokens_mb = (c.mbs * s.job.seq_len / c.cp).astype(np.float64)
    per_tok = dense_frac * activation_bytes_per_token(c, s, False)
    if m.moe is not None:
        per_tok = per_tok + moe_frac * activation_bytes_per_token(c, s, True)
    layer_input = np.where(c.sp, 2.0 * m.hidden / tp, 2.0 * m.hidden)
    frac = np.where(c.recompute == 2, c.recompute_frac, 0.0)
    per_layer = tokens_mb * ((1.0 - frac) * per_tok + frac * layer_input)
    n_micro = (s.job.global_batch / (c.dp * c.mbs)).astype(np.float64)
    interleaved = c.vpp > 1
    in_flight_first = np.minimum(pp, n_micro) * np.where(interleaved, 1.0 + (pp - 1.0) / (pp * c.vpp), 1.0)
    in_flight_last = np.minimum(n_micro, np.where(interleaved, ((c.vpp - 1.0) * pp + 1.0) / c.vpp, 1.0))
    working = np.where(frac > 0, tokens_mb * per_tok, 0.0)  # one layer fully materialised while it is recomputed
    layer_acts = per_layer * layers_stage
    # logits and their fp32 copy for the loss, on the last stage (the only one when pp=1)
    logits = tokens_mb * m.vocab / tp * 6.0
    # one value per row; on a grid of plans one value that broadcasts
    reserved = np.full(len(c) if c.tp.ndim == 1 else (1,) * c.tp.ndim, RESERVED_BYTES)

    w1, g1, o1 = states(np.asarray(body + emb + np.where(multi, 0.0, head)))
    a1 = layer_acts * in_flight_first + working
    l1 = np.where(multi, 0.0, logits)
    w2, g2, o2 = states(np.asarray(body + head))
    a2 = layer_acts * in_flight_last + working
    last = multi & (w2 + g2 + o2 + a2 + logits > w1 + g1 + o1 + a1 + l1)
    return MemoryColumns(
        weights=np.asarray(np.where(last, w2, w1)),
        gradients=np.asarray(np.where(last, g2, g1)),
        optimizer=np.asarray(np.where(last, o2, o1)),
        activations=np.asarray(np.where(last, a2, a1)),
        logits=np.asarray(np.where(last, logits, l1)),
        reserved=reserved,
        capacity=s.accel.hbm_bytes,
    )

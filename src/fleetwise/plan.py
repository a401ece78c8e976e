"""The plan object: one serialisable description of how a job runs, shared by every layer.

``TrainingPlan`` is what the search returns, ``explain`` prints, the simulator and emitters consume,
and users save as JSON. ``TrainingJob`` is the workload it runs.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetwise.catalog.types import Precision

Recompute = Literal["none", "selective", "full"]
RECOMPUTE: tuple[Recompute, ...] = ("none", "selective", "full")


class TrainingJob(BaseModel):
    """A training workload: sequence length, global batch, precision, optional total tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq_len: int = Field(ge=1, le=10_000_000)
    global_batch: int = Field(ge=1, le=100_000_000, description="sequences per optimiser step")
    precision: Precision = "bf16"
    tokens: float | None = Field(default=None, gt=0, description="tokens of the whole run")
    lora_rank: int | None = Field(
        default=None, ge=1, le=65536, description="LoRA fine-tuning: base weights frozen, adapters of this rank"
    )
    attention_kernel: Literal["flash", "unfused"] = Field(
        default="flash",
        description="flash: fused, O(s) memory, skips masked blocks; unfused: score matrix materialised "
        "(softmax, mask, dropout over s^2 elements), as in stacks without a flash kernel",
    )
    global_batch_basis: str = Field(
        default="given", max_length=200,
        description="how global_batch was chosen: 'given', or the default rule and its numbers",
    )

    host_s_per_kernel: float = Field(
        default=4e-6, ge=0.0, le=1e-3,
        description="host time to issue one kernel: ~3-5 us with CUDA graphs or a lean launcher, tens of us "
        "in eager PyTorch; a layer pass takes at least kernels x this (measured-efficiency notes, overheads)",
    )
    dp_overlap: bool = Field(default=True, description="data-parallel gradient reduction overlapped with backward")
    pipeline_lockstep: bool = Field(
        default=False,
        description="pipeline stages advance in lock-step instruction steps (DeepSpeed's PipelineEngine: blocking "
        "p2p at every step), so warm-up and cool-down run at the slowest stage's pace; false: Megatron-LM's 1F1B, "
        "where they wait only on their data")
    grad_dtype: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32", description="dtype of the gradient buffer backward accumulates into and the data-parallel "
        "reduction moves (fp32: Megatron main_grad; fp16/bf16: DeepSpeed fp16 engine)")
    moe_token_dispatcher: Literal["alltoall", "allgather"] = Field(
        default="alltoall", description="MoE token dispatch: all-to-all of each rank's tokens, or Megatron-core's "
        "all-gather dispatcher (every rank of the TP group permutes the group's gathered tokens)")
    tp_overlap_scope: Literal["layer", "per_gemm"] = Field(
        default="layer", description="with tp_comm_overlap: 'layer' hides TP collectives behind the layer's "
        "GEMMs; 'per_gemm' hides each only behind the GEMM it is fused with (MindSpeed MC2), and the MoE "
        "token dispatcher's collectives, outside the fused linears, stay exposed")

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.global_batch


DEFAULT_TOKENS_PER_STEP = 4 * 2**20  # ~4M tokens: GPT-3 175B used 3.2M, Llama 2/3 4M, Megatron-Turing 4M


def default_global_batch(seq_len: int, chips: int | None = None) -> tuple[int, str]:
    """The global batch a practitioner would pick: ~4M tokens per step, shaped to split over replicas.

    The batch is ``2^k · u`` sequences, where ``u`` is the odd part of the chip count (1 when unknown) and
    ``2^k`` brings it closest (in ratio) to 4M tokens, so every power-of-two data-parallel width and every
    width dividing the chip count's odd part divides it. It stays ~4M tokens however many chips there are
    (data parallelism is then bounded by the batch, as it is in practice).

    Args:
        seq_len: tokens per sequence.
        chips: accelerators of the job, if known.

    Returns:
        (sequences per step, a one-line account of how they were chosen).
    """
    target = DEFAULT_TOKENS_PER_STEP / seq_len  # sequences
    odd = chips or 1
    while odd % 2 == 0:
        odd //= 2
    if odd > 4 * target:  # a chip count with a large odd factor: round the target to whole sequences instead
        odd = 1
    k = max(0, round(math.log2(max(target / odd, 1.0))))
    gbs = max(1, 2**k * odd)
    why = (f"default: ~4M tokens per step ({gbs} x {seq_len} = {gbs * seq_len / 2**20:.2f}M tokens; "
           f"{gbs} = 2^{k}" + (f" x {odd}, the odd part of {chips} chips)" if odd > 1 else ")"))
    return gbs, why


class TrainingPlan(BaseModel):
    """One parallel configuration of a training job on ``tp·pp·dp·cp`` chips (ep lies inside dp)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: int = Field(default=1, ge=1, le=1_000_000)
    pp: int = Field(default=1, ge=1, le=1_000_000)
    dp: int = Field(default=1, ge=1, le=1_000_000)
    cp: int = Field(default=1, ge=1, le=1_000_000)
    ep: int = Field(default=1, ge=1, le=1_000_000)
    micro_batch: int = Field(default=1, ge=1, le=100_000_000)
    vpp: int = Field(default=1, ge=1, le=10_000, description="virtual pipeline stages per rank (interleaved 1F1B)")
    recompute: Recompute = "none"
    recompute_layers_frac: float = Field(
        default=1.0, gt=0.0, le=1.0, description="with full recompute: share of each stage's layers recomputed"
    )
    zero: int = Field(default=1, ge=0, le=3)
    sequence_parallel: bool = True
    tp_comm_overlap: bool = False
    ep_comm_overlap: bool = Field(
        default=False, description="MoE all-to-all overlapped with another micro-batch's compute (DualPipe-style)"
    )
    rank_order: Literal["tp-cp-dp-pp", "tp-cp-pp-dp"] = Field(
        default="tp-cp-dp-pp",
        description="how groups map onto consecutive ranks (innermost first): data parallelism inside the "
        "scale-up domain before pipeline stages (Megatron's default), or pipeline stages first",
    )

    @model_validator(mode="before")
    @classmethod
    def _sp_default(cls, data: object) -> object:
        """Sequence parallelism defaults to on exactly when there is tensor parallelism."""
        if isinstance(data, dict) and data.get("sequence_parallel") is None:
            tp = data.get("tp", 1)
            try:
                on = int(tp) > 1
            except (TypeError, ValueError, OverflowError):  # a bad tp: its own field check reports it
                on = False
            data = {**data, "sequence_parallel": on}
        return data

    @model_validator(mode="after")
    def _ep_in_dp(self) -> TrainingPlan:
        if (self.dp * self.cp) % self.ep:
            raise ValueError(f"ep ({self.ep}) must divide dp*cp ({self.dp * self.cp}): experts are sharded inside DP")
        return self

    @property
    def chips(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    def label(self) -> str:
        parts = [f"tp{self.tp}", f"pp{self.pp}", f"dp{self.dp}"]
        if self.cp > 1:
            parts.append(f"cp{self.cp}")
        if self.ep > 1:
            parts.append(f"ep{self.ep}")
        parts.append(f"mbs{self.micro_batch}")
        if self.vpp > 1:
            parts.append(f"vpp{self.vpp}")
        return " ".join(parts)


WeightPrecision = Literal["bf16", "fp16", "fp8", "int8", "int4", "fp4"]
KvPrecision = Literal["bf16", "fp16", "fp8", "int8", "int4"]


class ServingPlan(BaseModel):
    """One deployment of a model for serving: engines (replicas) of ``tp·pp·dp`` chips each.

    ``dp`` is attention data parallelism inside one engine (each rank batches its own requests; MoE
    experts are spread over ``ep`` of the engine's ranks). ``prefill_replicas > 0`` disaggregates:
    that many engines of the same shape only prefill and hand the KV cache to the ``replicas``
    decode engines (P:D = prefill_replicas:replicas).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    replicas: int = Field(default=1, ge=1, le=100_000)
    tp: int = Field(default=1, ge=1, le=1024)
    pp: int = Field(default=1, ge=1, le=1024)
    dp: int = Field(default=1, ge=1, le=100_000)
    ep: int = Field(default=1, ge=1, le=100_000)
    max_batch: int = Field(default=256, ge=1, le=1_000_000, description="concurrent sequences per attention rank")
    token_budget: int = Field(default=8192, ge=16, le=10_000_000, description="tokens per step (chunked prefill)")
    weight_precision: WeightPrecision = "bf16"
    kv_precision: KvPrecision = "bf16"
    prefill_replicas: int = Field(default=0, ge=0, le=100_000, description="0: prefill and decode co-located")

    @model_validator(mode="after")
    def _ep_in_engine(self) -> ServingPlan:
        if (self.tp * self.dp) % self.ep:
            raise ValueError(f"ep ({self.ep}) must divide tp*dp ({self.tp * self.dp}): experts live in one engine")
        return self

    @property
    def chips_per_replica(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def chips(self) -> int:
        return (self.replicas + self.prefill_replicas) * self.chips_per_replica

    @property
    def is_disaggregated(self) -> bool:
        return self.prefill_replicas > 0

    def label(self) -> str:
        parts = [f"{self.replicas}x", f"tp{self.tp}"]
        if self.pp > 1:
            parts.append(f"pp{self.pp}")
        if self.dp > 1:
            parts.append(f"dp{self.dp}")
        if self.ep > 1:
            parts.append(f"ep{self.ep}")
        parts += [f"b{self.max_batch}", f"tb{self.token_budget}", f"w{self.weight_precision}",
                  f"kv{self.kv_precision}"]
        if self.prefill_replicas:
            parts.append(f"P:D={self.prefill_replicas}:{self.replicas}")
        return " ".join(parts)

"""The plan object: one serialisable description of how a job runs, shared by every layer.

``TrainingPlan`` is what the search returns, ``explain`` prints, the simulator and emitters consume,
and users save as JSON. ``TrainingJob`` is the workload it runs.
"""

from __future__ import annotations

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

    @property
    def tokens_per_step(self) -> int:
        return self.seq_len * self.global_batch


class TrainingPlan(BaseModel):
    """One parallel configuration of a training job on ``tp·pp·dp·cp`` chips (ep lies inside dp)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tp: int = Field(default=1, ge=1)
    pp: int = Field(default=1, ge=1)
    dp: int = Field(default=1, ge=1)
    cp: int = Field(default=1, ge=1)
    ep: int = Field(default=1, ge=1)
    micro_batch: int = Field(default=1, ge=1)
    vpp: int = Field(default=1, ge=1, description="virtual pipeline stages per rank (interleaved 1F1B)")
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

"""Frozen, validated specs: Accelerator, Fabric, System, ModelArch.

YAML keys carry the friendly units of datasheets (``hbm_gb``, ``bf16`` TFLOP/s, ``gbps_bidir``);
properties give SI values (bytes, FLOP/s, bytes/s) to the cost models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fleetwise.units import GB, GBIT, TERA, US

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")


class Spec(BaseModel):
    """Base of all catalog specs: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class PeakTflops(Spec):
    """Dense peak throughput per precision, 1e12 FLOP/s (int8: TOPS). null = unsupported."""

    fp32: float | None = Field(default=None, gt=0)
    tf32: float | None = Field(default=None, gt=0)
    bf16: float | None = Field(default=None, gt=0)
    fp16: float | None = Field(default=None, gt=0)
    fp8: float | None = Field(default=None, gt=0)
    int8: float | None = Field(default=None, gt=0)
    fp4: float | None = Field(default=None, gt=0)


class Accelerator(Spec):
    """One accelerator chip (or one GPU of a superchip), as its datasheet gives it."""

    id: str
    vendor: str
    name: str
    year: int | None = Field(default=None, ge=2000, le=2100)
    form_factor: str | None = None
    peak_tflops: PeakTflops
    memory_type: str | None = None
    hbm_gb: float = Field(gt=0, le=10_000)
    hbm_tbps: float = Field(gt=0, le=100)
    sram_mb: float | None = Field(default=None, gt=0)
    scaleup_gbps_bidir: float | None = Field(default=None, ge=0, description="GB/s, both directions summed")
    scaleup_domain: int | None = Field(default=None, ge=1)
    scaleout_gbit_per_chip: float | None = Field(default=None, ge=0)
    tdp_w: float | None = Field(default=None, gt=0, le=5000)
    idle_w: float | None = Field(default=None, ge=0, le=5000)
    price_usd: float | None = Field(default=None, gt=0)
    confidence: Literal["high", "medium", "low"] = "medium"
    estimated_fields: tuple[str, ...] = ()
    notes: str | None = None
    sources: tuple[str, ...] = ()

    def peak_flops(self, precision: Precision) -> float:
        """Dense peak FLOP/s at ``precision``; falls back to the nearest wider format the chip runs.

        fp8 on a chip without fp8 runs at bf16/fp16 speed (as frameworks do: the GEMMs stay 16-bit).
        """
        order: dict[str, tuple[str, ...]] = {
            "fp4": ("fp4", "fp8", "bf16", "fp16"),
            "fp8": ("fp8", "bf16", "fp16"),
            "int8": ("int8", "fp8", "bf16", "fp16"),
            "bf16": ("bf16", "fp16"),
            "fp16": ("fp16", "bf16"),
            "tf32": ("tf32", "fp32"),
            "fp32": ("fp32",),
        }
        for p in order[precision]:
            v = getattr(self.peak_tflops, p)
            if v is not None:
                return float(v) * TERA
        raise ValueError(f"{self.id} publishes no peak throughput for {precision} or a wider format")

    def supports(self, precision: Precision) -> bool:
        """True when the chip has a native ``precision`` rate."""
        return getattr(self.peak_tflops, precision) is not None

    @property
    def hbm_bytes(self) -> float:
        return self.hbm_gb * GB

    @property
    def hbm_bw_bytes_per_s(self) -> float:
        return self.hbm_tbps * 1e12


TopologyKind = Literal["switched", "full_mesh", "torus", "clos"]


class Tier(Spec):
    """One network tier a system's chips talk over."""

    fabric_id: str | None = None
    topology: TopologyKind = "switched"
    gbps_bidir_per_chip: float = Field(gt=0, description="GB/s per chip, both directions summed")
    per_pair_gbps_bidir: float | None = Field(
        default=None, gt=0, description="full mesh: GB/s of the single link between two chips"
    )
    latency_us: float = Field(default=2.0, gt=0, le=1e5)
    oversubscription: float = Field(default=1.0, ge=1.0, le=64.0)

    @property
    def bw_bytes_per_s(self) -> float:
        """Unidirectional bytes/s per chip."""
        return self.gbps_bidir_per_chip * GB / 2.0

    @property
    def latency_s(self) -> float:
        return self.latency_us * US


class System(Spec):
    """A node type and its scale-up domain and scale-out network."""

    id: str
    vendor: str
    name: str
    accelerator_id: str
    chips_per_node: int = Field(ge=1, le=100_000)
    domain_size: int = Field(ge=1, le=100_000)
    scaleup: Tier
    scaleout_gbit_per_node: float | None = Field(default=None, gt=0)
    scaleout_fabric_id: str | None = None
    scaleout_latency_us: float = Field(default=3.0, gt=0, le=1e5)
    scaleout_oversubscription: float = Field(default=1.0, ge=1.0, le=64.0)
    nics_per_node: int | None = Field(default=None, ge=0)
    node_power_w: float | None = Field(default=None, gt=0)
    pue: float | None = Field(default=None, ge=1.0, le=3.0)
    estimated_fields: tuple[str, ...] = ()
    notes: str | None = None
    sources: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _domain_holds_nodes(self) -> System:
        if self.domain_size % self.chips_per_node and self.chips_per_node % self.domain_size:
            raise ValueError(
                f"domain_size ({self.domain_size}) and chips_per_node ({self.chips_per_node})"
                " must divide one another"
            )
        return self

    def scaleout_tier(self, default_gbit_per_chip: float | None) -> Tier:
        """The scale-out tier as a ``Tier`` (per-chip share of the node's NICs)."""
        if self.scaleout_gbit_per_node is not None:
            gbit_per_chip = self.scaleout_gbit_per_node / self.chips_per_node
        else:
            gbit_per_chip = default_gbit_per_chip or 100.0
        return Tier(
            fabric_id=self.scaleout_fabric_id,
            topology="switched",
            gbps_bidir_per_chip=2.0 * gbit_per_chip * GBIT / GB,
            latency_us=self.scaleout_latency_us,
            oversubscription=self.scaleout_oversubscription,
        )


class SiteLink(Spec):
    """A link between data-centre sites (a wavelength or leased line): bandwidth, round trip, achieved share."""

    gbit_per_s: float = Field(gt=0, le=1e6, description="line rate between the sites, Gbit/s")
    rtt_ms: float = Field(default=1.0, ge=0, le=1000)
    efficiency: float = Field(default=0.8, gt=0, le=1.0, description="achieved share of the line rate")

    @property
    def bw_bytes_per_s(self) -> float:
        return self.gbit_per_s * GBIT * self.efficiency


class Fabric(Spec):
    """An interconnect technology (NVLink 4, HCCS, RoCE 400G, ...)."""

    id: str
    name: str
    kind: str
    per_link_gbps_bidir: float | None = Field(default=None, gt=0)
    links_per_chip: int | None = Field(default=None, ge=1)
    per_chip_gbps_bidir: float | None = Field(default=None, gt=0)
    max_domain: int | None = Field(default=None, ge=1)
    latency_us: float | None = Field(default=None, gt=0)
    estimated_fields: tuple[str, ...] = ()
    notes: str | None = None
    sources: tuple[str, ...] = ()


class Attention(Spec):
    """Attention variant. MLA uses the low-rank fields; MHA/GQA/MQA use heads/kv_heads/head_dim."""

    type: Literal["MHA", "GQA", "MQA", "MLA"]
    q_lora_rank: int | None = Field(default=None, ge=1, le=1_000_000)
    kv_lora_rank: int | None = Field(default=None, ge=1, le=1_000_000)
    qk_nope_head_dim: int | None = Field(default=None, ge=1, le=1_000_000)
    qk_rope_head_dim: int | None = Field(default=None, ge=1, le=1_000_000)
    v_head_dim: int | None = Field(default=None, ge=1, le=1_000_000)
    sliding_window: int | None = Field(default=None, ge=1)
    qkv_bias: bool = False

    @model_validator(mode="after")
    def _mla_fields(self) -> Attention:
        if self.type == "MLA":
            missing = [
                f
                for f in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")
                if getattr(self, f) is None
            ]
            if missing:
                raise ValueError(f"MLA attention needs {', '.join(missing)}")
        return self


class Moe(Spec):
    """Mixture-of-experts block: routed experts (top-k), shared experts, leading dense layers."""

    experts: int = Field(ge=1, le=100_000)
    shared_experts: int = Field(default=0, ge=0, le=1000)
    top_k: int = Field(ge=1, le=1000)
    moe_ffn_hidden: int = Field(ge=1, le=10_000_000)
    dense_layers: int = Field(default=0, ge=0, le=10_000, description="layers with a dense MLP instead of MoE")
    layer_step: int = Field(default=1, ge=1, le=10_000, description="1: every non-dense layer is MoE")

    @model_validator(mode="after")
    def _top_k_le_experts(self) -> Moe:
        if self.top_k > self.experts:
            raise ValueError(f"top_k ({self.top_k}) must be <= experts ({self.experts})")
        return self


Activation = Literal["gelu", "relu", "squared_relu", "swiglu", "geglu", "silu"]


class ModelArch(Spec):
    """A decoder transformer's architecture, as its config.json or paper gives it."""

    id: str
    name: str
    family: str | None = None
    org: str | None = None
    year: int | None = None
    arch: Literal["dense", "moe"]
    layers: int = Field(ge=1, le=10_000)
    # Upper bounds are sanity limits ~100x beyond any published model, so that a typo cannot overflow arrays.
    hidden: int = Field(ge=1, le=1_000_000)
    ffn_hidden: int | None = Field(default=None, ge=1, le=10_000_000)
    heads: int = Field(ge=1, le=100_000)
    kv_heads: int | None = Field(default=None, ge=1, le=100_000)
    head_dim: int = Field(ge=1, le=100_000)
    vocab: int = Field(ge=1, le=100_000_000)
    max_seq: int = Field(ge=1, le=1_000_000_000)
    activation: Activation = "gelu"
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    positional: Literal["learned", "rope", "alibi", "relative", "none"] = "rope"
    tied_embeddings: bool = False
    parallel_block: bool = Field(default=False, description="attention and MLP run in parallel (GPT-J style)")
    linear_bias: bool = False
    attention: Attention
    moe: Moe | None = None
    mtp_modules: int = Field(default=0, ge=0, le=100)
    params_total: int | None = Field(default=None, ge=1, description="published (recounted) parameter count")
    params_active: int | None = Field(default=None, ge=1)
    confidence: Literal["high", "medium", "low"] = "medium"
    notes: str | None = None
    sources: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ModelArch:
        if self.attention.type != "MLA":
            kv = self.kv_heads if self.kv_heads is not None else self.heads
            if self.heads % kv:
                raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({kv})")
        if self.arch == "moe" and self.moe is None:
            raise ValueError("arch 'moe' needs a moe block")
        if self.arch == "dense" and self.moe is not None:
            raise ValueError("arch 'dense' must not have a moe block")
        needs_dense_mlp = self.moe is None or self.moe.dense_layers > 0 or self.moe.layer_step > 1
        if needs_dense_mlp and self.ffn_hidden is None:
            raise ValueError("ffn_hidden is required when any layer has a dense MLP")
        if self.moe is not None and self.moe.dense_layers > self.layers:
            raise ValueError(f"moe.dense_layers ({self.moe.dense_layers}) must be <= layers ({self.layers})")
        return self

    @property
    def gated_mlp(self) -> bool:
        return self.activation in ("swiglu", "geglu")

    @property
    def n_kv_heads(self) -> int:
        """K/V heads of MHA/GQA/MQA (heads for MHA)."""
        return self.kv_heads if self.kv_heads is not None else self.heads

    @property
    def n_moe_layers(self) -> int:
        if self.moe is None:
            return 0
        return (self.layers - self.moe.dense_layers) // self.moe.layer_step

    @property
    def n_dense_layers(self) -> int:
        return self.layers - self.n_moe_layers


SpecKind = Literal["accelerators", "systems", "fabrics", "models"]
SPEC_TYPES: dict[str, type[Spec]] = {
    "accelerators": Accelerator,
    "systems": System,
    "fabrics": Fabric,
    "models": ModelArch,
}

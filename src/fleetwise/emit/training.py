"""Training launch lines shared by the Megatron-LM and MindSpeed-LLM emitters (both parse Megatron's arguments).

``TrainingContext`` resolves a ``plan_train``/``explain_train`` study row into the model, chips, system and job;
the ``*_args`` helpers turn a plan into Megatron argument names (parallel sizes, batch, recompute, optimizer
sharding, overlap, precision, model shape); ``price`` evaluates the nearest plan a framework can run the way
``fleetwise.api.explain_training`` does (the same setup from the study's resolved job, then
``search.evaluate.evaluate_plan``; emit sits below the api in the layers) and words the difference against the
study's own prediction;
``balanced_split`` and ``first_last_split`` give uneven pipeline layer splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fleetwise.catalog.loader import Catalog, format_validation_error, load_catalog
from fleetwise.catalog.types import Accelerator, ModelArch, System
from fleetwise.emit.base import Adjustment, StudyLike, study_row
from fleetwise.errors import InfeasibleError, SpecError
from fleetwise.plan import TrainingPlan
from fleetwise.search.evaluate import PlanResult

TRAIN_KINDS = ("plan_train", "explain_train")
MASTER_PORT = "6000"


@dataclass(frozen=True)
class TrainingContext:
    """A training study row resolved against the catalog."""

    study: StudyLike
    row: dict[str, Any]
    plan: TrainingPlan
    model: ModelArch
    accel: Accelerator
    system: System | None
    seq_len: int
    global_batch: int
    precision: str
    attention_kernel: str
    tokens: float | None
    catalog: Catalog

    @property
    def chips_per_node(self) -> int:
        return node_layout(self.plan.chips, self.system.chips_per_node if self.system else 8)[1]

    @property
    def nodes(self) -> int:
        return node_layout(self.plan.chips, self.system.chips_per_node if self.system else 8)[0]

    @property
    def is_ascend(self) -> bool:
        return is_ascend(self.accel)


def node_layout(chips: int, per_node_max: int) -> tuple[int, int]:
    """(nodes, processes per node) for ``chips`` ranks: launchers start the same number on every node, so the
    fewest nodes whose equal share fits a node (12 chips on 8-chip nodes: 2 x 6, not 2 x 8)."""
    for nodes in range(math.ceil(chips / per_node_max), chips + 1):
        if chips % nodes == 0:
            return nodes, chips // nodes
    return chips, 1


def is_ascend(accel: Accelerator) -> bool:
    return "huawei" in accel.vendor.lower() or accel.id.startswith("huawei_ascend")


def resolve_model(catalog: Catalog, model: str) -> ModelArch:
    """A catalog id or a Hugging Face ``config.json`` path (as ``fleetwise.api.resolve_model``)."""
    from pathlib import Path

    from fleetwise.catalog.hf_import import model_from_hf_config

    if model.endswith(".json") or Path(model).is_file():
        return model_from_hf_config(Path(model))
    return catalog.model(model, "inputs.model")


def default_global_batch(seq_len: int, chips: int) -> int:
    """The library's default global batch for a job (``fleetwise.plan.default_global_batch``)."""
    from fleetwise.plan import default_global_batch as rule

    return int(rule(seq_len, chips)[0])


def study_plan_and_specs(study: StudyLike, row: int, target: str, kinds: tuple[str, ...], plan_type: Any,
                         catalog: Catalog | None) -> tuple[dict[str, Any], Any, ModelArch, Accelerator, System | None]:
    """Row ``row`` of a study, its plan as ``plan_type``, and the model, chip and system its inputs name."""
    r = study_row(study, row, kinds, target)
    try:
        plan = plan_type(**r["plan"])
    except (ValidationError, TypeError) as exc:
        if isinstance(exc, ValidationError):
            raise SpecError(format_validation_error(f"study {study.id} row {row} plan", exc)) from None
        raise SpecError(f"study {study.id} row {row}: plan must be an object of plan fields") from None
    inp = study.inputs
    cat = catalog or load_catalog()
    for need in ("model", "hardware"):
        if not isinstance(inp.get(need), str):
            raise SpecError(f"study {study.id}: inputs.{need} is missing (a catalog id)")
    model = resolve_model(cat, str(inp["model"]))
    accel = cat.accelerator(str(inp["hardware"]), "inputs.hardware")
    sys_id = inp.get("system")
    system = cat.system(str(sys_id), "inputs.system") if sys_id else cat.default_system(accel.id)
    return r, plan, model, accel, system


def training_context(study: StudyLike, row: int, target: str, catalog: Catalog | None = None) -> TrainingContext:
    cat = catalog or load_catalog()
    r, plan, model, accel, system = study_plan_and_specs(study, row, target, TRAIN_KINDS, TrainingPlan, cat)
    inp = study.inputs
    if inp.get("lora_rank"):
        raise SpecError(f"study {study.id}: a LoRA fine-tune (lora_rank {inp['lora_rank']}); emit writes pre-training"
                        " launch files only (MindSpeed-LLM's --lora-r/--lora-alpha/--lora-target-modules and its"
                        " fine-tuning entry point are not emitted)")
    seq = int(inp.get("seq_len") or 4096)
    gbs = inp.get("global_batch")
    if gbs is None:
        gbs = default_global_batch(seq, plan.chips)
    if not isinstance(gbs, int) or isinstance(gbs, bool) or gbs < 1:
        raise SpecError(f"study {study.id}: inputs.global_batch must be a positive integer (got {gbs!r:.40})")
    return TrainingContext(study, r, plan, model, accel, system, seq, gbs, str(inp.get("precision") or "bf16"),
                           str(inp.get("attention_kernel") or "flash"), inp.get("tokens"), cat)


def explain(ctx: TrainingContext, plan: TrainingPlan, precision: str | None = None) -> PlanResult:
    """One plan's prediction for the study's job: the setup ``fleetwise.api.explain_training`` builds (catalog
    entries, job fields the study resolved, sites), evaluated by ``search.evaluate.evaluate_plan``."""
    from fleetwise.catalog.types import SiteLink
    from fleetwise.perf.setup import make_training_setup
    from fleetwise.plan import TrainingJob
    from fleetwise.search.evaluate import evaluate_plan

    inp = ctx.study.inputs
    job_fields = {k: inp[k] for k in TrainingJob.model_fields if inp.get(k) is not None}
    job_fields.update(seq_len=ctx.seq_len, global_batch=ctx.global_batch, precision=precision or ctx.precision)
    try:
        job = TrainingJob(**job_fields)
    except ValidationError as exc:
        raise SpecError(format_validation_error(f"study {ctx.study.id} job", exc)) from None
    link = inp.get("site_link")
    setup = make_training_setup(ctx.model, ctx.accel, ctx.system, job, sites=int(inp.get("sites") or 1),
                                site_link=SiteLink(**link) if isinstance(link, dict) else None)
    return evaluate_plan(setup, plan)


def price(ctx: TrainingContext, nearest: TrainingPlan, precision: str | None = None) -> tuple[str, dict[str, Any]]:
    """The predicted cost of running ``nearest`` instead of the study's plan, in words and as numbers."""
    base = float(ctx.row.get("step_time_s") or 0.0)
    try:
        r = explain(ctx, nearest, precision)
    except InfeasibleError as exc:
        return (f"the nearest plan is infeasible ({exc})", {"metric": "step_time_s", "plan": base, "nearest": None})
    new = r.step_time_s
    change = (new / base - 1.0) if base > 0 else None
    words = f"predicted step time {base:.4g} s -> {new:.4g} s"
    if change is not None:
        words += f" ({change:+.1%})"
    return words, {"metric": "step_time_s", "plan": base, "nearest": round(new, 6),
                   "change": None if change is None else round(change, 5),
                   "fits_memory": r.fits_memory}


def balanced_split(layers: int, pp: int) -> list[int]:
    """Layers per stage as even as possible; the extra layers go to the middle stages (first/last stages carry
    the embedding and the loss)."""
    base, extra = divmod(layers, pp)
    counts = [base] * pp
    order = sorted(range(pp), key=lambda k: (k in (0, pp - 1), abs(k - (pp - 1) / 2)))
    for k in order[:extra]:
        counts[k] += 1
    return counts


def first_last_split(layers: int, pp: int, multiple: int = 1) -> tuple[int, int, int] | None:
    """Megatron's uneven form: (first, middle-per-stage, last) with the middle stages even, the largest stage as
    small as possible (ties: lighter first and last stages). With interleaving every stage's layer count must be a
    multiple of the virtual stages (``multiple``). None when no such split with every stage >= 1 exists."""
    if pp == 1:
        return None
    best: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
    for first in range(multiple, layers, multiple):
        for last in range(multiple, layers - first + 1, multiple):
            rest = layers - first - last
            if pp == 2:
                if rest:
                    continue
                mid = 0
            else:
                if rest < pp - 2 or rest % (pp - 2) or (rest // (pp - 2)) % multiple:
                    continue
                mid = rest // (pp - 2)
            key = (max(first, last, mid), first + last, abs(first - last))
            if best is None or key < best[0]:
                best = (key, (first, mid, last))
    return best[1] if best else None


def model_args(m: ModelArch, seq_len: int, bf16: bool = True) -> list[str]:
    """Megatron model-shape arguments for a catalog architecture."""
    a = ["--num-layers", str(m.layers), "--hidden-size", str(m.hidden), "--num-attention-heads", str(m.heads)]
    if m.ffn_hidden:
        a += ["--ffn-hidden-size", str(m.ffn_hidden)]
    if m.attention.type == "MLA":
        a += ["--multi-latent-attention"]
        for flag, v in (("--q-lora-rank", m.attention.q_lora_rank), ("--kv-lora-rank", m.attention.kv_lora_rank),
                        ("--qk-head-dim", m.attention.qk_nope_head_dim),
                        ("--qk-pos-emb-head-dim", m.attention.qk_rope_head_dim),
                        ("--v-head-dim", m.attention.v_head_dim)):
            if v:
                a += [flag, str(v)]
    else:
        a += ["--kv-channels", str(m.head_dim)]
        if m.kv_heads and m.kv_heads != m.heads:
            a += ["--group-query-attention", "--num-query-groups", str(m.kv_heads)]
    if m.attention.qkv_bias:
        a += ["--add-qkv-bias"]
    a += ["--seq-length", str(seq_len), "--max-position-embeddings", str(max(seq_len, m.max_seq))]
    a += ["--normalization", "RMSNorm" if m.norm == "rmsnorm" else "LayerNorm"]
    if m.activation == "swiglu":
        a += ["--swiglu"]
    elif m.activation == "squared_relu":
        a += ["--squared-relu"]
    pos = {"rope": "rope", "learned": "learned_absolute", "relative": "relative", "none": "none"}.get(m.positional)
    if pos:
        a += ["--position-embedding-type", pos]
    if not m.tied_embeddings:
        a += ["--untie-embeddings-and-output-weights"]
    if not m.linear_bias:
        a += ["--disable-bias-linear"]
    if m.moe:
        a += ["--num-experts", str(m.moe.experts), "--moe-router-topk", str(m.moe.top_k),
              "--moe-ffn-hidden-size", str(m.moe.moe_ffn_hidden), "--moe-token-dispatcher-type", "alltoall"]
        if bf16:  # core_v0.12.1: grouped GEMM for MoE only supports bf16
            a += ["--moe-grouped-gemm"]
        if m.moe.shared_experts:
            a += ["--moe-shared-expert-intermediate-size", str(m.moe.shared_experts * m.moe.moe_ffn_hidden)]
        if m.moe.dense_layers or m.moe.layer_step > 1:
            pattern = [0 if k < m.moe.dense_layers or (k - m.moe.dense_layers) % m.moe.layer_step else 1
                       for k in range(m.layers)]
            a += ["--moe-layer-freq", "[" + ",".join(map(str, pattern)) + "]"]
    if m.mtp_modules:
        a += ["--mtp-num-layers", str(m.mtp_modules)]
    a += ["--tokenizer-type", "NullTokenizer", "--vocab-size", str(m.vocab), "--mock-data"]
    return a


def model_gaps(m: ModelArch) -> list[str]:
    """Architecture features of ``m`` that Megatron core_v0.12.1's arguments have no flag for (said, not dropped)."""
    gaps = []
    if m.attention.sliding_window:
        gaps.append(f"sliding-window attention ({m.attention.sliding_window} tokens)")
    if m.positional == "alibi":
        gaps.append("ALiBi positions")
    if m.parallel_block:
        gaps.append("parallel attention/MLP blocks")
    if m.activation not in ("gelu", "swiglu", "squared_relu"):
        gaps.append(f"{m.activation} activation")
    return [f"{g} has no Megatron argument in core_v0.12.1: the launch trains the model without it (same shapes, "
            "so the same cost to first order)" for g in gaps]


def parallel_args(p: TrainingPlan) -> list[str]:
    a = ["--tensor-model-parallel-size", str(p.tp), "--pipeline-model-parallel-size", str(p.pp)]
    if p.cp > 1:
        a += ["--context-parallel-size", str(p.cp)]
    if p.ep > 1:
        a += ["--expert-model-parallel-size", str(p.ep)]
    if p.sequence_parallel and p.tp > 1:
        a += ["--sequence-parallel"]
    if p.tp_comm_overlap and p.sequence_parallel and p.tp > 1:  # Megatron overlaps TP comms only with SP
        a += ["--tp-comm-overlap"]
    if p.rank_order == "tp-cp-pp-dp":
        a += ["--use-tp-pp-dp-mapping"]
    return a


def batch_args(ctx: TrainingContext, p: TrainingPlan) -> list[str]:
    iters = math.ceil(ctx.tokens / (ctx.global_batch * ctx.seq_len)) if ctx.tokens else 1000
    return ["--micro-batch-size", str(p.micro_batch), "--global-batch-size", str(ctx.global_batch),
            "--train-iters", str(iters), "--lr", "3.0e-4", "--min-lr", "3.0e-5", "--lr-decay-style", "cosine",
            "--lr-warmup-iters", str(min(2000, max(1, iters // 100)))]


def recompute_args(ctx: TrainingContext, p: TrainingPlan) -> list[str]:
    if p.recompute == "selective":
        return ["--recompute-granularity", "selective"]
    if p.recompute == "full":
        if p.recompute_layers_frac >= 1.0:
            return ["--recompute-granularity", "full", "--recompute-method", "uniform", "--recompute-num-layers", "1"]
        per_chunk = max(1, math.ceil(ctx.model.layers / (p.pp * p.vpp)))
        n = max(1, round(p.recompute_layers_frac * per_chunk))
        return ["--recompute-granularity", "full", "--recompute-method", "block", "--recompute-num-layers", str(n)]
    return []


def uses_fsdp(p: TrainingPlan) -> bool:
    return p.zero >= 2 and p.dp * p.cp > 1


def sharding_args(p: TrainingPlan) -> list[str]:
    """ZeRO stage as Megatron's optimizer sharding: 1 = distributed optimizer, 2/3 = Megatron custom-FSDP strategies.

    core_v0.12.1's ``validate_args``: custom FSDP needs the distributed optimizer, its ``optim_grads`` and
    ``optim_grads_params`` strategies need gradient-accumulation fusion off, and param-gather overlap needs the
    distributed optimizer and grad-reduce overlap."""
    dp = p.dp * p.cp
    if p.zero == 0 or dp == 1:
        return []
    overlap = ["--overlap-grad-reduce", "--overlap-param-gather"]
    if p.zero == 1:
        return ["--use-distributed-optimizer", *overlap]
    strategy = "optim_grads" if p.zero == 2 else "optim_grads_params"
    return ["--use-distributed-optimizer", "--use-custom-fsdp", "--data-parallel-sharding-strategy", strategy,
            "--no-gradient-accumulation-fusion", *overlap]


def device_connections(p: TrainingPlan) -> str:
    """CUDA_DEVICE_MAX_CONNECTIONS: core_v0.12.1 requires 1 with TP/CP (pre-Blackwell), and more than 1 with FSDP."""
    return "32" if uses_fsdp(p) else "1"


def precision_args(precision: str) -> list[str]:
    if precision == "bf16":
        return ["--bf16"]
    if precision == "fp16":
        return ["--fp16"]
    if precision == "fp8":
        return ["--bf16", "--fp8-format", "hybrid", "--transformer-impl", "transformer_engine"]
    return []  # fp32 / tf32: Megatron's default fp32 parameters (tf32 matmuls where the GPU allows)


def torchrun(ctx: TrainingContext, entry: str) -> list[str]:
    return ["torchrun", "--nnodes", str(ctx.nodes), "--nproc-per-node", str(ctx.chips_per_node),
            "--node-rank", "$NODE_RANK", "--master-addr", "$MASTER_ADDR", "--master-port", "$MASTER_PORT", entry]


def fp8_nearest(ctx: TrainingContext, adjustments: list[Adjustment]) -> str:
    """fp8 on a chip without fp8 units runs in bf16: the nearest precision, priced."""
    if ctx.precision == "fp8" and ctx.accel.peak_tflops.fp8 is None:
        words, metrics = price(ctx, ctx.plan, precision="bf16")
        adjustments.append(Adjustment("precision", "fp8", "bf16", f"{ctx.accel.id} has no fp8 units", words, metrics))
        return "bf16"
    return ctx.precision


def vpp_divisor(layers: int, pp: int, vpp: int) -> int:
    """The largest vpp' <= vpp whose chunks hold whole, equal layer counts (``layers % (pp*vpp') == 0``)."""
    for v in range(vpp, 0, -1):
        if layers % (pp * v) == 0:
            return v
    return 1

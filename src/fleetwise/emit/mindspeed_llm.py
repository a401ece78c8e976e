"""``--target mindspeed-llm``: a torchrun launch of MindSpeed-LLM on Ascend NPUs for a training plan.

MindSpeed-LLM parses Megatron core_v0.12.1's arguments plus its own and MindSpeed's. Expressible: everything
the Megatron emitter expresses, uneven pipeline splits of any shape (``--num-layer-list``), the MoE
all-to-all overlap (``--moe-alltoall-overlap-comm``) and the NPU fused kernels (flash attention, RMSNorm,
SwiGLU, rotary embedding). Not expressible: ``--num-layer-list`` together with interleaving (rejected by
MindSpeed-LLM's own check), and fp8 on chips without fp8 units; the nearest plan is emitted and priced.
"""

from __future__ import annotations

from fleetwise.catalog.loader import Catalog
from fleetwise.emit.base import Adjustment, Command, Emission, StudyLike, script
from fleetwise.emit.flags import load_flags
from fleetwise.emit.training import (
    MASTER_PORT,
    TrainingContext,
    balanced_split,
    batch_args,
    device_connections,
    fp8_nearest,
    model_args,
    model_gaps,
    parallel_args,
    precision_args,
    price,
    recompute_args,
    sharding_args,
    torchrun,
    training_context,
    vpp_divisor,
)
from fleetwise.errors import SpecError

TARGET = "mindspeed-llm"
ENTRY = "pretrain_gpt.py"


def msrun(ctx: TrainingContext) -> list[str]:
    """MindSpore's launcher (the MindSpore backend of MindSpeed-LLM): one scheduler address, workers per node."""
    return ["msrun", "--worker_num", str(ctx.plan.chips), "--local_worker_num", str(ctx.chips_per_node),
            "--master_addr", "$MASTER_ADDR", "--master_port", "$MASTER_PORT", "--node_rank", "$NODE_RANK",
            "--log_dir", "msrun_log", "--join", "True", "--cluster_time_out", "600", ENTRY]


def emit(study: StudyLike, row: int = 0, catalog: Catalog | None = None, launcher: str = "torchrun") -> Emission:
    if launcher not in ("torchrun", "msrun"):
        raise SpecError("--launcher must be torchrun (PyTorch backend) or msrun (MindSpore backend) "
                        f"(got {launcher!r:.40})")
    ctx = training_context(study, row, TARGET, catalog)
    if not ctx.is_ascend:
        raise SpecError(f"--target mindspeed-llm runs on Ascend NPUs; {ctx.accel.id} is not one: use --target megatron")
    fs = load_flags(TARGET)
    adj: list[Adjustment] = []
    notes: list[str] = []
    p = ctx.plan
    layers = ctx.model.layers
    precision = fp8_nearest(ctx, adj)
    uneven = p.pp > 1 and layers % p.pp != 0
    changes: dict[str, object] = {}
    why: dict[str, str] = {}
    vpp = 1 if (p.vpp > 1 and uneven) else (vpp_divisor(layers, p.pp, p.vpp) if p.vpp > 1 else 1)
    if vpp != p.vpp:
        changes["vpp"] = vpp
        why["vpp"] = ("MindSpeed-LLM rejects --num-layer-list together with virtual pipeline stages" if uneven
                      else "interleaved stages need the same whole number of layers per virtual stage")
    if p.ep_comm_overlap and (ctx.model.moe is None or precision not in ("bf16", "fp8")):
        changes["ep_comm_overlap"] = False
        why["ep_comm_overlap"] = ("a dense model has no MoE all-to-all to overlap" if ctx.model.moe is None else
                                  "--moe-alltoall-overlap-comm needs grouped GEMM, which runs in bf16 only")
    if p.tp_comm_overlap and not (p.sequence_parallel and p.tp > 1):
        changes["tp_comm_overlap"] = False
        why["tp_comm_overlap"] = "TP communication overlap needs sequence parallelism"
    nearest = p.model_copy(update=changes) if changes else p
    if changes:
        words, metrics = price(ctx, nearest, precision=precision)
        adj += [Adjustment(k, getattr(p, k), v, why[k], words, metrics) for k, v in changes.items()]
    args = parallel_args(nearest)
    if nearest.vpp > 1:
        args += ["--num-layers-per-virtual-pipeline-stage", str(layers // (nearest.pp * nearest.vpp))]
    if uneven:
        split = balanced_split(layers, nearest.pp)
        args += ["--num-layer-list", ",".join(map(str, split))]
        notes.append(f"uneven pipeline split --num-layer-list {','.join(map(str, split))}")
    if ctx.model.moe and nearest.ep_comm_overlap:
        args += ["--moe-alltoall-overlap-comm"]
    if nearest.cp > 1:
        args += ["--context-parallel-algo", "megatron_cp_algo"]
    args += batch_args(ctx, nearest) + recompute_args(ctx, nearest) + sharding_args(nearest)
    args += precision_args(precision)
    if ctx.attention_kernel != "unfused":
        args += ["--use-flash-attn"]
    args += ["--use-mcore-models", "--use-fused-rotary-pos-emb"]
    if ctx.model.norm == "rmsnorm":
        args += ["--use-fused-rmsnorm"]
    if ctx.model.activation == "swiglu":
        args += ["--use-fused-swiglu"]
    args += model_args(ctx.model, ctx.seq_len, bf16=precision in ("bf16", "fp8"))
    notes += model_gaps(ctx.model)
    if ctx.model.moe and ctx.model.moe.dense_layers and ctx.model.moe.layer_step == 1:
        args += ["--first-k-dense-replace", str(ctx.model.moe.dense_layers)]
        k = args.index("--moe-layer-freq")
        del args[k:k + 2]
    if launcher == "msrun":
        args += ["--ai-framework", "mindspore"]
        notes.append("MindSpore backend: msrun starts the workers and --ai-framework mindspore selects "
                     "MindSpeed-LLM's MindSpore patches")
    cmd = Command("train", (msrun(ctx) if launcher == "msrun" else torchrun(ctx, ENTRY)) + args, ENTRY)
    header = [f"fleetwise emit --target {TARGET}: study {study.id} row {row} ({nearest.label()})",
              f"model {ctx.model.id} on {nearest.chips} x {ctx.accel.id}: {ctx.nodes} node(s) x "
              f"{ctx.chips_per_node} NPUs; run once per node with NODE_RANK=0..{ctx.nodes - 1}",
              f"flags checked against {fs.pin()}",
              "source the CANN environment first (set_env.sh of the toolkit and nnal/atb)",
              "data: --mock-data (replace with --data-path and a tokenizer for a real run)"]
    header += [f"cannot express {a.line()}" for a in adj] + [f"note: {n}" for n in notes]
    env = {"NODE_RANK": "${NODE_RANK:-0}", "MASTER_ADDR": "${MASTER_ADDR:-127.0.0.1}",
           "MASTER_PORT": f"${{MASTER_PORT:-{MASTER_PORT}}}",
           "CUDA_DEVICE_MAX_CONNECTIONS": device_connections(nearest),
           "HCCL_CONNECT_TIMEOUT": "1200"}
    name = "train_mindspeed_llm_msrun.sh" if launcher == "msrun" else "train_mindspeed_llm.sh"
    files = {name: script(header, [cmd], env)}
    return Emission(TARGET, fs.pin(), {**nearest.model_dump(), "precision": precision}, files, [cmd], adj, notes)

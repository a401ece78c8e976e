"""``--target megatron``: a torchrun launch of Megatron-LM (core_v0.12.1 flags) for a training plan.

Expressible: tp/pp/cp/ep, sequence parallelism, TP communication overlap, micro/global batch, selective and
full (uniform or block) recompute, ZeRO-1 (distributed optimizer) and ZeRO-2/3 (Megatron FSDP sharding
strategies), gradient-reduce/param-gather overlap, bf16/fp16/fp8, rank order, interleaved 1F1B, and uneven
pipeline splits as first/last-stage layer counts with even middle stages (with interleaving through
``--num-virtual-stages-per-pipeline-rank``). Not expressible in this version: MoE all-to-all overlap with
another micro-batch (no such flag before core 0.13), interleaving whose stages do not hold whole multiples of
the virtual stages, TP overlap without sequence parallelism; the nearest plan is emitted and priced.
"""

from __future__ import annotations

from fleetwise.catalog.loader import Catalog
from fleetwise.emit.base import Adjustment, Command, Emission, StudyLike, script
from fleetwise.emit.flags import load_flags
from fleetwise.emit.training import (
    MASTER_PORT,
    batch_args,
    device_connections,
    first_last_split,
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

TARGET = "megatron"
ENTRY = "pretrain_gpt.py"


def emit(study: StudyLike, row: int = 0, catalog: Catalog | None = None) -> Emission:
    ctx = training_context(study, row, TARGET, catalog)
    if ctx.is_ascend:
        raise SpecError(f"--target megatron runs on GPUs; {ctx.accel.id} is an Ascend NPU: use --target mindspeed-llm")
    fs = load_flags(TARGET)
    adj: list[Adjustment] = []
    notes: list[str] = []
    p = ctx.plan
    layers = ctx.model.layers
    changes: dict[str, object] = {}
    if p.ep_comm_overlap:
        changes["ep_comm_overlap"] = False
    if p.tp_comm_overlap and not (p.sequence_parallel and p.tp > 1):
        changes["tp_comm_overlap"] = False
    uneven = p.pp > 1 and layers % p.pp != 0
    vpp = p.vpp
    if vpp > 1 and uneven:  # every stage's layers must then be a multiple of the virtual stages
        while vpp > 1 and first_last_split(layers, p.pp, vpp) is None:
            vpp -= 1
    elif vpp > 1 and layers % (p.pp * vpp):
        vpp = vpp_divisor(layers, p.pp, vpp)
    if vpp != p.vpp:
        changes["vpp"] = vpp
    nearest = p.model_copy(update=changes) if changes else p
    precision = fp8_nearest(ctx, adj)
    if changes:
        words, metrics = price(ctx, nearest, precision=precision)
        for k, v in changes.items():
            why = {"ep_comm_overlap": "Megatron-LM core_v0.12.1 has no flag to overlap the MoE all-to-all with "
                                      "another micro-batch",
                   "tp_comm_overlap": "Megatron overlaps TP communication only with sequence parallelism",
                   "vpp": "every pipeline stage's layers must be a whole multiple of the virtual stages"
                          + (" (with the uneven first/last split)" if uneven else "")}[k]
            adj.append(Adjustment(k, getattr(p, k), v, why, words, metrics))
    args = parallel_args(nearest)
    if nearest.vpp > 1 and not uneven:
        args += ["--num-layers-per-virtual-pipeline-stage", str(layers // (nearest.pp * nearest.vpp))]
    if uneven:
        split = first_last_split(layers, nearest.pp, nearest.vpp)
        if split is None:
            raise SpecError(f"{ctx.model.id}: {layers} layers cannot be split over pp={nearest.pp} stages")
        first, mid, last = split
        args += ["--decoder-first-pipeline-num-layers", str(first), "--decoder-last-pipeline-num-layers", str(last)]
        if nearest.vpp > 1:  # core_v0.12.1 takes interleaving with an uneven split only in this form
            args += ["--num-virtual-stages-per-pipeline-rank", str(nearest.vpp)]
        notes.append(f"uneven pipeline split: first stage {first}, middle stages {mid} each, last stage {last} layers"
                     + (f", {nearest.vpp} virtual stages per rank" if nearest.vpp > 1 else ""))
    args += batch_args(ctx, nearest) + recompute_args(ctx, nearest) + sharding_args(nearest)
    args += precision_args(precision)
    args += ["--attention-backend", "unfused" if ctx.attention_kernel == "unfused" else "flash"]
    args += model_args(ctx.model, ctx.seq_len, bf16=precision in ("bf16", "fp8"))
    notes += model_gaps(ctx.model)
    cmd = Command("train", torchrun(ctx, ENTRY) + args, ENTRY)
    header = [f"fleetwise emit --target {TARGET}: study {study.id} row {row} ({nearest.label()})",
              f"model {ctx.model.id} on {nearest.chips} x {ctx.accel.id}: {ctx.nodes} node(s) x "
              f"{ctx.chips_per_node} chips; run once per node with NODE_RANK=0..{ctx.nodes - 1}",
              f"flags checked against {fs.pin()}",
              "data: --mock-data (replace with --data-path and a tokenizer for a real run)"]
    header += [f"cannot express {a.line()}" for a in adj] + [f"note: {n}" for n in notes]
    env = {"NODE_RANK": "${NODE_RANK:-0}", "MASTER_ADDR": "${MASTER_ADDR:-127.0.0.1}",
           "MASTER_PORT": f"${{MASTER_PORT:-{MASTER_PORT}}}",
           "CUDA_DEVICE_MAX_CONNECTIONS": device_connections(nearest)}
    files = {"train_megatron.sh": script(header, [cmd], env)}
    return Emission(TARGET, fs.pin(), {**nearest.model_dump(), "precision": precision}, files, [cmd], adj, notes)

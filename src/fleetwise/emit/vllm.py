"""``--target vllm``: ``vllm serve`` command lines for a serving plan on GPUs.

Expressible: tp/pp, attention data parallelism (``--data-parallel-size``), expert parallelism over the whole
engine (``--enable-expert-parallel``: vLLM's EP size is always tp*dp), batch and token budgets, chunked
prefill, weight quantisation and KV-cache dtype, the memory fraction, multi-node engines on Ray, and
prefill/decode disaggregation through a KV connector. Not expressible: an EP size other than 1 or tp*dp;
the nearest plan is emitted and priced from the study's rows.
"""

from __future__ import annotations

import json

from fleetwise.catalog.loader import Catalog
from fleetwise.emit.base import Adjustment, Command, Emission, StudyLike, script
from fleetwise.emit.flags import load_flags
from fleetwise.emit.serving import ServingContext, adjust, dtype_word, engine_roles, serving_context
from fleetwise.errors import SpecError
from fleetwise.perf.inference import KV_MEMORY_FRACTION
from fleetwise.plan import ServingPlan

TARGET = "vllm"
PROGRAM = "serve"
WEIGHT_QUANT = {"fp8": "fp8", "int8": "compressed-tensors", "int4": "awq", "fp4": "modelopt_fp4"}
KV_DTYPE = {"bf16": "auto", "fp16": "auto", "fp8": "fp8", "int8": "int8_per_token_head", "int4": "int4_per_token_head"}
CONNECTOR = ("NixlConnector", "kv_both", "kv_both")


def ep_nearest(ctx: ServingContext, adj: list[Adjustment]) -> ServingPlan:
    p = ctx.plan
    engine = p.tp * p.dp
    if p.ep in (1, engine):
        return p
    return adjust(ctx, {"ep": engine}, {"ep": f"vLLM's expert parallelism spans the whole engine (tp*dp = {engine})"},
                  adj)


def engine_args(ctx: ServingContext, p: ServingPlan, role: str, weight_quant: dict[str, str],
                kv_dtype: dict[str, str], connector: tuple[str, str, str], multinode: bool) -> list[str]:
    a = ["vllm", "serve", ctx.model_path, "--served-model-name", ctx.model.id,
         "--tensor-parallel-size", str(p.tp), "--pipeline-parallel-size", str(p.pp)]
    if p.dp > 1:
        a += ["--data-parallel-size", str(p.dp)]
        if multinode:
            a += ["--data-parallel-backend", "ray"]
    if p.ep > 1:
        a += ["--enable-expert-parallel"]
    a += ["--max-num-seqs", str(p.max_batch), "--max-num-batched-tokens", str(p.token_budget),
          "--enable-chunked-prefill", "--dtype", dtype_word(p)]
    if p.weight_precision in weight_quant:
        a += ["--quantization", weight_quant[p.weight_precision]]
    kv = kv_dtype[p.kv_precision]
    if kv != "auto":
        a += ["--kv-cache-dtype", kv]
    a += ["--gpu-memory-utilization", f"{KV_MEMORY_FRACTION:.2f}"]
    if multinode:
        a += ["--distributed-executor-backend", "ray"]
    if role != "serve":
        name, producer, consumer = connector
        a += ["--kv-transfer-config", json.dumps({"kv_connector": name,
                                                  "kv_role": producer if role == "prefill" else consumer},
                                                 separators=(",", ":"))]
    return a


def build(ctx: ServingContext, target: str, p: ServingPlan, adj: list[Adjustment], notes: list[str],
          weight_quant: dict[str, str], kv_dtype: dict[str, str], connector: tuple[str, str, str]) -> Emission:
    fs = load_flags(target)
    multinode = ctx.nodes_per_engine > 1
    commands: list[Command] = []
    files: dict[str, str] = {}
    for role, engines in engine_roles(p):
        cmd = Command(role, engine_args(ctx, p, role, weight_quant, kv_dtype, connector, multinode), PROGRAM)
        commands.append(cmd)
        header = [f"fleetwise emit --target {target}: study {ctx.study.id} row {ctx.row_index} ({p.label()})",
                  f"{role}: {engines} engine(s) of {p.chips_per_replica} x {ctx.accel.id}"
                  + (f" over {ctx.nodes_per_engine} nodes (start the Ray cluster first; see the LWS target)"
                     if multinode else ""),
                  f"flags checked against {fs.pin()}"]
        header += [f"cannot express {a.line()}" for a in adj] + [f"note: {n}" for n in notes]
        files[f"{role}_{target.replace('-', '_')}.sh"] = script(header, [cmd])
    if p.prefill_replicas:
        notes.append(f"P/D disaggregated: {p.prefill_replicas} prefill and {p.replicas} decode engines exchange "
                     f"the KV cache through {connector[0]}; put a P/D-aware router in front")
    if p.weight_precision in ("int8", "int4", "fp4") and target == "vllm":
        notes.append(f"weights {p.weight_precision}: load a checkpoint already quantised for --quantization "
                     f"{weight_quant[p.weight_precision]}")
    return Emission(target, fs.pin(), p.model_dump(), files, commands, adj, notes)


def emit(study: StudyLike, row: int = 0, catalog: Catalog | None = None, model_path: str | None = None) -> Emission:
    ctx = serving_context(study, row, TARGET, catalog, model_path)
    if ctx.is_ascend:
        raise SpecError(f"--target vllm runs on GPUs; {ctx.accel.id} is an Ascend NPU: use --target vllm-ascend")
    adj: list[Adjustment] = []
    p = ep_nearest(ctx, adj)
    return build(ctx, TARGET, p, adj, [], WEIGHT_QUANT, KV_DTYPE, CONNECTOR)

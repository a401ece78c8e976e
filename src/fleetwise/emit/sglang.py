"""``--target sglang``: ``python -m sglang.launch_server`` command lines for a serving plan, on GPUs or Ascend NPUs.

Expressible: tp/pp, attention data parallelism (``--enable-dp-attention``: ``--tp-size`` is then the engine's
tp*dp chips and ``--dp-size`` its attention ranks), any expert-parallel size dividing the engine, batch and
token budgets, weight quantisation, fp8/bf16 KV caches, the static memory fraction, multi-node engines
(``--nnodes``/``--node-rank``/``--dist-init-addr``) and prefill/decode disaggregation (Mooncake on GPUs,
the Ascend transfer backend on NPUs). Not expressible: int8/int4 KV caches (nearest: fp8 where the chip has
fp8, else bf16), fp8 on chips without fp8 units; the nearest plan is emitted and priced from the study's rows.
"""

from __future__ import annotations

from typing import Any

from fleetwise.catalog.loader import Catalog
from fleetwise.emit.base import Adjustment, Command, Emission, StudyLike, script
from fleetwise.emit.flags import load_flags
from fleetwise.emit.serving import ServingContext, adjust, dtype_word, engine_roles, serving_context
from fleetwise.perf.inference import KV_MEMORY_FRACTION
from fleetwise.plan import ServingPlan

TARGET = "sglang"
PROGRAM = "sglang.launch_server"
PORT = 30000
KV = {"bf16": "bf16", "fp16": "auto", "fp8": "fp8_e4m3"}


def _quant(ctx: ServingContext, w: str) -> str | None:
    if w in ("bf16", "fp16"):
        return None
    if ctx.is_ascend:
        return "modelslim"  # ModelSlim W8A8 / W4A8 checkpoints on NPUs
    return {"fp8": "fp8", "int8": "w8a8_int8", "int4": "awq", "fp4": "modelopt_fp4"}[w]


def server_args(ctx: ServingContext, p: ServingPlan, role: str, multinode: bool) -> list[str]:
    moe = ctx.model.moe is not None
    a = ["python", "-m", PROGRAM, "--model-path", ctx.model_path, "--host", "0.0.0.0", "--port", str(PORT)]
    if p.dp > 1 and moe:
        a += ["--tp-size", str(p.tp * p.dp), "--dp-size", str(p.dp), "--enable-dp-attention"]
    else:
        a += ["--tp-size", str(p.tp)] + (["--dp-size", str(p.dp)] if p.dp > 1 else [])
    if p.pp > 1:
        a += ["--pp-size", str(p.pp)]
    if p.ep > 1:
        a += ["--ep-size", str(p.ep)]
    a += ["--max-running-requests", str(p.max_batch * p.dp), "--chunked-prefill-size", str(p.token_budget),
          "--max-prefill-tokens", str(p.token_budget), "--mem-fraction-static", f"{KV_MEMORY_FRACTION:.2f}",
          "--dtype", dtype_word(p), "--kv-cache-dtype", KV[p.kv_precision]]
    q = _quant(ctx, p.weight_precision)
    if q:
        a += ["--quantization", q]
    if ctx.is_ascend:
        a += ["--device", "npu", "--attention-backend", "ascend"]
    if multinode:
        a += ["--nnodes", str(ctx.nodes_per_engine), "--node-rank", "$NODE_RANK", "--dist-init-addr",
              "$DIST_INIT_ADDR"]
    if role != "serve":
        a += ["--disaggregation-mode", role, "--disaggregation-transfer-backend",
              "ascend" if ctx.is_ascend else "mooncake"]
    return a


def emit(study: StudyLike, row: int = 0, catalog: Catalog | None = None, model_path: str | None = None) -> Emission:
    ctx = serving_context(study, row, TARGET, catalog, model_path)
    fs = load_flags(TARGET)
    adj: list[Adjustment] = []
    notes: list[str] = []
    p = ctx.plan
    changes: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    if p.kv_precision in ("int8", "int4") or (p.kv_precision == "fp8" and not ctx.has_fp8):
        changes["kv_precision"] = "fp8" if ctx.has_fp8 else "bf16"
        reasons["kv_precision"] = (f"SGLang's --kv-cache-dtype has no {p.kv_precision}" if p.kv_precision != "fp8"
                                   else f"{ctx.accel.id} has no fp8 units")
    if p.weight_precision == "fp8" and not ctx.has_fp8:
        changes["weight_precision"] = "int8"
        reasons["weight_precision"] = f"{ctx.accel.id} has no fp8 units; int8 (W8A8) is nearest"
    if p.weight_precision == "fp4" and ctx.is_ascend:
        changes["weight_precision"] = "int4"
        reasons["weight_precision"] = "no fp4 weights on Ascend; ModelSlim W4A8 is nearest"
    p = adjust(ctx, changes, reasons, adj)
    if p.dp > 1 and ctx.model.moe is not None:
        notes.append(f"--max-running-requests is the engine total: {p.max_batch} per attention rank x {p.dp}")
    multinode = ctx.nodes_per_engine > 1
    commands: list[Command] = []
    files: dict[str, str] = {}
    for role, engines in engine_roles(p):
        cmd = Command(role, server_args(ctx, p, role, multinode), PROGRAM)
        commands.append(cmd)
        header = [f"fleetwise emit --target {TARGET}: study {study.id} row {row} ({p.label()})",
                  f"{role}: {engines} engine(s) of {p.chips_per_replica} x {ctx.accel.id}"
                  + (f" over {ctx.nodes_per_engine} nodes: run on each with NODE_RANK=0..{ctx.nodes_per_engine - 1}"
                     if multinode else ""),
                  f"flags checked against {fs.pin()}"]
        header += [f"cannot express {x.line()}" for x in adj] + [f"note: {n}" for n in notes]
        env = {"NODE_RANK": "${NODE_RANK:-0}", "DIST_INIT_ADDR": "${DIST_INIT_ADDR:-127.0.0.1:5000}"} if multinode \
            else {}
        files[f"{role}_sglang.sh"] = script(header, [cmd], env)
    if p.prefill_replicas:
        notes.append(f"P/D disaggregated: {p.prefill_replicas} prefill and {p.replicas} decode engines; front them "
                     "with the SGLang router in PD mode")
    return Emission(TARGET, fs.pin(), p.model_dump(), files, commands, adj, notes)

"""``--target vllm-ascend``: ``vllm serve`` on Ascend NPUs through the vllm-ascend platform plugin.

Same engine flags as vLLM; what changes is what the plugin accepts: int8/int4 weights load through ModelSlim
checkpoints (``--quantization ascend``, which also carries an int8 KV cache), P/D disaggregation uses the
Mooncake connector, and there is no fp8 on chips without fp8 units. Not expressible: an EP size other than 1 or
tp*dp, an int8 KV cache without ModelSlim int8 weights, fp8/int4 KV caches, fp4 weights; the nearest plan is
emitted and priced from the study's rows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fleetwise.catalog.loader import Catalog
from fleetwise.emit.base import Adjustment, Emission, StudyLike
from fleetwise.emit.serving import adjust, serving_context
from fleetwise.emit.vllm import build, ep_nearest
from fleetwise.errors import SpecError

TARGET = "vllm-ascend"
WEIGHT_QUANT = {"int8": "ascend", "int4": "ascend", "fp8": "fp8"}
KV_DTYPE = {"bf16": "auto", "fp16": "auto", "int8": "auto", "fp8": "fp8"}
CONNECTOR = ("MooncakeConnectorV1", "kv_producer", "kv_consumer")


def emit(study: StudyLike, row: int = 0, catalog: Catalog | None = None, model_path: str | None = None) -> Emission:
    ctx = serving_context(study, row, TARGET, catalog, model_path)
    if not ctx.is_ascend:
        raise SpecError(f"--target vllm-ascend runs on Ascend NPUs; {ctx.accel.id} is not one: use --target vllm")
    adj: list[Adjustment] = []
    notes: list[str] = []
    p = ep_nearest(ctx, adj)
    changes: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    if p.weight_precision == "fp4" or (p.weight_precision == "fp8" and not ctx.has_fp8):
        changes["weight_precision"] = "int8"
        reasons["weight_precision"] = f"no {p.weight_precision} weights on {ctx.accel.id}; ModelSlim W8A8 is nearest"
    weights = changes.get("weight_precision", p.weight_precision)
    if p.kv_precision == "int8" and weights != "int8":
        changes["kv_precision"] = "bf16"
        reasons["kv_precision"] = "vllm-ascend quantises the KV cache to int8 only inside a ModelSlim W8A8 (C8) model"
    elif p.kv_precision == "int4" or (p.kv_precision == "fp8" and not ctx.has_fp8):
        changes["kv_precision"] = "bf16"
        reasons["kv_precision"] = f"no {p.kv_precision} KV cache for vllm-ascend on {ctx.accel.id}"
    ctx = replace(ctx, plan=p)
    p = adjust(ctx, changes, reasons, adj)
    if p.weight_precision in ("int8", "int4"):
        notes.append(f"--quantization ascend loads a ModelSlim {'W8A8' if p.weight_precision == 'int8' else 'W4A8'} "
                     "checkpoint" + (" with the int8 (C8) KV cache" if p.kv_precision == "int8" else ""))
    return build(ctx, TARGET, p, adj, notes, WEIGHT_QUANT, KV_DTYPE, CONNECTOR)

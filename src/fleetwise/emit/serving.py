"""Serving launch lines shared by the vLLM, vllm-ascend, SGLang and LeaderWorkerSet emitters.

``serving_context`` resolves a ``plan_serve`` study row (``row["plan"]`` = ``ServingPlan`` fields) into the
model, accelerator and node size; ``nearest_cost`` prices a nearest plan from the study's own rows (fleetwise has
no single-plan serving evaluator: when the nearest plan is not among the rows, the cost is reported as unpriced);
``engine_roles`` lists the engines a plan runs (co-located, or prefill and decode pools).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from fleetwise.catalog.loader import Catalog, format_validation_error, load_catalog
from fleetwise.catalog.types import Accelerator, ModelArch, System
from fleetwise.emit.base import Adjustment, study_row
from fleetwise.emit.training import is_ascend
from fleetwise.errors import SpecError
from fleetwise.plan import ServingPlan
from fleetwise.study import Study

SERVE_KINDS = ("plan_serve",)
PORT = 8000


@dataclass(frozen=True)
class ServingContext:
    study: Study
    row_index: int
    row: dict[str, Any]
    plan: ServingPlan
    model: ModelArch
    accel: Accelerator
    system: System | None
    model_path: str

    @property
    def chips_per_node(self) -> int:
        return self.system.chips_per_node if self.system else 8

    @property
    def nodes_per_engine(self) -> int:
        return math.ceil(self.plan.chips_per_replica / self.chips_per_node)

    @property
    def chips_per_pod(self) -> int:
        return min(self.plan.chips_per_replica, self.chips_per_node)

    @property
    def is_ascend(self) -> bool:
        return is_ascend(self.accel)

    @property
    def has_fp8(self) -> bool:
        return self.accel.peak_tflops.fp8 is not None


def serving_context(study: Study, row: int, target: str, catalog: Catalog | None = None,
                    model_path: str | None = None) -> ServingContext:
    from fleetwise.api import resolve_model

    r = study_row(study, row, SERVE_KINDS, target)
    try:
        plan = ServingPlan(**r["plan"])
    except (ValidationError, TypeError) as exc:
        if isinstance(exc, ValidationError):
            raise SpecError(format_validation_error(f"study {study.id} row {row} plan", exc)) from None
        raise SpecError(f"study {study.id} row {row}: plan must be an object of serving plan fields") from None
    inp = study.inputs
    cat = catalog or load_catalog()
    for need in ("model", "hardware"):
        if not isinstance(inp.get(need), str):
            raise SpecError(f"study {study.id}: inputs.{need} is missing (a catalog id)")
    model = resolve_model(cat, str(inp["model"]))
    accel = cat.accelerator(str(inp["hardware"]), "inputs.hardware")
    sys_id = inp.get("system")
    system = cat.system(str(sys_id), "inputs.system") if sys_id else cat.default_system(accel.id)
    return ServingContext(study, row, r, plan, model, accel, system, model_path or f"/models/{model.id}")


def nearest_cost(ctx: ServingContext, nearest: ServingPlan) -> tuple[str, dict[str, Any] | None]:
    """The predicted difference between the study's plan and ``nearest``, from the study's own rows."""
    want = nearest.model_dump()
    base = ctx.row.get("goodput_rps")
    for k, r in enumerate(ctx.study.rows):
        if r.get("plan") == want:
            new = r.get("goodput_rps")
            if isinstance(base, (int, float)) and isinstance(new, (int, float)) and base > 0:
                change = new / base - 1.0
                return (f"predicted goodput {base:.4g} -> {new:.4g} req/s ({change:+.1%}; study row {k})",
                        {"metric": "goodput_rps", "plan": base, "nearest": new, "change": round(change, 5),
                         "row": k})
    return ("unpriced: the nearest plan is not among the study's rows (fleetwise prices serving plans only "
            "through the search; re-run plan serve to rank it)", None)


def adjust(ctx: ServingContext, changes: dict[str, Any], reasons: dict[str, str],
           adjustments: list[Adjustment]) -> ServingPlan:
    """Apply ``changes`` to the plan, price the result and record one adjustment per field."""
    if not changes:
        return ctx.plan
    nearest = ctx.plan.model_copy(update=changes)
    words, metrics = nearest_cost(ctx, nearest)
    for k, v in changes.items():
        adjustments.append(Adjustment(k, getattr(ctx.plan, k), v, reasons[k], words, metrics))
    return nearest


def engine_roles(plan: ServingPlan) -> list[tuple[str, int]]:
    """(role, engines) pairs: ``serve`` for co-located plans, else ``prefill`` and ``decode`` pools."""
    if plan.prefill_replicas:
        return [("prefill", plan.prefill_replicas), ("decode", plan.replicas)]
    return [("serve", plan.replicas)]


def dtype_word(plan: ServingPlan) -> str:
    return "float16" if plan.weight_precision == "fp16" else "bfloat16"

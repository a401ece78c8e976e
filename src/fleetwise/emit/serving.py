"""Serving launch lines shared by the vLLM, vllm-ascend, SGLang and LeaderWorkerSet emitters.

``serving_context`` resolves a ``plan_serve`` study row (``row["plan"]`` = ``ServingPlan`` fields) into the
model, accelerator and node size; ``nearest_cost`` prices a nearest plan from the study's own rows (fleetwise has
no single-plan serving evaluator: when the nearest plan is not among the rows, the cost is reported as unpriced);
``engine_roles`` lists the engines a plan runs (co-located, or prefill and decode pools).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetwise.catalog.loader import Catalog
from fleetwise.catalog.types import Accelerator, ModelArch, System
from fleetwise.emit.base import Adjustment, StudyLike
from fleetwise.emit.training import is_ascend, node_layout, study_plan_and_specs
from fleetwise.plan import ServingPlan

SERVE_KINDS = ("plan_serve",)
PORT = 8000


@dataclass(frozen=True)
class ServingContext:
    study: StudyLike
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
        return node_layout(self.plan.chips_per_replica, self.chips_per_node)[0]

    @property
    def chips_per_pod(self) -> int:
        """Every pod of a LeaderWorkerSet group asks for the same accelerators: an equal share of the engine."""
        return node_layout(self.plan.chips_per_replica, self.chips_per_node)[1]

    @property
    def is_ascend(self) -> bool:
        return is_ascend(self.accel)

    @property
    def has_fp8(self) -> bool:
        return self.accel.peak_tflops.fp8 is not None


def serving_context(study: StudyLike, row: int, target: str, catalog: Catalog | None = None,
                    model_path: str | None = None) -> ServingContext:
    r, plan, model, accel, system = study_plan_and_specs(study, row, target, SERVE_KINDS, ServingPlan, catalog)
    return ServingContext(study, row, r, plan, model, accel, system, model_path or f"/models/{model.id}")


def _words(base: float, new: float, where: str, row: int | None) -> tuple[str, dict[str, Any]]:
    change = new / base - 1.0
    return (f"predicted goodput {base:.4g} -> {new:.4g} req/s ({change:+.1%}; {where})",
            {"metric": "goodput_rps", "plan": base, "nearest": new, "change": round(change, 5), "row": row})


def _search_goodput(ctx: ServingContext, nearest: ServingPlan) -> tuple[float | None, str, ServingPlan]:
    """Goodput of ``nearest`` from a full serving search of the study's workload (every feasible plan ranked);
    when ``nearest`` itself misses the targets or the memory, the best feasible plan of the same shape with
    another batch limit (the nearest plan that runs)."""
    from fleetwise.perf.inference import make_serving_setup
    from fleetwise.search.serving import ServingWorkload, search_serving

    inp = ctx.study.inputs
    need = ("input_tokens", "output_tokens", "ttft_ms", "tpot_ms")
    if any(not isinstance(inp.get(k), (int, float)) for k in need) or (inp.get("chips") is None) == (
            inp.get("rate") is None):
        return None, "the study's inputs lack the workload (input/output tokens, TTFT/TPOT, chips or rate)", nearest
    s = make_serving_setup(ctx.model, ctx.accel, ctx.system)
    rate = inp.get("rate")
    w = ServingWorkload(float(inp["input_tokens"]), float(inp["output_tokens"]), float(inp["ttft_ms"]) / 1e3,
                        float(inp["tpot_ms"]) / 1e3, None if rate is None else float(rate),
                        None if inp.get("chips") is None else int(inp["chips"]), float(inp.get("percentile", 90.0)))
    res = search_serving(s, w, top=10**6, objective="cost")  # no energy figures: only goodput is compared
    for c in res.best:
        if c.plan == nearest:
            return c.goodput_rps, f"re-searched; {len(res.best):,} feasible plans", nearest
    same = [c for c in res.best if c.plan.model_copy(update={"max_batch": nearest.max_batch}) == nearest]
    if same:
        c = max(same, key=lambda x: x.goodput_rps)
        return (c.goodput_rps, f"re-searched; max_batch {nearest.max_batch} misses the targets or the memory, "
                f"{c.plan.max_batch} is the nearest that runs", c.plan)
    return (None, f"no plan of this shape meets the targets ({len(res.best):,} feasible plans searched)", nearest)


def nearest_cost(ctx: ServingContext, nearest: ServingPlan) -> tuple[str, dict[str, Any] | None, ServingPlan]:
    """The predicted difference between the study's plan and ``nearest``: from the study's own rows when the
    nearest plan is among them, else from a serving search of the study's workload."""
    want = nearest.model_dump()
    base = ctx.row.get("goodput_rps")
    if not isinstance(base, (int, float)) or base <= 0:
        return "unpriced: the study row has no goodput_rps", None, nearest
    for k, r in enumerate(ctx.study.rows):
        new = r.get("goodput_rps")
        if r.get("plan") == want and isinstance(new, (int, float)):
            return (*_words(float(base), float(new), f"study row {k}", k), nearest)
    new_rps, how, runs = _search_goodput(ctx, nearest)
    if new_rps is None:
        return f"unpriced: {how}", None, nearest
    return (*_words(float(base), round(new_rps, 4), how, None), runs)


def adjust(ctx: ServingContext, changes: dict[str, Any], reasons: dict[str, str],
           adjustments: list[Adjustment]) -> ServingPlan:
    """Apply ``changes`` to the plan, price the result and record one adjustment per field."""
    if not changes:
        return ctx.plan
    nearest = ctx.plan.model_copy(update=changes)
    words, metrics, runs = nearest_cost(ctx, nearest)
    for k, v in changes.items():
        adjustments.append(Adjustment(k, getattr(ctx.plan, k), v, reasons[k], words, metrics))
    if runs.max_batch != nearest.max_batch:
        adjustments.append(Adjustment("max_batch", ctx.plan.max_batch, runs.max_batch,
                                      "the nearest plan misses the targets or the memory at the plan's batch limit",
                                      words, metrics))
    return runs


def engine_roles(plan: ServingPlan) -> list[tuple[str, int]]:
    """(role, engines) pairs: ``serve`` for co-located plans, else ``prefill`` and ``decode`` pools."""
    if plan.prefill_replicas:
        return [("prefill", plan.prefill_replicas), ("decode", plan.replicas)]
    return [("serve", plan.replicas)]


def dtype_word(plan: ServingPlan) -> str:
    return "float16" if plan.weight_precision == "fp16" else "bfloat16"

"""How parallel groups map onto tiers follows the plan's rank order, and the search may choose either."""

from __future__ import annotations

from fleetwise import api
from fleetwise.catalog import Catalog
from fleetwise.plan import TrainingPlan


def _tiers(catalog: Catalog, order: str) -> dict[str, str]:
    plan = TrainingPlan(tp=4, pp=2, dp=8, rank_order=order)  # type: ignore[arg-type]
    r = api.explain_training("llama2-13b", "nvidia_h100_sxm", plan, seq_len=4096, global_batch=64, catalog=catalog)
    return r.comm_tiers


def test_default_order_keeps_data_parallel_inside_the_node(catalog: Catalog) -> None:
    t = _tiers(catalog, "tp-cp-dp-pp")
    assert t["tp"] == "scale-up" and t["dp"] == "scale-out" and t["pp"] == "scale-out"
    # 8-GPU nodes: tp4 leaves room for 2 DP ranks per node, so the DP group still spans nodes


def test_pipeline_inner_order_puts_stages_in_the_node(catalog: Catalog) -> None:
    t = _tiers(catalog, "tp-cp-pp-dp")
    assert t["pp"] == "scale-up" and t["dp"] == "scale-out"


def test_search_reports_the_rank_order_it_chose(catalog: Catalog) -> None:
    best = api.plan_training("llama2-13b", "nvidia_h100_sxm", 64, seq_len=4096, global_batch=256, top=3,
                             catalog=catalog).best
    assert all(b.plan.rank_order in ("tp-cp-dp-pp", "tp-cp-pp-dp") for b in best)

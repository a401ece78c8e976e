"""plan serve searches expert parallelism: one serving search behind plan serve and compare serve."""

from __future__ import annotations

from fleetwise import api
from fleetwise.catalog import Catalog
from fleetwise.search.serving import ServingWorkload
from fleetwise.search.systems import compare_systems

ARGS = dict(ttft_ms=2000.0, tpot_ms=50.0, input_tokens=2048.0, output_tokens=512.0, system="huawei_cloudmatrix_384",
            confirm=False)


def test_deepseek_v3_on_one_cloudmatrix_matches_compare_serve_per_chip(catalog: Catalog) -> None:
    ref = compare_systems(catalog.model("deepseek-v3"), [catalog.system("huawei_cloudmatrix_384")],
                          ServingWorkload(2048.0, 512.0, 2.0, 0.05), catalog)[0]
    ref_per_chip = ref.output_tokens_per_s / ref.chips
    best = api.plan_serving("deepseek-v3", "huawei_ascend_910c", chips=384, catalog=catalog, **ARGS).best[0]
    assert best.plan.ep > 1 and best.plan.is_disaggregated and best.plan.chips <= 384
    assert abs(best.tokens_per_s_per_chip / ref_per_chip - 1.0) <= 0.10


def test_deepseek_v3_at_100_rps_gets_an_ep_plan_denser_than_tensor_parallel(catalog: Catalog) -> None:
    plans = api.plan_serving("deepseek-v3", "huawei_ascend_910c", rate=100.0, top=30, catalog=catalog, **ARGS).best
    best = plans[0]
    assert best.plan.ep > 1 and best.goodput_rps == 100.0 and best.tpot_s <= 0.05 and best.ttft_s <= 2.0
    tp_only = [p for p in plans if p.plan.ep == 1]
    assert not tp_only or best.tokens_per_s_per_chip > tp_only[0].tokens_per_s_per_chip
    # whole 64-chip engines at 85 % utilisation: 1 prefill + 1 decode engine carry 100 req/s
    assert best.plan.chips <= 256


def test_dense_models_get_no_ep_plans(catalog: Catalog) -> None:
    plans = api.plan_serving("llama3.1-8b", "nvidia_h100_sxm", rate=5.0, ttft_ms=2000.0, tpot_ms=50.0,
                             input_tokens=1024.0, output_tokens=256.0, confirm=False, catalog=catalog).best
    assert plans and all(p.plan.ep == 1 for p in plans)

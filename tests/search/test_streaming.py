"""The streamed search (blocks reduced to their best rows and fronts one at a time) finds what one block finds."""

from __future__ import annotations

from fleetwise.api import training_setup
from fleetwise.catalog import Catalog
from fleetwise.search.evaluate import evaluate_plan, search_training
from fleetwise.search.space import SearchSpace


def test_small_blocks_give_the_same_plans_fronts_and_numbers(catalog: Catalog) -> None:
    s = training_setup("llama2-13b", "nvidia_h100_sxm", seq_len=4096, global_batch=256, catalog=catalog)
    space = SearchSpace(chips=32, pinned={"zero": 1, "sequence_parallel": True})
    one = search_training(s, space, top=5, objective="energy", block=10**7)
    many = search_training(s, space, top=5, objective="energy", block=500)  # dozens of blocks
    assert one.candidates_evaluated == many.candidates_evaluated and one.feasible == many.feasible > 100
    for a, b in ((one.best, many.best), (one.pareto, many.pareto), (one.pareto_time_energy, many.pareto_time_energy)):
        assert [r.plan for r in a] == [r.plan for r in b] and len(a) > 0
        assert [r.step_time_s for r in a] == [r.step_time_s for r in b]
    # results are rebuilt from the kept rows: each equals the plan evaluated on its own, to the last digit
    best = one.best[0]
    alone = evaluate_plan(s, best.plan)
    assert alone.step_time_s == best.step_time_s and alone.energy == best.energy
    assert alone.memory_bytes == best.memory_bytes

"""The streamed search (blocks reduced to their best rows and fronts one at a time) finds what one block finds."""

from __future__ import annotations

from fleetwise.api import training_setup
from fleetwise.catalog import Catalog
from fleetwise.search.evaluate import evaluate_plan, search_training
from fleetwise.search.space import SearchSpace, space_axes


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


def test_rules_checked_on_the_grid_match_the_rules_on_rows(catalog: Catalog) -> None:
    import numpy as np

    from fleetwise.search.space import generate, knob_masks, passing_blocks

    s = training_setup("mixtral-8x7b", "nvidia_h100_sxm", seq_len=4096, global_batch=96, catalog=catalog)
    space = SearchSpace(chips=16)
    rows, counts, n = [], {}, 0
    for sub, c, k in passing_blocks(space, s.model, s.job, space_axes(space, s.model, s.job)[0], block=5000):
        rows.append(sub)
        n += k
        for name, v in c.items():
            counts[name] = counts.get(name, 0) + v
    ref_rows, ref_counts, ref_n = [], {}, 0
    for block in generate(space, s.model, s.job, block=5000):
        masks = knob_masks(block, s.model, s.job)
        ref_rows.append(block.take(np.flatnonzero(np.logical_and.reduce(list(masks.values())))))
        ref_n += len(block)
        for name, m in masks.items():
            ref_counts[name] = ref_counts.get(name, 0) + int((~m).sum())
    assert n == ref_n and counts == ref_counts and sum(counts.values()) > 0
    for f in ("tp", "pp", "cp", "dp", "ep", "mbs", "vpp", "recompute", "recompute_frac", "zero", "sp", "tp_overlap",
              "ep_overlap", "pp_inner"):
        got = np.concatenate([getattr(r, f) for r in rows])
        want = np.concatenate([getattr(r, f) for r in ref_rows])
        assert got.dtype == want.dtype and np.array_equal(got, want) and len(got) > 100


def test_memory_priced_on_the_grid_equals_memory_on_rows(catalog: Catalog) -> None:
    import numpy as np

    from fleetwise.perf.memory import training_memory
    from fleetwise.search.space import fitting_blocks, passing_blocks

    # MoE with ZeRO and recompute choices: every memory term and the fit rule, to the last digit
    s = training_setup("mixtral-8x7b", "nvidia_h100_sxm", seq_len=4096, global_batch=96, catalog=catalog)
    space = SearchSpace(chips=16)
    layouts = space_axes(space, s.model, s.job)[0]
    fit = list(fitting_blocks(space, s, layouts, block=5000))
    ref = list(passing_blocks(space, s.model, s.job, layouts, block=5000))
    unfit = 0
    for (rows, counts, n, passing, mem), (ref_rows, ref_counts, ref_n) in zip(fit, ref, strict=True):
        want = training_memory(ref_rows, s)
        keep = np.flatnonzero(want.fits)
        assert counts == ref_counts and n == ref_n and passing == len(ref_rows)
        unfit += passing - len(keep)
        for f in ("tp", "pp", "cp", "dp", "ep", "mbs", "vpp", "recompute", "recompute_frac", "zero", "sp"):
            assert np.array_equal(getattr(rows, f), getattr(ref_rows, f)[keep])
        for f in ("weights", "gradients", "optimizer", "activations", "logits", "reserved"):
            assert np.array_equal(getattr(mem, f), getattr(want, f)[keep])  # exact, not approximate
    assert unfit > 0 and sum(len(b[0]) for b in fit) > 100

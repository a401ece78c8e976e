"""Benchmark: the full training-plan search for GPT-3 175B on 1,024 A100-80GB (gbs 1536, seq 2048).

Prints candidates evaluated, the rate, and the ratio against a baseline run in the same process: the
same cost model called one plan at a time (a per-candidate Python loop, as brute-force planners do),
timed on a sample and extrapolated. Target: >= 1e6 candidates at >= 1e5 candidates/s on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np

from fleetwise.api import training_setup
from fleetwise.perf.training import training_step
from fleetwise.search.evaluate import search_training
from fleetwise.search.space import SearchSpace, generate, structural_masks


def main() -> None:
    setup = training_setup("gpt3-175b", "nvidia_a100_80gb_sxm", system="nvidia_dgx_a100", seq_len=2048,
                           global_batch=1536)
    space = SearchSpace(chips=1024)
    search_training(setup, space, top=1)  # warm-up (imports, caches)
    t0 = time.perf_counter()
    result = search_training(setup, space, top=10)
    wall = time.perf_counter() - t0
    rate = result.candidates_evaluated / wall

    # baseline: the same model, one candidate per call (scalar loop), on a sample of the space
    block = next(generate(space, setup.model, setup.job))
    sample = 2000
    idx = np.arange(0, len(block), max(1, len(block) // sample))[:sample]
    t1 = time.perf_counter()
    for i in idx:
        one = block.take(np.array([i]))
        structural_masks(one, setup.model, setup.job, setup.system.domain_size)
        training_step(one, setup)
    loop_rate = len(idx) / (time.perf_counter() - t1)

    best = result.best[0]
    print("model gpt3-175b on 1024 x nvidia_a100_80gb_sxm, gbs 1536, seq 2048")
    print(f"candidates evaluated : {result.candidates_evaluated:,}")
    print(f"feasible             : {result.feasible:,}")
    print(f"search wall time     : {wall:.2f} s")
    print(f"rate                 : {rate:,.0f} candidates/s")
    print(f"baseline (per-plan loop, same process): {loop_rate:,.0f} candidates/s")
    print(f"speed-up vs baseline : {rate / loop_rate:,.0f}x")
    print(f"best plan            : {best.plan.label()} {best.plan.recompute} zero{best.plan.zero} "
          f"step {best.step_time_s:.2f} s MFU {100 * best.mfu:.1f}%")
    ok = result.candidates_evaluated >= 1_000_000 and rate >= 100_000
    print(f"target (>=1e6 candidates at >=1e5/s): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()

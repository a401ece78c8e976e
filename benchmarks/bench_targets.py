"""Benchmark: the four speed and memory targets of the planner, each with a baseline where one can be run.

1. search time: GPT-3 175B on 1,024 A100-80GB (gbs 1536, seq 2048), the whole default space (micro-batch
   divisors included). Baseline in the same process: the same cost model one plan per call, on a sample,
   extrapolated to the space. Target <= 0.6 s.
2. peak memory: DeepSeek-V3 on 16,384 H800 (the default global batch for that chip count), in a fresh
   process; baseline: the same process's RSS after imports. Target <= 1 GB.
3. ``fleetwise --help``: best of 5 fresh processes; baselines: ``python -c pass`` and a process that imports
   every fleetwise module (what ``--help`` cost before the CLI and ``import fleetwise`` became lazy).
   Target <= 0.15 s.
4. replay rate: the Azure conversation trace (19,366 requests) through Llama-3.1-70B on 8 H100 at TP8,
   steady decode jumping to the next event against the step-by-step replay (``jump=False``) in the same
   process, with the largest difference in any request's timestamps. Target >= 2x.

Run: ``python benchmarks/bench_targets.py`` (``--quick`` skips the 16,384-chip search). Times are wall
clock and CPU of this process; on a shared machine CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import pkgutil
import resource
import subprocess
import sys
import time

import numpy as np

RSS_SCRIPT = """
import resource, sys
from fleetwise.api import training_setup
from fleetwise.search.evaluate import search_training
from fleetwise.search.space import SearchSpace
s = training_setup("deepseek-v3", "nvidia_h800_sxm", system="nvidia_hgx_h800", seq_len=4096, chips=16384)
floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
r = search_training(s, SearchSpace(chips=16384), top=10)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(floor, peak, r.candidates_evaluated, r.best[0].plan.label())
"""


def _timed(fn):  # type: ignore[no-untyped-def]
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def search_time() -> None:
    from fleetwise.api import training_setup
    from fleetwise.perf.training import training_step
    from fleetwise.search.evaluate import search_training
    from fleetwise.search.space import SearchSpace, generate, space_size, structural_masks

    setup = training_setup("gpt3-175b", "nvidia_a100_80gb_sxm", system="nvidia_dgx_a100", seq_len=2048,
                           global_batch=1536)
    space = SearchSpace(chips=1024)
    search_training(setup, space, top=1)  # warm-up
    runs = [_timed(lambda: search_training(setup, space, top=10)) for _ in range(3)]
    result = runs[0][0]
    wall, cpu = min(r[1] for r in runs), min(r[2] for r in runs)
    block = next(generate(space, setup.model, setup.job))
    idx = np.arange(0, len(block), max(1, len(block) // 1000))[:1000]
    t = time.process_time()
    for i in idx:
        one = block.take(np.array([i]))
        structural_masks(one, setup.model, setup.job, setup.system.domain_size)
        training_step(one, setup)
    loop_s = (time.process_time() - t) / len(idx) * space_size(space, setup.model, setup.job)
    best = result.best[0]
    print(f"1. search GPT-3 175B / 1,024 A100: {result.candidates_evaluated:,} plans, {result.feasible:,} feasible; "
          f"best {best.plan.label()} {best.step_time_s:.2f} s/step")
    print(f"   wall {wall:.3f} s, CPU {cpu:.3f} s (best of 3); per-plan loop baseline {loop_s:,.0f} s CPU "
          f"-> {loop_s / cpu:,.0f}x; target <= 0.6 s: {'met' if min(wall, cpu) <= 0.6 else 'NOT met'} (CPU)")


def peak_rss() -> None:
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT], capture_output=True, text=True, check=True).stdout
    floor_s, peak_s, n, label = out.split(maxsplit=3)
    floor, peak = float(floor_s), float(peak_s)
    print(f"2. peak RSS DeepSeek-V3 / 16,384 H800 search ({int(n):,} plans, best {label.strip()}): "
          f"{peak:,.0f} MB (after imports {floor:,.0f} MB, search adds {peak - floor:,.0f} MB)"
          f"; target <= 1 GB: {'met' if peak <= 1024 else 'NOT met'}")


def help_time() -> None:
    import fleetwise

    modules = [m.name for m in pkgutil.walk_packages(fleetwise.__path__, "fleetwise.")
               if not m.name.endswith("__main__")]
    eager = "import " + ", ".join(modules)

    def best_of(cmd: list[str]) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - t)
        return min(times)

    bare = best_of([sys.executable, "-c", "pass"])
    help_s = best_of([sys.executable, "-m", "fleetwise.cli.main", "--help"])
    all_s = best_of([sys.executable, "-c", eager])
    print(f"3. fleetwise --help: {help_s:.3f} s (python -c pass {bare:.3f} s; importing all {len(modules)} modules "
          f"{all_s:.3f} s -> {all_s / help_s:.1f}x); target <= 0.15 s: {'met' if help_s <= 0.15 else 'NOT met'}")


def replay_rate() -> None:
    from fleetwise.catalog.loader import load_catalog
    from fleetwise.perf.inference import make_serving_setup
    from fleetwise.plan import ServingPlan
    from fleetwise.simulate.serving import simulate
    from fleetwise.workload.traces import bundled_trace

    cat = load_catalog()
    s = make_serving_setup(cat.model("llama3.1-70b"), cat.accelerator("nvidia_h100_sxm"),
                           cat.system("nvidia_dgx_h100_h200"))
    plan = ServingPlan(replicas=1, tp=8, max_batch=256, token_budget=8192, weight_precision="bf16")
    trace = bundled_trace("azure_conv")
    times: dict[bool, list[float]] = {False: [], True: []}
    results = {}
    for _ in range(3):
        for jump in (False, True):
            results[jump], _, cpu = _timed(lambda: simulate(s, plan, trace, jump=jump))  # noqa: B023
            times[jump].append(cpu)
    a, b = results[False], results[True]
    diff = max(float(np.max(np.abs(a.first_token_s - b.first_token_s))),
               float(np.max(np.abs(a.done_s - b.done_s))))
    step, jumped = min(times[False]), min(times[True])
    print(f"4. Azure conversation replay ({len(trace):,} requests): {len(trace) / jumped:,.0f} req/s jumping, "
          f"{len(trace) / step:,.0f} req/s step by step -> {step / jumped:.2f}x (CPU, best of 3); "
          f"largest timestamp difference {diff:.1e} s; target >= 2x: {'met' if step / jumped >= 2 else 'NOT met'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="skip the 16,384-chip memory search")
    args = p.parse_args()
    search_time()
    if not args.quick:
        peak_rss()
    help_time()
    replay_rate()
    print(f"(this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB)")


if __name__ == "__main__":
    main()

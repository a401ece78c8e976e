"""Benchmark: the whole Azure conversation trace (19,366 requests) through Llama-3.1-70B on 8 H100 at TP8.

Prints requests simulated per second, and the ratio against a naive replay in the same process (one
cost-model call and one pass over every running request per step, no pre-tabulated step times), which
is timed on the first requests of the trace and extrapolated per request. Target: <= 10 s on 2 cores.
"""

from __future__ import annotations

import time

import numpy as np

from fleetwise.catalog.loader import load_catalog
from fleetwise.perf.inference import make_serving_setup, step_time
from fleetwise.plan import ServingPlan
from fleetwise.simulate.serving import shape_of, simulate
from fleetwise.workload.traces import Trace, bundled_trace


def naive(s, plan: ServingPlan, trace: Trace) -> int:  # type: ignore[no-untyped-def]
    """FCFS continuous batching, whole prompts, the cost model called every step, lists scanned every step."""
    sh = shape_of(plan)
    t, i, done = 0.0, 0, 0
    waiting: list[tuple[int, int]] = []
    running: list[list[int]] = []  # [context, remaining]
    arrivals = trace.arrival_s.tolist()
    while done < len(trace):
        while i < len(trace) and arrivals[i] <= t:
            waiting.append((int(trace.input_tokens[i]), int(trace.output_tokens[i])))
            i += 1
        if not waiting and not running:
            t = arrivals[i]
            continue
        pf = 0
        while waiting and len(running) < plan.max_batch and pf + waiting[0][0] <= plan.token_budget:
            p, o = waiting.pop(0)
            pf += p
            running.append([p, o])
        ctx = float(np.mean([r[0] for r in running])) if running else 0.0
        one = np.ones(1)
        t += float(step_time(s, sh, pf * one, 0.5 * pf * one, one, len(running) * one, ctx * one).total_s[0])
        for r in running:
            r[0] += 1
            r[1] -= 1
        done += sum(1 for r in running if r[1] <= 0)
        running = [r for r in running if r[1] > 0]
    return done


def main() -> None:
    cat = load_catalog()
    s = make_serving_setup(cat.model("llama3.1-70b"), cat.accelerator("nvidia_h100_sxm"),
                           cat.system("nvidia_dgx_h100_h200"))
    plan = ServingPlan(replicas=1, tp=8, max_batch=256, token_budget=8192, weight_precision="bf16")
    trace = bundled_trace("azure_conv")
    t0 = time.perf_counter()
    result = simulate(s, plan, trace)
    wall = time.perf_counter() - t0
    summary = result.summary()
    rate = len(trace) / wall
    n_naive = 300
    t1 = time.perf_counter()
    naive(s, plan, trace.head(n_naive))
    naive_rate = n_naive / (time.perf_counter() - t1)
    print(f"requests: {len(trace)}  completed: {summary['completed']}  wall_seconds: {wall:.3f}")
    print(f"requests_per_s: {rate:,.0f}  naive_requests_per_s: {naive_rate:,.0f}  speedup: {rate / naive_rate:.1f}x")
    print(f"ttft_ms p50/p99: {summary['ttft_ms']['p50']}/{summary['ttft_ms']['p99']}  "
          f"tpot_ms p50/p99: {summary['tpot_ms']['p50']}/{summary['tpot_ms']['p99']}")
    assert wall <= 10.0, f"too slow: {wall:.1f} s"


if __name__ == "__main__":
    main()

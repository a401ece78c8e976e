"""Sweep rate: a grid of 1,000 cheap training scenarios (small models, 1-2 chips) on the local process pool.

Prints scenarios per second for the pool and, in the same process, for one worker (serial) on the first model's
200 scenarios as the baseline, so the ratio is the pool's speed-up on this machine; CPU milliseconds per scenario
are printed beside the rates (the wall-clock rate depends on how busy the machine is). Run:

    python benchmarks/bench_sweep.py [--workers 2]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from fleetwise.sweep import parse_grid, run_sweep

GRID = {
    "kind": "train",
    "models": ["gpt3-125m", "gpt3-350m", "gpt3-760m", "gpt3-1.3b", "megatron-gpt-1.7b"],
    "hardware": ["nvidia_h100_sxm", "nvidia_a100_80gb_sxm", "huawei_ascend_910b", "amd_mi300x", "nvidia_l40s"],
    "chips": [1, 2],
    "workloads": [{"name": "s1k", "seq_len": 1024}, {"name": "s2k", "seq_len": 2048},
                  {"name": "s2k-b256", "seq_len": 2048, "global_batch": 256}, {"name": "s4k", "seq_len": 4096},
                  {"name": "s1k-b512", "seq_len": 1024, "global_batch": 512}],
    "objectives": ["time", "energy", "cost", "carbon"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    grid = parse_grid(GRID, "bench_sweep")
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
        res = run_sweep(grid, Path(d) / "pool.parquet", backend="process", workers=a.workers)
        wall = time.perf_counter() - t
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - cpu0
        ok = sum(r["status"] == "ok" for r in res.rows)
        print(f"process pool, {a.workers} workers: {res.computed:,} scenarios ({ok:,} feasible) in {wall:.1f} s "
              f"= {res.computed / wall:,.1f} scenarios/s (pool start included); worker CPU {cpu:.1f} s = "
              f"{cpu / res.computed * 1e3:.0f} ms per scenario")
        small = parse_grid(dict(GRID, models=GRID["models"][:1]), "bench_sweep/serial")
        t, c = time.perf_counter(), time.process_time()
        base = run_sweep(small, Path(d) / "serial.parquet", backend="serial")
        sw, sc = time.perf_counter() - t, time.process_time() - c
        print(f"serial baseline (first model): {base.computed:,} scenarios in {sw:.1f} s "
              f"= {base.computed / sw:,.1f} scenarios/s; CPU {sc / base.computed * 1e3:.0f} ms per scenario")
        print(f"pool / serial rate: {(res.computed / wall) / (base.computed / sw):.2f}x")


if __name__ == "__main__":
    main()

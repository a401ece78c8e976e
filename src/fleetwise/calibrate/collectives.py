"""All-reduce bus bandwidth by message size over every visible device (torch.distributed, one process each).

Entry point: ``all_reduce_sweep(torch, device_kind, n, chip, conditions, quick)`` returns one collectives entry
in the measured-efficiency conventions (nccl-tests busbw = algbw 2(n-1)/n, points by bytes). The processes meet
through a file in a private folder (no network address); torch is passed in, never imported here.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

Entry = dict[str, Any]


def _worker(rank: int, world: int, kind: str, init_file: str, sizes: list[int], repeats: int, queue: Any) -> None:
    import torch
    import torch.distributed as dist

    if kind == "npu":
        import torch_npu  # noqa: F401

    mod = getattr(torch, kind)
    mod.set_device(rank)
    dist.init_process_group("nccl" if kind == "cuda" else "hccl", init_method=f"file://{init_file}",
                            rank=rank, world_size=world)
    times: dict[int, list[float]] = {}
    for size in sizes:
        x = torch.ones(size // 2, dtype=torch.bfloat16, device=f"{kind}:{rank}")
        for _ in range(3):  # warm-up: communicator setup and the first call's buffers excluded
            dist.all_reduce(x)
        mod.synchronize()
        inner = 20 if size <= 2**24 else 5
        for _ in range(repeats):
            dist.barrier()
            t = time.perf_counter()
            for _ in range(inner):
                dist.all_reduce(x)
            mod.synchronize()
            times.setdefault(size, []).append((time.perf_counter() - t) / inner)
    if rank == 0:
        queue.put(times)
    dist.barrier()
    dist.destroy_process_group()


def all_reduce_sweep(torch: Any, kind: str, n: int, chip: str, conditions: Entry, quick: bool) -> Entry:
    """One all_reduce entry over ``n`` devices: median time and busbw per message size (1 MiB to 1 GiB)."""
    sizes = [2**p for p in range(20, 29 if quick else 31, 2)]
    repeats = 3 if quick else 7
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.SimpleQueue()
    # a private folder for the file rendezvous: no network address is opened
    init_file = os.path.join(tempfile.mkdtemp(prefix="fleetwise-calibrate-"), "rendezvous")
    torch.multiprocessing.spawn(_worker, args=(n, kind, init_file, sizes, repeats, queue), nprocs=n, join=True)
    times: dict[int, list[float]] = queue.get()
    factor = 2 * (n - 1) / n  # nccl-tests busbw of all_reduce
    points = []
    for size in sizes:
        t = statistics.median(times[size])
        points.append({"bytes": size, "time_us": float(f"{t * 1e6:.5g}"),
                       "busbw_GBps": float(f"{size * factor / t / 1e9:.5g}"),
                       "samples_us": [float(f"{s * 1e6:.5g}") for s in times[size]]})
    return {"chip": chip, "collective": "all_reduce", "group_size": n, "nodes": 1, "kind": "bandwidth",
            "metric": "busbw (nccl-tests convention)", "fabric": f"scale-up ({conditions['device']})",
            "points": points, "measured": {"value": max(p["busbw_GBps"] for p in points), "unit": "GB/s"},
            "conditions": conditions, "timings": {"repeats": repeats, "warmup_calls": 3},
            "source": {"citation": "fleetwise calibrate bench", "date": conditions["date"]}, "confidence": "high"}

"""A short loopback load run (benchmarks/load_service.py has the full 5,000-request one): 50 concurrent
clients, mixed reads, small plans and exports, no errors, server memory flat within 10 % over the second
half (after 200 warm-up requests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.service.conftest import REPO


def test_fifty_clients_get_no_errors_and_memory_stays_flat(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("load_service", REPO / "benchmarks" / "load_service.py")
    assert spec is not None and spec.loader is not None
    load = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load)
    r = load.run_load(clients=50, requests=400, time_limit_s=240, workdir=tmp_path, warmup=200)
    print(f"load: {r['requests']} requests, p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, "
          f"RSS {r['rss_warm_mb']:.0f} -> {r['rss_end_mb']:.0f} MiB")
    assert r["errors"] == []
    assert r["requests"] == 400
    assert r["rss_growth"] <= 0.10

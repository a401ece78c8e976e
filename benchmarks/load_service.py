"""Loopback load test of ``fleetwise server``: concurrent clients send mixed requests (reads, small plans,
exports); prints p50/p99 latency, errors and the server's memory before and after.

    python benchmarks/load_service.py [--clients 50] [--requests 5000] [--time-limit-s 600]

Bounded in count and time, loopback only (127.0.0.1); exits 1 on any error or memory growth over 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

MODEL = {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "seq_len": 2048}
PLAN_TRAIN = {**MODEL, "chips": 8, "top": 3, "pinned": {"tp": 1, "pp": 1, "recompute": "none", "zero": 1}}
EXPLAINS = [{**MODEL, "plan": {"dp": 8, "micro_batch": m, "zero": z}} for m in (1, 2, 4, 8, 16, 32) for z in (0, 1, 2)]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def start_server(db: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "fleetwise.cli.main", "server", "--port", str(port),
                                 "--db", db, "--max-running", "2", "--max-waiting", "128"],
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"the server did not start: {log.read_text()[-1000:]}")


def _pick(rng: random.Random, ids: list[str]) -> tuple[str, str, dict[str, Any] | None]:
    """One request of the mix: (method, path, body)."""
    x = rng.random()
    sid = rng.choice(ids)
    if x < 0.40:
        return "GET", f"/api/studies/{sid}", None
    if x < 0.55:
        return "GET", f"/api/studies?q={rng.choice(['gpt3', 'h100', 'explain', 'plan_train', ''])}&limit=50", None
    if x < 0.65:
        return "GET", f"/api/studies/{sid}/charts", None
    if x < 0.75:
        return "GET", rng.choice(["/api/health", "/api/catalog", "/api/kinds", "/api/catalog/models/llama3-8b"]), None
    if x < 0.87:
        return "GET", f"/api/studies/{sid}/export/{rng.choice(['json', 'csv'])}", None
    if x < 0.92:
        return "GET", f"/api/studies/{sid}/export/html", None
    if x < 0.97:
        return "POST", "/api/studies", {"kind": "explain_train", "inputs": rng.choice(EXPLAINS)}
    return "POST", "/api/studies", {"kind": "plan_train", "inputs": {**PLAN_TRAIN, "top": rng.randint(1, 5)}}


async def _clients(base: str, clients: int, requests: int, time_limit_s: float, ids: list[str], pid: int,
                   warm_at: int) -> dict[str, Any]:
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    errors: list[str] = []
    counter = iter(range(requests))
    rss: dict[str, int] = {}
    deadline = time.monotonic() + time_limit_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(k)
        for i in counter:
            if time.monotonic() > deadline:
                errors.append("time limit reached")
                return
            if i == warm_at:
                rss["warm"] = rss_bytes(pid)
            method, path, body = _pick(rng, ids)
            t0 = time.perf_counter()
            try:
                r = await http.request(method, path, json=body)
                ok = r.status_code < 400
                if not ok:
                    errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{method} {path}: {type(exc).__name__}")
            latencies.append(time.perf_counter() - t0)
            parts = path.split("?")[0].split("/")
            kind = method + " " + "/".join("ID" if len(x) == 16 and i == 3 else x for i, x in enumerate(parts))
            by_kind.setdefault(kind, []).append(latencies[-1])

    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    wall = time.perf_counter() - t0
    rss["end"] = rss_bytes(pid)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    server_cpu_s = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    latencies.sort()
    n = len(latencies)
    return {"requests": n, "errors": errors, "wall_s": wall, "rps": n / wall,
            "server_cpu_s": server_cpu_s, "p50_ms": 1e3 * latencies[n // 2],
            "p99_ms": 1e3 * latencies[min(n - 1, int(n * 0.99))],
            "rss_warm_mb": rss.get("warm", rss["end"]) / 2**20, "rss_end_mb": rss["end"] / 2**20,
            "by_kind": {k: (len(v), 1e3 * sorted(v)[len(v) // 2]) for k, v in sorted(by_kind.items())}}


def run_load(clients: int = 50, requests: int = 5000, time_limit_s: float = 600.0, port: int = 0,
             workdir: Path | None = None, warmup: int | None = None) -> dict[str, Any]:
    """Start a server on a fresh SQLite file, seed it with a few studies, run the load, stop the server.
    The memory baseline is taken after ``warmup`` requests (default a fifth): caches, worker threads and the
    first computations have settled by then."""
    import socket

    tmp = workdir or Path(tempfile.mkdtemp(prefix="fleetwise-load-"))
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
    proc = start_server(f"sqlite:///{tmp / 'studies.db'}", port, tmp / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as c:
            ids = [c.post("/api/studies", json={"kind": "explain_train", "inputs": e}).json()["id"]
                   for e in EXPLAINS[:6]]
            ids.append(c.post("/api/studies", json={"kind": "plan_train", "inputs": PLAN_TRAIN}).json()["id"])
        result = asyncio.run(_clients(base, clients, requests, time_limit_s, ids, proc.pid,
                                      warm_at=max(1, requests // 5 if warmup is None else warmup)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result["rss_growth"] = result["rss_end_mb"] / result["rss_warm_mb"] - 1
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--time-limit-s", type=float, default=600.0)
    args = ap.parse_args()
    r = run_load(args.clients, args.requests, args.time_limit_s)
    print(f"{r['requests']:,} requests from {args.clients} clients in {r['wall_s']:.1f} s ({r['rps']:.0f}/s); "
          f"errors {len(r['errors'])}; latency p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
    per_request_ms = 1e3 * r["server_cpu_s"] / max(r["requests"], 1)
    print(f"server CPU {r['server_cpu_s']:.1f} s ({per_request_ms:.1f} ms per request)")
    print(f"server RSS after warm-up {r['rss_warm_mb']:.1f} MiB, at the end {r['rss_end_mb']:.1f} MiB "
          f"({100 * r['rss_growth']:+.1f} %)")
    for kind, (n, p50) in r["by_kind"].items():
        print(f"  {kind:<40} {n:>5} requests, p50 {p50:8.1f} ms")
    for e in r["errors"][:10]:
        print("  error:", e)
    sys.exit(1 if r["errors"] or r["rss_growth"] > 0.10 else 0)


if __name__ == "__main__":
    main()

"""Run a sweep: scenarios in batches on a backend, results to Parquet, resumable after a kill.

Every scenario carries a content hash (``grid.scenario_id``). Finished batches are written as Parquet part files
(``OUT.parts/part-*.parquet``, each written to a temporary name and renamed, so a killed sweep leaves only whole
parts); a rerun reads the parts (and a finished ``OUT``) and computes only the scenarios whose hash is missing.
When every scenario has a row, the rows are written to ``OUT`` in grid order and the parts are removed.
Backends: ``process`` (a local process pool, the default), ``ray`` (Ray tasks on a local or remote cluster,
``address``), ``serial`` (in this process); all give the same rows.
Entry points: ``run_sweep``, ``SweepResult``, ``read_rows``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetwise.errors import SpecError
from fleetwise.sweep.grid import Grid, scenario_id
from fleetwise.sweep.worker import COLUMNS, evaluate_batch

BACKENDS = ("process", "ray", "serial")
Batch = list[tuple[dict[str, Any], int, str]]
ProgressFn = Callable[[int, int, float], None]


@dataclass(frozen=True)
class SweepResult:
    out: Path
    rows: list[dict[str, Any]]  # in grid order
    computed: int  # scenarios evaluated by this run
    reused: int  # scenarios whose rows a previous (killed) run had written
    seconds: float
    backend: str
    workers: int

    @property
    def rate(self) -> float:
        """Scenarios computed per second by this run."""
        return self.computed / self.seconds if self.seconds > 0 else 0.0


def _require_pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise SpecError("fleetwise sweep writes Parquet: pip install 'fleetwise[sweep]' (pyarrow)") from None
    return pa


def _schema(pa: Any) -> Any:
    return pa.schema([(k, getattr(pa, v)()) for k, v in COLUMNS.items()])


def _write(rows: list[dict[str, Any]], path: Path) -> None:
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=_schema(pa))
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a sweep Parquet file (or part file)."""
    _require_pyarrow()
    import pyarrow.parquet as pq

    try:
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: not a readable Parquet file ({str(exc)[:120]})") from None
    return rows


def _parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _done(out: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    sources = ([out] if out.is_file() else []) + sorted(_parts_dir(out).glob("part-*.parquet"))
    for src in sources:
        for r in read_rows(src):
            found[str(r["scenario_id"])] = r
    return found


def _batches(todo: list[tuple[dict[str, Any], int, str]], size: int) -> Iterator[Batch]:
    for k in range(0, len(todo), size):
        yield todo[k:k + size]


def _run_process(batches: list[Batch], workers: int) -> Iterator[list[dict[str, Any]]]:
    import multiprocessing as mp

    # fork is the cheapest start on Linux; Python 3.12+ warns about forking a threaded process, so use forkserver
    method = "fork" if sys.platform.startswith("linux") and sys.version_info < (3, 12) else "forkserver"
    ctx = mp.get_context(method if method in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: set[Future[list[dict[str, Any]]]] = set()
        it = iter(batches)
        for b in it:
            pending.add(pool.submit(evaluate_batch, b))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(evaluate_batch, nxt))


def _run_ray(batches: list[Batch], workers: int, address: str | None) -> Iterator[list[dict[str, Any]]]:
    try:
        import ray
    except ImportError:
        raise SpecError("--backend ray needs Ray: pip install 'fleetwise[ray]'") from None
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kw["address"] = address
        else:
            kw["num_cpus"] = workers
        ray.init(**kw)
        started = True
    try:
        task = ray.remote(evaluate_batch)
        pending = [task.remote(b) for b in batches]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def _run_serial(batches: list[Batch]) -> Iterator[list[dict[str, Any]]]:
    for b in batches:
        yield evaluate_batch(b)


def progress_bar(stream: Any = None) -> ProgressFn:
    """A one-line progress bar with the rate and the time left, on stderr."""
    out = stream or sys.stderr

    def bar(done: int, total: int, seconds: float) -> None:
        width = 30
        frac = done / max(total, 1)
        rate = done / seconds if seconds > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        out.write(f"\r  sweep [{'#' * int(frac * width):<{width}}] {done:,}/{total:,}  {rate:,.1f}/s  "
                  f"{left:,.0f} s left ")
        if done >= total:
            out.write("\n")
        out.flush()

    return bar


def run_sweep(grid: Grid, out: str | Path, *, backend: str = "process", workers: int | None = None,
              address: str | None = None, batch_size: int | None = None,
              progress: ProgressFn | None = None) -> SweepResult:
    """Evaluate every scenario of ``grid`` that ``out`` (and its part files) does not hold yet; write ``out``."""
    if backend not in BACKENDS:
        raise SpecError(f"--backend must be one of {', '.join(BACKENDS)} (got {backend!r:.40})")
    if address and backend != "ray":
        raise SpecError("--address applies to --backend ray only")
    if workers is not None and (backend == "serial" or address):
        raise SpecError("--workers sizes the local process pool or local Ray cluster; it does not apply to "
                        + ("--backend serial" if backend == "serial" else "a remote Ray cluster (--address)"))
    _require_pyarrow()
    from fleetwise.version import __version__

    out = Path(out)
    if not out.parent.is_dir():
        raise SpecError(f"--out {out}: the folder {out.parent} does not exist")
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_workers = max(1, workers or avail)
    scenarios = [(sc, i, scenario_id(sc, __version__)) for i, sc in enumerate(grid.scenarios())]
    ids = {sid for _, _, sid in scenarios}
    done = {k: v for k, v in _done(out).items() if k in ids}
    todo = [t for t in scenarios if t[2] not in done]
    size = batch_size or max(1, min(64, len(todo) // (8 * n_workers) or 1))
    batches = list(_batches(todo, size))
    parts = _parts_dir(out)
    if todo:
        parts.mkdir(exist_ok=True)
    start = time.perf_counter()
    first = len(list(parts.glob("part-*.parquet"))) if parts.is_dir() else 0
    runner: Iterable[list[dict[str, Any]]]
    if backend == "process" and n_workers > 1:
        runner = _run_process(batches, n_workers)
    elif backend == "ray":
        runner = _run_ray(batches, n_workers, address)
    else:
        runner = _run_serial(batches)
    computed = 0
    if progress and todo:
        progress(0, len(todo), 0.0)
    for k, rows in enumerate(runner):
        _write(rows, parts / f"part-{first + k:06d}-{os.getpid()}.parquet")
        for r in rows:
            done[str(r["scenario_id"])] = r
        computed += len(rows)
        if progress:
            progress(computed, len(todo), time.perf_counter() - start)
    seconds = time.perf_counter() - start
    ordered = [dict(done[sid], index=i) for _, i, sid in scenarios]
    _write(ordered, out)
    if parts.is_dir():
        for p in parts.glob("*"):
            p.unlink()
        parts.rmdir()
    return SweepResult(out, ordered, computed, len(scenarios) - computed, seconds, backend,
                       n_workers if backend != "serial" else 1)

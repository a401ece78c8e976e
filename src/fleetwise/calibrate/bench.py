"""Micro-benchmarks on a real device, written in the measured-efficiency.yaml conventions (a device profile).

Entry point: ``run_bench(hardware, backend, device, quick)`` returns the profile mapping (``profile:`` header,
then ``gemm``, ``attention``, ``memory_bandwidth``, ``collectives``, ``overheads``); ``dump_profile`` writes it.
Every entry carries its conditions (backend, library versions, device name, date) and raw timings: the median
of the repeats, warm-up runs excluded. The numpy backend measures the host CPU (and says so); the torch backend
(``fleetwise[calibrate]``, imported only when asked) measures a CUDA or Ascend NPU device, or the CPU.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetwise.calibrate.backends import Backend, numpy_backend, torch_backend
from fleetwise.catalog.types import Accelerator

Entry = dict[str, Any]
FORMAT = "fleetwise device profile 1"
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True, slots=True)
class Plan:
    """What one run measures: GEMM shapes (M, N, K), attention sequence lengths, stream sizes, repeats."""

    gemm_shapes: tuple[tuple[int, int, int], ...]
    attention_seqs: tuple[int, ...]
    attention_tokens: int
    stream_bytes: int
    repeats: int
    warmup: int
    min_sample_s: float  # each sample loops a kernel until it has run this long (timer resolution)


def bench_plan(device_kind: str, quick: bool) -> Plan:
    """Shapes per device kind: an accelerator gets sizes up to 16k (a size sweep identifies t0), the CPU small ones."""
    gemm: tuple[tuple[int, int, int], ...]
    if device_kind == "cpu":
        gemm = ((128, 128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 128)) if quick else \
            ((256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (1024, 1024, 256))
        return Plan(gemm, (128, 256, 512), 2048, (16 if quick else 256) * 2**20, 5 if quick else 9, 1,
                    0.002 if quick else 0.02)
    gemm = ((1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192), (4096, 4096, 512),
            (8192, 8192, 256))
    if not quick:
        gemm += ((16384, 16384, 16384), (8192, 8192, 1024), (6144, 12288, 12288), (2048, 8192, 8192))
    seqs = (512, 2048, 8192) if quick else (512, 1024, 2048, 4096, 8192, 16384)
    return Plan(gemm, seqs, 16384, (256 if quick else 2048) * 2**20, 5 if quick else 15, 2, 0.005 if quick else 0.05)


def time_kernel(run: Callable[[], object], sync: Callable[[], None], plan: Plan) -> Entry:
    """Seconds per call: warm-up calls excluded, then ``repeats`` samples of an inner loop long enough for the timer.

    Returns the raw timings: median, min, max and every sample (s per call), the inner loop count."""
    for _ in range(plan.warmup):
        run()
    sync()
    inner, elapsed = 1, 0.0
    while True:  # size the inner loop on one timed batch
        t = time.perf_counter()
        for _ in range(inner):
            run()
        sync()
        elapsed = time.perf_counter() - t
        if elapsed >= plan.min_sample_s or inner >= 1 << 16:
            break
        inner *= max(2, min(16, int(plan.min_sample_s / max(elapsed, 1e-9)) + 1))
    samples = []
    for _ in range(plan.repeats):
        t = time.perf_counter()
        for _ in range(inner):
            run()
        sync()
        samples.append((time.perf_counter() - t) / inner)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "repeats": plan.repeats, "warmup_calls": plan.warmup, "calls_per_sample": inner,
            "samples_s": [float(f"{s:.6g}") for s in samples]}


def _pct(value: float, peak: float | None, basis: str) -> Entry | None:
    return None if not peak else {"value": float(f"{100 * value / peak:.4g}"), "peak": peak, "peak_basis": basis}


def _entry(b: Backend, conditions: Entry, timings: Entry, body: Entry, pct: Entry | None) -> Entry:
    out = {**body, "conditions": conditions, "timings": timings,
           "source": {"citation": "fleetwise calibrate bench", "date": conditions["date"]}, "confidence": "high"}
    if pct is not None:
        out["pct_of_peak"] = pct
    return out


def _gemm(b: Backend, chip: str, acc: Accelerator, plan: Plan, cond: Entry, on_chip: bool) -> list[Entry]:
    out = []
    for p in b.gemm_precisions:
        peak = getattr(acc.peak_tflops, p, None) if on_chip else None
        for m, n, k in plan.gemm_shapes:
            run = b.gemm(m, n, k, p)
            t = time_kernel(run, b.sync, plan)
            tflops = 2.0 * m * n * k / t["median_s"] / 1e12
            body = {"chip": chip, "precision": p, "op": b.gemm_op, "shape": {"M": m, "N": n, "K": k},
                    "measured": {"value": float(f"{tflops:.5g}"), "unit": "TFLOP/s"},
                    "derived": "TFLOP/s = 2 M N K / median time"}
            out.append(_entry(b, cond, t, body, _pct(tflops, peak, f"catalog {chip}.peak_tflops.{p} (dense)")))
    return out


def _attention(b: Backend, chip: str, acc: Accelerator, plan: Plan, cond: Entry, on_chip: bool,
               skipped: list[str]) -> list[Entry]:
    out, heads, d = [], 16, 128
    peak = acc.peak_tflops.bf16 if on_chip else None
    for s in plan.attention_seqs:
        batch = max(1, plan.attention_tokens // s)
        fwd_flop = 4.0 * batch * heads * s * s * d  # flash-attention benchmark convention, non-causal
        fwd, both = b.attention(batch, heads, s, d)
        t_f = time_kernel(fwd, b.sync, plan)
        t_b = time_kernel(both, b.sync, plan)
        bwd_s = t_b["median_s"] - t_f["median_s"]
        shape = {"batch": batch, "heads": heads, "seqlen": s, "head_dim": d, "causal": False}
        runs = [("fwd", fwd_flop, t_f["median_s"], t_f)]
        if bwd_s > 0.2 * t_f["median_s"]:  # bwd does 2.5x the FLOPs of fwd: a smaller difference is noise
            runs.append(("bwd", 2.5 * fwd_flop, bwd_s, {**t_b, "bwd_s": bwd_s}))
        else:
            skipped.append(f"attention bwd at S={s}: fwd+bwd ({t_b['median_s']:.3g} s) not measurably slower "
                           f"than fwd ({t_f['median_s']:.3g} s)")
        for direction, flop, secs, timings in runs:
            tflops = flop / secs / 1e12
            body = {"chip": chip, "precision": "bf16", "kernel": b.attention_kernel, "direction": direction,
                    "shape": shape, "measured": {"value": float(f"{tflops:.5g}"), "unit": "TFLOP/s"},
                    "derived": "fwd 4 B H S^2 D / median time; bwd 2.5 x fwd FLOPs / (fwd+bwd - fwd median time)"}
            out.append(_entry(b, cond, timings, body, _pct(tflops, peak, f"catalog {chip}.peak_tflops.bf16 (dense)")))
    return out


def _streams(b: Backend, chip: str, acc: Accelerator, plan: Plan, cond: Entry, on_chip: bool) -> list[Entry]:
    out = []
    peak = acc.hbm_tbps * 1000 if on_chip else None
    for name, (run, moved) in b.streams(plan.stream_bytes).items():
        t = time_kernel(run, b.sync, plan)
        gbps = moved / t["median_s"] / 1e9
        body = {"chip": chip, "method": name, "working_set": f"{plan.stream_bytes / 2**20:.0f} MiB per array",
                "measured": {"value": float(f"{gbps:.5g}"), "unit": "GB/s"},
                "derived": f"bytes read + written ({moved:,}) / median time"}
        out.append(_entry(b, cond, t, body, _pct(gbps, peak, f"catalog {chip}.hbm_tbps x 1000")))
    return out


def _overheads(b: Backend, chip: str, plan: Plan, cond: Entry) -> list[Entry]:
    out = []
    for detail, run in b.tiny_ops().items():
        t = time_kernel(run, b.sync, plan)
        body = {"chip": chip, "kind": "kernel_launch_host_overhead", "detail": detail,
                "measured": {"value": float(f"{t['median_s'] * 1e6:.4g}"), "unit": "us"},
                "derived": "median time per call of a one-element op, calls back to back, one sync per sample"}
        out.append(_entry(b, cond, t, body, None))
    return out


def run_bench(hardware: Accelerator, backend: str, device: str | None, quick: bool,
              say: Callable[[str], None] | None = None) -> Entry:
    """Measure the device and return the profile (measured-efficiency conventions).

    Args:
        hardware: the catalog accelerator the profile is for (entries carry its id; peaks come from it).
        backend: ``numpy`` (host CPU) or ``torch``.
        device: ``cuda``, ``npu`` or ``cpu`` (torch; default cuda); numpy runs on the CPU only.
        quick: a few seconds of measurement instead of minutes.
        say: receives one line per benchmark group as it finishes.

    Returns:
        The profile mapping; ``profile.skipped`` names every benchmark kind not run, and why.
    """
    b = numpy_backend(device) if backend == "numpy" else torch_backend(device or "cuda")
    on_chip = b.device_kind != "cpu"  # a CPU run is the host's, never the accelerator's: no % of its peak
    plan = bench_plan(b.device_kind, quick)
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    cond = {"backend": b.name, "device": b.device_name, "device_kind": b.device_kind, "libraries": b.libraries,
            "date": today}
    header: Entry = {"format": FORMAT, "hardware": hardware.id, "backend": b.name, "device": b.device_name,
                     "device_kind": b.device_kind, "device_count": b.device_count, "libraries": b.libraries,
                     "host": f"{platform.system()} {platform.machine()} {platform.processor() or ''}".strip(),
                     "date": today, "quick": quick, "load_average": _load_average(),
                     "blas_threads": {k: v for k, v in os.environ.items() if k in BLAS_THREAD_VARS}, "skipped": []}
    if not on_chip:
        header["skipped"].append(f"pct_of_peak: measured on the host CPU ({b.device_name}), not on {hardware.id}; "
                                 "its catalog peaks do not apply")
    doc: Entry = {"profile": header, "gemm": [], "attention": [], "memory_bandwidth": [], "collectives": []}
    doc["overheads"] = _overheads(b, hardware.id, plan, cond)  # first: it tells which kernels are host-bound
    launch_s = min(e["timings"]["median_s"] for e in doc["overheads"])
    doc["gemm"] = _host_bound(_gemm(b, hardware.id, hardware, plan, cond, on_chip), launch_s)
    _said(say, f"gemm: {len(doc['gemm'])} shapes x precisions")
    if b.has_attention:
        doc["attention"] = _host_bound(_attention(b, hardware.id, hardware, plan, cond, on_chip, header["skipped"]),
                                       launch_s)
        _said(say, f"attention: {len(doc['attention'])} points")
    else:
        header["skipped"].append(f"attention: the {b.name} backend has no fused attention kernel")
    doc["memory_bandwidth"] = _host_bound(_streams(b, hardware.id, hardware, plan, cond, on_chip), launch_s)
    _said(say, f"memory_bandwidth: {len(doc['memory_bandwidth'])} streams")
    doc["collectives"], why = b.collectives(hardware.id, cond, quick)
    if why:
        header["skipped"].append(f"collectives: {why}")
    _said(say, f"overheads: {len(doc['overheads'])} kinds, {launch_s * 1e6:.3g} us per launch")
    return doc


def _host_bound(entries: list[Entry], launch_s: float) -> list[Entry]:
    """Entries whose time per call is within 2x of one launch measure the host, not the kernel: marked low
    confidence (the fitter leaves those out), with the reason in notes."""
    for e in entries:
        if e["timings"]["median_s"] < 2.0 * launch_s:
            e["confidence"] = "low"
            e["notes"] = (f"host-bound: {e['timings']['median_s'] * 1e6:.3g} us per call, within 2x of the "
                          f"{launch_s * 1e6:.3g} us launch overhead; left out of the fit")
    return entries


def _load_average() -> float | None:
    """The host's 1-minute load average: a shared or busy host makes every CPU number slower."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _said(say: Callable[[str], None] | None, line: str) -> None:
    if say is not None:
        say(line)

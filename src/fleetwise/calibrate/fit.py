"""Efficiency fits on micro-benchmarks: GEMM, attention, HBM and collective primitives (one fitter for all).

Entry points: ``gemm_points``/``fit_gemm``, ``attention_points``/``ramp_fit``, ``fit_hbm``,
``collective_points``/``hyperbola_fit``. Inputs are measured-efficiency mappings (``reference/
measured-efficiency.yaml`` conventions) and accelerator peaks by id; the shipped table is assembled in
``calibrate/shipped.py``, a user's device profile in ``calibrate/device.py``. ``say`` receives the residual lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Entry = dict[str, Any]  # one measured-efficiency entry (or a fitted row) as parsed from YAML
Say = Callable[[str], None]
PRECISIONS = ("bf16", "fp16", "fp8", "fp4")
DEFAULTS: dict[str, dict[str, float]] = {
    "gemm": {"e_max": 0.6, "t0_s": 5.0e-6},
    "attention": {"fwd": 0.45, "bwd": 0.35, "s_half": 1024},
    "hbm": {"e": 0.75},
    "collective": {"busbw_frac": 0.5, "s_half_bytes": 8.0e6, "alpha_s": 50e-6},
}
A100, H100 = "nvidia_a100_80gb_sxm", "nvidia_h100_sxm"
POOLED = {"nvidia_a100_40gb_sxm": A100}  # same SM and clocks: one GEMM fit
K_REF = 1024  # GEMMs with smaller K pay the small-K penalty; larger ones set e_max and t0
REF_ATTN, REF_GROUP = H100, 8  # H100 has the only attention sequence sweep; 8 = one node / full mesh


def _silent(_line: str) -> None:
    """The default ``say``: residual lines are dropped."""


def log_rms(res: FloatArray) -> float:
    return float(np.sqrt(np.mean(np.square(res)))) if len(res) else 0.0


# ------------------------------------------------------------------------------------------------ GEMM
def gemm_shape(e: Entry) -> tuple[float, float, float, float, float] | None:
    """(batch, M, N, K, K for the small-K factor); None for aggregates and shapeless entries."""
    s = e.get("shape") or {}
    if all(k in s for k in "MNK"):
        return s.get("batch", 1), s["M"], s["N"], s["K"], s["K"]
    desc = s.get("desc", "")
    # Best-of-search shapes: the source's table says MxNxK but its finder prints MxKxN, so K is
    # unknown and no small-K factor is applied to them.
    m = re.search(r"(\d+)x(\d+)x(\d+)", desc)
    if m and "GEMMs" not in desc:
        mm, nn, kk = map(int, m.groups())
        return 1, mm, nn, kk, np.inf
    # Best of a search with the shape unstated: large enough that t0 does not matter.
    return (1, 16384, 16384, 16384, np.inf) if re.search("best|search", desc) else None


def gemm_points(bench: Entry, accel: Entry, pooled: dict[str, str] | None = None) -> tuple[list[Entry], list[str]]:
    """Compute-regime GEMM points, and why each other entry was left out."""
    pooled = POOLED if pooled is None else pooled
    pts: list[Entry] = []
    skipped: list[str] = []
    for e in bench["gemm"]:
        p, shape = e["precision"], gemm_shape(e)
        peak = accel.get(e["chip"], {}).get(f"{p}_tflops")
        why = ("low confidence" if e.get("confidence") == "low"
               else "no value, catalog peak or fitted precision" if None in (e["measured"]["value"], peak)
               or p not in PRECISIONS
               else "not a plain GEMM" if re.search("addmm|quantization", e["op"] + str(e["shape"]))
               else "misalignment demo, ~2x below every other H100 point" if "SwiGLU" in str(e["shape"])
               else "no single shape" if shape is None
               else "skinny (min(M,N) < 512): memory-bound, use the HBM roofline" if min(shape[1:3]) < 512
               else None)
        if why or shape is None:
            skipped.append(f"{e['chip']} {p} {e['op']} {e.get('shape')}: {why}")
            continue
        b, m, n, k, k_factor = shape
        pts.append({"chip": pooled.get(e["chip"], e["chip"]), "p": p, "flop": 2.0 * b * m * n * k,
                    "k": k_factor, "peak": peak * 1e12, "eff": e["measured"]["value"] / peak, "op": e["op"],
                    "label": f"{e['chip']} {e['op']} {b}x{m}x{n}x{k}"})
    return pts, skipped


def lsq_gemm(pts: list[Entry], t0: float | None = None) -> tuple[dict[str, float], float, FloatArray]:
    """Least squares on relative time, t = F/(peak e_p) + t0 (t0 free unless given).

    Returns e_max per precision, t0 in s, and log(measured/model) efficiency residuals."""
    precs = sorted({q["p"] for q in pts})
    t = np.array([q["flop"] / (q["eff"] * q["peak"]) for q in pts])  # measured s, (n_points,)
    x = np.zeros((len(pts), len(precs) + 1))  # columns: 1/e_p per precision, then t0
    for i, q in enumerate(pts):
        x[i, precs.index(q["p"])] = q["flop"] / q["peak"]
        x[i, -1] = 1.0
    coef = np.linalg.lstsq(x / t[:, None], np.ones_like(t), rcond=None)[0]
    if t0 is None:
        t0 = float(np.clip(coef[-1], 0.0, 1e-4))
    if t0 != coef[-1]:  # t0 given, or the free fit left [0, 100 us]: refit the e_p with t0 fixed
        coef = np.append(np.linalg.lstsq(x[:, :-1] / t[:, None], 1.0 - t0 / t, rcond=None)[0], t0)
    return {p: 1.0 / coef[j] for j, p in enumerate(precs)}, t0, np.log(x @ coef / t)


def fit_gemm_chip(pts: list[Entry]) -> tuple[dict[str, tuple[float, float, str]], FloatArray]:
    """Per precision (e_max, t0_s, how t0 was set): own t0 where that precision has a size sweep,
    else the t0 of a joint fit over the chip's precisions, else the prior."""
    def swept(sel: list[Entry]) -> bool:  # t0 is identifiable only if some GEMMs are short
        return len(sel) >= 3 and min(q["flop"] / (q["eff"] * q["peak"]) for q in sel) < 100e-6
    t0_chip = lsq_gemm(pts)[1] if swept(pts) else DEFAULTS["gemm"]["t0_s"]
    out: dict[str, tuple[float, float, str]] = {}
    res = np.zeros(len(pts))
    for p in sorted({q["p"] for q in pts}):
        idx = [i for i, q in enumerate(pts) if q["p"] == p]
        own = swept([pts[i] for i in idx])
        e, t0, res[idx] = lsq_gemm([pts[i] for i in idx], None if own else t0_chip)
        how = ("t0 fitted on this size sweep" if own else "t0 from the chip's other precisions"
               if swept(pts) else "t0 = prior (no GEMM under 100 us)")
        out[p] = (e[p], t0, how)
    return out, res


def gemm_model(fit: Entry, q: Entry) -> float:
    """Efficiency e_max t_ideal/(t_ideal + t0) of point q under a (chip, precision) fit."""
    t_ideal = q["flop"] / (q["peak"] * fit["e_max"])
    return float(fit["e_max"] * t_ideal / (t_ideal + fit["t0_s"]))


def small_k_factor(k: FloatArray, k_half: float) -> FloatArray:
    """Small-K penalty, 1 at K >= K_REF: (K/(K + k_half)) / (K_REF/(K_REF + k_half))."""
    return np.minimum(1.0, k / (k + k_half) * (K_REF + k_half) / K_REF)


def _same_rate_16bit(pts: list[Entry]) -> bool:
    """Whether a chip's GEMM points hold both fp16 and bf16 at one dense peak: the two formats run on the same
    tensor cores at the same rate (A100 312 TFLOP/s each, NVIDIA A100 whitepaper), so a gap between their
    fits is a gap between benchmark sets (shapes, libraries), not between the formats."""
    peaks = {q["p"]: q["peak"] for q in pts}
    return "fp16" in peaks and "bf16" in peaks and peaks["fp16"] == peaks["bf16"]


def fit_gemm(pts: list[Entry], say: Say = _silent) -> tuple[dict[str, dict[str, Entry]], float]:
    """e_max, t0 per chip on GEMMs with K >= K_REF (or K unknown); then one global small-K half point
    from the K < K_REF GEMMs' residuals, so that the penalty never inflates e_max."""
    by_chip: dict[str, list[Entry]] = {}
    for q in pts:
        by_chip.setdefault(q["chip"], []).append(q)
    say(f"\nGEMM eff = e_max t/(t + t0), K >= {K_REF}\n{'point':52s} prec    {'meas':>6s} {'model':>6s} "
          "log(model/meas)")
    fits: dict[str, dict[str, Entry]] = {}
    for chip, v in by_chip.items():
        big = [q for q in v if q["k"] >= K_REF]
        pooled = _same_rate_16bit(big)
        if pooled:  # one tensor-core datapath: fit the fp16 and bf16 GEMMs as one precision
            big = [q | {"p": "bf16"} if q["p"] == "fp16" else q for q in big]
        per_p, res = fit_gemm_chip(big)
        for q, r in zip(big, res, strict=True):
            model = q["eff"] * np.exp(-r)  # r = log(model/measured) of time
            say(f"{q['label'][:52]:52s} {q['p']:5s} {q['eff']:6.3f} {model:6.3f} {-r:+8.3f}")
        for p, (e, t0, how) in per_p.items():
            sel = [q for q in big if q["p"] == p]
            srcs = (", ".join(sorted({q["label"].split(" ")[0] for q in sel})) + ": "
                    + ", ".join(sorted({q["op"] for q in sel})))
            cap = f"; e_max capped at 1.0 (fit {e:.3f} of catalog peak)" if e > 1.0 else ""
            both = "; bf16 and fp16 GEMMs pooled (same dense peak, one tensor-core datapath)" if pooled else ""
            fits.setdefault(chip, {})[p] = {"e_max": min(e, 1.0), "t0_s": t0, "n_points": len(sel),
                                            "fitted_on": f"{len(sel)} GEMMs on {srcs}; {how}{cap}{both}"}
        if pooled:
            fits[chip]["fp16"] = dict(fits[chip]["bf16"])
    for q in pts:  # the small-K residuals below are taken against the pooled fit too
        if q["p"] == "fp16" and _same_rate_16bit(by_chip[q["chip"]]):
            q["p"] = "bf16"
    small = [q for q in pts if q["k"] < K_REF and q["p"] in fits.get(q["chip"], {})]
    k = np.array([q["k"] for q in small], float)
    ratio = np.log([q["eff"] / gemm_model(fits[q["chip"]][q["p"]], q) for q in small])
    grid = np.arange(0.0, 4097.0, 8.0)
    k_half = min(grid, key=lambda h: np.sum((ratio - np.log(small_k_factor(k, h))) ** 2))
    res = ratio - np.log(small_k_factor(k, k_half))
    say(f"small-K factor: k_half = {k_half:.0f} from {len(small)} GEMMs with K < {K_REF}, "
          f"log residuals {np.round(res, 3)} (without it {np.round(ratio, 3)})")
    return fits, float(k_half)


# ------------------------------------------------------------------------------------------- attention
def ramp_fit(s: FloatArray, eff: FloatArray, s_half: float | None = None) -> tuple[float, float, float]:
    """eff(S) = e S/(S + s_half) by log least squares; grid over s_half unless given. (e, s_half, rms)"""
    def res(h: float) -> FloatArray:
        r: FloatArray = np.log(eff) - np.log(s / (s + h))
        return np.asarray(r - r.mean(), dtype=np.float64)
    h = s_half if s_half is not None else min(np.geomspace(16, 16384, 400), key=lambda h: np.sum(res(h) ** 2))
    return float(np.exp(np.mean(np.log(eff * (s + h) / s)))), float(h), log_rms(res(h))


def attention_points(bench: Entry) -> dict[str, list[tuple[Any, ...]]]:
    """(kernel generation, direction, causal, S, efficiency, head dim) per chip."""
    pts: dict[str, list[tuple[Any, ...]]] = {}
    for e in bench["attention"]:
        sh = e.get("shape") or {}
        s = sh.get("seqlen")
        if isinstance(s, str) and (m := re.search(r"(\d+)k\b", s)):  # "512-16k": rate at the long end
            s = int(m.group(1)) * 1024
        if (e.get("confidence") == "low" or not isinstance(s, int) or e.get("direction") not in ("fwd", "bwd")
                or "pct_of_peak" not in e or e["precision"] not in ("bf16", "fp16")):
            continue
        gen = int(m.group(1)) if (m := re.search(r"FlashAttention-(\d)", e.get("kernel", ""))) else 0
        pts.setdefault(e["chip"], []).append((gen, e["direction"], bool(sh.get("causal")), s,
                                              e["pct_of_peak"]["value"] / 100, sh.get("head_dim")))
    return pts


def fit_attention(bench: Entry, accel: Entry, say: Say = _silent) -> dict[str, Entry]:
    """Newest flash kernel per chip; fwd on non-causal head-dim-128 points, bwd on points with S >= 4096
    (bwd ramps more slowly than fwd, so only long sequences inform its plateau)."""
    pts, s_ref = attention_points(bench), 0.0
    out: dict[str, Entry] = {}
    say(f"\nAttention eff(S) = e S/(S + s_half)\n{'chip':24s} dir  {'e':>6s} {'s_half':>7s}   n rms log")
    for chip in sorted(pts, key=lambda c: c != REF_ATTN):
        best = max(q[0] for q in pts[chip])
        fwd = [q for q in pts[chip] if q[0] == best and q[1] == "fwd" and not q[2] and q[5] == 128]
        bwd = [q for q in pts[chip] if q[0] == best and q[1] == "bwd" and q[3] >= 4096]
        if not fwd:
            continue
        s, eff = np.array([q[3] for q in fwd], float), np.array([q[4] for q in fwd])
        swept = len(set(s)) > 2
        # Without a sweep, scale the reference half point with dense peak: a fixed per-row cost
        # against per-row work ~ S D / peak gives s_half ~ peak.
        scaled = s_ref * accel[chip]["bf16_tflops"] / accel[REF_ATTN]["bf16_tflops"]
        e_f, s_half, rms = ramp_fit(s, eff, None if swept else scaled)
        s_ref = s_ref or s_half
        say(f"{chip:24s} fwd  {e_f:6.3f} {s_half:7.0f} {len(fwd):3d} {rms:7.3f}")
        note = f"FlashAttention-{best}: fwd {len(fwd)} non-causal hd128 pts, S {int(s.min())}-{int(s.max())}"
        note += "" if swept else f"; s_half = {REF_ATTN} fit x peak ratio"
        row: Entry = {"fwd": e_f, "bwd": None, "s_half": s_half}
        if bwd:
            sb, eb = np.array([q[3] for q in bwd], float), np.array([q[4] for q in bwd])
            row["bwd"], _, rms = ramp_fit(sb, eb, s_half)
            note += f"; bwd {len(bwd)} pts S >= 4096 ({sum(q[2] for q in bwd)} causal)"
            say(f"{chip:24s} bwd  {row['bwd']:6.3f} {s_half:7.0f} {len(bwd):3d} {rms:7.3f}")
        out[chip] = row | {"fitted_on": note}
    ratio = out[REF_ATTN]["bwd"] / out[REF_ATTN]["fwd"]
    for row in out.values():
        if row["bwd"] is None:
            row["bwd"] = row["fwd"] * ratio
            row["fitted_on"] += f"; bwd = fwd x {ratio:.2f} ({REF_ATTN} bwd/fwd, no bwd data)"
    return out


def fit_hbm(bench: Entry, say: Say = _silent) -> dict[str, Entry]:
    """Median of stream-type measurements against hbm_tbps per chip; low-confidence ones left out."""
    vals: dict[str, list[float]] = {}
    for e in bench["memory_bandwidth"]:
        if e.get("confidence") != "low" and "hbm_tbps" in (e.get("pct_of_peak") or {}).get("peak_basis", ""):
            vals.setdefault(e["chip"], []).append(e["pct_of_peak"]["value"] / 100)
    say("\nHBM stream efficiency")
    out = {}
    for chip, v in vals.items():
        out[chip] = {"e": float(np.median(v)), "fitted_on": f"median of {len(v)} stream kernels "
                     f"({min(v):.2f}-{max(v):.2f})"}
        say(f"{chip:24s} {np.median(v):.3f} (n={len(v)}, {min(v):.3f}-{max(v):.3f})")
    return out


# ----------------------------------------------------------------------------------------- collectives
def collective_points(e: Entry, line: float, bw_key: str = "busbw_GBps") -> dict[str, list[Any]]:
    """Fractions of line rate: plateau (largest size), ring plateaus quoted inside NVLS entries,
    (bytes, fraction) curve points >= 1 MiB, and the latency floor (min reliable time, s)."""
    n = e["group_size"]
    factor = 2 * (n - 1) / n if e["collective"] == "all_reduce" else (n - 1) / n  # nccl-tests busbw
    out: dict[str, list[Any]] = {"plateau": [], "curve": [], "floor": []}
    out["ring"] = [p["ring_busbw_GBps"] / line for p in e.get("points", []) if p.get("gpus") == REF_GROUP]
    pts = [p for p in e.get("points", []) if "bytes" in p]
    times: list[float] = []
    for p in pts:
        if "model_us" in p:  # scaling-book TPU example: fraction of the modelled ICI time
            out["curve"].append((p["bytes"], p["model_us"] / p["measured_us"]))
            times.append(p["measured_us"] * 1e-6)
        elif "time_us" in p or p.get("busbw_GBps", 0) >= 0.5:  # printed to 2 decimals: skip tiny ones
            t = p["time_us"] * 1e-6 if "time_us" in p else p["bytes"] * factor / (p["busbw_GBps"] * 1e9)
            times.append(t)
            bw = p[bw_key] if bw_key in p else p["bytes"] * factor / t / 1e9
            out["curve"] += [(p["bytes"], bw / line)] if p["bytes"] >= 2**20 else []
    if out["curve"]:
        out["plateau"] = [max(out["curve"])[1]]
    elif not pts:
        ms = e.get("message_size", "")
        m = None if re.search("large|plateau", ms) else re.search(r"([\d.]+)\s*(MB|MiB|GB|GiB)", ms)
        unit = {"MB": 1e6, "MiB": 2**20, "GB": 1e9, "GiB": 2**30}
        size = float(m.group(1)) * unit[m.group(2)] if m else 1e9
        frac = e["measured"]["value"] / line
        out["plateau"] += [frac] if size >= 1e9 else []
        out["curve"] += [] if size >= 1e9 else [(size, frac)]
    out["floor"] = [min(times)] if times else []
    return out


def hyperbola_fit(plateau: list[float], curve: list[tuple[float, float]]) -> tuple[float, float | None, float]:
    """busbw/line = B S/(S + S_half): B = median plateau, S_half by log least squares. (B, S_half, rms)"""
    b = float(np.median(plateau))
    if not curve:
        return b, None, 0.0
    s, y = np.array([c[0] for c in curve], float), np.log([c[1] for c in curve])
    h = min(np.geomspace(1e3, 1e10, 701), key=lambda h: np.sum((y - np.log(b * s / (s + h))) ** 2))
    return b, float(h), log_rms(y - np.log(b * s / (s + h)))

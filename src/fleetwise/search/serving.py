"""Search serving deployments that meet TTFT/TPOT targets, ranked by chips per unit of goodput.

Entry points: ``serving_candidates`` (the table of shapes: tp x pp x weight/KV precision x co-located or
disaggregated P:D), ``search_serving`` (vectorised analytic evaluation over candidates x batch limits,
named rejection masks, ranking) returning ``ServingSearch``. The CLI confirms the top plans with the
simulator (``simulate.serving``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from fleetwise.perf.batching import decode_rates, kv_transfer_s, max_batch_by_kv, prefill_rate, ttft_s
from fleetwise.perf.inference import PRECISION_CODES, ServingSetup, ServingShape, kv_capacity
from fleetwise.plan import ServingPlan

FloatArray = npt.NDArray[np.float64]
BATCH_LIMITS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PD_RATIOS = ((0, 1), (1, 1), (1, 2), (1, 3), (2, 1))  # (prefill, decode) engines; (0, 1) = co-located
TOKEN_BUDGET = 8192


@dataclass(frozen=True, slots=True)
class ServingWorkload:
    """Traffic and targets: mean lengths, optional rate (requests/s) or chip count, SLOs in seconds."""

    input_tokens: float
    output_tokens: float
    ttft_s: float
    tpot_s: float
    rate_per_s: float | None = None
    chips: int | None = None
    percentile: float = 90.0


@dataclass(frozen=True, slots=True)
class ServingCandidate:
    """One evaluated plan with its predicted figures (per the analytic steady state)."""

    plan: ServingPlan
    goodput_rps: float  # requests/s the plan serves within both SLOs
    tokens_per_s_per_chip: float
    ttft_s: float
    tpot_s: float
    memory_per_device_bytes: float
    chips_per_goodput: float


@dataclass(frozen=True, slots=True)
class ServingSearch:
    best: list[ServingCandidate]
    candidates_evaluated: int
    rejected_by: dict[str, int] = field(default_factory=dict)


def _powers_of_two(limit: int) -> list[int]:
    return [2**k for k in range(int(math.log2(max(limit, 1))) + 1)]


def serving_candidates(s: ServingSetup) -> tuple[ServingShape, FloatArray, FloatArray]:
    """Shapes (tp, pp, precisions) with P:D columns (prefill engines, decode engines) of every candidate."""
    domain = max(s.system.domain_size, 1)
    rows = []
    weights = [p for p in ("bf16", "fp8", "int8", "int4") if p in ("bf16", "int4") or s.accel.supports(p)]  # type: ignore[arg-type]
    kvs = [p for p in ("bf16", "fp8", "int8") if p == "bf16" or s.accel.supports(p)]  # type: ignore[arg-type]
    for tp in _powers_of_two(min(domain, s.model.heads)):
        for pp in (1, 2, 4):
            for w in weights:
                for kv in kvs:
                    for p, d in PD_RATIOS:
                        rows.append((tp, pp, PRECISION_CODES.index(w), PRECISION_CODES.index(kv), p, d))
    a = np.array(rows, dtype=np.int64)
    one = np.ones(len(a), dtype=np.int64)
    shape = ServingShape(a[:, 0], a[:, 1], one, one, a[:, 2], a[:, 3])
    return shape, a[:, 4].astype(np.float64), a[:, 5].astype(np.float64)


def search_serving(s: ServingSetup, w: ServingWorkload, top: int = 10) -> ServingSearch:
    """Every candidate x batch limit, evaluated at once; SLO-meeting plans ranked by chips per goodput."""
    shape, n_pre, n_dec = serving_candidates(s)
    n = len(n_pre)
    limits = np.array(BATCH_LIMITS, dtype=np.float64)
    grid = lambda a: np.repeat(np.asarray(a), len(limits))  # noqa: E731 - (n*k,) rows: candidate-major
    sh = ServingShape(*(grid(getattr(shape, f)) for f in ("tp", "pp", "dp", "ep", "wcode", "kvcode")))
    pre, dec = grid(n_pre), grid(n_dec)
    b = np.tile(limits, n)
    i, o = w.input_tokens, w.output_tokens
    budget = np.full_like(b, float(TOKEN_BUDGET))
    dis = pre > 0
    kv_limit = max_batch_by_kv(s, sh, i, o, budget)
    colo = decode_rates(s, sh, b, i, o)
    dec_only = decode_rates(s, sh, b, i + 0.5 * o, 1.0, with_prefill=False)
    tpot = np.where(dis, dec_only.tpot_s, colo.tpot_s)
    p_step, p_rate = prefill_rate(s, sh, i, np.full_like(b, max(float(TOKEN_BUDGET), i)))
    one_prompt = prefill_rate(s, sh, i, np.full_like(b, i))[0].total_s
    ttft = np.where(dis, one_prompt + kv_transfer_s(s, sh, i), ttft_s(colo.tpot_s, i, budget))
    cpr = (sh.tp * sh.pp).astype(np.float64)
    # requests/s one decode engine sustains at this batch, and what the prefill pool can feed it
    dec_rps = b / (o * tpot)
    pre_rps = p_rate * cpr / i * pre / np.maximum(dec, 1.0)
    engine_rps = np.where(dis, np.minimum(dec_rps, pre_rps), dec_rps)
    chips_unit = cpr * (pre + dec)  # chips of one P:D unit (co-located: one engine)
    unit_rps = engine_rps * dec
    masks = {
        "fits_memory": np.asarray(kv_capacity(s, sh, budget).fits),
        "batch_fits_kv": b <= kv_limit,
        "tp_within_domain": sh.tp <= max(s.system.domain_size, 1),
        "pp_divides_layers": (s.model.layers % sh.pp) == 0,
        "meets_tpot": tpot <= w.tpot_s,
        "meets_ttft": ttft <= w.ttft_s,
    }
    units = np.ones_like(b)
    if w.chips is not None:
        units = np.floor(w.chips / chips_unit)
        masks["fits_chip_count"] = units >= 1
    elif w.rate_per_s is not None:
        units = np.ceil(w.rate_per_s / np.maximum(unit_rps, 1e-12))
    ok = np.logical_and.reduce(list(masks.values()))
    rejected: dict[str, int] = {}
    alive = np.ones(len(b), dtype=bool)
    for name, m in masks.items():
        rejected[name] = int((alive & ~m).sum())
        alive &= m
    chips_total = units * chips_unit
    goodput = units * unit_rps
    if w.rate_per_s is not None:
        goodput = np.minimum(goodput, w.rate_per_s)
    cost = chips_total / np.maximum(goodput, 1e-12)
    idx = np.nonzero(ok)[0]
    order = idx[np.lexsort((tpot[idx], -goodput[idx], cost[idx]))]  # cheapest, then most goodput, then fastest
    mem = kv_capacity(s, sh, budget)
    best: list[ServingCandidate] = []
    seen: set[str] = set()
    for j in order:
        plan = ServingPlan(replicas=int(units[j] * dec[j]), tp=int(sh.tp[j]), pp=int(sh.pp[j]),
                           max_batch=int(b[j]), token_budget=TOKEN_BUDGET,
                           weight_precision=PRECISION_CODES[int(sh.wcode[j])],  # type: ignore[arg-type]
                           kv_precision=PRECISION_CODES[int(sh.kvcode[j])],  # type: ignore[arg-type]
                           prefill_replicas=int(units[j] * pre[j]))
        if plan.label() in seen:
            continue
        seen.add(plan.label())
        used = float(mem.weights[j] + mem.reserved[j] + min(b[j], kv_limit[j]) * mem.kv_capacity[j]
                     / max(kv_limit[j], 1.0))
        best.append(ServingCandidate(plan, float(goodput[j]), float(goodput[j] * o / chips_total[j]),
                                     float(ttft[j]), float(tpot[j]), used, float(cost[j])))
        if len(best) >= top:
            break
    return ServingSearch(best, int(len(b)), rejected)

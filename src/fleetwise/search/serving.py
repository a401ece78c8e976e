"""Search serving deployments that meet TTFT/TPOT targets, ranked by cost, time or energy.

Entry points: ``serving_candidates`` (the table of shapes: tp x pp x weight/KV precision x co-located or
disaggregated P:D), ``search_serving`` (vectorised analytic evaluation over candidates x batch limits,
named rejection masks, per-phase clock choice, ranking) returning ``ServingSearch``. The CLI confirms the
top plans with the simulator (``simulate.serving``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

from fleetwise.energy.serving import (
    EngineWork,
    Pool,
    ServingEnergy,
    ServingEnergySetup,
    colocated_work,
    decode_work,
    deployment_energy,
    prefill_work,
    run_step,
)
from fleetwise.errors import SpecError, shown
from fleetwise.perf.batching import decode_rates, kv_transfer_s, max_batch_by_kv, prefill_rate, ttft_s
from fleetwise.perf.inference import PRECISION_CODES, ServingSetup, ServingShape, kv_capacity
from fleetwise.plan import ServingPlan

FloatArray = npt.NDArray[np.float64]
_T = TypeVar("_T", bound=np.generic)
BATCH_LIMITS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
PD_RATIOS = ((0, 1), (1, 1), (1, 2), (1, 3), (2, 1))  # (prefill, decode) engines; (0, 1) = co-located
TOKEN_BUDGET = 8192
CLOCK_STEPS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # clock shares tried per phase (prefill, decode)
Objective = Literal["time", "energy", "cost"]
OBJECTIVES: tuple[Objective, ...] = ("time", "energy", "cost")

# Plans for a request rate keep this headroom: at utilisation rho an M/G/1-like queue waits ~rho/(1-rho)
# service times, so a deployment sized to 100 % of its steady-state capacity misses TTFT under real arrivals.
MAX_UTILISATION = 0.85


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
    energy: dict[str, object] | None = None  # at the chosen clocks, with the stock-clock figures beside them


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
    kvs = [p for p in ("bf16", "fp8", "int8") if p == "bf16" or s.accel.supports(p)]
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


@dataclass(frozen=True, slots=True)
class _Rows:
    """SLO-meeting rows of the search table that the clock choice prices (columns)."""

    sh: ServingShape
    batch: FloatArray
    n_pre: FloatArray
    n_dec: FloatArray
    units: FloatArray
    kv_s: FloatArray


@dataclass(frozen=True, slots=True)
class _AtClocks:
    """One clock pair applied to every row: latencies, goodput, J per output token (facility) and energy."""

    f_prefill: float
    f_decode: float
    tpot_s: FloatArray
    ttft_s: FloatArray
    goodput_rps: FloatArray
    meets: npt.NDArray[np.bool_]
    energy: ServingEnergy

    @property
    def j_per_token(self) -> FloatArray:
        return self.energy.j_per_token("facility")


@dataclass(frozen=True, slots=True)
class _Works:
    """Each row's steps at the maximum clock: co-located, decode engine, prefill engine, one prompt alone."""

    colocated: EngineWork
    decode: EngineWork
    prefill: EngineWork
    one_prompt: EngineWork
    prefill_tokens: FloatArray


def _works(s: ServingSetup, r: _Rows, w: ServingWorkload) -> _Works:
    i, o = w.input_tokens, w.output_tokens
    pre_tokens = np.full_like(r.batch, max(float(TOKEN_BUDGET), i))
    return _Works(colocated_work(s, r.sh, r.batch, i, o), decode_work(s, r.sh, r.batch, i + 0.5 * o),
                  prefill_work(s, r.sh, i, pre_tokens), prefill_work(s, r.sh, i, np.full_like(r.batch, i)), pre_tokens)


def _at_clocks(es: ServingEnergySetup, r: _Rows, wk: _Works, w: ServingWorkload, fp: float, fd: float
               ) -> _AtClocks:
    """Latency, goodput and energy of every row with prefill at clock ``fp`` and decode at ``fd``."""
    i, o = w.input_tokens, w.output_tokens
    colo = run_step(es.chip, wk.colocated, fp, fd, es.cap_w)
    dec = run_step(es.chip, wk.decode, fp, fd, es.cap_w)
    pre = run_step(es.chip, wk.prefill, fp, fd, es.cap_w)
    one = run_step(es.chip, wk.one_prompt, fp, fd, es.cap_w)
    pre_tokens = wk.prefill_tokens
    dis = r.n_pre > 0
    tpot = np.where(dis, dec.time_s, colo.time_s)
    ttft = np.where(dis, one.time_s + r.kv_s, ttft_s(colo.time_s, i, np.full_like(r.batch, float(TOKEN_BUDGET))))
    dec_rps = r.batch / (o * tpot)  # one decode (or co-located) engine
    pre_rps = pre_tokens / i / pre.time_s  # one prefill engine
    unit_cap = np.where(dis, np.minimum(dec_rps * r.n_dec, pre_rps * r.n_pre), dec_rps * r.n_dec)
    meets = (tpot <= w.tpot_s) & (ttft <= w.ttft_s)
    if w.rate_per_s is not None:
        per_unit = w.rate_per_s / r.units
        meets &= unit_cap * MAX_UTILISATION >= per_unit * (1.0 - 1e-9)
        served = np.minimum(per_unit, unit_cap)
    else:
        served = unit_cap
    cpr = (r.sh.tp * r.sh.pp).astype(np.float64)
    busy_dec = served / np.maximum(dec_rps * r.n_dec, 1e-30)
    busy_pre = np.where(dis, served / np.maximum(pre_rps * r.n_pre, 1e-30), 0.0)
    pools = [Pool(np.where(dis, 0.0, r.units * cpr * r.n_dec), colo, busy_dec),
             Pool(np.where(dis, r.units * cpr * r.n_dec, 0.0), dec, busy_dec),
             Pool(r.units * cpr * r.n_pre, pre, busy_pre)]
    energy = deployment_energy(es, pools, served * r.units * o)
    return _AtClocks(fp, fd, tpot, ttft, served * r.units, meets, energy)


@dataclass(frozen=True, slots=True)
class ClockChoice:
    """Per plan row: the chosen (prefill, decode) clocks, their J per output token, and the stock figures."""

    f_prefill: FloatArray
    f_decode: FloatArray
    j_per_token: FloatArray
    stock_j_per_token: FloatArray
    lowest_decode_clock: FloatArray  # the lowest decode clock that meets the SLOs at any prefill clock (1 if none)


def choose_clocks(s: ServingSetup, es: ServingEnergySetup, sh: ServingShape, batch: FloatArray,
                  n_prefill: FloatArray, n_decode: FloatArray, units: FloatArray, w: ServingWorkload) -> ClockChoice:
    """The lowest-energy (prefill, decode) clock pair per plan that still meets TTFT/TPOT (and carries the rate).

    Args:
        s: serving setup; es: energy setup (chip power, cap, node, site).
        sh: plan shapes; batch: batch limit per rank; n_prefill, n_decode: engines per P:D unit (0, 1 =
            co-located); units: P:D units deployed.
        w: traffic and SLOs.
    """
    r = _Rows(sh, batch, n_prefill, n_decode, units, kv_transfer_s(s, sh, w.input_tokens))
    stock, fp, fd, j, low = _choose_clocks(s, es, r, w)
    return ClockChoice(fp, fd, j, stock.j_per_token, low)


def _choose_clocks(s: ServingSetup, es: ServingEnergySetup, r: _Rows, w: ServingWorkload
                   ) -> tuple[_AtClocks, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per row, the lowest-energy (prefill, decode) clock pair that still meets TTFT/TPOT (and carries the rate).

    Returns:
        (stock clocks, chosen prefill clock, chosen decode clock, chosen J/token, lowest allowed decode clock);
        stock where nothing lower meets.
    """
    works = _works(s, r, w)
    stock = _at_clocks(es, r, works, w, 1.0, 1.0)
    best_j = np.where(stock.meets, stock.j_per_token, np.inf)
    best_fp, best_fd = np.ones_like(r.batch), np.ones_like(r.batch)
    lowest = np.ones_like(r.batch)
    steps = [f for f in CLOCK_STEPS if f >= es.chip.f_min - 1e-9]
    for fp in steps:
        for fd in steps:
            if fp == 1.0 and fd == 1.0:
                continue
            a = _at_clocks(es, r, works, w, fp, fd)
            better = a.meets & (a.j_per_token < best_j - 1e-12)
            best_j = np.where(better, a.j_per_token, best_j)
            best_fp, best_fd = np.where(better, fp, best_fp), np.where(better, fd, best_fd)
            lowest = np.where(a.meets, np.minimum(lowest, fd), lowest)
    return stock, best_fp, best_fd, np.where(np.isfinite(best_j), best_j, stock.j_per_token), lowest


def _energy_row(es: ServingEnergySetup, s: ServingSetup, r: _Rows, w: ServingWorkload, k: int, stock: _AtClocks,
                fp: float, fd: float) -> dict[str, object]:
    """Energy of row ``k`` at its chosen clocks, with the saving and slowdown against stock clocks."""
    one = _Rows(r.sh.take(np.array([k])), r.batch[k:k + 1], r.n_pre[k:k + 1], r.n_dec[k:k + 1], r.units[k:k + 1],
                r.kv_s[k:k + 1])
    a = _at_clocks(es, one, _works(s, one, w), w, fp, fd)
    row = a.energy.row(0, w.output_tokens)
    j_stock = float(stock.j_per_token[k])
    row.update({"prefill_clock": fp, "decode_clock": fd, "power_cap_w": es.cap_w, "site": es.base.site_id,
                "stock_j_per_token": j_stock, "saving_vs_stock": 1.0 - float(a.j_per_token[0]) / j_stock,
                "tpot_ms_at_clocks": float(a.tpot_s[0]) * 1e3, "ttft_ms_at_clocks": float(a.ttft_s[0]) * 1e3,
                "goodput_rps_at_clocks": float(a.goodput_rps[0])})
    return row


MAX_RATE_PER_S = 1e7  # requests/s: ~100x the busiest public LLM endpoints; a larger rate is a typo
MAX_REPLICAS = 100_000  # ServingPlan's bound on engines of one deployment


def check_workload(s: ServingSetup, w: ServingWorkload) -> None:
    """Raise ``SpecError`` for traffic no deployment could be sized for, naming the flag and the range.

    Lengths must be finite and fit the model's context window; a rate must be finite and at most
    ``MAX_RATE_PER_S``; a chip count at most ``MAX_CHIPS``; SLOs finite and positive.
    """
    from fleetwise.search.space import MAX_CHIPS

    ctx = s.model.max_seq
    checks = (("--input-tokens", w.input_tokens, 1.0, float(ctx)),
              ("--output-tokens", w.output_tokens, 1.0, float(ctx)),
              ("--ttft-ms", w.ttft_s * 1e3, 1e-6, 1e9), ("--tpot-ms", w.tpot_s * 1e3, 1e-6, 1e9),
              ("--percentile", w.percentile, 1e-9, 100.0))
    for name, v, low, high in checks:
        if not low <= v <= high:
            raise SpecError(f"{name} must be in [{low:g}, {high:g}] (got {shown(v)})"
                            + (f"; {s.model.id} has a {ctx:,}-token context" if "tokens" in name else ""))
    if w.input_tokens + w.output_tokens > ctx:
        raise SpecError(f"--input-tokens + --output-tokens ({w.input_tokens:g} + {w.output_tokens:g}) must fit "
                        f"the {ctx:,}-token context of {s.model.id}")
    if w.rate_per_s is not None and not 0 < w.rate_per_s <= MAX_RATE_PER_S:
        raise SpecError(f"--rate must be in (0, {MAX_RATE_PER_S:g}] requests/s (got {shown(w.rate_per_s)})")
    if w.chips is not None and not 1 <= w.chips <= MAX_CHIPS:
        raise SpecError(f"--chips must be a whole number from 1 to {MAX_CHIPS:,} (got {shown(w.chips)})")


def search_serving(s: ServingSetup, w: ServingWorkload, top: int = 10, objective: Objective = "cost",
                   energy: ServingEnergySetup | None = None) -> ServingSearch:
    """Every candidate x batch limit, evaluated at once; SLO-meeting plans ranked by ``objective``.

    Args:
        s: serving setup.
        w: traffic and SLOs.
        top: plans returned.
        objective: ``cost`` (chips per unit of goodput), ``time`` (lowest TPOT, then TTFT) or ``energy``
            (lowest facility J per output token at the plan's lowest-energy SLO-meeting clock pair).
        energy: power, node and site setup; None = no energy figures (``energy`` objective needs it).
    """
    if objective not in OBJECTIVES:
        raise SpecError(f"objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})")
    if objective == "energy" and energy is None:
        raise SpecError("objective 'energy' needs an energy setup (fleetwise.energy.serving.serving_energy_setup)")
    check_workload(s, w)
    shape, n_pre, n_dec = serving_candidates(s)
    n = len(n_pre)
    limits = np.array(BATCH_LIMITS, dtype=np.float64)

    def grid(a: npt.NDArray[_T]) -> npt.NDArray[_T]:
        return np.repeat(np.asarray(a), len(limits))  # (n*k,) rows: candidate-major

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
        # size for a target utilisation: queueing delay grows without bound as load nears capacity
        units = np.ceil(w.rate_per_s / np.maximum(unit_rps * MAX_UTILISATION, 1e-12))
    masks["within_size_limit"] = (units * np.maximum(pre, dec) <= MAX_REPLICAS) & (units * chips_unit <= 1e6)
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
    chosen: tuple[_AtClocks, FloatArray, FloatArray, FloatArray, FloatArray] | None = None
    rows: _Rows | None = None
    if energy is not None and len(idx):
        rows = _Rows(sh.take(idx), b[idx], pre[idx], dec[idx], units[idx], kv_transfer_s(s, sh.take(idx), i))
        chosen = _choose_clocks(s, energy, rows, w)
    if objective == "energy":
        assert chosen is not None or not len(idx)
        j = chosen[3] if chosen is not None else np.zeros(0)
        order = idx[np.lexsort((-goodput[idx], cost[idx], j))]
    elif objective == "time":
        order = idx[np.lexsort((cost[idx], ttft[idx], tpot[idx]))]
    else:
        order = idx[np.lexsort((tpot[idx], -goodput[idx], cost[idx]))]  # cheapest, then most goodput, then fastest
    where = {int(j): n for n, j in enumerate(idx)}
    mem = kv_capacity(s, sh, budget)
    best: list[ServingCandidate] = []
    seen: set[str] = set()
    for j in order:
        plan = ServingPlan(replicas=int(units[j] * dec[j]), tp=int(sh.tp[j]), pp=int(sh.pp[j]),
                           max_batch=int(b[j]), token_budget=TOKEN_BUDGET,
                           weight_precision=PRECISION_CODES[int(sh.wcode[j])],
                           kv_precision=PRECISION_CODES[int(sh.kvcode[j])],
                           prefill_replicas=int(units[j] * pre[j]))
        if plan.label() in seen:
            continue
        seen.add(plan.label())
        used = float(mem.weights[j] + mem.reserved[j] + min(b[j], kv_limit[j]) * mem.kv_capacity[j]
                     / max(kv_limit[j], 1.0))
        e_row = None
        if chosen is not None and rows is not None and energy is not None:
            k = where[int(j)]
            e_row = _energy_row(energy, s, rows, w, k, chosen[0], float(chosen[1][k]), float(chosen[2][k]))
        best.append(ServingCandidate(plan, float(goodput[j]), float(goodput[j] * o / chips_total[j]),
                                     float(ttft[j]), float(tpot[j]), used, float(cost[j]), e_row))
        if len(best) >= top:
            break
    return ServingSearch(best, int(len(b)), rejected)


CONFIRM_REQUESTS = 2000  # requests replayed per plan (a synthetic Poisson trace, or the head of the given trace)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A plan replayed through the discrete-event simulator at the workload's percentile."""

    ttft_s: float
    tpot_s: float
    requests: int
    meets_slo: bool


def confirm_in_simulation(s: ServingSetup, best: list[ServingCandidate], w: ServingWorkload,
                          trace: object | None = None, top: int = 3, pool: int = 20,
                          seed: int = 0, ep_setup: ServingSetup | None = None) -> list[Confirmation | None]:
    """Replay plans in rank order until ``top`` meet the SLO (at most ``pool`` replayed); None = not replayed.

    The analytic ranking assumes steady state; the replay adds arrival bursts, queueing and preemption.
    Plans with expert parallelism replay on ``ep_setup`` (the expert-parallel setup) when given.
    """
    from fleetwise.simulate.serving import simulate
    from fleetwise.workload.traces import Trace, synthetic_trace

    out: list[Confirmation | None] = []
    confirmed = 0
    for k, c in enumerate(best):
        if confirmed >= top or k >= pool:
            out.append(None)
            continue
        if isinstance(trace, Trace):
            tr = trace.head(CONFIRM_REQUESTS) if len(trace) > CONFIRM_REQUESTS else trace
        else:
            rate = w.rate_per_s or c.goodput_rps
            tr = synthetic_trace(np.random.default_rng(seed), CONFIRM_REQUESTS, rate, w.input_tokens, w.output_tokens)
        r = simulate(ep_setup if ep_setup is not None and c.plan.ep > 1 else s, c.plan, tr)
        done = r.completed
        ttft = float(np.percentile(r.ttft_s[done], w.percentile)) if done.any() else float("inf")
        tpot = float(np.percentile(r.tpot_s[done], w.percentile)) if done.any() else float("inf")
        ok = ttft <= w.ttft_s and tpot <= w.tpot_s and bool(done.all())
        confirmed += int(ok)
        out.append(Confirmation(ttft, tpot, len(tr), ok))
    return out

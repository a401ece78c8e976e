"""Predict inference cases (offline throughput, server latency, prefill-only, decode-only) from the serving model.

Entry point: ``predict_inference(case, catalog, eff, constants=None)`` → ``CasePrediction``. Fields a
case leaves null are chosen the way the planner chooses them for a user, and the prediction's notes
say which and how. ``fit_serving_constants`` and ``serving_leave_one_source_out`` fit the serving group
constants on whole chip families and measure error on sources left out.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fleetwise.catalog.loader import Catalog, load_yaml_file
from fleetwise.errors import SpecError
from fleetwise.perf.batching import (
    DecodeRates,
    concurrency_under_rate,
    decode_rates,
    kv_transfer_s,
    max_batch_by_kv,
    prefill_rate,
    ttft_and_wait_under_load_s,
)
from fleetwise.perf.calibration import family_of
from fleetwise.perf.efficiency import EfficiencyTable
from fleetwise.perf.inference import (
    ServingConstants,
    ServingSetup,
    ServingShape,
    Speculative,
    constants_group,
    kernels_per_step,
    load_serving_constants,
    make_serving_setup,
)
from fleetwise.progress import ProgressFn
from fleetwise.validate.cases import ENERGY_METRICS, Case
from fleetwise.validate.specs import CasePrediction, resolve_specs

FACTS_FILE = Path(__file__).parent / "data" / "serving" / "facts.yaml"
_FACT_KINDS: dict[str, type] = {"speculative_steps": int, "speculative_accept_length": float, "max_num_seqs": int,
                                "max_num_batched_tokens": int, "benchmark_prompts": int, "attention_precision": str,
                                "engine": str, "why": str}


_ENGINE_KINDS: dict[str, type] = {"scheduler": str, "max_num_seqs": int, "max_num_batched_tokens": int,
                                  "max_prefill_seqs": int, "max_prefill_tokens": int, "host_s_per_kernel": float,
                                  "match": list, "why": str}
SCHEDULERS = ("decode_first", "prefill_first", "prefill_first_capped")


def _check_facts(path: Path, where: str, facts: dict[str, Any], kinds: dict[str, type]) -> None:
    for k, v in facts.items():
        kind = kinds.get(k)
        if kind is None:
            raise SpecError(f"{path}: {where}.{k}: unknown field (allowed: {', '.join(kinds)})")
        if kind is list:
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise SpecError(f"{path}: {where}.{k}: must be a list of non-empty strings (got {v!r})")
        elif kind is not str and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
                                  or (kind is int and v != int(v))):
            raise SpecError(f"{path}: {where}.{k}: must be a positive {kind.__name__} (got {v!r})")
        if k == "attention_precision" and v not in ("bf16", "fp8"):
            raise SpecError(f"{path}: {where}.{k}: must be bf16 or fp8 (got {v!r})")
        if k == "scheduler" and v not in SCHEDULERS:
            raise SpecError(f"{path}: {where}.{k}: must be one of {', '.join(SCHEDULERS)} (got {v!r})")


@functools.lru_cache(maxsize=2)
def _all_serving_facts(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]],
                                            dict[str, dict[str, Any]]]:
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected mappings 'sources' (url -> facts), 'cases' (id -> facts) and "
                        "'engines' (engine -> facts)")
    out: list[dict[str, dict[str, Any]]] = []
    for part in ("sources", "cases", "engines"):
        entries = data.get(part) or {}
        if not isinstance(entries, dict):
            raise SpecError(f"{path}: {part}: expected a mapping")
        for key, facts in entries.items():
            if not isinstance(facts, dict):
                raise SpecError(f"{path}: {part}.{key}: expected a mapping of facts")
            _check_facts(path, f"{part}.{key}", facts, _ENGINE_KINDS if part == "engines" else _FACT_KINDS)
        out.append({str(k): dict(v or {}) for k, v in entries.items()})
    for part, entries in (("sources", out[0]), ("cases", out[1])):
        for key, facts in entries.items():
            if "engine" in facts and facts["engine"] not in out[2]:
                raise SpecError(f"{path}: {part}.{key}.engine: {facts['engine']!r} is not among the engines "
                                f"({', '.join(out[2])})")
    return out[0], out[1], out[2]


def engine_of(case: Case, path: Path = FACTS_FILE) -> str | None:
    """The serving engine a case ran: its serving facts' ``engine``, else the first engine whose ``match``
    names (case-insensitive) appear in the case's notes or source."""
    by_source, by_case, engines = _all_serving_facts(path)
    named = {**by_source.get(case.url or "", {}), **by_case.get(case.id, {})}.get("engine")
    if named:
        return str(named)
    text = f"{case.notes or ''} {case.source or ''}".lower()
    for name, facts in engines.items():
        if any(m.lower() in text for m in facts.get("match") or ()):
            return name
    return None


def serving_facts(case: Case, path: Path = FACTS_FILE) -> dict[str, Any]:
    """Serving software facts of ``case``: its engine's, overridden by its source's, overridden by its own
    (``validate/data/serving/facts.yaml``)."""
    by_source, by_case, engines = _all_serving_facts(path)
    engine = engine_of(case, path)
    base = {k: v for k, v in engines.get(engine or "", {}).items() if k not in ("match", "why")}
    out = {**base, **by_source.get(case.url or "", {}), **by_case.get(case.id, {})}
    if engine:
        out["engine"] = engine
    return out


# Planner defaults for what a deployment leaves open (each is stated in the prediction's notes).
DEFAULT_TOKEN_BUDGET = 8192  # tokens per continuous-batching step (TRT-LLM / vLLM max_num_batched_tokens order)
DEFAULT_PREFILL_TOKENS = 16384  # tokens per rank per step of a prefill-only engine
DEFAULT_MAX_BATCH = 2048  # engine cap on concurrent sequences per rank (TRT-LLM's default max_batch_size)
DEFAULT_PROMPT_TOKENS = 2048.0  # prompt length when neither prompt nor KV length is published
EP_CHOICES = (8, 16, 32, 64, 128, 256)


@dataclass(frozen=True, slots=True)
class _Deployment:
    shape: ServingShape
    replicas: int
    chips: int
    chosen: dict[str, Any]


def _precisions(case: Case, s: ServingSetup, notes: list[str]) -> tuple[str, str]:
    inf = case.inference
    assert inf is not None
    w = inf.weight_precision or case.precision or "bf16"
    if w not in ("bf16", "fp16", "fp8", "int8", "int4", "fp4"):
        w = "bf16"
    kv = inf.kv_precision
    if kv is None:
        # planner rule: an 8-bit-or-narrower deployment keeps its KV cache in 8 bit where the chip runs fp8/int8
        narrow = w in ("fp8", "int8", "int4", "fp4")
        kv = "fp8" if narrow and s.accel.supports("fp8") else "int8" if narrow and s.accel.supports("int8") else "bf16"
        notes.append(f"kv_precision not published: {kv} (planner rule for {w} weights)")
    return w, kv


def _deployment(case: Case, s: ServingSetup, ep_dp: int | None, notes: list[str]) -> _Deployment:
    inf = case.inference
    assert inf is not None
    tp, pp = inf.tp or 1, inf.pp or 1
    w, kv = _precisions(case, s, notes)
    ep = inf.ep if inf.ep is not None else ep_dp
    dp = inf.dp if inf.dp is not None else ep_dp
    if ep is not None and ep > 1:
        dp = dp or ep
        replicas = max(1, (case.chips or tp * pp * dp) // (tp * pp * dp))
    else:
        ep = 1
        replicas = dp or max(1, (case.chips or tp * pp) // (tp * pp))
        dp = 1
    chips = replicas * tp * pp * dp
    shape = ServingShape.of(tp, pp, dp, ep, w, kv)
    chosen = {"replicas": replicas, "tp": tp, "pp": pp, "dp": dp, "ep": ep, "weight_precision": w,
              "kv_precision": kv, "chips": chips}
    return _Deployment(shape, replicas, chips, chosen)


def _offline(case: Case, s: ServingSetup, d: _Deployment, notes: list[str]) -> dict[str, float]:
    inf = case.inference
    assert inf is not None and inf.output_tokens is not None
    o = inf.output_tokens
    i = inf.input_tokens
    if i is None:
        i = o
        notes.append(f"input_tokens not published: assumed equal to output_tokens ({o:g})")
    facts = serving_facts(case)
    budget_tokens = float(facts.get("max_num_batched_tokens", DEFAULT_TOKEN_BUDGET))
    budget = np.array([budget_tokens])
    kv_limit = float(max_batch_by_kv(s, d.shape, i, o, budget)[0])
    ranks = d.replicas * int(d.shape.dp[0])
    cap = float(facts.get("max_num_seqs", DEFAULT_MAX_BATCH))
    if inf.batch is not None:
        limit = min(inf.batch / ranks, kv_limit)
        notes.append(f"batch per rank {inf.batch / ranks:g} (published), KV holds {kv_limit:g}")
    else:
        limit = min(cap, kv_limit)
        why = "engine default (serving facts)" if "max_num_seqs" in facts else "planner cap"
        notes.append(f"batch not published: engine fills to min(KV capacity {kv_limit:g}, {why} {cap:g})")
    if limit < 1:
        raise SpecError(f"case {case.id}: the weights leave no room for a KV cache in our memory model")
    r = decode_rates(s, d.shape, np.array([limit]), i, o)
    d.chosen["batch_per_rank"] = round(limit, 1)
    out = {"output_tokens_per_s": float(r.tokens_per_s_per_chip[0]) * d.chips,
           "output_tokens_per_s_per_chip": float(r.tokens_per_s_per_chip[0]),
           "tpot_ms": float(r.tpot_s[0]) * 1e3}
    if "benchmark_prompts" in facts and facts.get("scheduler") == "prefill_first":
        n = float(facts["benchmark_prompts"]) / ranks
        pre_tokens = float(min(facts.get("max_prefill_tokens", DEFAULT_TOKEN_BUDGET),
                               facts.get("max_prefill_seqs", DEFAULT_MAX_BATCH) * i))
        hold = float(max_batch_by_kv(s, d.shape, i, 0.0, np.array([pre_tokens]))[0])
        kappa = output_length_kappa(o)
        out.update(_burst_prefill_first(s, d, n, limit, hold, i, o, pre_tokens, kappa))
        notes.append(f"finite benchmark of {facts['benchmark_prompts']} prompts sent at once to a prefill-first "
                     f"engine (serving facts, engine {facts.get('engine')}): prompts are prefilled {pre_tokens:g} "
                     f"tokens a batch while decoding waits, as many as the KV cache holds ({hold:g}); decode runs "
                     f"{limit:g} at a time, the others wait with their first token out; the mean TPOT over requests "
                     f"weighs that wait by E[1/(O-1)] = {kappa:.2f}/(mean O - 1), outputs taken as exponential "
                     f"above vllm bench's {MIN_OUTPUT_TOKENS:g}-token minimum with the case's mean")
    elif "benchmark_prompts" in facts and facts.get("scheduler") == "prefill_first_capped":
        n = float(facts["benchmark_prompts"]) / ranks
        kappa = output_length_kappa(o)
        out.update(_burst_prefill_first_capped(s, d, n, limit, i, o, budget_tokens, kappa))
        notes.append(f"finite benchmark of {facts['benchmark_prompts']} prompts sent at once to a prefill-first engine "
                     f"that admits prompts only while the running batch is under its cap (serving facts, engine "
                     f"{facts.get('engine')}: no chunked prefill, {budget_tokens:g} tokens a prefill step): the first "
                     f"{min(n, limit):g} are prefilled, then every decode step that finishes a request (probability "
                     f"1 - exp(-{limit:g}/O)) is followed by a prefill-only step of the freed slots' prompts")
    elif "benchmark_prompts" in facts:
        out.update(_burst(s, d, float(facts["benchmark_prompts"]) / ranks, limit, i, o, budget_tokens, r))
        notes.append(f"finite benchmark of {facts['benchmark_prompts']} prompts sent at once (serving facts): the "
                     f"engine drains a queue; throughput over the makespan, TTFT includes the wait for a slot")
    return out


# vllm bench's ShareGPT sampler drops requests whose reply is under 4 tokens (benchmarks/datasets.py,
# sample_sharegpt_requests: prompt_len < 4 or output_len < 4 are skipped)
MIN_OUTPUT_TOKENS = 4.0


def output_length_kappa(mean_output: float, min_output: float = MIN_OUTPUT_TOKENS) -> float:
    """``E[1/(O-1)]·(E[O]-1)``: how much more a wait after the first token weighs in the mean over requests of
    per-request TPOT than in the TPOT of the mean request (1 when every output is as long as the mean).

    A case publishes only the mean output; its lengths are taken as the maximum-entropy law with that mean
    above the benchmark's minimum, ``O = m + Exp(mean - m)``: ``E[1/(O-1)] = e^x E1(x) / theta`` with
    ``theta = mean - m`` and ``x = (m - 1)/theta``. For a mean of 200 it is 3.7; the bundled per-request chat
    traces bracket it (Azure LLM inference 2023 conversation: 2.1, Mooncake conversation: 4.3).
    """
    theta = max(mean_output - min_output, 1e-9)
    x = max(min_output - 1.0, 1e-9) / theta
    # E1(x) e^x by its continued fraction (x >= 1) or series (x < 1), Abramowitz & Stegun 5.1.11 / 5.1.22
    if x < 1.0:
        e1 = -0.5772156649015329 - math.log(x)
        term = 1.0
        for k in range(1, 60):
            term *= -x / k
            e1 -= term / k
        ex_e1 = math.exp(x) * e1
    else:
        f = 0.0
        for k in range(60, 0, -1):
            f = k / (1.0 + k / (x + f))
        ex_e1 = 1.0 / (x + f)
    return float(ex_e1 / theta * (mean_output - 1.0))


def _decode_at(s: ServingSetup, d: _Deployment, batch: float, i: float, o: float) -> DecodeRates:
    """Decode steps of ``batch`` sequences at the mean context of a burst (prompt + half the output), no prefill."""
    return decode_rates(s, d.shape, np.array([batch]), i + 0.5 * o, 1.0, with_prefill=False)


def _burst_result(d: _Deployment, n: float, o: float, makespan: float, ttft: float, tpot: float
                  ) -> dict[str, float]:
    """A burst's metrics: ``n`` requests of ``o`` output tokens per rank over ``makespan``; mean TTFT and TPOT (s)."""
    per_chip = n * o / makespan * float(d.shape.dp[0]) / float(d.shape.tp[0] * d.shape.pp[0] * d.shape.dp[0])
    return {"output_tokens_per_s": per_chip * d.chips, "output_tokens_per_s_per_chip": per_chip,
            "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3}


def _burst_prefill_first(s: ServingSetup, d: _Deployment, n: float, limit: float, hold: float, i: float, o: float,
                         pre_tokens: float, kappa: float) -> dict[str, float]:
    """Metrics of ``n`` requests per rank sent at once to a prefill-first engine (MindIE, supportSelectBatch off).

    Prompts are prefilled in batches of ``pre_tokens`` tokens while decoding waits, as long as prompts wait and
    the KV cache holds them (``hold`` sequences at prompt length); decode then runs at most ``limit`` sequences
    a step, without prefill in its steps, and the prefilled requests wait for a slot with their first token
    out. A request's TPOT (``(latency - TTFT)/(O - 1)`` as benchmarks print it) carries its wait after the first
    token, divided by its own ``O - 1``: averaged over requests that wait weighs ``kappa``/(mean O - 1).
    Prompts beyond ``hold`` are prefilled as decoding frees KV (their TTFT waits for the drain).
    """
    accept = s.speculative.accept_length if s.speculative is not None else 1.0
    pre_step = float(prefill_rate(s, d.shape, i, np.array([pre_tokens]))[0].total_s[0])
    per_batch = max(pre_tokens / i, 1.0)  # prompts per prefill batch
    first = min(n, max(hold, 1.0))  # prefilled before decoding starts
    prefill_all = math.ceil(first / per_batch) * pre_step
    b = min(limit, first)
    full = _decode_at(s, d, b, i, o)
    step_full = float(full.step.total_s[0])
    half = _decode_at(s, d, max(b / 2.0, 1.0), i, o)
    step_half = float(half.step.total_s[0])
    # the decode slots drain the n requests; the late prompts (beyond hold) are prefilled in between
    late = max(n - first, 0.0)
    drain = max(n - b, 0.0) * o / (b * accept) * step_full + math.ceil(late / per_batch) * pre_step
    tail = o / accept * step_half
    makespan = prefill_all + drain + tail
    # TTFT: the held prompts finish their prefill batch on average halfway through the prefill phase (plus a
    # batch); the late ones wait for KV freed by the drain
    ttft_held = 0.5 * (prefill_all + pre_step)
    ttft = (first * ttft_held + late * (prefill_all + 0.5 * drain + pre_step)) / n
    # wait between the first token and the first decode step: the rest of the prefill phase, then a slot
    wait_held = prefill_all - ttft_held + max(first - b, 0.0) / first * 0.5 * drain
    wait = (first * wait_held + late * 0.5 * drain * (b / max(first, 1.0))) / n
    tpot_decoding = (float(full.tpot_s[0]) * max(n - b, 0.0) + 0.5 * (float(full.tpot_s[0])
                                                                        + float(half.tpot_s[0])) * b) / n
    tpot = tpot_decoding + wait * kappa / max(o - 1.0, 1.0)
    d.chosen["batch_per_rank"] = round(b, 1)
    d.chosen["prefill_tokens_per_batch"] = pre_tokens
    return _burst_result(d, n, o, makespan, ttft, tpot)


def _burst_prefill_first_capped(s: ServingSetup, d: _Deployment, n: float, limit: float, i: float, o: float,
                                budget: float, kappa: float) -> dict[str, float]:
    """Metrics of ``n`` requests per rank sent at once to a prefill-first engine whose prefill admits prompts only
    while fewer than ``limit`` requests run (vllm-ascend's AscendScheduler, forced on non-MLA models in v0.9.1).

    Each step either prefills waiting prompts (whole, at most ``budget`` tokens, decode paused) or, when none is
    admitted, decodes the running batch. The first wave of ``min(n, limit)`` prompts is prefilled ``budget``
    tokens a step; then every decode step that finishes at least one request frees slots and is followed by a
    prefill-only step of that many prompts. A decode step at batch ``limit`` finishes ``limit/O`` requests on
    average, taken as Poisson: a share ``1 - exp(-limit/O)`` of decode steps is followed by a prefill step of
    ``(limit/O) / that share`` prompts. The last wave decodes out at a falling batch (taken at half), with no
    prompt left to admit. TPOT counts the interleaved prefill steps; the first wave's wait between its first
    token and its first decode (the rest of the fill) weighs ``kappa``/(mean O - 1) as for ``_burst_prefill_first``.
    """
    accept = s.speculative.accept_length if s.speculative is not None else 1.0
    wave = min(n, limit)
    per_batch = max(math.floor(budget / i), 1.0)  # whole prompts per prefill step
    full_batches, rest = divmod(wave, per_batch)
    fill = full_batches * float(prefill_rate(s, d.shape, i, np.array([per_batch * i]))[0].total_s[0])
    if rest > 0:
        fill += float(prefill_rate(s, d.shape, i, np.array([rest * i]))[0].total_s[0])
    done = limit * accept / o  # requests finishing per decode step
    share = 1.0 - math.exp(-done)  # decode steps followed by a prefill step
    admit = done / max(share, 1e-12)  # prompts per such prefill step
    pre_small = float(prefill_rate(s, d.shape, i, np.array([min(admit * i, budget)]))[0].total_s[0])
    full = _decode_at(s, d, limit, i, o)
    step_d = float(full.step.total_s[0])
    half = _decode_at(s, d, max(wave / 2.0, 1.0), i, o)
    step_half = float(half.step.total_s[0])
    decode_steps = max(n - wave, 0.0) * o / (limit * accept)
    drain = decode_steps * (step_d + share * pre_small)
    tail = o / accept * step_half
    makespan = fill + drain + tail
    # TTFT: the first wave finishes its prefill on average halfway through the fill (plus a step); the queued
    # requests wait for a slot (half the drain on average) and their own prefill step
    ttft = (wave * 0.5 * (fill + pre_small) + (n - wave) * (fill + 0.5 * drain + pre_small)) / n
    tpot_drain = (step_d + share * pre_small) / accept
    tpot = ((n - wave) * tpot_drain + wave * 0.5 * (tpot_drain + step_half / accept)) / n
    wait = wave / n * 0.5 * max(fill - pre_small, 0.0)  # the first wave's wait for the rest of the fill
    tpot += wait * kappa / max(o - 1.0, 1.0)
    return _burst_result(d, n, o, makespan, ttft, tpot)


def _burst(s: ServingSetup, d: _Deployment, n: float, limit: float, i: float, o: float, budget: float,
           full: DecodeRates) -> dict[str, float]:
    """Metrics of ``n`` requests per rank sent at once to an engine that runs at most ``limit`` of them.

    The first wave of ``min(n, limit)`` prompts is prefilled ``budget`` tokens a step; then the batch stays
    full while the queue drains (each step finishes ``limit·L/O`` requests and admits as many), and the last
    wave decodes out at a falling batch (taken at half the batch). TTFT: the first wave waits for its share of
    the first prefill, the queued requests for a free slot (on average half the drain) plus their own prefill.
    """
    accept = s.speculative.accept_length if s.speculative is not None else 1.0
    wave = min(n, limit)
    step_full = float(full.step.total_s[0])
    pre_step = float(prefill_rate(s, d.shape, i, np.array([budget]))[0].total_s[0])
    first = math.ceil(wave * i / budget) * pre_step
    drain = max(n - wave, 0.0) * o / (limit * accept) * step_full
    half = _decode_at(s, d, max(wave / 2.0, 1.0), i, o)
    tail = o / accept * float(half.step.total_s[0])
    makespan = first + drain + tail
    ttft = (wave * 0.5 * first + (n - wave) * (first + 0.5 * drain + step_full)) / n
    tpot = ((n - wave) * float(full.tpot_s[0]) + wave * 0.5 * (float(full.tpot_s[0]) + float(half.tpot_s[0]))) / n
    return _burst_result(d, n, o, makespan, ttft, tpot)


def _server(case: Case, s: ServingSetup, d: _Deployment, notes: list[str]) -> dict[str, float]:
    inf = case.inference
    assert inf is not None and inf.output_tokens is not None and inf.request_rate is not None
    o = inf.output_tokens
    i = inf.input_tokens
    if i is None:
        i = o
        notes.append(f"input_tokens not published: assumed equal to output_tokens ({o:g})")
    facts = serving_facts(case)
    budget_tokens = float(facts.get("max_num_batched_tokens", DEFAULT_TOKEN_BUDGET))
    budget = np.array([budget_tokens])
    ranks = d.replicas * int(d.shape.dp[0])
    cap = float(facts.get("max_num_seqs", DEFAULT_MAX_BATCH))
    limit = min(cap, float(max_batch_by_kv(s, d.shape, i, o, budget)[0]))
    why = "serving facts" if "max_num_seqs" in facts else "KV / planner cap"
    notes.append(f"engine caps: {limit:g} sequences per rank ({why}), {budget_tokens:g} tokens per step; TTFT "
                 f"queues for the prefill share of each step (M/D/1)")
    out = _server_at(s, d, inf.request_rate / ranks, i, o, limit, budget)
    if not math.isfinite(out["tpot_ms"]) and not inf.slo:
        r = decode_rates(s, d.shape, np.array([limit]), i, o)
        served = float(r.tokens_per_s_per_chip[0]) * d.chips
        notes.append("the request rate exceeds the modelled capacity: throughput capped")
        return {"output_tokens_per_s": served, "tpot_ms": float(r.tpot_s[0]) * 1e3, "ttft_ms": float("inf")}
    d.chosen["token_budget"] = budget_tokens
    if inf.slo:
        best = _max_rate_within_slo(s, d, i, o, limit, budget, inf.slo)
        notes.append(f"highest rate whose p99 TTFT/TPOT meet the SLO {inf.slo}: {best * ranks:.4g} req/s (scored "
                     f"against the published rate, taken as the highest the submitter could run)")
        if at_slo_edge(case) or not math.isfinite(out["tpot_ms"]):
            edge = _server_at(s, d, best, i, o, limit, budget)
            notes.append(f"an MLPerf server run is published at the highest rate passing its constraints: latencies "
                         f"predicted at our engine's edge (at the published rate our model would give TPOT "
                         f"{out['tpot_ms']:.4g} ms, TTFT {out['ttft_ms']:.4g} ms)")
            out = edge
        out["request_rate_at_slo"] = best * ranks
    d.chosen["batch_per_rank"] = round(out.pop("batch"), 1)
    out.pop("tpot_p99_ms", None)
    out.pop("ttft_p99_ms", None)
    out["output_tokens_per_s"] = inf.request_rate * o
    return out


_MLPERF = re.compile(r"mlperf|mlcommons", re.IGNORECASE)


def at_slo_edge(case: Case) -> bool:
    """A run published at the highest rate its constraints allow: MLPerf Inference's server scenario (the
    submitter reports the highest target QPS whose run is VALID, MLPerf Inference rules, 'Server')."""
    return bool(_MLPERF.search(f"{case.source or ''} {case.url or ''}"))


# z of the 99th percentile of a normal distribution
Z99 = 2.326


def _server_at(s: ServingSetup, d: _Deployment, lam: float, i: float, o: float, limit: float,
               budget: npt.NDArray[np.float64]) -> dict[str, float]:
    """Batch, mean and p99 TPOT and TTFT (ms) of one attention rank at ``lam`` requests/s (inf where it cannot
    keep up).

    The p99 TPOT is the step time at the 99th percentile of the running batch. With Poisson arrivals and a
    step time ``t(B) = a + c·B`` the running batch is a birth-death process (births ``lam``, completions
    ``B/(O·t(B))``) whose stationary law is negative binomial: mean ``A/(1-rho)``, variance ``(A+rho)/(1-rho)^2``
    with ``A = lam·O·a`` and ``rho = lam·O·c`` (Kleinrock 1975, Sec. 3.2 birth-death equilibrium). The p99 TTFT
    adds ``ln(100) - 1`` mean waits to the mean: a queue wait is about exponential in heavy traffic (Kingman 1961).
    """
    batch, tpot = concurrency_under_rate(s, d.shape, np.array([lam]), i, o, np.array([limit]))
    if not np.isfinite(tpot[0]):
        inf_ = float("inf")
        return {"batch": float(limit), "tpot_ms": inf_, "ttft_ms": inf_, "tpot_p99_ms": inf_, "ttft_p99_ms": inf_}
    accept = s.speculative.accept_length if s.speculative is not None else 1.0
    ttft, wait = ttft_and_wait_under_load_s(tpot * accept, i, budget, batch, np.array([lam]))
    b = float(batch[0])
    # local slope of the step time in the batch (finite difference on the same model)
    hi = decode_rates(s, d.shape, np.array([b * 1.05 + 1.0]), i, o).tpot_s[0]
    lo = decode_rates(s, d.shape, np.array([b]), i, o).tpot_s[0]
    c = float((hi - lo) / (0.05 * b + 1.0))
    rho = lam * o * c
    a_ = lam * o * max(float(lo) - c * b, 0.0)
    sigma = math.sqrt(a_ + rho) / max(1.0 - rho, 1e-6)
    b99 = min(b + Z99 * sigma, limit)
    tpot99 = float(tpot[0]) + c * (b99 - b)
    ttft99 = float(ttft[0]) + (math.log(100.0) - 1.0) * float(wait[0])
    return {"batch": b, "tpot_ms": float(tpot[0]) * 1e3, "ttft_ms": float(ttft[0]) * 1e3,
            "tpot_p99_ms": tpot99 * 1e3, "ttft_p99_ms": ttft99 * 1e3}


def _max_rate_within_slo(s: ServingSetup, d: _Deployment, i: float, o: float, limit: float,
                         budget: npt.NDArray[np.float64], slo: dict[str, float]) -> float:
    """The highest arrival rate per rank whose predicted p99 TTFT and TPOT meet the SLO (bisection).

    MLPerf's server constraints are 99th percentiles (TTFT and TPOT for Llama-2-70B, MLPerf Inference
    rules, 'Server' latency constraints); a limit given for a mean is met when its p99 is.
    """
    full = decode_rates(s, d.shape, np.array([limit]), i, o)
    hi = float(full.tokens_per_s_per_chip[0]) * float(d.shape.tp[0] * d.shape.pp[0]) / o  # at the batch cap

    def ok(lam: float) -> bool:
        r = _server_at(s, d, lam, i, o, limit, budget)
        return (r["tpot_p99_ms"] <= slo.get("tpot_ms", math.inf)) and (r["ttft_p99_ms"] <= slo.get("ttft_ms", math.inf))

    lo = 0.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def _prefill(case: Case, s: ServingSetup, d: _Deployment, notes: list[str]) -> dict[str, float]:
    inf = case.inference
    assert inf is not None
    i = inf.input_tokens
    if i is None:
        i = DEFAULT_PROMPT_TOKENS
        notes.append(f"input_tokens not published: assumed {i:g}")
    tokens = max(float(DEFAULT_PREFILL_TOKENS), i)
    notes.append(f"tokens per rank per prefill step not published: {tokens:g}")
    d.chosen["prefill_tokens_per_rank"] = tokens
    step, rate = prefill_rate(s, d.shape, i, np.array([tokens]))
    return {"input_tokens_per_s_per_chip": float(rate[0]), "ttft_ms": float(step.total_s[0]) * 1e3}


def _decode(case: Case, s: ServingSetup, d: _Deployment, notes: list[str]) -> dict[str, float]:
    inf = case.inference
    assert inf is not None
    ctx = inf.input_tokens
    if ctx is None:
        ctx = DEFAULT_PROMPT_TOKENS
        notes.append(f"KV length not published: assumed {ctx:g}")
    ranks = d.replicas * int(d.shape.dp[0])
    kv_limit = float(max_batch_by_kv(s, d.shape, ctx, 0.0, np.array([256.0]))[0])
    if inf.batch is not None:
        b = np.array([min(inf.batch / ranks, kv_limit)])
    else:
        grid = np.unique(np.round(np.geomspace(1, max(min(kv_limit, DEFAULT_MAX_BATCH), 1), 64)))
        r = decode_rates(s, ServingShape(*(np.repeat(getattr(d.shape, f), len(grid)) for f in
                                          ("tp", "pp", "dp", "ep", "wcode", "kvcode"))), grid, ctx, 1.0, False)
        ok = np.ones_like(grid, dtype=bool)
        if inf.slo and "tpot_ms" in inf.slo:
            ok = r.tpot_s * 1e3 <= inf.slo["tpot_ms"]
            notes.append(f"batch not published: largest meeting TPOT <= {inf.slo['tpot_ms']:g} ms")
        else:
            notes.append(f"batch not published: the throughput-best batch within KV capacity ({kv_limit:g})")
        if not ok.any():
            raise SpecError(f"case {case.id}: no batch meets the TPOT target in our model")
        b = np.array([grid[ok][np.argmax(r.tokens_per_s_per_chip[ok])]])
    d.chosen["batch_per_rank"] = float(b[0])
    r = decode_rates(s, d.shape, b, ctx, 1.0, with_prefill=False)
    return {"output_tokens_per_s_per_chip": float(r.tokens_per_s_per_chip[0]),
            "output_tokens_per_s": float(r.tokens_per_s_per_chip[0]) * d.chips, "tpot_ms": float(r.tpot_s[0]) * 1e3}


def _disaggregated(case: Case, s: ServingSetup, notes: list[str]) -> tuple[_Deployment, dict[str, float]]:
    """A prefill pool and a decode pool (``inference.disaggregated``): TPOT of the decode pool at its batch cap,
    TTFT of the prefill pool under the load the decode pool's slots generate.

    With no request rate published the benchmark is taken as closed-loop at the decode pool's capacity
    (every decode slot busy: a request leaves, the next arrives), arriving at rate ``slots / (TTFT + O·TPOT)``;
    the prefill pool runs steps of ``DEFAULT_PREFILL_TOKENS`` per rank and queues prompts (M/D/1 on its steps),
    then the KV cache crosses to the decode pool.
    """
    inf = case.inference
    assert inf is not None and inf.disaggregated is not None
    pool = inf.disaggregated
    try:
        pc, dc = int(pool["prefill_chips"]), int(pool["decode_chips"])
    except (KeyError, TypeError, ValueError):
        raise SpecError(f"case {case.id}: inference.disaggregated: needs integer prefill_chips and decode_chips "
                        f"(got {pool})") from None
    if inf.output_tokens is None:
        raise SpecError(f"case {case.id}: inference.output_tokens: required for a disaggregated deployment")
    i, o = inf.input_tokens or DEFAULT_PROMPT_TOKENS, inf.output_tokens
    w, kv = _precisions(case, s, notes)
    moe = s.model.moe is not None
    tp = inf.tp or 1
    dshape = ServingShape.of(tp, 1, dc // tp, dc if moe else 1, w, kv)
    pshape = ServingShape.of(tp, 1, pc // tp, pc if moe else 1, w, kv)
    notes.append(f"parallel layout not published: each pool one {'EP' if moe else 'DP'} group over its chips, "
                 f"tp {tp}")
    facts = serving_facts(case)
    kv_limit = float(max_batch_by_kv(s, dshape, i, o, np.array([256.0]))[0])
    cap = float(facts.get("max_num_seqs", DEFAULT_MAX_BATCH))
    b = min(cap, kv_limit)
    if b < 1:
        raise SpecError(f"case {case.id}: the weights leave no room for a KV cache on the decode pool")
    r = decode_rates(s, dshape, np.array([b]), i + 0.5 * o, 1.0, with_prefill=False)
    tpot = float(r.tpot_s[0])
    tokens = max(float(DEFAULT_PREFILL_TOKENS), i)
    step, rate = prefill_rate(s, pshape, i, np.array([tokens]))
    step_p = float(step.total_s[0])
    capacity = float(rate[0]) * pc / i  # prompts/s of the prefill pool
    handoff = float(kv_transfer_s(s, dshape, i)[0])
    slots = b * (dc // tp)
    lam = inf.request_rate or slots / (o * tpot)
    ttft = math.inf
    for _ in range(60):  # closed loop: the arrival rate the slots sustain at this TTFT
        rho = min(lam / capacity, 0.999)
        ttft = step_p * (1.5 + rho / (2.0 * (1.0 - rho))) + handoff
        if inf.request_rate is not None:
            break
        lam = min(slots / (ttft + o * tpot), capacity * 0.999)
    chosen = {"prefill_chips": pc, "decode_chips": dc, "tp": tp, "ep_prefill": pc if moe else 1,
              "ep_decode": dc if moe else 1, "weight_precision": w, "kv_precision": kv, "batch_per_rank": b,
              "prefill_tokens_per_rank": tokens, "request_rate": round(lam, 4), "chips": pc + dc}
    why = "serving facts" if "max_num_seqs" in facts else "KV / planner cap"
    notes.append(f"decode batch per rank {b:g} ({why}); prefill steps of {tokens:g} tokens per rank (not published); "
                 + ("request rate published" if inf.request_rate else
                    f"request rate not published: closed loop at the decode pool's {slots:g} slots -> {lam:.3g} req/s"))
    d = _Deployment(dshape, 1, pc + dc, chosen)
    return d, {"tpot_ms": tpot * 1e3, "ttft_ms": ttft * 1e3, "output_tokens_per_s": lam * o,
               "output_tokens_per_s_per_chip": lam * o / (pc + dc)}


MODES = {"offline": _offline, "server": _server, "prefill_only": _prefill, "decode_only": _decode}


def _best_ep(case: Case, s: ServingSetup, notes: list[str]) -> tuple[_Deployment, dict[str, float]]:
    """Unknown EP degree: the per-chip-throughput-best among ``EP_CHOICES`` (the planner's rule)."""
    inf = case.inference
    assert inf is not None
    best: tuple[float, _Deployment, dict[str, float], list[str]] | None = None
    for ep in EP_CHOICES:
        trial_notes: list[str] = []
        try:
            d = _deployment(case, s, ep, trial_notes)
            pred = MODES[inf.mode](case, s, d, trial_notes)
        except SpecError:
            continue
        key = pred.get("output_tokens_per_s_per_chip", pred.get("input_tokens_per_s_per_chip", 0.0))
        if best is None or key > best[0] * 1.02:  # the smallest EP within 2 % of the best
            best = (key, d, pred, trial_notes)
    if best is None:
        raise SpecError(f"case {case.id}: no EP degree in {EP_CHOICES} fits")
    notes += best[3] + [f"ep/dp not published: {best[1].chosen['ep']} chosen (per-chip best of {EP_CHOICES})"]
    return best[1], best[2]


def _is_ep(case: Case, catalog: Catalog) -> bool:
    """An expert-parallel MoE deployment (EP published > 1, or left open on a MoE model)."""
    inf = case.inference
    if inf is None or (inf.ep is not None and inf.ep == 1):
        return False
    try:
        return catalog.model(case.model).moe is not None
    except SpecError:
        return False


def _with_software_facts(case: Case, s: ServingSetup, notes: list[str]) -> ServingSetup:
    """Serving facts of the case's source that the case format has no field for (``validate/data/serving``):
    speculative decoding (steps, accept length) and FP8 attention math."""
    facts = serving_facts(case)
    if "speculative_accept_length" in facts:
        steps = int(facts.get("speculative_steps", 1))
        accept = float(facts["speculative_accept_length"])
        spec = Speculative(steps, accept, max(1, s.model.mtp_modules))
        s = replace(s, speculative=spec)
        notes.append(f"speculative decoding (serving facts): {steps} draft step(s) of {spec.draft_layers} layer(s), "
                     f"{steps + 1} tokens verified per step, accept length {accept:g}")
    if "host_s_per_kernel" in facts:
        host = float(facts["host_s_per_kernel"])
        s = replace(s, host_s_per_kernel=host)
        notes.append(f"kernels launched one by one (serving facts, engine {facts.get('engine')}): {host * 1e6:g} us of "
                     f"host time per kernel, {float(kernels_per_step(s.model, np.array([1]))[0]):g} kernels a "
                     "forward pass at tp 1 (vLLM-Ascend v0.9.1's layer code), all-reduces added under TP")
    if facts.get("attention_precision") == "fp8":
        s = replace(s, attention_precision="fp8")
        notes.append("attention math in FP8 (serving facts: FlashMLA-FP8 / FA3-FP8)")
    return s


def predict_inference(case: Case, catalog: Catalog, eff: EfficiencyTable,
                      constants: ServingConstants | None = None) -> CasePrediction:
    """Predict every inference metric of ``case`` with its deployment as published (unknowns chosen)."""
    inf = case.inference
    if inf is None:
        raise SpecError(f"case {case.id}: inference: required for kind 'inference'")
    model, accel, system = resolve_specs(case, catalog)
    if constants is None:
        constants = load_serving_constants(accel.id, _is_ep(case, catalog), engine=serving_facts(case).get("engine"))
    s = make_serving_setup(model, accel, system, eff, constants, expert_parallel=_is_ep(case, catalog))
    notes: list[str] = [f"serving constants of family {s.constants.family}: compute_scale "
                        f"{s.constants.compute_scale:g}, step overhead {s.constants.step_overhead_s * 1e3:g} ms"]
    s = _with_software_facts(case, s, notes)
    if inf.mode in ("offline", "server") and inf.output_tokens is None:
        raise SpecError(f"case {case.id}: inference.output_tokens: required for mode {inf.mode!r}")
    if inf.disaggregated:
        d, pred = _disaggregated(case, s, notes)
    elif model.moe is not None and inf.ep is None:
        d, pred = _best_ep(case, s, notes)
    else:
        d = _deployment(case, s, None, notes)
        pred = MODES[inf.mode](case, s, d, notes)
    if any(k in case.measured for k in ENERGY_METRICS):
        energy, stretch = _energy(case, s, d, notes)
        pred = _stretched(pred, stretch, inf.mode == "server")
        pred.update(energy)
    pred = {k: v for k, v in pred.items() if math.isfinite(v)}
    if "request_rate_at_slo" in pred and inf.request_rate is not None:
        # scored against the published rate: a server run is at the highest rate its submitter found passing
        case = case.model_copy(update={"measured": {**case.measured, "request_rate_at_slo": inf.request_rate}})
    return CasePrediction(case, d.chosen, pred, tuple(notes))


def _stretched(pred: dict[str, float], stretch: float, rate_fixed: bool) -> dict[str, float]:
    """Metrics when every step takes ``stretch`` times longer (a power cap): latencies grow, rates fall."""
    out = dict(pred)
    for k in ("tpot_ms", "ttft_ms"):
        if k in out:
            out[k] *= stretch
    for k in ("output_tokens_per_s", "output_tokens_per_s_per_chip", "input_tokens_per_s_per_chip"):
        if k in out and not (rate_fixed and k == "output_tokens_per_s"):
            out[k] /= stretch
    return out


# "GPU power limit 500 W", "power cap of 300 W": a cap the case's notes state (MLPerf MaxQ submissions)
_CAP = re.compile(r"power (?:limit|cap)\D{0,20}?(\d+(?:\.\d+)?)\s*W\b", re.IGNORECASE)


def stated_power_cap_w(case: Case) -> float | None:
    """The per-chip power cap the case's notes state, if any."""
    m = _CAP.search(case.notes or "")
    return float(m.group(1)) if m else None


def _energy(case: Case, s: ServingSetup, d: _Deployment, notes: list[str]) -> tuple[dict[str, float], float]:
    """Energy metrics at the case's boundary (chip: accelerators; node: wall power incl. host and NICs), PUE if
    stated. Returns the metrics and the step's stretch under a stated power cap (1.0 uncapped)."""
    from fleetwise.energy.serving import (
        SERVING_ENERGY_ASSUMPTIONS,
        EngineWork,
        Pool,
        colocated_work,
        decode_work,
        deployment_energy,
        prefill_work,
        run_step,
        serving_energy_setup,
    )

    inf = case.inference
    assert inf is not None
    cap = stated_power_cap_w(case)
    es = serving_energy_setup(s, cap_w=cap)
    o = inf.output_tokens or 1.0
    i = inf.input_tokens or (o if inf.mode in ("offline", "server") else DEFAULT_PROMPT_TOKENS)
    b = np.array([float(d.chosen.get("batch_per_rank", 1.0))])
    work: EngineWork
    if inf.mode == "prefill_only":
        tokens = np.array([float(d.chosen.get("prefill_tokens_per_rank", DEFAULT_PREFILL_TOKENS))])
        work, made = prefill_work(s, d.shape, i, tokens), tokens / i
    elif inf.mode == "decode_only":
        work, made = decode_work(s, d.shape, b, i), b
    else:
        work, made = colocated_work(s, d.shape, b, i, o), b
    step = run_step(es.chip, work, 1.0, 1.0, cap)
    engines = d.chips / float(d.shape.tp[0] * d.shape.pp[0] * d.shape.dp[0])
    rate = engines * made * d.shape.dp / step.time_s  # requests (prefill) or tokens (decode) per second
    if inf.mode == "prefill_only":
        tokens_per_s = rate * i  # J per prompt token
    else:
        tokens_per_s = rate
    busy = np.ones(1)
    if inf.mode == "server" and inf.request_rate is not None:
        busy = np.minimum(inf.request_rate * o / tokens_per_s, 1.0)
        tokens_per_s = np.minimum(tokens_per_s, inf.request_rate * o)
    e = deployment_energy(es, [Pool(np.array([float(d.chips)]), step, busy)], tokens_per_s)
    boundary = "node" if case.power_boundary == "node" else "chip"
    pue = case.pue or 1.0
    per_chip = float((e.node_w if boundary == "node" else e.chip_w)[0]) / d.chips
    # as for training: power at the boundary, energy with the stated PUE
    out = {"avg_power_w": per_chip * d.chips, "avg_power_w_per_chip": per_chip,
           "energy_j_per_token": float(e.j_per_token(boundary)[0]) * pue}
    notes.append(f"energy at the {boundary} boundary ({'chips + host share + NICs' if boundary == 'node' else 'chips'}"
                 f"), PUE {case.pue or 'not applied (none stated)'}; power parameters energy/data/power.yaml and "
                 f"sites.yaml node defaults, none fitted on cases; " + "; ".join(SERVING_ENERGY_ASSUMPTIONS[:2]))
    if cap is not None:
        notes.append(f"power cap {cap:g} W per chip read from the notes: capped phases run at a lower clock, "
                     f"throughput re-predicted under it (step {float(work.total_s[0]) * 1e3:.2f} -> "
                     f"{float(step.time_s[0]) * 1e3:.2f} ms)")
    else:
        notes.append("no power cap or clock stated: stock clocks, uncapped")
    d.chosen["power_cap_w"] = cap
    return out, float(step.time_s[0] / work.total_s[0])


def disaggregated_ttft_s(s: ServingSetup, sh: ServingShape, input_tokens: float, prefill_step_s: float) -> float:
    """TTFT of a disaggregated deployment: prefill, then the KV hand-off to the decode pool."""
    return float(prefill_step_s + kv_transfer_s(s, sh, input_tokens)[0])


SCALE_GRID = tuple(float(x) for x in np.geomspace(0.8, 2.0, 17))
OVERHEAD_GRID_S = (0.0, 0.001, 0.002, 0.004, 0.008)
# An engine fitted apart (family@engine) departs from its family's kernels (eager mode, host-bound steps), so
# its grid reaches further: kernel time up to 5x (the loader's bound), host time per step up to 64 ms.
ENGINE_SCALE_GRID = tuple(float(x) for x in np.geomspace(0.8, 5.0, 25))
ENGINE_OVERHEAD_GRID_S = (0.0, 0.002, 0.008, 0.016, 0.032, 0.064)


# (case id, compute_scale, step_overhead_s) -> (mean |log error| the fitter scores, relative error per metric);
# (None, None) where the case cannot be predicted with those constants. Every fold re-scores the same grid.
ErrorCache = dict[tuple[str, float, float], tuple[float | None, dict[str, float] | None]]


def _case_fit(case: Case, catalog: Catalog, eff: EfficiencyTable, c: ServingConstants,
              cache: ErrorCache | None = None) -> tuple[float | None, dict[str, float] | None]:
    key = (case.id, c.compute_scale, c.step_overhead_s)
    if cache is not None and key in cache:
        return cache[key]
    out = _case_fit_uncached(case, catalog, eff, c)
    if cache is not None:
        cache[key] = out
    return out


def _case_log_error(case: Case, catalog: Catalog, eff: EfficiencyTable, c: ServingConstants,
                    cache: ErrorCache | None = None) -> float | None:
    return _case_fit(case, catalog, eff, c, cache)[0]


def _case_fit_uncached(case: Case, catalog: Catalog, eff: EfficiencyTable, c: ServingConstants
                       ) -> tuple[float | None, dict[str, float] | None]:
    try:
        p = predict_inference(case, catalog, eff, c)
    except SpecError:
        return None, None
    errs = [abs(math.log(p.predicted[k] / v)) for k, v in case.measured.items()
            if k in p.predicted and p.predicted[k] > 0]
    return (float(np.mean(errs)) if errs else None), p.errors()


def _grid(family: str) -> list[ServingConstants]:
    """The constants the fitter tries for ``family`` (an engine fitted apart has a wider grid)."""
    engine = "@" in family
    return [ServingConstants(scale, over, family) for scale in (ENGINE_SCALE_GRID if engine else SCALE_GRID)
            for over in (ENGINE_OVERHEAD_GRID_S if engine else OVERHEAD_GRID_S)]


def fit_serving_constants(cases: list[Case], catalog: Catalog, eff: EfficiencyTable, family: str,
                          cache: ErrorCache | None = None) -> tuple[ServingConstants, float]:
    """The (compute_scale, step_overhead_s) minimising the median |log error| over a group of cases."""
    best: tuple[float, ServingConstants] | None = None
    for c in _grid(family):
        errs = [e for case in cases if (e := _case_log_error(case, catalog, eff, c, cache)) is not None]
        if not errs:
            continue
        score = float(np.median(errs)) + 0.1 * float(np.mean(np.minimum(errs, 1.0)))
        if best is None or score < best[0] - 1e-12:
            best = (score, c)
    if best is None:
        raise SpecError(f"no case of family {family} can be predicted")
    return best[1], best[0]


def _groups(cases: list[Case], catalog: Catalog) -> dict[str, list[Case]]:
    """Chip families with published serving runs from at least two sources; every case also in ``global``."""
    by_family: dict[str, list[Case]] = {}
    for c in cases:
        by_family.setdefault(_group_key(c, catalog), []).append(c)
    # runs of a named engine (serving facts) stay out of the family and global fits: they are named exactly
    # because their stack departs from the family's usual one
    usual = [c for c in cases if "engine" not in serving_facts(c)]
    groups = {"global": [c for c in usual if not _is_ep(c, catalog)],
              "global_ep": [c for c in usual if _is_ep(c, catalog)]}
    for fam, members in by_family.items():
        if len({c.source_key for c in members}) >= 2:
            groups[fam] = members
    return groups


def fit_all(cases: list[Case], catalog: Catalog, eff: EfficiencyTable, cache: ErrorCache | None = None
            ) -> dict[str, ServingConstants]:
    groups = _groups(cases, catalog)
    cache = {} if cache is None else cache
    return {fam: fit_serving_constants(members, catalog, eff, fam, cache)[0] for fam, members in groups.items()
            if members}


def _group_key(case: Case, catalog: Catalog) -> str:
    """The case's constants group: its chip family (``_ep`` for EP deployments), ``@engine`` where a serving
    fact names an engine fitted apart."""
    key = constants_group(case.hardware, _is_ep(case, catalog))
    engine = serving_facts(case).get("engine")
    return f"{key}@{engine}" if engine else key


def _constants_for(fitted: dict[str, ServingConstants], case: Case, catalog: Catalog) -> ServingConstants:
    """The constants ``case`` runs with among the ``fitted`` groups, looked up the way
    ``perf.inference.load_serving_constants`` looks them up in ``serving.yaml``: its engine's group, its chip
    family's, the family's other flavour (EP or not), then the global group of its flavour."""
    ep = _is_ep(case, catalog)
    base = family_of(case.hardware)
    chain = [_group_key(case, catalog), constants_group(case.hardware, ep)]
    if base != "global":
        chain.append(base if ep else base + "_ep")
    chain.append("global_ep" if ep else "global")
    for key in chain:
        if key in fitted:
            return fitted[key]
    raise SpecError(f"case {case.id}: no serving constants group fitted for it (tried {', '.join(chain)})")


def serving_curves(cases: list[Case], catalog: Catalog, eff: EfficiencyTable, cache: ErrorCache | None = None,
                   progress: ProgressFn | None = None) -> ErrorCache:
    """Each case's errors over the constants grid of every group it belongs to: everything a refit of those
    groups on any subset of the cases (a leave-one-source-out fold) scores, so the folds cost only medians.

    ``progress(done, total)`` before each case."""
    cache = {} if cache is None else cache
    grids: dict[str, list[ServingConstants]] = {}
    for fam, members in _groups(cases, catalog).items():
        for m in members:
            grids.setdefault(m.id, []).extend(_grid(fam))
    for done, case in enumerate(cases):
        if progress is not None:
            progress(done, len(cases))
        for c in grids.get(case.id, []):
            _case_fit(case, catalog, eff, c, cache)
    return cache


def serving_leave_one_source_out(cases: list[Case], catalog: Catalog, eff: EfficiencyTable,
                                 cache: ErrorCache | None = None, progress: ProgressFn | None = None
                                 ) -> dict[str, dict[str, float]]:
    """Refit without each source's cases, then predict them: errors a new source would see.

    Same fitter, groups and group lookup as the shipped ``serving.yaml`` (``fit_all``, ``_constants_for``); each
    case's errors over the grid are computed once (``serving_curves``) and every fold re-scores them."""
    out: dict[str, dict[str, float]] = {}
    cache = serving_curves(cases, catalog, eff, cache, progress)
    for src in sorted({c.source_key for c in cases}):
        held = [c for c in cases if c.source_key == src]
        rest = [c for c in cases if c.source_key != src]
        if not rest:
            continue  # a single source: nothing to refit on
        fitted = fit_all(rest, catalog, eff, cache)
        for case in held:
            try:
                errors = _case_fit(case, catalog, eff, _constants_for(fitted, case, catalog), cache)[1]
            except SpecError:
                continue
            if errors is not None:
                out[case.id] = errors
    return out


def main() -> None:
    """Refit ``perf/data/serving.yaml`` on the bundled inference cases and print in-sample and LOSO error."""
    import yaml

    from fleetwise.catalog.loader import load_catalog
    from fleetwise.perf.efficiency import load_efficiency
    from fleetwise.perf.inference import CONSTANTS_FILE
    from fleetwise.validate.cases import load_cases
    from fleetwise.validate.specs import bundled_case_files

    catalog, eff = load_catalog(), load_efficiency()
    cases = [c for f in bundled_case_files() for c in load_cases(f)[0] if c.kind == "inference"]
    cache: ErrorCache = {}
    fitted = fit_all(cases, catalog, eff, cache)
    loso = serving_leave_one_source_out(cases, catalog, eff, cache)
    groups = _groups(cases, catalog)
    doc: dict[str, Any] = {"groups": {}}
    for fam, c in fitted.items():
        members = groups[fam]
        ins = []
        for m in members:
            try:
                errs = predict_inference(m, catalog, eff, _constants_for(fitted, m, catalog)).errors()
            except SpecError:
                continue
            ins.append(float(np.mean([abs(e) for e in errs.values()])))
        lo = [float(np.mean([abs(e) for e in loso[m.id].values()])) for m in members if m.id in loso]
        doc["groups"][fam] = {"compute_scale": round(c.compute_scale, 4), "step_overhead_s": c.step_overhead_s,
                              "fitted_on": [m.id for m in members],
                              "in_sample_median_ape": round(float(np.median(ins)), 4),
                              "leave_one_source_out_median_ape": round(float(np.median(lo)), 4)}
    header = ("# Serving group constants fitted by `python -m fleetwise.validate.inference_cases` on the bundled\n"
              "# inference cases: per chip family with runs from >= 2 sources, else global. compute_scale multiplies\n"
              "# kernel time; step_overhead_s is added per engine step. Never fitted on a single case.\n")
    CONSTANTS_FILE.write_text(header + yaml.safe_dump(doc, sort_keys=False))
    print(yaml.safe_dump(doc, sort_keys=False))


if __name__ == "__main__":
    main()

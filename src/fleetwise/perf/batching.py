"""Steady state of continuous batching: throughput at a batch, and latency under an arrival rate.

Entry points: ``decode_rates`` (step time and tokens/s per chip of a batch, with prefill mixed in at the
rate new requests arrive), ``concurrency_under_rate`` (the batch an arrival rate settles at, by Little's
law), ``prefill_rate`` (tokens/s of prefill-only steps), ``kv_transfer_s`` (P/D hand-off) and
``ttft_s``. All take columns; a candidate table and a grid of batch sizes broadcast together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fleetwise.perf.inference import (
    ServingSetup,
    ServingShape,
    StepTimes,
    kv_bytes_per_sequence,
    kv_capacity,
    step_time,
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DecodeRates:
    """A batch's steady state on one attention rank (arrays broadcast over plans and batch sizes)."""

    batch: FloatArray  # concurrent sequences per attention rank
    step: StepTimes
    tokens_per_s_per_chip: FloatArray  # output tokens
    accept_length: float = 1.0  # tokens each sequence emits per step (speculative decoding)

    @property
    def tpot_s(self) -> FloatArray:
        return np.asarray(self.step.total_s / self.accept_length, dtype=np.float64)


def max_batch_by_kv(s: ServingSetup, sh: ServingShape, input_tokens: float, output_tokens: float,
                    token_budget: FloatArray) -> FloatArray:
    """Sequences one attention rank holds in KV at once, at the mean occupancy (input + output/2)."""
    cap = kv_capacity(s, sh, token_budget).kv_capacity
    per_seq = kv_bytes_per_sequence(s, sh, np.asarray(input_tokens + 0.5 * output_tokens, dtype=np.float64))
    return np.asarray(np.floor(cap / np.maximum(per_seq, 1.0)), dtype=np.float64)


def decode_rates(s: ServingSetup, sh: ServingShape, batch: FloatArray, input_tokens: float, output_tokens: float,
                 with_prefill: bool = True) -> DecodeRates:
    """Step time and output tokens/s per chip at ``batch`` concurrent sequences per attention rank.

    With ``with_prefill`` every step also prefills ``batch·I/O`` prompt tokens, the rate at which finished
    sequences are replaced (chunked prefill spreads them over steps); without it the KV length is
    ``input_tokens`` fixed (decode-only measurements).
    """
    b = np.asarray(batch, dtype=np.float64)
    accept = s.speculative.accept_length if s.speculative is not None else 1.0
    if with_prefill:
        done = b * accept / output_tokens  # sequences finishing (and replaced) per step
        step = step_time(s, sh, done * input_tokens, np.full_like(b, 0.5 * input_tokens), done, b,
                         np.full_like(b, input_tokens + 0.5 * output_tokens))
    else:
        z = np.zeros_like(b)
        step = step_time(s, sh, z, z, z, b, np.full_like(b, input_tokens))
    per_chip = b * accept / step.total_s / (sh.tp * sh.pp)
    return DecodeRates(b, step, np.asarray(per_chip, dtype=np.float64), accept)


def prefill_rate(s: ServingSetup, sh: ServingShape, input_tokens: float, tokens_per_step: FloatArray
                 ) -> tuple[StepTimes, FloatArray]:
    """(step, prompt tokens/s per chip) of prefill-only steps of ``tokens_per_step`` tokens per rank."""
    t = np.asarray(tokens_per_step, dtype=np.float64)
    step = step_time(s, sh, t, np.full_like(t, 0.5 * input_tokens), t / input_tokens, np.zeros_like(t),
                     np.zeros_like(t))
    return step, np.asarray(t / step.total_s / (sh.tp * sh.pp), dtype=np.float64)


def concurrency_under_rate(s: ServingSetup, sh: ServingShape, rate_per_rank: FloatArray, input_tokens: float,
                           output_tokens: float, batch_limit: FloatArray,
                           grid: int = 48) -> tuple[FloatArray, FloatArray]:
    """(batch, TPOT seconds) an arrival rate settles at on one attention rank: B = λ·O·tpot(B) (Little's law).

    Returns ``inf`` step time where the rate exceeds what ``batch_limit`` sequences can serve.
    """
    lam = np.asarray(rate_per_rank, dtype=np.float64)[..., None]
    lim = np.asarray(batch_limit, dtype=np.float64)[..., None]
    frac = np.geomspace(1.0 / 4096.0, 1.0, grid)
    b = np.maximum(lim * frac, 1.0)  # (n, grid)
    expand = ServingShape(*(np.asarray(getattr(sh, f))[..., None] for f in ("tp", "pp", "dp", "ep", "wcode", "kvcode")))
    t = decode_rates(s, expand, b, input_tokens, output_tokens).tpot_s  # step / tokens emitted per step
    need = lam * output_tokens * t  # sequences in flight if the batch were b
    ok = need <= b
    first = np.argmax(ok, axis=-1)
    any_ok = ok.any(axis=-1)
    rows = np.arange(b.shape[0])
    # interpolate between the last grid point that was short and the first that holds the load
    lo = np.maximum(first - 1, 0)
    b_lo, b_hi = b[rows, lo], b[rows, first]
    g_lo = need[rows, lo] - b_lo
    g_hi = need[rows, first] - b_hi
    w = np.where(first > 0, g_lo / np.maximum(g_lo - g_hi, 1e-12), 1.0)
    batch = np.where(first > 0, b_lo + w * (b_hi - b_lo), np.maximum(need[rows, 0], 1.0))
    t_at = np.where(first > 0, t[rows, lo] + w * (t[rows, first] - t[rows, lo]), t[rows, 0])
    return (np.asarray(np.where(any_ok, batch, lim[:, 0]), dtype=np.float64),
            np.asarray(np.where(any_ok, t_at, np.inf), dtype=np.float64))


def kv_transfer_s(s: ServingSetup, sh: ServingShape, input_tokens: float) -> FloatArray:
    """Seconds to move one prompt's KV cache from a prefill engine to a decode engine.

    The pools sit in different scale-up domains when an engine fills one, so the cache crosses
    scale-out; each rank sends its own shard in parallel.
    """
    per_rank = kv_bytes_per_sequence(s, sh, np.asarray(input_tokens, dtype=np.float64))
    crosses = (sh.tp * sh.pp * sh.dp) >= s.system.domain_size
    return s.network.p2p_s(per_rank, np.asarray(crosses))


def ttft_s(step_s: FloatArray, input_tokens: float, token_budget: FloatArray) -> FloatArray:
    """Time to first token with chunked prefill: half a step of waiting, then ceil(I/budget) steps."""
    steps = np.ceil(input_tokens / np.maximum(token_budget, 1.0))
    return np.asarray((0.5 + steps) * step_s, dtype=np.float64)


def plan_latency_s(s: ServingSetup, sh: ServingShape, disaggregated: bool, batch: float, input_tokens: float,
                   output_tokens: float, token_budget: float) -> tuple[float, float]:
    """(TTFT, TPOT) in seconds of one plan at ``batch`` sequences per rank, as the serving search predicts them.

    Co-located: chunked prefill inside decode steps (``ttft_s``); disaggregated: one prompt's prefill plus
    the KV hand-off, and decode steps without prefill chunks.
    """
    b = np.array([max(batch, 1.0)])
    if disaggregated:
        tpot = decode_rates(s, sh, b, input_tokens + 0.5 * output_tokens, 1.0, with_prefill=False).tpot_s
        one_prompt = prefill_rate(s, sh, input_tokens, np.array([input_tokens]))[0].total_s
        ttft = one_prompt + kv_transfer_s(s, sh, input_tokens)
    else:
        tpot = decode_rates(s, sh, b, input_tokens, output_tokens).tpot_s
        ttft = ttft_s(tpot, input_tokens, np.array([token_budget]))
    return float(ttft[0]), float(tpot[0])


def ttft_under_load_s(step_s: FloatArray, input_tokens: float, token_budget: FloatArray, decode_batch: FloatArray,
                      rate_per_rank: FloatArray) -> FloatArray:
    """Mean time to first token at an arrival rate: the wait for a step boundary, the queue for prefill, the chunks.

    Each step's token budget serves the decoding sequences first (one token each); prompts share the rest,
    ``f = budget - batch`` tokens a step, first come first served (vLLM/TRT-LLM chunked prefill). Arrivals
    are Poisson, prompts of ``I`` tokens take ``S = I/f`` steps of that slot, so the slot is an M/D/1 queue
    with utilisation ``rho = lambda·t·S`` and mean wait ``rho·S / (2(1 - rho))`` steps (Pollaczek-Khinchine).
    TTFT = (half a step + the wait + ceil(S) steps) x step time; infinite when ``rho >= 1``.
    """
    return ttft_and_wait_under_load_s(step_s, input_tokens, token_budget, decode_batch, rate_per_rank)[0]


def ttft_and_wait_under_load_s(step_s: FloatArray, input_tokens: float, token_budget: FloatArray,
                               decode_batch: FloatArray, rate_per_rank: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(mean TTFT, its mean queue wait) in seconds: ``ttft_under_load_s`` with the M/D/1 wait apart."""
    t = np.asarray(step_s, dtype=np.float64)
    free = np.maximum(np.asarray(token_budget, dtype=np.float64) - np.asarray(decode_batch, dtype=np.float64), 1.0)
    service = input_tokens / free  # steps of the prefill slot per prompt
    rho = np.asarray(rate_per_rank, dtype=np.float64) * t * service
    wait = np.where(rho < 1.0, rho * service / (2.0 * np.maximum(1.0 - rho, 1e-12)), np.inf)
    return (np.asarray((0.5 + wait + np.ceil(service)) * t, dtype=np.float64),
            np.asarray(wait * t, dtype=np.float64))

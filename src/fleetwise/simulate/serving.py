"""Replay a trace through a serving plan: FCFS continuous batching with a token budget and chunked
prefill, KV-capacity admission and preemption (recompute), co-located or disaggregated prefill/decode.

Entry points: ``StepTable.build`` (step times pre-tabulated by ``perf.inference``, so the event loop
does only lookups) and ``simulate(setup, plan, trace)`` → ``ServingResult``. Deterministic: no clock, no
randomness; ties in the event queue break by insertion order.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from fleetwise.perf.batching import kv_transfer_s
from fleetwise.perf.inference import (
    ServingSetup,
    ServingShape,
    kv_bytes_per_token,
    kv_capacity,
    step_time,
)
from fleetwise.plan import ServingPlan
from fleetwise.simulate.kernel import EventQueue
from fleetwise.simulate.metrics import ReplicaStats, ServingResult
from fleetwise.workload.traces import Trace

PF_STEP = 64  # prefill-token resolution of the step table
ARRIVAL, KV_READY, STEP_END = 0, 1, 2  # event priorities at equal times: arrivals first


def shape_of(plan: ServingPlan) -> ServingShape:
    return ServingShape.of(plan.tp, plan.pp, plan.dp, plan.ep, plan.weight_precision, plan.kv_precision)


@dataclass(frozen=True, slots=True)
class StepTable:
    """Step seconds = base[prefill tokens / PF_STEP][decode batch] + per-context-token terms.

    Decode attention reads every cached token (``kv_s_per_token``); prefill attention costs
    ``prefill_s_per_token_ctx`` per (prompt token x earlier token). Both are linear in the cost model,
    so the table stays two-dimensional.
    """

    base: list[list[float]]
    kv_s_per_token: float
    prefill_s_per_token_ctx: float
    max_batch: int
    token_budget: int
    kv_capacity_tokens: float

    @staticmethod
    def build(s: ServingSetup, plan: ServingPlan) -> StepTable:
        sh = shape_of(plan)
        pf = np.arange(0, plan.token_budget + PF_STEP, PF_STEP, dtype=np.float64)[:, None]  # (n_pf, 1)
        b = np.arange(0, plan.max_batch + 1, dtype=np.float64)[None, :]  # (1, n_b)
        z = np.zeros_like(pf * b)
        base = step_time(s, sh, pf + z, z, z, b + z, z).total_s
        one = np.ones(1)
        kv = (step_time(s, sh, 0 * one, 0 * one, 0 * one, one, 1e5 * one).total_s
              - step_time(s, sh, 0 * one, 0 * one, 0 * one, one, 0 * one).total_s)[0] / 1e5
        pre = (step_time(s, sh, 1024 * one, 8192 * one, 0 * one, 0 * one, 0 * one).total_s
               - step_time(s, sh, 1024 * one, 0 * one, 0 * one, 0 * one, 0 * one).total_s)[0] / (1024 * 8192)
        per_token = float(kv_bytes_per_token(s.model, sh.tp, sh.kv_bytes)[0]) * math.ceil(s.model.layers / plan.pp)
        cap = float(kv_capacity(s, sh, np.array([float(plan.token_budget)])).kv_capacity[0]) / per_token
        return StepTable([list(map(float, row)) for row in base], float(kv), float(pre), plan.max_batch,
                         plan.token_budget, cap)

    def seconds(self, prefill_tokens: int, batch: int, kv_tokens: float, prefill_token_ctx: float) -> float:
        i, frac = divmod(prefill_tokens, PF_STEP)
        row = self.base[i]
        t = row[batch]
        if frac:
            t += (self.base[i + 1][batch] - t) * frac / PF_STEP
        return t + self.kv_s_per_token * kv_tokens + self.prefill_s_per_token_ctx * prefill_token_ctx


class _Engine:
    """One engine (replica): FCFS waiting queue, chunked prefill, running decode batch, KV accounting."""

    __slots__ = ("role", "table", "waiting", "ready", "prefilled", "batch", "kv", "k", "finish", "order",
                 "version", "busy", "busy_s", "steps", "batch_sum", "max_seen", "preemptions", "outstanding",
                 "plan_chunks", "plan_joined", "jump", "ver", "idx")

    def __init__(self, role: str, table: StepTable) -> None:
        self.role = role
        self.table = table
        self.waiting: deque[int] = deque()  # requests to prefill, FCFS
        self.ready: deque[int] = deque()  # prefilled elsewhere, waiting for a decode slot (disaggregated)
        self.prefilled: dict[int, int] = {}
        self.batch = 0
        self.kv = 0.0  # tokens held in the KV cache
        self.k = 0  # decode steps run
        self.finish: list[tuple[int, int, int]] = []  # heap of (finish step, request, version)
        self.order: list[int] = []  # decoding requests, admission order (for preemption)
        self.version: dict[int, int] = {}
        self.busy = False
        self.busy_s = 0.0
        self.steps = 0
        self.batch_sum = 0
        self.max_seen = 0
        self.preemptions = 0
        self.outstanding = 0
        self.plan_chunks: list[tuple[int, int]] = []
        self.plan_joined: list[int] = []
        self.jump: tuple[float, float, float, int, int] | None = None  # steady decode run: t0, base, kv0, batch, steps
        self.ver = 0  # version of the engine's pending step end (a cut jump leaves a stale one)
        self.idx = 0  # position among the replay's engines (events name engines by it)


@dataclass(slots=True)
class _Run:
    """Mutable state of one replay (requests' lengths and timestamps)."""

    prompt: list[int]
    remaining: list[int]  # decode steps still to run after the first token
    first: list[float]
    done: list[float]


def _route(engines: list[_Engine]) -> _Engine:
    """Join the engine with the fewest outstanding requests (lowest index on ties)."""
    if len(engines) == 1:
        return engines[0]
    return min(engines, key=lambda e: e.outstanding)


def offered_load(s: ServingSetup, plan: ServingPlan, trace: Trace) -> float | None:
    """Engine-seconds the trace asks for per second of arrivals, over the engines the plan has.

    Each request costs its prompt at the full-budget prefill rate and its output tokens at the full-batch
    decode rate (the plan's best case, so a value above 1 means queues grow for the whole trace whatever
    the scheduler does). None for an offline trace (every arrival at the same instant).
    """
    if len(trace) < 2:
        return None
    span = float(trace.arrival_s.max() - trace.arrival_s.min())
    if span <= 0:
        return None
    table = StepTable.build(s, plan)
    top = len(table.base) - 1
    prefill_s_per_token = table.base[top][0] / max(top * PF_STEP, 1)
    decode_s_per_token = table.base[0][table.max_batch] / max(table.max_batch, 1)
    work_s = (float(trace.input_tokens.sum()) * prefill_s_per_token
              + float(trace.output_tokens.sum()) * decode_s_per_token)
    engines = (plan.replicas + plan.prefill_replicas) * plan.dp
    return work_s / span / engines


def overload_warning(load: float | None) -> str | None:
    """A one-line warning when ``offered_load`` exceeds the plan's capacity, else None."""
    if load is None or load <= 1.0:
        return None
    return (f"the trace offers {load:.1f}x what this plan can serve at full batch: queues grow for the whole "
            "replay (long runs, latencies set by the backlog); add replicas or size the plan with 'plan serve'")


def simulate(s: ServingSetup, plan: ServingPlan, trace: Trace, until_s: float = math.inf,
             jump: bool = True) -> ServingResult:
    """Replay ``trace`` through ``plan``; requests unfinished at ``until_s`` keep ``inf`` timestamps.

    Steady decode (no prefill in the step, the batch unchanged) runs as one event up to the next
    completion, KV-cache limit or ``until_s``: its steps are summed in closed form (each step's time is
    linear in the cached tokens, which grow by the batch per step). An arrival or KV hand-off to the
    engine cuts the run at the step in progress, so the result is the step-by-step one to float rounding.

    Args:
        s: resolved serving setup (model, chip, network, constants).
        plan: the deployment; ``prefill_replicas > 0`` disaggregates.
        trace: requests sorted by arrival.
        until_s: simulated seconds to stop at.
        jump: False runs every step and arrival as its own event (the reference the jump is tested against).

    Returns:
        ``ServingResult`` with per-request first-token and completion times and per-replica stats.
    """
    import heapq

    from fleetwise.perf.inference import check_serving_plan

    check_serving_plan(s, plan)
    table = StepTable.build(s, plan)
    if table.kv_capacity_tokens < 1:
        from fleetwise.errors import InfeasibleError

        raise InfeasibleError(f"plan {plan.label()}: the weights leave no room for a KV cache in device memory")
    dis = plan.is_disaggregated
    dp = plan.dp
    decode_engines = [_Engine("decode" if dis else "mixed", table) for _ in range(plan.replicas * dp)]
    prefill_engines = [_Engine("prefill", table) for _ in range(plan.prefill_replicas * dp)]
    entry = prefill_engines if dis else decode_engines
    transfer = float(kv_transfer_s(s, shape_of(plan), float(np.mean(trace.input_tokens)))[0]) if dis else 0.0
    n = len(trace)
    prompts = np.maximum(np.asarray(trace.input_tokens).astype(np.int64), 1)
    outputs = np.maximum(np.asarray(trace.output_tokens).astype(np.int64), 1)
    run = _Run(prompts.tolist(), (outputs - 1).tolist(), [math.inf] * n, [math.inf] * n)
    q: EventQueue[tuple[int, int, int]] = EventQueue()
    arrivals = trace.arrival_s.tolist()
    # arrivals stay out of the event heap: a sorted list read alongside it (they win ties, as ARRIVAL does)
    by_time = [r for r in sorted(range(n), key=arrivals.__getitem__) if arrivals[r] <= until_s]
    arrival_times = [arrivals[r] for r in by_time] + [math.inf]
    if not jump:  # the reference replay, as before the jump: every arrival and every step is a heap event
        for r in by_time:
            q.push(arrivals[r], ARRIVAL, (ARRIVAL, r, -1))
        arrival_times = [math.inf]
    everyone = decode_engines + prefill_engines
    nxt = [0]  # position in by_time of the next arrival not yet handled
    cap = table.kv_capacity_tokens
    budget, max_batch = table.token_budget, table.max_batch

    def start(e: _Engine, now: float) -> None:
        """Decide the next step's composition and schedule its end."""
        # admit prefilled requests (disaggregated decode) while KV and batch allow
        while e.ready and e.batch < max_batch and e.kv + run.prompt[e.ready[0]] + 1 <= cap:
            r = e.ready.popleft()
            e.kv += run.prompt[r] + 1
            _join(e, r)
        # growth this step: every decoding sequence adds a token; preempt the newest if the cache is full
        while e.batch and e.kv + e.batch > cap:
            _preempt(e)
        left = budget - e.batch
        chunks: list[tuple[int, int]] = []
        pf_tokens = 0
        pf_ctx = 0.0
        slots = max_batch - e.batch
        if e.role != "decode":
            for r in e.waiting:
                if left <= 0 or slots <= 0:
                    break
                done_tokens = e.prefilled.get(r, 0)
                c = min(run.prompt[r] - done_tokens, left)
                if e.kv + c + e.batch > cap:
                    break  # KV admission: FCFS, no skipping ahead
                chunks.append((r, c))
                pf_tokens += c
                pf_ctx += c * (done_tokens + 0.5 * c)
                left -= c
                slots -= 1
        if not chunks and not e.batch:
            e.busy = False
            return
        if jump and not chunks and _steady(e, now):
            return
        dt = table.seconds(pf_tokens, e.batch, e.kv, pf_ctx)
        e.plan_chunks = chunks
        e.busy = True
        e.busy_s += dt
        e.steps += 1
        e.batch_sum += e.batch
        if e.batch > e.max_seen:
            e.max_seen = e.batch
        e.ver += 1
        q.push(now + dt, STEP_END, (STEP_END, e.idx, e.ver))

    kv_s = table.kv_s_per_token

    def _t(j: int, t0: float, base: float, kv0: float, b: int) -> float:
        """End of the ``j``-th step of a steady run (KV grows by ``b`` tokens per step)."""
        return t0 + j * base + kv_s * (j * kv0 + b * (j * (j - 1) // 2))

    alone = len(everyone) == 1  # no other engine reads this one's state (routing) between its events

    def _room(kv0: float, b: int, m: int) -> int:
        """Steps (at most ``m``) before the cache would need a preemption: kv0 + j*b + b <= cap."""
        if kv0 + m * b + b <= cap:  # the common case: the cache holds the whole run
            return m
        if kv0 + b > cap:
            return 0
        room = max(int((cap - kv0) / b), 1)
        while room > 1 and kv0 + (room - 1) * b + b > cap:
            room -= 1
        while kv0 + room * b + b <= cap and room < m:
            room += 1
        return min(room, m)

    def _steady(e: _Engine, now: float) -> bool:
        """Run steady decode steps on ``e`` as one event, if more than one is due before anything changes.

        A lone engine also runs through completions (their times are the step ends, set here), since
        nothing else can read its state before the next arrival; the run stops at that arrival's step.
        """
        t, first = now, True
        while True:
            b, kv0 = e.batch, e.kv
            to_finish = e.finish[0][0] - e.k  # steps to the next completion
            m = _room(kv0, b, to_finish)
            base = table.base[0][b]
            t_arr = arrival_times[nxt[0]] if e.role != "decode" else math.inf
            end_t = t + m * base + kv_s * (m * kv0 + b * (m * (m - 1) // 2))
            if m and end_t >= t_arr:  # the next arrival may join: stop with the step in progress then
                m = _first_end_after(t_arr, 1, m, t, base, kv0, b)
                end_t = _t(m, t, base, kv0, b)
            if m and end_t > until_s:  # stop at the step in progress at until_s, as step by step does
                m = _first_end_after(until_s, 1, m, t, base, kv0, b, strict=True)
                end_t = _t(m, t, base, kv0, b)
            if first and m <= 1:
                return False
            first = False
            e.busy = True
            e.busy_s += end_t - t
            e.steps += m
            e.batch_sum += m * b
            if b > e.max_seen:
                e.max_seen = b
            if not (alone and m and m == to_finish and end_t < t_arr and end_t <= until_s):
                e.jump = (t, base, kv0, b, m)  # the last run: its end is an event
                e.ver += 1
                q.push(end_t, STEP_END, (STEP_END, e.idx, e.ver))
                return True
            # a completion ends this run before anything else can happen: apply it now, at its time
            e.k += m
            e.kv += m * b
            while e.finish and e.finish[0][0] <= e.k:
                _, r, v = heapq.heappop(e.finish)
                if e.version.get(r) != v:
                    continue
                live_finish.pop(r, None)
                run.done[r] = end_t
                e.kv -= run.prompt[r] + run.remaining[r] + 1
                e.batch -= 1
                e.outstanding -= 1
            t = end_t
            if not e.batch or e.waiting or e.ready:  # the next step is not steady: start it at end_t
                e.jump = (t, 0.0, e.kv, e.batch, 0)
                e.ver += 1
                q.push(t, STEP_END, (STEP_END, e.idx, e.ver))
                return True

    def _first_end_after(t: float, lo: int, hi: int, t0: float, base: float, kv0: float, b: int,
                         strict: bool = False) -> int:
        """Smallest j in [lo, hi] whose step ends at or after ``t`` (after, if ``strict``); hi if none.

        The end times are a quadratic in j: start from its root, then settle on the exact step with the
        same end times the run uses."""
        a = 0.5 * kv_s * b
        lin = base + kv_s * (kv0 - 0.5 * b)
        c = t0 - t
        if a > 0.0:
            root = (-lin + math.sqrt(max(lin * lin - 4.0 * a * c, 0.0))) / (2.0 * a)
        else:
            root = -c / lin if lin > 0.0 else float(hi)
        j = min(max(math.ceil(root) if root < hi else hi, lo), hi)
        while j > lo:  # settle on the exact step with the run's own end times
            end_t = _t(j - 1, t0, base, kv0, b)
            if not (end_t > t or (not strict and end_t == t)):
                break
            j -= 1
        while j < hi:
            end_t = _t(j, t0, base, kv0, b)
            if end_t > t or (not strict and end_t == t):
                break
            j += 1
        return j

    def _cut(e: _Engine, now: float) -> None:
        """Something new reached ``e`` during a steady run: end the run with the step in progress."""
        if e.jump is None:
            return
        t0, base, kv0, b, m = e.jump
        j = _first_end_after(now, 1, m, t0, base, kv0, b)
        if j >= m:
            return
        e.busy_s -= _t(m, t0, base, kv0, b) - _t(j, t0, base, kv0, b)
        e.steps -= m - j
        e.batch_sum -= (m - j) * b
        e.jump = (t0, base, kv0, b, j)
        e.ver += 1
        q.push(_t(j, t0, base, kv0, b), STEP_END, (STEP_END, e.idx, e.ver))

    def _join(e: _Engine, r: int) -> None:
        e.version[r] = e.version.get(r, 0) + 1
        heapq.heappush(e.finish, (e.k + run.remaining[r], r, e.version[r]))
        live_finish[r] = e.k + run.remaining[r]
        e.order.append(r)
        e.batch += 1

    def _preempt(e: _Engine) -> None:
        while e.order:
            r = e.order.pop()
            if _live(e, r):
                break
        else:
            return
        v = e.version[r]
        e.version[r] = v + 1  # the heap entry goes stale
        left = _remaining_steps(e, r)
        ctx = run.prompt[r] + (run.remaining[r] - left) + 1
        e.kv -= ctx
        e.batch -= 1
        e.preemptions += 1
        # recompute: prompt and generated tokens are prefilled again, generation resumes after
        run.prompt[r] = ctx
        run.remaining[r] = left
        e.prefilled[r] = 0
        if e.role == "decode":
            e.ready.appendleft(r)
        else:
            e.waiting.appendleft(r)

    live_finish: dict[int, int] = {}  # request -> step it finishes at (a request lives on one engine)

    def _live(e: _Engine, r: int) -> bool:
        return r in live_finish

    def _remaining_steps(e: _Engine, r: int) -> int:
        return live_finish.pop(r) - e.k

    for i, e in enumerate(everyone):
        e.idx = i

    def end(e: _Engine, now: float) -> None:
        """Apply a finished step (or steady run): decode tokens, prefill progress, completions."""
        if e.jump is not None:
            steps = e.jump[4]
            e.jump = None
            e.k += steps
            e.kv += steps * e.batch
        elif e.batch:
            e.k += 1
            e.kv += e.batch
        for r, c in e.plan_chunks:
            got = e.prefilled.get(r, 0) + c
            e.kv += c
            if got < run.prompt[r]:
                e.prefilled[r] = got
                continue
            e.prefilled.pop(r, None)
            e.waiting.popleft()  # chunks follow the queue's order, so this is r
            if run.first[r] == math.inf:
                run.first[r] = now
            if e.role == "prefill":
                e.kv -= run.prompt[r]
                e.outstanding -= 1
                d = _route(decode_engines)
                d.outstanding += 1
                q.push(now + transfer, KV_READY, (KV_READY, r, d.idx))
            elif run.remaining[r] == 0:
                run.done[r] = now
                e.kv -= run.prompt[r]
                e.outstanding -= 1
            else:
                e.kv += 1
                _join(e, r)
        e.plan_chunks = []
        while e.finish and e.finish[0][0] <= e.k:
            k_done, r, v = heapq.heappop(e.finish)
            if e.version.get(r) != v:
                continue
            live_finish.pop(r, None)
            run.done[r] = now
            e.kv -= run.prompt[r] + run.remaining[r] + 1
            e.batch -= 1
            e.outstanding -= 1
        start(e, now)

    while True:
        t_arrival = arrival_times[nxt[0]]
        if t_arrival <= q.peek_time():
            if t_arrival == math.inf:
                break
            now, kind, r = t_arrival, ARRIVAL, by_time[nxt[0]]
            nxt[0] += 1
        else:
            now, (kind, r, target) = q.pop()
            if now > until_s:
                break
        if kind == ARRIVAL:
            e = _route(entry)
            e.outstanding += 1
            e.waiting.append(r)
            if not e.busy:
                start(e, now)
            elif e.jump is not None and not alone:  # a lone engine's run already stops at this arrival
                _cut(e, now)
        elif kind == KV_READY:
            e = everyone[target]
            if run.remaining[r] == 0:
                run.done[r] = now
                e.outstanding -= 1
                continue
            e.ready.append(r)
            if not e.busy:
                start(e, now)
            elif e.jump is not None:
                _cut(e, now)
        elif target == everyone[r].ver:  # else a step end that a cut run replaced
            end(everyone[r], now)
    stats = tuple(ReplicaStats(e.role, e.busy_s, e.steps, e.batch_sum / max(e.steps, 1), e.max_seen,
                               e.preemptions) for e in everyone)
    return ServingResult(trace.arrival_s.copy(), np.array(run.first), np.array(run.done),
                         trace.output_tokens.astype(np.float64), stats, until_s, offered_load(s, plan, trace))

"""Steady decode jumps to the next event: the same replay as step by step, to float rounding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetwise.catalog.loader import load_catalog
from fleetwise.perf.inference import ServingSetup, make_serving_setup
from fleetwise.plan import ServingPlan
from fleetwise.simulate.serving import StepTable, simulate
from fleetwise.workload.traces import Trace, synthetic_trace


@pytest.fixture(scope="module")
def setup() -> ServingSetup:
    cat = load_catalog()
    return make_serving_setup(cat.model("llama3.1-8b"), cat.accelerator("nvidia_h100_sxm"),
                              cat.system("nvidia_dgx_h100_h200"))


def _trace(arrivals: list[float], inputs: list[int], outputs: list[int]) -> Trace:
    return Trace(np.array(arrivals, dtype=float), np.array(inputs), np.array(outputs), "test")


def test_an_arrival_mid_run_joins_at_the_next_step_end_by_hand(setup: ServingSetup) -> None:
    plan = ServingPlan(tp=1, max_batch=8, token_budget=512)
    tb = StepTable.build(setup, plan)
    # A: prompt 300, 5 tokens (prefill, then 4 decode steps at KV 301, 302, ...); B arrives mid A's 2nd step
    pre_a = tb.seconds(300, 0, 0.0, 300 * 150.0)
    d0, d1 = tb.seconds(0, 1, 301.0, 0.0), tb.seconds(0, 1, 302.0, 0.0)
    t_b = pre_a + d0 + 0.5 * d1
    trace = _trace([0.0, t_b], [300, 200], [5, 3])
    # B's prompt goes in the step after A's 2nd decode step, beside A's 3rd token (KV 303)
    pre_b = tb.seconds(200, 1, 303.0, 200 * 100.0)
    b_first = pre_a + d0 + d1 + pre_b
    # then both decode: A's 4th token ends A (KV 303 + 200 + 1 + 1 = 505 cached); B needs two more
    a_done = b_first + tb.seconds(0, 2, 505.0, 0.0)
    for jump in (True, False):
        r = simulate(setup, plan, trace, jump=jump)
        assert r.first_token_s[0] == pytest.approx(pre_a, rel=1e-12)
        assert r.first_token_s[1] == pytest.approx(b_first, rel=1e-12)
        assert r.done_s[0] == pytest.approx(a_done, rel=1e-12)
        assert r.replicas[0].steps == 1 + 2 + 1 + 1 + 1  # prefill A, 2 decode, prefill B + A, A + B, B


def test_a_lone_request_runs_its_decode_as_one_event(setup: ServingSetup) -> None:
    plan = ServingPlan(tp=1, max_batch=8, token_budget=512)
    tb = StepTable.build(setup, plan)
    r = simulate(setup, plan, _trace([1.0], [300], [101]))
    decode = sum(tb.seconds(0, 1, 301.0 + k, 0.0) for k in range(100))
    assert r.done_s[0] == pytest.approx(1.0 + tb.seconds(300, 0, 0.0, 300 * 150.0) + decode, rel=1e-12)
    assert r.replicas[0].steps == 101 and r.replicas[0].mean_batch == pytest.approx(100 / 101)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 60), rate=st.floats(0.5, 80.0), seed=st.integers(0, 2**16), replicas=st.integers(1, 3),
       disaggregated=st.booleans(), small_kv=st.booleans(), until=st.sampled_from([math.inf, 2.0, 7.5]))
def test_jumping_replays_exactly_what_step_by_step_replays(setup: ServingSetup, n: int, rate: float, seed: int,
                                                           replicas: int, disaggregated: bool, small_kv: bool,
                                                           until: float) -> None:
    trace = synthetic_trace(np.random.default_rng(seed), n, rate, 900, 80, length_cv=0.9)
    plan = ServingPlan(replicas=replicas, tp=1, max_batch=6 if small_kv else 32, token_budget=1024,
                       prefill_replicas=1 if disaggregated else 0)
    a = simulate(setup, plan, trace, until_s=until, jump=False)
    b = simulate(setup, plan, trace, until_s=until, jump=True)
    for x, y in ((a.first_token_s, b.first_token_s), (a.done_s, b.done_s)):
        assert np.array_equal(np.isinf(x), np.isinf(y))
        fin = np.isfinite(x)
        assert np.allclose(x[fin], y[fin], rtol=1e-12, atol=1e-9)
    for ra, rb in zip(a.replicas, b.replicas, strict=True):
        assert (ra.steps, ra.max_batch, ra.preemptions) == (rb.steps, rb.max_batch, rb.preemptions)
        assert ra.mean_batch == pytest.approx(rb.mean_batch, rel=1e-12)
        assert ra.busy_s == pytest.approx(rb.busy_s, rel=1e-9)


def test_preemption_on_a_full_cache_matches_step_by_step() -> None:
    cat = load_catalog()
    s = make_serving_setup(cat.model("llama3.1-70b"), cat.accelerator("nvidia_h100_sxm"),
                           cat.system("nvidia_dgx_h100_h200"))
    plan = ServingPlan(tp=2, max_batch=512, token_budget=8192)  # a few GB of KV: sequences get preempted
    trace = synthetic_trace(np.random.default_rng(0), 60, 100.0, 3000, 600)
    a, b = simulate(s, plan, trace, jump=False), simulate(s, plan, trace, jump=True)
    assert sum(r.preemptions for r in b.replicas) == sum(r.preemptions for r in a.replicas) > 0
    assert np.allclose(a.done_s, b.done_s, rtol=1e-12) and np.allclose(a.first_token_s, b.first_token_s, rtol=1e-12)

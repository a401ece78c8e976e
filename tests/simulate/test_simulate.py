"""Simulator mechanics on tiny traces: hand-computed timings, conservation, determinism, SLO agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetwise.catalog.loader import load_catalog
from fleetwise.perf.batching import concurrency_under_rate
from fleetwise.perf.inference import ServingSetup, make_serving_setup
from fleetwise.plan import ServingPlan
from fleetwise.simulate.serving import StepTable, shape_of, simulate
from fleetwise.workload.traces import Trace, load_trace, synthetic_trace

DATA = Path(__file__).parent.parent / "data" / "traces"


@pytest.fixture(scope="module")
def setup() -> ServingSetup:
    cat = load_catalog()
    return make_serving_setup(cat.model("llama3.1-8b"), cat.accelerator("nvidia_h100_sxm"),
                              cat.system("nvidia_dgx_h100_h200"))


def _trace(arrivals: list[float], inputs: list[int], outputs: list[int]) -> Trace:
    return Trace(np.array(arrivals, dtype=float), np.array(inputs), np.array(outputs), "test")


def test_single_request_timings_follow_the_step_table(setup: ServingSetup) -> None:
    plan = ServingPlan(tp=1, max_batch=8, token_budget=512)
    table = StepTable.build(setup, plan)
    r = simulate(setup, plan, _trace([1.0], [300], [4]))
    prefill = table.seconds(300, 0, 0.0, 300 * 150.0)
    assert r.first_token_s[0] == pytest.approx(1.0 + prefill)
    # three decode steps at batch 1, KV of 301, 302, 303 tokens
    decode = sum(table.seconds(0, 1, 301.0 + k, 0.0) for k in range(3))
    assert r.done_s[0] == pytest.approx(1.0 + prefill + decode)


def test_long_prompt_is_chunked_by_the_token_budget(setup: ServingSetup) -> None:
    plan = ServingPlan(tp=1, max_batch=8, token_budget=256)
    r = simulate(setup, plan, _trace([0.0], [1000], [2]))
    assert r.replicas[0].steps == 4 + 1  # ceil(1000/256) prefill steps, then one decode step


def test_reading_the_tiny_azure_and_mooncake_traces() -> None:
    az = load_trace(DATA / "azure_tiny.csv")
    mc = load_trace(DATA / "mooncake_tiny.jsonl")
    assert az.arrival_s[1] == pytest.approx(4.3145789)
    assert list(az.input_tokens) == [374, 396, 879, 91, 1200]
    assert mc.arrival_s[1] == pytest.approx(0.25)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), rate=st.floats(0.5, 50.0), seed=st.integers(0, 2**16), replicas=st.integers(1, 3),
       disaggregated=st.booleans())
def test_requests_are_conserved(setup: ServingSetup, n: int, rate: float, seed: int, replicas: int,
                                disaggregated: bool) -> None:
    trace = synthetic_trace(np.random.default_rng(seed), n, rate, 700, 30, length_cv=0.8)
    plan = ServingPlan(replicas=replicas, tp=1, max_batch=16, token_budget=1024,
                       prefill_replicas=1 if disaggregated else 0)
    r = simulate(setup, plan, trace)
    assert r.completed.sum() == n
    assert np.all(r.first_token_s >= r.arrival_s)
    assert np.all(r.done_s >= r.first_token_s)
    assert sum(rep.steps for rep in r.replicas) > 0


def test_same_input_gives_the_same_result(setup: ServingSetup) -> None:
    trace = synthetic_trace(np.random.default_rng(3), 200, 20.0, 500, 50, arrival="gamma", cv=2.0, length_cv=1.0)
    plan = ServingPlan(replicas=2, tp=1, max_batch=32)
    a, b = simulate(setup, plan, trace), simulate(setup, plan, trace)
    assert np.array_equal(a.done_s, b.done_s) and np.array_equal(a.first_token_s, b.first_token_s)


def test_small_kv_cache_preempts_and_still_finishes_everything() -> None:
    cat = load_catalog()
    s = make_serving_setup(cat.model("llama3.1-70b"), cat.accelerator("nvidia_h100_sxm"),
                           cat.system("nvidia_dgx_h100_h200"))
    plan = ServingPlan(tp=2, max_batch=512, token_budget=8192)  # bf16 70B on 2x80 GB: a few GB of KV
    trace = synthetic_trace(np.random.default_rng(0), 60, 100.0, 3000, 600)
    r = simulate(s, plan, trace)
    assert r.completed.all()
    assert sum(rep.preemptions for rep in r.replicas) > 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), rate=st.floats(5.0, 60.0))
def test_more_replicas_never_lower_goodput(setup: ServingSetup, seed: int, rate: float) -> None:
    trace = synthetic_trace(np.random.default_rng(seed), 150, rate, 1500, 120, length_cv=0.5)
    good = [simulate(setup, ServingPlan(replicas=k, tp=1, max_batch=64), trace).goodput(0.5, 0.03)
            for k in (1, 2, 4)]
    assert good[0] <= good[1] + 1e-9 and good[1] <= good[2] + 1e-9


def test_a_plan_the_analytic_model_says_misses_tpot_widely_also_misses_in_simulation(setup: ServingSetup) -> None:
    plan = ServingPlan(tp=1, max_batch=512)
    rate, i, o = 60.0, 2000.0, 200.0
    _, step = concurrency_under_rate(setup, shape_of(plan), np.array([rate]), i, o, np.array([512.0]))
    slo_tpot = 0.010
    assert not step[0] <= 2 * slo_tpot  # analytic: misses by more than 2x (or is overloaded)
    trace = synthetic_trace(np.random.default_rng(1), 600, rate, i, o)
    r = simulate(setup, plan, trace)
    assert np.median(r.tpot_s) > slo_tpot


def test_overloaded_trace_is_flagged_before_the_replay() -> None:
    import numpy as np

    from fleetwise.catalog.loader import load_catalog
    from fleetwise.perf.inference import make_serving_setup
    from fleetwise.plan import ServingPlan
    from fleetwise.simulate.serving import offered_load, overload_warning, simulate
    from fleetwise.workload.traces import synthetic_trace

    c = load_catalog()
    a = c.accelerator("nvidia_a100_80gb_sxm")
    s = make_serving_setup(c.model("llama3-8b"), a, c.default_system(a.id))
    plan = ServingPlan(tp=1)
    light = synthetic_trace(np.random.default_rng(0), 200, 1.0, 512, 128)
    heavy = synthetic_trace(np.random.default_rng(0), 400, 400.0, 512, 128)
    lo, hi = offered_load(s, plan, light), offered_load(s, plan, heavy)
    assert lo is not None and hi is not None and lo < 1.0 < hi
    assert overload_warning(lo) is None and "add replicas" in (overload_warning(hi) or "")
    r_light, r_heavy = simulate(s, plan, light), simulate(s, plan, heavy)
    # the flag agrees with the replay: overloaded requests wait in queue, light ones do not
    assert r_heavy.summary()["offered_load"] == round(hi, 4)
    assert float(np.median(r_heavy.ttft_s)) > 10 * float(np.median(r_light.ttft_s))

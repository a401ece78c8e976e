"""Training energy: reconciliation with Σ power x time, stage plan, objectives and the results' energy fields."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fleetwise import api
from fleetwise.energy.power import chip_power
from fleetwise.energy.training import PowerSettings, for_training
from fleetwise.errors import InfeasibleError
from fleetwise.perf.training import TrainingSetup
from fleetwise.plan import TrainingPlan
from fleetwise.search.evaluate import evaluate_plan, search_training
from fleetwise.search.space import SearchSpace


@pytest.fixture(scope="module")
def setup() -> TrainingSetup:
    return api.training_setup("llama3-8b", "nvidia_h100_sxm", seq_len=4096, chips=32, global_batch=256, tokens=1e12)


def _plan(tp: int, pp: int, mbs: int) -> TrainingPlan:
    return TrainingPlan(tp=tp, pp=pp, dp=32 // (tp * pp), micro_batch=mbs, sequence_parallel=tp > 1)


@settings(max_examples=60, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([1, 2, 4]), mbs=st.sampled_from([1, 2]),
       clock=st.floats(0.5, 1.0), cap_frac=st.one_of(st.none(), st.floats(0.0, 1.3)), stage=st.booleans())
def test_energy_reconciles_with_power_times_time(setup: TrainingSetup, tp: int, pp: int, mbs: int, clock: float,
                                                 cap_frac: float | None, stage: bool) -> None:
    chip = chip_power(setup.accel)  # caps from the lowest the chip can hold to above its maximum (inert)
    cap = None if cap_frac is None else chip.cap_floor_w + cap_frac * (chip.max_w - chip.cap_floor_w)
    e = for_training(setup, settings=PowerSettings(clock=clock, cap_w=cap, stage_plan=stage))
    try:
        r = evaluate_plan(setup, _plan(tp, pp, mbs), allow_over_memory=True, energy=e)
    except InfeasibleError:
        assume(False)
        return
    en = r.energy
    assert en is not None
    assert en.reconcile_error() < 1e-3
    if cap is not None:  # a cap is honoured: no phase, hence no average, draws more than it
        assert en.avg_power_w_per_chip <= cap * (1 + 1e-9)
        assert all(p <= cap * (1 + 1e-9) for _, p, _ in en.phases.values())
    assert sum(en.energy_breakdown_j.values()) == pytest.approx(en.step_energy_j, rel=1e-3)
    for group in ("critical", "other"):
        times = [t for k, (_, _, t) in en.phases.items() if k.startswith(group)]
        if times:  # every stage group is busy or waiting for the whole step
            assert sum(times) == pytest.approx(en.step_time_s, rel=1e-3)


@settings(max_examples=30, deadline=None)
@given(tp=st.sampled_from([1, 2, 4, 8]), pp=st.sampled_from([2, 4]), mbs=st.sampled_from([1, 2]))
def test_stage_plan_never_lengthens_the_step_nor_raises_energy(setup: TrainingSetup, tp: int, pp: int,
                                                               mbs: int) -> None:
    plan = _plan(tp, pp, mbs)
    try:
        stock = evaluate_plan(setup, plan, allow_over_memory=True)
    except InfeasibleError:
        assume(False)
        return
    staged = evaluate_plan(setup, plan, allow_over_memory=True,
                           energy=for_training(setup, settings=PowerSettings(stage_plan=True)))
    assert stock.energy is not None and staged.energy is not None
    assert staged.energy.step_time_s == pytest.approx(stock.energy.step_time_s, rel=1e-9)
    assert staged.energy.step_energy_j < stock.energy.step_energy_j  # pp > 1: waiting energy removed


def test_stock_settings_keep_the_step_time(setup: TrainingSetup) -> None:
    r = evaluate_plan(setup, _plan(2, 2, 1), allow_over_memory=True)
    assert r.energy is not None
    assert r.energy.step_time_s == pytest.approx(r.step_time_s, rel=1e-9)


def test_every_result_reports_job_energy_cost_and_carbon(setup: TrainingSetup) -> None:
    r = evaluate_plan(setup, _plan(2, 1, 1), allow_over_memory=True)
    e = r.energy
    assert e is not None and e.job_energy_mwh is not None and e.job_cost_usd is not None and e.job_co2_t is not None
    steps = 1e12 / setup.job.tokens_per_step
    assert e.job_energy_mwh == pytest.approx(e.step_energy_j * steps / 3.6e9)
    assert e.energy_j_per_token == pytest.approx(e.step_energy_j / setup.job.tokens_per_step)
    assert {"host", "network", "facility_overhead"} <= set(e.energy_breakdown_j)


def test_cleaner_site_emits_less_for_the_same_energy(setup: TrainingSetup) -> None:
    plan = _plan(2, 1, 1)
    dirty = evaluate_plan(setup, plan, allow_over_memory=True, energy=for_training(setup, "china_average"))
    clean = evaluate_plan(setup, plan, allow_over_memory=True, energy=for_training(setup, "nordic_hydro"))
    assert dirty.energy is not None and clean.energy is not None
    assert clean.energy.step_co2_kg < dirty.energy.step_co2_kg


def test_energy_objective_ranks_by_energy_per_step(setup: TrainingSetup) -> None:
    res = search_training(setup, SearchSpace(chips=32, pinned={"tp": 2}), top=5, objective="energy")
    energies = [r.energy.step_energy_j for r in res.best if r.energy is not None]
    assert energies == sorted(energies)
    fastest = search_training(setup, SearchSpace(chips=32, pinned={"tp": 2}), top=1).best[0]
    assert fastest.energy is not None
    assert energies[0] <= fastest.energy.step_energy_j


def test_time_energy_pareto_front_is_non_dominated(setup: TrainingSetup) -> None:
    res = search_training(setup, SearchSpace(chips=32, pinned={"tp": 2}), top=3)
    front = [(r.energy.step_time_s, r.energy.step_energy_j) for r in res.pareto_time_energy if r.energy]
    assert front
    for t, en in front:
        assert not any(t2 <= t and e2 < en for t2, e2 in front)

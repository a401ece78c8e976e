"""The serving planner as a Python API: ranked plans, confirmed in simulation first."""

from __future__ import annotations

import pytest

import fleetwise
from fleetwise.errors import SpecError


def test_plan_serving_puts_simulator_confirmed_plans_first() -> None:
    plans = fleetwise.plan_serving("llama3.1-8b", "nvidia_h100_sxm", ttft_ms=1000, tpot_ms=40, input_tokens=1024,
                                   output_tokens=128, rate=20, top=6)
    assert plans.best and len(plans.best) == len(plans.confirmations)
    first = plans.confirmations[0]
    assert first is not None and first.meets_slo
    assert plans.best[0].goodput_rps >= 20 * (1 - 1e-9)


def test_plan_serving_needs_exactly_one_of_rate_and_chips() -> None:
    with pytest.raises(SpecError, match="exactly one"):
        fleetwise.plan_serving("llama3.1-8b", "nvidia_h100_sxm", ttft_ms=1000, tpot_ms=40, input_tokens=1024,
                               output_tokens=128)

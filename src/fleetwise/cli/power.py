"""``fleetwise power train``: explain one plan's power and energy, its stage frequency plan and cap sweep.

Thin shell: resolves the setup through ``fleetwise.api``, evaluates with ``fleetwise.search.evaluate`` and the
sweeps of ``fleetwise.energy.optimize``, and prints tables (or JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleetwise.errors import SpecError

if TYPE_CHECKING:  # loaded when the command runs, not for --help
    from fleetwise.catalog.loader import Catalog
    from fleetwise.energy.training import TrainingEnergy

ArgsFn = Callable[..., None]


def add_parser(sub: Any, job_args: ArgsFn, plan_args: ArgsFn) -> None:
    """Register ``power train`` on the top-level subparsers."""
    pp = sub.add_parser("power", help="explain a plan's power, energy, cost and CO2")
    psub = pp.add_subparsers(dest="workload", required=True)
    tp = psub.add_parser("train", help="power and energy of one training plan")
    job_args(tp, chips=False)
    plan_args(tp)
    tp.add_argument("--site", help="site id of energy/data/sites.yaml (PUE, gCO2/kWh, $/kWh)")
    tp.add_argument("--clock", type=float, default=1.0, help="core clock as a share of the maximum")
    tp.add_argument("--cap", type=float, help="per-chip power cap, W")
    tp.add_argument("--stage-plan", action="store_true", help="per-stage frequency plan (no slowdown)")


def energy_dict(e: TrainingEnergy) -> dict[str, Any]:
    """A ``TrainingEnergy`` as plain JSON values."""
    return {
        "settings": e.settings, "site": e.site, "pue": e.pue, "step_time_s": round(e.step_time_s, 6),
        "avg_power_w_per_chip": round(e.avg_power_w_per_chip, 2),
        "avg_power_w_per_node": round(e.avg_power_w_per_node, 1),
        "step_energy_j": round(e.step_energy_j, 1), "energy_j_per_token": round(e.energy_j_per_token, 5),
        "step_cost_usd": round(e.step_cost_usd, 4), "step_co2_kg": round(e.step_co2_kg, 4),
        "job_energy_mwh": None if e.job_energy_mwh is None else round(e.job_energy_mwh, 3),
        "job_cost_usd": None if e.job_cost_usd is None else round(e.job_cost_usd, 0),
        "job_co2_t": None if e.job_co2_t is None else round(e.job_co2_t, 3),
        "energy_breakdown_j": {k: round(v, 1) for k, v in e.energy_breakdown_j.items()},
        "phases": {k: {"chips": n, "power_w": round(p, 2), "time_s": round(t, 6)} for k, (n, p, t) in e.phases.items()},
        "cost_breakdown_usd_per_step": {k: round(v, 4) for k, v in e.cost_breakdown_usd.items()},
        "derived": list(e.derived),
    }


def run(args: argparse.Namespace, catalog: Catalog, fields: dict[str, Any], common: dict[str, Any]) -> int:
    from pydantic import ValidationError

    from fleetwise import api
    from fleetwise.catalog.loader import format_validation_error
    from fleetwise.energy.optimize import cap_settings, clock_settings, sweep_settings
    from fleetwise.energy.training import PowerSettings, for_training
    from fleetwise.perf.candidates import Candidates
    from fleetwise.perf.training import training_step
    from fleetwise.plan import TrainingPlan
    from fleetwise.search.evaluate import evaluate_plan

    try:
        plan = TrainingPlan(**fields)
    except ValidationError as exc:
        raise SpecError(format_validation_error("plan", exc)) from None
    setup = api.training_setup(args.model, args.hardware, system=args.system, chips=plan.chips, catalog=catalog,
                               **common)
    settings = PowerSettings(clock=args.clock, cap_w=args.cap, stage_plan=args.stage_plan)
    e = for_training(setup, args.site, settings)
    r = evaluate_plan(setup, plan, energy=e)
    assert r.energy is not None
    c = Candidates.from_plans([plan])
    cols = training_step(c, setup)
    stock = sweep_settings(c, cols, setup, e, [PowerSettings()])[0]
    sweeps = {"stage_plan": sweep_settings(c, cols, setup, e, [PowerSettings(stage_plan=True)]),
              "clock": sweep_settings(c, cols, setup, e, clock_settings(e)),
              "cap": sweep_settings(c, cols, setup, e, cap_settings(e))}
    if args.json:
        out = {"plan": plan.model_dump(), "chips": plan.chips, "energy": energy_dict(r.energy),
               "sweeps": {k: [{"settings": o.settings.label(), "step_time_s": round(o.step_time_s, 6),
                               "step_energy_j": round(o.step_energy_j, 1),
                               "avg_power_w_per_chip": round(o.avg_power_w_per_chip, 2),
                               "energy_saving": round(o.versus(stock)[0], 5),
                               "slowdown": round(o.versus(stock)[1], 5)} for o in v] for k, v in sweeps.items()}}
        print(json.dumps(out, indent=2))
        return 0
    _print(plan.label(), plan.chips, r.energy)
    print("\npower settings (vs stock clocks):")
    print(f"  {'setting':<28} {'step s':>9} {'MJ/step':>9} {'W/chip':>8} {'saving':>8} {'slowdown':>9}")
    for v in sweeps.values():
        for o in v:
            sav, slow = o.versus(stock)
            print(f"  {o.settings.label():<28} {o.step_time_s:9.3f} {o.step_energy_j / 1e6:9.3f} "
                  f"{o.avg_power_w_per_chip:8.1f} {100 * sav:7.1f}% {100 * slow:8.1f}%")
    return 0


def _print(label: str, chips: int, e: TrainingEnergy) -> None:
    print(f"plan: {label} ({chips} chips)   settings: {e.settings}   site: {e.site} (PUE {e.pue:.2f})")
    print(f"step {e.step_time_s:.3f} s   {e.avg_power_w_per_chip:.0f} W per chip (accelerator), "
          f"{e.avg_power_w_per_node:,.0f} W per node (wall, PUE excluded)")
    print(f"energy {e.step_energy_j / 1e6:.3f} MJ per step, {e.energy_j_per_token:.3f} J per token; "
          f"cost ${e.step_cost_usd:,.2f}, CO2 {e.step_co2_kg:.2f} kg per step")
    if e.job_energy_mwh is not None:
        print(f"whole job: {e.job_energy_mwh:,.1f} MWh, ${e.job_cost_usd:,.0f}, {e.job_co2_t:,.1f} t CO2")
    print("\nphases (chips x power x seconds per step):")
    for k, (n, p, t) in e.phases.items():
        print(f"  {k:<18} {n:8.0f} x {p:6.1f} W x {t:9.4f} s = {n * p * t / 1e6:8.3f} MJ")
    print("\nenergy per step by component (MJ):")
    total = e.step_energy_j
    for k, v in e.energy_breakdown_j.items():
        print(f"  {k:<30} {v / 1e6:9.3f}  {100 * v / total:5.1f}%")
    if e.derived:
        print("\nnot measured (defaults or estimates): " + "; ".join(e.derived))

"""``fleetwise power train``: one plan's power and energy, its stage frequency plan and cap sweep.

Flags and printing only: the work is ``fleetwise.api.power_training`` behind the ``power_train`` study.
``--plan STUDY.json --row N`` takes a searched plan and its job, so the step time is the searched one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleetwise.cli.args import positive_float
from fleetwise.study import Study

if TYPE_CHECKING:  # loaded when the command runs, not for --help
    pass

ArgsFn = Callable[..., None]


def add_parser(sub: Any, job_args: ArgsFn, plan_args: ArgsFn) -> None:
    """Register ``power train`` on the top-level subparsers."""
    pp = sub.add_parser("power", help="explain a plan's power, energy, cost and CO2")
    psub = pp.add_subparsers(dest="workload", required=True)
    tp = psub.add_parser("train", help="power and energy of one training plan")
    job_args(tp, chips=False)
    plan_args(tp, study_file=True)
    tp.add_argument("--site", help="site id of energy/data/sites.yaml (PUE, gCO2/kWh, $/kWh)")
    tp.add_argument("--clock", type=positive_float, help="core clock as a share of the maximum (default 1)")
    tp.add_argument("--cap", type=positive_float, help="per-chip power cap, W")
    tp.add_argument("--stage-plan", action="store_true", default=None,
                    help="per-stage frequency plan (no slowdown)")


def render(s: Study) -> None:
    row = s.rows[0]
    e = row["energy"]
    from fleetwise.cli.render import job_line, plan_label

    print(job_line(s))
    print(f"plan: {plan_label(row['plan'])} ({row['chips']} chips)   settings: {e['settings']}   "
          f"site: {e['site']} (PUE {e['pue']:.2f})")
    print(f"step {e['step_time_s']:.3f} s   {e['avg_power_w_per_chip']:.0f} W per chip (accelerator), "
          f"{e['avg_power_w_per_node']:,.0f} W per node (wall, PUE excluded)")
    print(f"energy {e['step_energy_j'] / 1e6:.3f} MJ per step, {e['energy_j_per_token']:.3f} J per token; "
          f"cost ${e['step_cost_usd']:,.2f}, CO2 {e['step_co2_kg']:.2f} kg per step")
    print(f"hardware price: {e.get('hardware_price')}")
    if e.get("job_energy_mwh") is not None:
        print(f"whole job: {e['job_energy_mwh']:,.1f} MWh, ${e['job_cost_usd']:,.0f}, {e['job_co2_t']:,.1f} t CO2")
    print("\nphases (chips x power x seconds per step):")
    for k, ph in e["phases"].items():
        n, p, t = ph["chips"], ph["power_w"], ph["seconds"]
        print(f"  {k:<18} {n:8.0f} x {p:6.1f} W x {t:9.4f} s = {n * p * t / 1e6:8.3f} MJ")
    print("\nenergy per step by component (MJ):")
    total = e["step_energy_j"]
    for k, v in e["energy_breakdown_j"].items():
        print(f"  {k:<30} {v / 1e6:9.3f}  {100 * v / total:5.1f}%")
    if e.get("derived"):
        print("\nnot measured (defaults or estimates): " + "; ".join(e["derived"]))
    print("\npower settings (vs stock clocks):")
    print(f"  {'setting':<28} {'step s':>9} {'MJ/step':>9} {'W/chip':>8} {'saving':>8} {'slowdown':>9}")
    for v in s.results["sweeps"].values():
        for o in v:
            print(f"  {o['settings']:<28} {o['step_time_s']:9.3f} {o['step_energy_j'] / 1e6:9.3f} "
                  f"{o['avg_power_w_per_chip']:8.1f} {100 * o['energy_saving']:7.1f}% {100 * o['slowdown']:8.1f}%")

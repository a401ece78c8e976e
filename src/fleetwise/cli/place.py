"""``fleetwise place serve|train|rtt``: placement across cloud regions and edge sites (thin shell over place/).

``serve SCENARIO`` solves the serving MILP and compares it with the usual heuristics; ``train SCENARIO``
places the scenario's training job; ``rtt`` prints the distance-model fit. ``--json`` prints plain data.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetwise.errors import SpecError

if TYPE_CHECKING:
    from fleetwise.catalog.loader import Catalog

PLACE_OBJECTIVES = ("cost", "energy", "carbon", "weighted")  # place.spec.OBJECTIVES, without importing it for --help


def add_parser(sub: Any) -> None:
    """Register ``place serve``, ``place train`` and ``place rtt``."""
    pp = sub.add_parser("place", help="place serving and training across cloud regions and edge sites")
    psub = pp.add_subparsers(dest="workload", required=True)
    sp = psub.add_parser("serve", help="serving placement MILP (sites, routing, SLO with the network)")
    sp.add_argument("scenario", help="scenario YAML file, or a bundled name (china)")
    sp.add_argument("--objective", choices=list(PLACE_OBJECTIVES), help="default: the scenario's objective")
    sp.add_argument("--pareto", type=int, default=6, help="points on the cost-vs-carbon front (0: none)")
    sp.add_argument("--no-heuristics", action="store_true", help="skip the nearest / cheapest comparisons")
    sp.add_argument("--map", type=Path, help="write a map picture (.png or .svg)")
    sp.add_argument("--json", action="store_true", help="print the study (JSON) instead of tables")
    sp.add_argument("--catalog", action="append", default=None, metavar="DIR",
                    help="user catalog folder (repeatable); default $FLEETWISE_CATALOG")
    tp = psub.add_parser("train", help="which sites train; synchronous DP vs DiLoCo across sites")
    tp.add_argument("scenario", help="scenario YAML file with a training section, or a bundled name")
    tp.add_argument("--json", action="store_true", help="print the study (JSON) instead of tables")
    tp.add_argument("--catalog", action="append", default=None, metavar="DIR",
                    help="user catalog folder (repeatable); default $FLEETWISE_CATALOG")
    rp = psub.add_parser("rtt", help="the distance RTT model: fit on one measured set, check on the other")
    rp.add_argument("--json", action="store_true", help="print the study (JSON) instead of tables")
    rp.add_argument("--catalog", action="append", default=None, metavar="DIR",
                    help="user catalog folder (repeatable); default $FLEETWISE_CATALOG")


def run(args: argparse.Namespace, catalog: Catalog) -> int:
    from fleetwise.place import placement

    if args.workload == "rtt":
        from fleetwise.place.network import rtt_fit_report

        rows = [c.to_dict() for c in rtt_fit_report()]
        if args.json:
            print(json.dumps(rows, indent=2, sort_keys=True))
        else:
            for r in rows:
                print(f"fit on {r['fitted_on']:<8} ({r['overhead_ms']:.1f} ms + route factor {r['route_factor']:.2f})"
                      f" -> {r['checked_on']:<8} {r['pairs']} pairs > 500 km: median |error| "
                      f"{r['median_abs_error']:.1%}, p90 {r['p90_abs_error']:.1%}, "
                      f"median bias {r['median_error']:+.1%}")
        return 0
    from fleetwise.api import run_study

    if args.workload == "train":
        study = run_study("place_train", {"scenario": args.scenario}, catalog=catalog)
        if args.json:
            print(study.to_json())
            return 0
        d = dict(study.results)
        print(f"training {d['model']}: {d['tokens']:.3g} tokens, global batch {d['global_batch']}")
        print(f"{'how':<36} {'sites':<24} {'chips':>6} {'days':>8} {'cost $':>10} {'MWh':>8} {'t CO2':>7}  note")
        for r in d["runs"]:
            days = "inf" if not math.isfinite(r["days"]) else f"{r['days']:.2f}"
            print(f"{r['how']:<36} {'+'.join(r['sites']):<24} {r['chips']:>6} {days:>8} {r['cost_usd']:>10,.0f} "
                  f"{r['energy_mwh']:>8.2f} {r['co2_t']:>7.2f}  {r['note']}")
        return 0
    if args.pareto < 0:
        raise SpecError(f"--pareto must be >= 0 (got {args.pareto})")
    if args.json and args.map is None:  # the study: the same value the HTTP service and sweeps store
        from fleetwise.cli.request import study_request

        study = run_study(*study_request(args), catalog=catalog)
        print(study.to_json())
        return 0
    res = placement.place_serving(args.scenario, args.objective, heuristics=not args.no_heuristics,
                                  pareto_points=args.pareto, catalog=catalog)
    if args.map is not None:
        from fleetwise.place.plot import draw_map

        draw_map(res.best, args.map)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2, sort_keys=True))
        return 0
    _render(res)
    if args.map is not None:
        print(f"map: {args.map}")
    return 0


def _render(res: Any) -> None:
    d = res.best.to_dict()
    t = d["totals"]
    print(f"scenario {res.scenario.name}: objective {d['objective']} = {d['objective_value']:.3f} per hour "
          f"(gap {d['gap']:.2%}, {d['solve_s']:.2f} s)")
    print(f"  cost ${t['cost_usd_per_h']:.2f}/h (chips {t['chip_usd_per_h']:.2f}, energy {t['energy_usd_per_h']:.2f},"
          f" egress {t['egress_usd_per_h']:.2f}), {t['energy_kwh_per_h']:.1f} kWh/h, {t['carbon_kg_per_h']:.1f} kg "
          f"CO2/h, ${t['usd_per_mtoken']:.3f}/Mtoken; served {t['served_share']:.1%}, SLO met {t['slo_met_share']:.1%}")
    print(f"{'site':<16} {'kW':>7} {'req/s':>7}  replicas")
    for s in d["sites"]:
        reps = "; ".join(f"{n}x [{k}]" for k, n in s["replicas"].items()) or "-"
        print(f"{s['site']:<16} {s['power_kw']:>7.1f} {s['served_rps']:>7.1f}  {reps}")
    print("routing (req/s):")
    for did, row in d["routing_rps"].items():
        slack = d["slo_slack_ms"][did]
        print(f"  {did:<24} " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()) + f"  (TTFT slack {slack:.0f} ms)")
    if len(res.comparison()) > 1:
        print("compared with the usual rules (same objective; replicas sized optimally at the chosen sites):")
        for k, v in res.comparison().items():
            print(f"  {k:<20} {v['objective']:>10.3f}  SLO met {v['slo_met_share']:.1%}")
    if res.pareto:
        print("cost vs carbon (Pareto front):")
        for pt in res.pareto:
            print(f"  ${pt['cost_usd_per_h']:>8.2f}/h  {pt['carbon_kg_per_h']:>7.2f} kg/h")
    for r in res.pd_split[:3]:
        print(f"prefill at {r['prefill_site']} ({r['prefill_chip']}) -> decode at {r['decode_site']} "
              f"({r['decode_chip']}): KV {r['kv_mb_per_prompt']:.0f} MB/prompt over {r['gbit_per_s']:.1f} Gbit/s, "
              f"RTT {r['rtt_ms']:.0f} ms -> {r['transfer_ms']:.0f} ms ({r['share_of_ttft_slo']:.0%} of the TTFT SLO; "
              f"{'worth considering' if r['worth_considering'] else 'too slow to split'})")
    for r in res.speculative[:4]:
        a = r["by_acceptance"]["a=0.8"]
        print(f"speculative decoding {r['edge_site']} ({r['edge_chip']}, {r['draft_ms_per_token']:.1f} ms/token) -> "
              f"{r['cloud_site']} (TPOT {r['target_tpot_ms']:.1f} ms, RTT {r['rtt_ms']:.0f} ms): at a=0.8 "
              f"{'pays' if a['pays'] else 'does not pay'} ({a['speedup_at_rtt']:.2f}x); break-even RTT "
              f"{a['break_even_rtt_ms']:.0f} ms; draft must be <= {a['draft_ms_per_token_needed']:.1f} ms/token")

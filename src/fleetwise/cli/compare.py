"""``compare serve`` (whole systems, or a mixed fleet with ``--mixed``) and ``match serve``: thin shells.

``compare serve --systems A,B`` serves one model on a whole unit of each system (supernode, rack, or node
cluster) with large EP and reports per-chip and per-system throughput, power, tokens per joule and cost, with
every assumption. ``compare serve --mixed a:N,b:M`` compares a prefill/decode split across two chip types with
single-type plans. ``match serve`` finds how many of our chips equal a reference fleet's goodput.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from fleetwise.catalog.loader import Catalog
from fleetwise.errors import SpecError
from fleetwise.perf.intervals import intervals_of


def _workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model id (fleetwise catalog list models)")
    p.add_argument("--input-tokens", type=float, default=2048.0, help="mean prompt tokens (default 2048)")
    p.add_argument("--output-tokens", type=float, default=512.0, help="mean output tokens (default 512)")
    p.add_argument("--ttft-ms", type=float, default=2000.0, help="TTFT target (default 2000 ms)")
    p.add_argument("--tpot-ms", type=float, default=50.0, help="TPOT target (default 50 ms, CloudMatrix-Infer's)")
    p.add_argument("--site", help="site id for PUE, electricity price and rent (energy/data/sites.yaml)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--catalog", action="append", default=None, metavar="DIR")


def add_parsers(verb: str, vsub: Any) -> None:
    """Register ``compare serve`` / ``match serve`` under the verb's subparsers."""
    if verb == "compare":
        p = vsub.add_parser("serve", help="compare systems (or a mixed fleet) for serving")
        _workload_args(p)
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--systems", help="system ids, comma-separated (fleetwise catalog list systems)")
        group.add_argument("--mixed", metavar="HW:N,HW:M", help="a two-type fleet: prefill on one, decode on the other")
        p.add_argument("--node-chips", type=int, help="chips of node-sized systems (default: the largest supernode)")
        p.add_argument("--price", action="append", default=[], metavar="CHIP=USD",
                       help="chip price where the catalog has none (repeatable)")
    elif verb == "match":
        p = vsub.add_parser("serve", help="how many of our chips equal a reference fleet's serving goodput")
        _workload_args(p)
        p.add_argument("--ours", required=True, help="our accelerator id")
        p.add_argument("--theirs", required=True, help="their accelerator and count, HW:N")


def _workload(args: argparse.Namespace) -> Any:
    from fleetwise.search.serving import ServingWorkload

    for name in ("input_tokens", "output_tokens", "ttft_ms", "tpot_ms"):
        if not getattr(args, name) > 0:
            raise SpecError(f"--{name.replace('_', '-')} must be > 0 (got {getattr(args, name)})")
    return ServingWorkload(args.input_tokens, args.output_tokens, args.ttft_ms / 1e3, args.tpot_ms / 1e3)


def _prices(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        chip, _, usd = item.partition("=")
        try:
            out[chip] = float(usd)
        except ValueError:
            raise SpecError(f"--price must be CHIP=USD, e.g. huawei_ascend_910c=20000 (got {item!r})") from None
        if out[chip] <= 0:
            raise SpecError(f"--price {chip}: must be > 0 (got {usd})")
    return out


def _phase(o: Any) -> dict[str, Any]:
    return {"engine": o.label(), "engine_chips": o.engine_chips, "tp": o.tp, "ep": o.ep, "weights": o.weights,
            "kv": o.kv, "per_rank": o.per_rank, "tokens_per_s_per_chip": round(o.tokens_per_s_per_chip, 1),
            "latency_ms": round(o.latency_s * 1e3, 2), "kv_handoff_ms": round(o.handoff_s * 1e3, 2),
            "step_ms": {k: round(v * 1e3, 3) for k, v in o.parts_s.items()}}


def system_doc(r: Any, catalog: Catalog) -> dict[str, Any]:
    """One system's result as JSON-ready data (every number from the search and the catalog)."""
    d, pw = r.deployment, r.power
    sys_ = catalog.system(r.system_id)
    cost = r.usd_per_million_output_tokens
    return {
        "system": r.system_id, "accelerator": r.accelerator_id, "chips": r.chips, "nodes": pw.nodes,
        "per_chip": {"prefill_tokens_per_s": round(r.prefill_best.tokens_per_s_per_chip, 1),
                     "decode_tokens_per_s": round(r.decode_best.tokens_per_s_per_chip, 1),
                     "prefill_engine": r.prefill_best.label(), "decode_engine": r.decode_best.label()},
        "per_system": {"prefill_tokens_per_s_all_chips": round(r.prefill_best.tokens_per_s_per_chip * r.chips, 0),
                       "decode_tokens_per_s_all_chips": round(r.decode_best.tokens_per_s_per_chip * r.chips, 0),
                       "balanced_requests_per_s": round(d.goodput_rps, 2),
                       "balanced_output_tokens_per_s": round(r.output_tokens_per_s, 0)},
        "deployment": {"prefill_engines": d.prefill_engines, "decode_engines": d.decode_engines,
                       "chips_used": d.chips_used, "prefill": _phase(d.prefill), "decode": _phase(d.decode)},
        "power": {"nameplate_w": round(pw.nameplate_w, 0),
                  "nameplate_basis": (f"node_power_w {sys_.node_power_w:g} W x {pw.nodes} nodes"
                                      if sys_.node_power_w is not None else "chips x TDP + host + network"),
                  "serving_it_w": round(pw.it_w, 0), "chips_w": round(pw.chips_w, 0), "host_w": round(pw.host_w, 0),
                  "network_w": round(pw.network_w, 0), "pue": pw.pue, "facility_w": round(pw.facility_w, 0),
                  "derived": list(pw.derived)},
        "output_tokens_per_joule": round(r.tokens_per_joule, 4),
        "output_tokens_per_joule_nameplate": round(r.tokens_per_joule_nameplate, 4),
        "site": r.site_id, "usd_per_kwh": r.usd_per_kwh,
        "usd_per_chip_hour": None if r.usd_per_chip_hour is None else round(r.usd_per_chip_hour, 4),
        "usd_per_million_output_tokens": None if cost is None else round(cost, 4),
        "energy_usd_per_million_output_tokens": round(r.energy_usd_per_million_output_tokens, 4),
    }


def _ratios(docs: list[dict[str, Any]]) -> dict[str, float]:
    a, b = docs[0], docs[1]
    return {"power_ratio_first_over_second": round(a["power"]["nameplate_w"] / b["power"]["nameplate_w"], 3),
            "per_chip_decode_second_over_first": round(b["per_chip"]["decode_tokens_per_s"]
                                                       / a["per_chip"]["decode_tokens_per_s"], 3),
            "per_chip_prefill_second_over_first": round(b["per_chip"]["prefill_tokens_per_s"]
                                                        / a["per_chip"]["prefill_tokens_per_s"], 3),
            "tokens_per_joule_second_over_first": round(b["output_tokens_per_joule"]
                                                        / a["output_tokens_per_joule"], 3)}


def compare_systems_doc(args: argparse.Namespace, catalog: Catalog) -> dict[str, Any]:
    """``compare serve --systems``: the library call and its JSON-ready result."""
    from fleetwise.api import resolve_model
    from fleetwise.perf.inference import ASSUMPTIONS
    from fleetwise.search.systems import SERVING_ASSUMPTIONS, compare_systems

    model = resolve_model(catalog, args.model)
    systems = [catalog.system(x, "systems") for x in args.systems.split(",") if x]
    w = _workload(args)
    results = compare_systems(model, systems, w, catalog, args.site, args.node_chips, _prices(args.price))
    docs = [system_doc(r, catalog) for r in results]
    for d, sys_ in zip(docs, systems, strict=True):
        pc = d["per_chip"]
        d["intervals"] = {k: v.to_json() for k, v in intervals_of("inference", sys_.accelerator_id, {
            "prefill_tokens_per_s": pc["prefill_tokens_per_s"], "decode_tokens_per_s": pc["decode_tokens_per_s"],
        }).items()}
    out: dict[str, Any] = {"model": model.id, "workload": {"input_tokens": w.input_tokens,
                           "output_tokens": w.output_tokens, "ttft_ms": args.ttft_ms, "tpot_ms": args.tpot_ms},
                           "systems": docs,
                           "assumptions": list(SERVING_ASSUMPTIONS) + list(ASSUMPTIONS) + [
                               "system power: nameplate = catalog node_power_w x nodes of the system; modelled "
                               "serving draw = chips in their phase mix + host + NICs/switch ports",
                               "cost = (chip price amortised or site rent) + facility energy; null where no price "
                               "is known (give --price CHIP=USD)"]}
    if len(docs) >= 2:
        out["ratios"] = _ratios(docs)
    return out


def _render_systems(out: dict[str, Any]) -> None:
    wl = out["workload"]
    print(f"{out['model']}: input {wl['input_tokens']:g} / output {wl['output_tokens']:g} tokens, "
          f"TTFT <= {wl['ttft_ms']:g} ms, TPOT <= {wl['tpot_ms']:g} ms")
    head = f"{'system':<26}{'chips':>6}{'pre tok/s/chip':>15}{'dec tok/s/chip':>15}{'out tok/s/sys':>14}" \
           f"{'power kW':>10}{'tok/J':>8}{'$/M out':>9}"
    print(head)
    for d in out["systems"]:
        cost = d["usd_per_million_output_tokens"]
        print(f"{d['system']:<26}{d['chips']:>6}{d['per_chip']['prefill_tokens_per_s']:>15,.0f}"
              f"{d['per_chip']['decode_tokens_per_s']:>15,.0f}{d['per_system']['balanced_output_tokens_per_s']:>14,.0f}"
              f"{d['power']['nameplate_w'] / 1e3:>10,.1f}{d['output_tokens_per_joule']:>8.3f}"
              f"{'n/a' if cost is None else f'{cost:.3f}':>9}")
        dep = d["deployment"]
        print(f"    {dep['prefill_engines']}x {dep['prefill']['engine']} | {dep['decode_engines']}x "
              f"{dep['decode']['engine']}; power: {d['power']['nameplate_basis']}")
    for k, v in out.get("ratios", {}).items():
        print(f"  {k}: {v:g}")
    print("assumptions:")
    for a in out["assumptions"]:
        print(f"  - {a}")


def mixed_doc(args: argparse.Namespace, catalog: Catalog) -> dict[str, Any]:
    """``compare serve --mixed``: the mixed plan against single-type plans, JSON-ready."""
    from fleetwise.api import resolve_model
    from fleetwise.search.fleet import parse_fleet
    from fleetwise.search.mixed_serving import search_mixed_serving

    model = resolve_model(catalog, args.model)
    r = search_mixed_serving(model, parse_fleet(args.mixed, catalog), _workload(args))
    m = r.mixed
    mixed = None if m is None else {
        "goodput_rps": round(m.goodput_rps, 2), "prefill_type": m.prefill_type, "decode_type": m.decode_type,
        "pair": {"prefill_engines": m.pair.prefill_engines, "prefill": _phase(m.pair.prefill),
                 "decode_engines": m.pair.decode_engines, "decode": _phase(m.pair.decode),
                 "goodput_rps": round(m.pair.goodput_rps, 2)},
        "leftover": [{"accelerator": x.accelerator_id, "chips": x.chips, "goodput_rps": round(x.goodput_rps, 2),
                      "plan": x.label} for x in m.leftover]}

    def single(x: Any) -> dict[str, Any]:
        return {"accelerator": x.accelerator_id, "chips": x.chips, "goodput_rps": round(x.goodput_rps, 2),
                "plan": x.label}

    return {"model": model.id, "fleet": [list(f) for f in r.fleet], "mixed": mixed,
            "same_total": [single(x) for x in r.same_total], "alone": [single(x) for x in r.alone],
            "split_fleet_rps": round(r.split_fleet_rps, 2),
            "gain_over_best_single_same_total": round(r.gain_over_best_single, 4), "assumptions": list(r.notes)}


def _render_mixed(out: dict[str, Any]) -> None:
    print(f"{out['model']} on {', '.join(f'{a}:{n}' for a, n in out['fleet'])}")
    m = out["mixed"]
    if m is None:
        print("  mixed: no prefill/decode pair meets the SLOs")
    else:
        p = m["pair"]
        print(f"  mixed: {m['goodput_rps']:.1f} req/s  (prefill on {m['prefill_type']}: {p['prefill_engines']}x "
              f"{p['prefill']['engine']}; decode on {m['decode_type']}: {p['decode_engines']}x "
              f"{p['decode']['engine']}; KV hand-off {p['prefill']['kv_handoff_ms']:.1f} ms)")
        for x in m["leftover"]:
            print(f"    leftover {x['accelerator']} x{x['chips']}: {x['goodput_rps']:.1f} req/s ({x['plan']})")
    for x in out["same_total"]:
        print(f"  all {x['accelerator']} x{x['chips']}: {x['goodput_rps']:.1f} req/s ({x['plan']})")
    for x in out["alone"]:
        print(f"  alone {x['accelerator']} x{x['chips']}: {x['goodput_rps']:.1f} req/s")
    print(f"  split fleet (each type alone): {out['split_fleet_rps']:.1f} req/s")
    print(f"  mixed / best single type on the same chips: {out['gain_over_best_single_same_total']:.3f}")


def match_doc(args: argparse.Namespace, catalog: Catalog) -> dict[str, Any]:
    """``match serve``: our chips, power and cost for the reference fleet's goodput, JSON-ready."""
    from fleetwise.api import resolve_model
    from fleetwise.search.fleet import FleetPart
    from fleetwise.search.mixed_serving import match_serving

    hw, _, n = args.theirs.partition(":")
    if not n.isdigit() or int(n) < 1:
        raise SpecError(f"--theirs must be HW:N, e.g. nvidia_h20:256 (got {args.theirs!r})")
    model = resolve_model(catalog, args.model)
    ours_a, theirs_a = catalog.accelerator(args.ours, "ours"), catalog.accelerator(hw, "theirs")
    m = match_serving(model, FleetPart(ours_a, catalog.default_system(ours_a.id), 1),
                      FleetPart(theirs_a, catalog.default_system(theirs_a.id), int(n)), _workload(args), args.site)

    def side(f: Any) -> dict[str, Any]:
        iv = intervals_of("inference", f.accelerator_id, {"goodput_rps": f.goodput_rps})["goodput_rps"]
        return {"accelerator": f.accelerator_id, "chips": f.chips, "goodput_rps": round(f.goodput_rps, 2),
                "goodput_rps_interval": iv.to_json(),
                "plan": f.label, "nameplate_kw": round(f.nameplate_w / 1e3, 2),
                "facility_kw": round(f.facility_w / 1e3, 2),
                "usd_per_hour": None if f.usd_per_hour is None else round(f.usd_per_hour, 2)}

    return {"model": model.id, "ours": side(m.ours), "theirs": side(m.theirs), "chips_ratio": round(m.chips_ratio, 3),
            "assumptions": ["same TTFT/TPOT for both fleets; each fleet's best plan (co-located or P/D)",
                            "power at nameplate (node_power_w, else chips x TDP + host + network) x PUE"]}


def _render_match(out: dict[str, Any]) -> None:
    o, t = out["ours"], out["theirs"]
    oi, ti = o["goodput_rps_interval"], t["goodput_rps_interval"]
    print(f"{out['model']}: {o['chips']} x {o['accelerator']} ({o['goodput_rps']:.1f} req/s, 80 %: "
          f"{oi['low']:.1f}-{oi['high']:.1f}) match {t['chips']} x {t['accelerator']} ({t['goodput_rps']:.1f} req/s, "
          f"80 %: {ti['low']:.1f}-{ti['high']:.1f}): {out['chips_ratio']:.2f}x the chips")
    for f in (o, t):
        cost = "n/a" if f["usd_per_hour"] is None else f"${f['usd_per_hour']:,.0f}/h"
        print(f"  {f['accelerator']}: {f['plan']}; {f['facility_kw']:,.1f} kW facility, {cost}")


def run(args: argparse.Namespace, catalog: Catalog) -> int:
    """Dispatch ``compare serve`` and ``match serve``."""
    if args.command == "match":
        out, render = match_doc(args, catalog), _render_match
    elif args.mixed:
        out, render = mixed_doc(args, catalog), _render_mixed
    else:
        out, render = compare_systems_doc(args, catalog), _render_systems
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        render(out)
    return 0

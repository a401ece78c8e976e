"""``compare serve`` (whole systems, or a mixed fleet with ``--mixed``) and ``match serve``: flags and printing.

``compare serve --systems A,B`` serves one model on a whole unit of each system (supernode, rack, or node
cluster) with large EP and reports per-chip and per-system throughput, power, tokens per joule and cost, with
every assumption. ``compare serve --mixed a:N,b:M`` compares a prefill/decode split across two chip types with
single-type plans. ``match serve`` finds how many of our chips equal a reference fleet's goodput. The work is
done by ``fleetwise.api`` (``compare_serving_systems``, ``compare_mixed_serving``, ``match_serving_fleets``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fleetwise.cli.args import positive_float, positive_int
from fleetwise.study import Study


def _workload_args(p: argparse.ArgumentParser, json_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    p.add_argument("--model", help="model id (fleetwise catalog list models)")
    p.add_argument("--input-tokens", type=positive_float, help="mean prompt tokens (default 2048)")
    p.add_argument("--output-tokens", type=positive_float, help="mean output tokens (default 512)")
    p.add_argument("--ttft-ms", type=positive_float, help="TTFT target (default 2000 ms)")
    p.add_argument("--tpot-ms", type=positive_float, help="TPOT target (default 50 ms, CloudMatrix-Infer's)")
    json_arg(p)


def add_parsers(verb: str, vsub: Any, json_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register ``compare serve`` / ``match serve`` under the verb's subparsers."""
    site_help = "site id for PUE, electricity price and rent (energy/data/sites.yaml)"
    if verb == "compare":
        p = vsub.add_parser("serve", help="compare systems (or a mixed fleet) for serving")
        _workload_args(p, json_arg)
        group = p.add_mutually_exclusive_group()
        group.add_argument("--systems", help="system ids, comma-separated (fleetwise catalog list systems)")
        group.add_argument("--mixed", metavar="HW:N,HW:M", help="a two-type fleet: prefill on one, decode on the other")
        p.add_argument("--site", help=site_help + " (with --systems)")
        p.add_argument("--node-chips", type=positive_int,
                       help="chips of node-sized systems (default: the largest supernode; with --systems)")
        p.add_argument("--price", action="append", default=None, metavar="CHIP=USD",
                       help="chip price where the catalog has none (repeatable; with --systems)")
    elif verb == "match":
        p = vsub.add_parser("serve", help="how many of our chips equal a reference fleet's serving goodput")
        _workload_args(p, json_arg)
        p.add_argument("--site", help=site_help)
        p.add_argument("--ours", help="our accelerator id")
        p.add_argument("--theirs", help="their accelerator and count, HW:N")


def _workload_line(s: Study) -> str:
    i = s.inputs
    return (f"{i['model']}: input {i['input_tokens']:g} / output {i['output_tokens']:g} tokens, "
            f"TTFT <= {i['ttft_ms']:g} ms, TPOT <= {i['tpot_ms']:g} ms")


def render_compare(s: Study) -> None:
    if "mixed" in s.inputs:
        _render_mixed(s)
        return
    print(_workload_line(s) + (f"; site {s.inputs['site']}" if s.inputs.get("site") else ""))
    head = f"{'system':<26}{'chips':>6}{'pre tok/s/chip':>15}{'dec tok/s/chip':>15}{'out tok/s/sys':>14}" \
           f"{'power kW':>10}{'tok/J':>8}{'$/M out':>9}"
    print(head)
    for d in s.rows:
        cost = d["usd_per_million_output_tokens"]
        print(f"{d['system']:<26}{d['chips']:>6}{d['per_chip']['prefill_tokens_per_s']:>15,.0f}"
              f"{d['per_chip']['decode_tokens_per_s']:>15,.0f}{d['per_system']['balanced_output_tokens_per_s']:>14,.0f}"
              f"{d['power']['nameplate_w'] / 1e3:>10,.1f}{d['output_tokens_per_joule']:>8.3f}"
              f"{'n/a' if cost is None else f'{cost:.3f}':>9}")
        dep = d["deployment"]
        print(f"    {dep['prefill_engines']}x {dep['prefill']['engine']} | {dep['decode_engines']}x "
              f"{dep['decode']['engine']}; power: {d['power']['nameplate_basis']}")
    for k, v in s.results.get("ratios", {}).items():
        print(f"  {k}: {v:g}")
    print("assumptions:")
    for a in s.results["assumptions"]:
        print(f"  - {a}")


def _render_mixed(s: Study) -> None:
    out = s.results
    print(_workload_line(s))
    print(f"fleet {', '.join(f'{a}:{n}' for a, n in out['fleet'])}")
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


def render_match(s: Study) -> None:
    out = s.results
    o, t = out["ours"], out["theirs"]
    print(_workload_line(s))
    print(f"{o['chips']} x {o['accelerator']} ({o['goodput_rps']:.1f} req/s) match "
          f"{t['chips']} x {t['accelerator']} ({t['goodput_rps']:.1f} req/s): {out['chips_ratio']:.2f}x the chips")
    print(f"  {out['answer']}")
    for f in (o, t):
        cost = "n/a" if f["usd_per_hour"] is None else f"${f['usd_per_hour']:,.0f}/h"
        print(f"  {f['accelerator']}: {f['plan']}; {f['facility_kw']:,.1f} kW facility (nameplate), {cost}")

"""``plan serve``, ``explain serve`` and ``simulate``: their flags and how their studies are printed.

``plan serve`` ranks SLO-meeting deployments and confirms the top ones by replaying traffic (the trace,
or Poisson arrivals at the target rate) through the simulator. ``simulate`` replays a trace through one
plan given by flags or by a study file (``--plan``). The work is done by ``fleetwise.api``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fleetwise.cli.args import percentile, positive_float, positive_int
from fleetwise.study import Study

ArgsFn = Callable[[argparse.ArgumentParser], None]


def _common(p: argparse.ArgumentParser, json_arg: ArgsFn) -> None:
    p.add_argument("--model", help="model id (fleetwise catalog list models) or a Hugging Face config.json path")
    p.add_argument("--hardware", help="accelerator id (fleetwise catalog list accelerators)")
    p.add_argument("--system", help="system id; default: the catalog's system for the chip")
    json_arg(p)


def _plan_knobs(p: argparse.ArgumentParser) -> None:
    knobs = {"tp": "tensor-parallel width of an engine", "pp": "pipeline stages of an engine",
             "dp": "attention data-parallel ranks of an engine", "ep": "expert-parallel width (divides tp*dp)",
             "replicas": "decode (or co-located) engines", "max-batch": "concurrent sequences per attention rank",
             "token-budget": "tokens per step (chunked prefill)",
             "prefill-replicas": "prefill-only engines (0: prefill and decode co-located)"}
    for name, what in knobs.items():
        p.add_argument(f"--{name}", type=positive_int, help=what)
    p.add_argument("--weights", choices=["bf16", "fp16", "fp8", "int8", "int4", "fp4"], help="weight precision")
    p.add_argument("--kv", choices=["bf16", "fp16", "fp8", "int8", "int4"], help="KV-cache precision")


def _lengths(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-tokens", type=positive_float, help="mean prompt tokens (or --trace)")
    p.add_argument("--output-tokens", type=positive_float, help="mean output tokens (or --trace)")
    p.add_argument("--trace", help="trace file (Azure CSV, Mooncake JSONL) or bundled name (azure_conv, azure_code, "
                                   "mooncake_conversation): its mean lengths (plan serve also replays it)")


def _speculative(p: argparse.ArgumentParser) -> None:
    p.add_argument("--spec-steps", type=positive_int,
                   help="speculative decoding / multi-token prediction: draft tokens proposed per decode step")
    p.add_argument("--accept-length", type=positive_float,
                   help="with --spec-steps: mean tokens emitted per sequence per step, 1..steps+1 (measured on your "
                        "data; DeepSeek-V3 MTP with 1 step: about 1.8-1.9)")


def add_workload_parsers(verb: str, vsub: Any, json_arg: ArgsFn, study_file_args: ArgsFn) -> None:
    """Register ``plan serve`` / ``explain serve`` under the verb's subparsers."""
    if verb not in ("plan", "explain"):
        return
    p = vsub.add_parser("serve", help=f"{verb} serving deployments")
    _common(p, json_arg)
    _lengths(p)
    _speculative(p)
    if verb == "plan":
        p.add_argument("--ttft-ms", type=positive_float, help="time-to-first-token target, ms (required)")
        p.add_argument("--tpot-ms", type=positive_float, help="time-per-output-token target, ms (required)")
        p.add_argument("--percentile", type=percentile, help="percentile the targets apply to (default 90)")
        group = p.add_mutually_exclusive_group()
        group.add_argument("--chips", type=positive_int, help="chips to deploy on (or --rate)")
        group.add_argument("--rate", type=positive_float,
                           help="requests/s to serve (or --chips); with --trace its arrivals are scaled to it")
        p.add_argument("--top", type=positive_int, help="how many plans to list (default 10)")
        p.add_argument("--no-confirm", action="store_true", default=None, help="skip the simulator confirmation")
        p.add_argument("--objective", choices=["time", "energy", "cost"],
                       help="rank by chips per goodput (cost, default), TPOT (time) or J per output token (energy)")
        p.add_argument("--site", help="site id in energy/data/sites.yaml (PUE, grid, price); default: its default")
        p.add_argument("--power-cap-w", type=positive_float, help="per-chip power cap, W")
    else:
        _plan_knobs(p)
        p.add_argument("--chips", type=positive_int, help="chips in all (sets --replicas)")
        p.add_argument("--tpot-ms", type=positive_float, help="TPOT target, ms: says whether the steady TPOT meets it")
        p.add_argument("--ttft-ms", type=positive_float, help="TTFT target, ms: says whether the steady TTFT meets it")
        study_file_args(p)


def add_simulate_parser(sub: Any, json_arg: ArgsFn, study_file_args: ArgsFn) -> None:
    p = sub.add_parser("simulate", help="replay a trace through a serving plan")
    _common(p, json_arg)
    _plan_knobs(p)
    p.add_argument("--chips", type=positive_int, help="chips in all (sets --replicas)")
    study_file_args(p)
    p.add_argument("--trace", help="trace file or bundled name (azure_conv, ...); default: the study file's trace")
    p.add_argument("--until-s", type=positive_float, help="stop the replay at this simulated time, s")
    _speculative(p)


def _head(s: Study) -> str:
    i = s.inputs
    return f"{i['model']} on {i['hardware']} (system {i.get('system') or '-'})"


def render_plan(s: Study) -> None:
    i, res = s.inputs, s.results
    what = f"{i['rate']:g} req/s" if i.get("rate") is not None else f"{i['chips']} chips"
    print(f"{_head(s)}: {what}; lengths {i['input_tokens']:g} in / {i['output_tokens']:g} out "
          f"({i['lengths_from']}{': ' + i['trace'] if i.get('trace') else ''}); objective {i['objective']}")
    if i.get("trace_replay"):
        print(f"  replay: {i['trace_replay']}")
    print(f"{res['candidates_evaluated']:,} candidates; SLO TTFT {i['ttft_ms']:g} ms, TPOT {i['tpot_ms']:g} ms "
          f"(p{i['percentile']:g} replayed in simulation, in rank order, until 3 plans meet it; confirmed plans first)")
    for r in s.rows:
        simd = r.get("simulated")
        tail = f"  sim p{i['percentile']:g} TTFT {simd['ttft_ms']:.0f} ms TPOT {simd['tpot_ms']:.1f} ms " \
               f"{'ok' if simd['meets_slo'] else 'MISS'}" if simd else ""
        iv = r["intervals"]
        print(f"  {r['label']:<42} chips {r['chips']:>5}  goodput {r['goodput_rps']:>8.2f} req/s "
              f"[{iv['goodput_rps']['low']:.2f}-{iv['goodput_rps']['high']:.2f}]  "
              f"{r['tokens_per_s_per_chip']:>8.0f} tok/s/chip  TTFT {r['ttft_ms']:.0f} ms "
              f"[{iv['ttft_ms']['low']:.0f}-{iv['ttft_ms']['high']:.0f}]  TPOT {r['tpot_ms']:.1f} ms "
              f"[{iv['tpot_ms']['low']:.1f}-{iv['tpot_ms']['high']:.1f}]  mem {r['memory_per_device_gb']:.1f} GB{tail}"
              + ("  (tie with the next: lead inside the 80 % interval)" if r["ties_with_next"] else ""))
        e = r.get("energy")
        if e:
            print(f"  {'':<42} {e['j_per_token']:.3g} J/token (facility), {e['avg_power_w_per_chip']:.0f} W/chip "
                  f"at prefill/decode clock {e['prefill_clock']:.1f}/{e['decode_clock']:.1f}: "
                  f"{e['saving_vs_stock']:.1%} below stock clocks")


def render_explain(s: Study) -> None:
    r = s.rows[0]
    print(f"{_head(s)}: {r['label']} ({r['chips']} chips); lengths {r['input_tokens']:g} in / "
          f"{r['output_tokens']:g} out")
    for k, v in r.items():
        if k not in ("plan", "label", "chips", "input_tokens", "output_tokens"):
            print(f"{k}: {v}")


def render_simulate(s: Study) -> None:
    r = s.rows[0]
    sim = r["simulator"]
    print(f"{_head(s)}: {r['label']} ({r['chips']} chips), trace {r['trace']}")
    print(f"  served: {r['completed']}/{r['requests']} requests in {r['makespan_s']:,.1f} s simulated, "
          f"{r['served_output_tokens_per_s']:,.0f} output tokens/s")
    for k in ("ttft_ms", "tpot_ms", "e2e_ms"):
        print(f"  {k}: " + "  ".join(f"{p} {v}" for p, v in r[k].items()))
    print(f"  simulator speed (not served throughput): {sim['requests_per_wall_second']:,.0f} requests per "
          f"second of wall time ({sim['wall_seconds']:.2f} s wall)")

"""``plan serve``, ``explain serve`` and ``simulate``: thin shells over the serving search and simulator.

``plan serve`` ranks SLO-meeting deployments and confirms the top ones by replaying traffic (the trace,
or Poisson arrivals at the target rate) through the simulator. ``simulate`` replays a trace through one
plan given by flags or by a ``plan serve --json`` file.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from fleetwise.catalog.loader import Catalog, format_validation_error
from fleetwise.cli.args import percentile, positive_float, positive_int
from fleetwise.errors import SpecError
from fleetwise.perf.intervals import intervals_of, ties_with_next


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--hardware", required=True)
    p.add_argument("--system")
    p.add_argument("--json", action="store_true")
    p.add_argument("--catalog", action="append", default=None, metavar="DIR")


def _plan_knobs(p: argparse.ArgumentParser) -> None:
    for name in ("tp", "pp", "dp", "ep", "replicas", "max-batch", "token-budget", "prefill-replicas"):
        p.add_argument(f"--{name}", type=positive_int)
    p.add_argument("--weights", choices=["bf16", "fp16", "fp8", "int8", "int4", "fp4"])
    p.add_argument("--kv", choices=["bf16", "fp16", "fp8", "int8", "int4"])


def _traffic(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-tokens", type=positive_float)
    p.add_argument("--output-tokens", type=positive_float)
    p.add_argument("--trace", help="trace file (Azure CSV, Mooncake JSONL) or bundled name (azure_conv, ...)")
    p.add_argument("--ttft-ms", type=positive_float, required=True)
    p.add_argument("--tpot-ms", type=positive_float, required=True)
    p.add_argument("--percentile", type=percentile, default=90.0)


def add_workload_parsers(verb: str, vsub: Any) -> None:
    """Register ``plan serve`` / ``explain serve`` under the verb's subparsers."""
    if verb not in ("plan", "explain"):
        return
    p = vsub.add_parser("serve", help=f"{verb} serving deployments")
    _common(p)
    _traffic(p)
    if verb == "plan":
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--chips", type=positive_int)
        group.add_argument("--rate", type=positive_float, help="requests/s to serve")
        p.add_argument("--top", type=positive_int, default=10)
        p.add_argument("--no-confirm", action="store_true", help="skip the simulator confirmation")
        p.add_argument("--objective", choices=["time", "energy", "cost"], default="cost",
                       help="rank by chips per goodput (cost), TPOT (time) or J per output token (energy)")
        p.add_argument("--site", help="site id in energy/data/sites.yaml (PUE, grid, price); default: its default")
        p.add_argument("--power-cap-w", type=positive_float, help="per-chip power cap, W")
    else:
        _plan_knobs(p)
        p.add_argument("--rate", type=positive_float)


def add_simulate_parser(sub: Any) -> None:
    p = sub.add_parser("simulate", help="replay a trace through a serving plan")
    _common(p)
    _plan_knobs(p)
    p.add_argument("--chips", type=positive_int)
    p.add_argument("--plan", type=Path, help="a plan saved by 'plan serve --json' (its first plan)")
    p.add_argument("--trace", required=True)
    p.add_argument("--until-s", type=positive_float, default=math.inf)


def _plan_from_flags(args: argparse.Namespace) -> Any:
    from fleetwise.plan import ServingPlan

    fields: dict[str, Any] = {}
    if getattr(args, "plan", None):
        try:
            doc = json.loads(Path(args.plan).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecError(f"{args.plan}: cannot read plan JSON ({exc})") from None
        raw = doc["plans"][0]["plan"] if isinstance(doc, dict) and "plans" in doc else doc
        fields.update(raw)
    names = {"max_batch": "max_batch", "token_budget": "token_budget", "prefill_replicas": "prefill_replicas",
             "weights": "weight_precision", "kv": "kv_precision"}
    for k in ("tp", "pp", "dp", "ep", "replicas", "max_batch", "token_budget", "prefill_replicas", "weights", "kv"):
        v = getattr(args, k, None)
        if v is not None:
            fields[names.get(k, k)] = v
    chips = getattr(args, "chips", None)
    if chips and "replicas" not in fields:
        per = fields.get("tp", 1) * fields.get("pp", 1) * fields.get("dp", 1)
        if chips % per:
            raise SpecError(f"--chips ({chips}) must be a multiple of tp*pp*dp ({per})")
        fields["replicas"] = chips // per - fields.get("prefill_replicas", 0)
    try:
        return ServingPlan(**fields)
    except ValidationError as exc:
        raise SpecError(format_validation_error("plan", exc)) from None


def _setup(args: argparse.Namespace, catalog: Catalog, moe_ep: bool = False) -> Any:
    from fleetwise.api import resolve_model
    from fleetwise.perf.inference import make_serving_setup

    model = resolve_model(catalog, args.model)
    accel = catalog.accelerator(args.hardware, "hardware")
    system = catalog.system(args.system, "system") if args.system else catalog.default_system(accel.id)
    return make_serving_setup(model, accel, system, expert_parallel=moe_ep)


def _lengths(args: argparse.Namespace) -> tuple[float, float, Any]:
    from fleetwise.workload.traces import load_trace

    trace = load_trace(args.trace) if args.trace else None
    if trace is not None:
        return float(trace.input_tokens.mean()), float(max(trace.output_tokens.mean(), 1.0)), trace
    if args.input_tokens is None or args.output_tokens is None:
        raise SpecError("give --input-tokens and --output-tokens, or --trace")
    return args.input_tokens, args.output_tokens, None


def _plan_serve(args: argparse.Namespace, catalog: Catalog) -> int:
    from fleetwise.api import plan_serving

    if args.trace is None and (args.input_tokens is None or args.output_tokens is None):
        raise SpecError("give --input-tokens and --output-tokens, or --trace")
    plans = plan_serving(args.model, args.hardware, system=args.system, ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms,
                         input_tokens=args.input_tokens, output_tokens=args.output_tokens, trace=args.trace,
                         rate=args.rate, chips=args.chips, percentile=args.percentile, top=args.top,
                         objective=args.objective, site=args.site, power_cap_w=args.power_cap_w,
                         confirm=not args.no_confirm, catalog=catalog)
    rows: list[dict[str, Any]] = []
    for c, sim in zip(plans.best, plans.confirmations, strict=True):
        row: dict[str, Any] = {"plan": c.plan.model_dump(), "label": c.plan.label(), "chips": c.plan.chips,
               "goodput_rps": round(c.goodput_rps, 4), "tokens_per_s_per_chip": round(c.tokens_per_s_per_chip, 2),
               "ttft_ms": round(c.ttft_s * 1e3, 3), "tpot_ms": round(c.tpot_s * 1e3, 3),
               "memory_per_device_gb": round(c.memory_per_device_bytes / 1e9, 3),
               "chips_per_goodput": round(c.chips_per_goodput, 4)}
        row["intervals"] = {k: v.to_json() for k, v in intervals_of("inference", args.hardware, {
            k: row[k] for k in ("tokens_per_s_per_chip", "goodput_rps", "ttft_ms", "tpot_ms")}).items()}
        if c.energy is not None:
            row["energy"] = _rounded(c.energy)
        if sim is not None:
            row["simulated"] = {"ttft_ms": round(sim.ttft_s * 1e3, 3), "tpot_ms": round(sim.tpot_s * 1e3, 3),
                                "requests": sim.requests, "meets_slo": sim.meets_slo}
        rows.append(row)
    ties = ties_with_next([r["goodput_rps"] / r["chips"] for r in rows],
                          [intervals_of("inference", args.hardware, {"goodput_rps": r["goodput_rps"] / r["chips"]})
                           ["goodput_rps"] for r in rows]) if rows else []
    for r, t in zip(rows, ties, strict=True):
        r["ties_with_next"] = t
    out = {"candidates_evaluated": plans.search.candidates_evaluated, "rejected_by": plans.search.rejected_by,
           "plans": rows, "objective": args.objective}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
        return 0
    print(f"{plans.search.candidates_evaluated:,} candidates; SLO TTFT {args.ttft_ms:g} ms, TPOT {args.tpot_ms:g} ms "
          f"(p{args.percentile:g} replayed in simulation, in rank order, until 3 plans meet it; "
          f"confirmed plans first)")
    for r in rows:
        simd = r.get("simulated")
        tail = f"  sim p{args.percentile:g} TTFT {simd['ttft_ms']:.0f} ms TPOT {simd['tpot_ms']:.1f} ms " \
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
    return 0


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}")
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    return v


def _explain_serve(args: argparse.Namespace, catalog: Catalog) -> int:
    from fleetwise.perf.batching import decode_rates, max_batch_by_kv
    from fleetwise.perf.inference import ASSUMPTIONS, kv_capacity
    from fleetwise.simulate.serving import shape_of

    plan = _plan_from_flags(args)
    s = _setup(args, catalog, plan.ep > 1)
    i, o, _ = _lengths(args)
    sh = shape_of(plan)
    budget = np.array([float(plan.token_budget)])
    limit = min(float(plan.max_batch), float(max_batch_by_kv(s, sh, i, o, budget)[0]))
    r = decode_rates(s, sh, np.array([max(limit, 1.0)]), i, o)
    mem = kv_capacity(s, sh, budget)
    out = {"plan": plan.model_dump(), "label": plan.label(), "batch_per_rank": limit,
           "step_ms": {k: round(float(v[0]) * 1e3, 4) for k, v in r.step.parts().items()},
           "tpot_ms": round(float(r.tpot_s[0]) * 1e3, 4),
           "tokens_per_s_per_chip": round(float(r.tokens_per_s_per_chip[0]), 2),
           "memory_per_device_gb": {"weights": round(float(mem.weights[0]) / 1e9, 3),
                                    "reserved": round(float(mem.reserved[0]) / 1e9, 3),
                                    "kv_capacity": round(float(mem.kv_capacity[0]) / 1e9, 3)},
           "constants": {"family": s.constants.family, "compute_scale": s.constants.compute_scale,
                         "step_overhead_s": s.constants.step_overhead_s},
           "intervals": {k: v.to_json() for k, v in intervals_of("inference", args.hardware, {
               "tpot_ms": float(r.tpot_s[0]) * 1e3,
               "tokens_per_s_per_chip": float(r.tokens_per_s_per_chip[0])}).items()},
           "assumptions": list(ASSUMPTIONS)}
    print(json.dumps(out, indent=2, sort_keys=True) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))
    return 0


def _simulate(args: argparse.Namespace, catalog: Catalog) -> int:
    from fleetwise.simulate.serving import simulate
    from fleetwise.workload.traces import load_trace

    plan = _plan_from_flags(args)
    s = _setup(args, catalog, plan.ep > 1)
    trace = load_trace(args.trace)
    t0 = time.perf_counter()
    r = simulate(s, plan, trace, args.until_s)
    wall = time.perf_counter() - t0
    out = {"plan": plan.model_dump(), "trace": str(args.trace), **r.summary(), "wall_seconds": round(wall, 3)}
    out["intervals"] = {k: {p: intervals_of("inference", args.hardware, {k: float(v)})[k].to_json()
                            for p, v in out[k].items() if isinstance(v, (int, float))}
                        for k in ("ttft_ms", "tpot_ms") if isinstance(out.get(k), dict)}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=True))
    else:
        print(f"{plan.label()}: {out['completed']}/{out['requests']} requests in {wall:.2f} s wall "
              f"({out['requests'] / max(wall, 1e-9):,.0f} req/s)")
        for k in ("ttft_ms", "tpot_ms", "e2e_ms"):
            ivs = out["intervals"].get(k, {})
            print(f"  {k}: " + "  ".join(f"{p} {v}" + (f" [{ivs[p]['low']:.4g}-{ivs[p]['high']:.4g}]"
                                                       if p in ivs else "") for p, v in out[k].items()))
    return 0


def run(args: argparse.Namespace, catalog: Catalog) -> int:
    if args.command == "simulate":
        return _simulate(args, catalog)
    if args.command == "plan":
        return _plan_serve(args, catalog)
    return _explain_serve(args, catalog)

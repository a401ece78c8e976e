"""The ``fleetwise`` command line: thin shells over the public API.

Commands: ``plan train``, ``explain train``, ``compare train``, ``match train``, ``validate``,
``catalog list|show``. Every user error prints one line ``fleetwise: error: …`` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetwise.catalog.loader import format_validation_error, load_catalog
from fleetwise.cli import compare, render, serve
from fleetwise.cli.args import positive_float, positive_int
from fleetwise.errors import FleetwiseError, SpecError


def _job_args(p: argparse.ArgumentParser, chips: bool = True, hardware: bool = True,
              chips_required: bool = True) -> None:
    p.add_argument("--model", required=True, help="model id (fleetwise catalog list models) or a config.json path")
    if hardware:
        p.add_argument("--hardware", required=True,
                       help="accelerator id; for plan train also a mixed fleet HW:N,HW:N")
    p.add_argument("--system", help="system id (node and network); default: the catalog's system for the chip")
    if chips:
        p.add_argument("--chips", type=positive_int, required=chips_required, help="number of accelerators")
    p.add_argument("--seq-len", type=positive_int, default=4096)
    p.add_argument("--global-batch", type=positive_int, help="sequences per step (default ~4M tokens)")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp8", "fp32", "tf32"])
    p.add_argument("--tokens", type=positive_float, help="tokens of the whole run (for days to train)")
    p.add_argument("--attention-kernel", choices=["flash", "unfused"], default="flash",
                   help="unfused: the score matrix is materialised (stacks without a flash kernel)")
    p.add_argument("--sites", type=positive_int, default=1,
                   help="spread the data-parallel replicas over this many data-centre sites")
    p.add_argument("--site-link-gbit", type=positive_float, help="line rate between sites, Gbit/s")
    p.add_argument("--site-link-rtt-ms", type=float, default=1.0, help="round trip between sites, ms")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--catalog", action="append", default=None, metavar="DIR",
                   help="user catalog folder (repeatable); default $FLEETWISE_CATALOG")


def _plan_args(p: argparse.ArgumentParser) -> None:
    for name in ("tp", "pp", "dp", "cp", "ep", "mbs", "vpp"):
        p.add_argument(f"--{name}", type=positive_int)
    p.add_argument("--recompute", choices=["none", "selective", "full"])
    p.add_argument("--zero", type=int, choices=[0, 1, 2, 3])
    p.add_argument("--sp", dest="sequence_parallel", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--tp-overlap", dest="tp_comm_overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="TP communication overlapped with GEMMs (needs --sp)")
    p.add_argument("--ep-overlap", dest="ep_comm_overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="MoE all-to-all overlapped with another micro-batch")
    p.add_argument("--rank-order", choices=["tp-cp-dp-pp", "tp-cp-pp-dp"],
                   help="which groups share the scale-up domain first")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetwise", description="Plan, explain and validate AI infrastructure.")
    sub = parser.add_subparsers(dest="command", required=True)

    for verb, helptext in (("plan", "search the best plans"), ("explain", "explain one plan"),
                           ("compare", "compare accelerators"), ("match", "match a reference fleet")):
        vp = sub.add_parser(verb, help=helptext)
        vsub = vp.add_subparsers(dest="workload", required=True)
        tp = vsub.add_parser("train", help=f"{helptext} for training")
        if verb == "plan":
            _job_args(tp, chips_required=False)
            _plan_args(tp)
            tp.add_argument("--top", type=positive_int, default=10)
            tp.add_argument("--objective", choices=["time", "energy", "cost", "carbon"], default="time",
                            help="rank plans by step time, or by energy / cost / CO2 per step")
        elif verb == "explain":
            _job_args(tp, chips=False)
            _plan_args(tp)
        elif verb == "compare":
            _job_args(tp, hardware=False)
            tp.add_argument("--hardware", help="accelerator ids, comma-separated")
            tp.add_argument("--systems", help="system ids, comma-separated (each with its chip and network)")
        else:
            _job_args(tp, chips=False, hardware=False)
            tp.add_argument("--ours", required=True, help="our accelerator id")
            tp.add_argument("--theirs", required=True, help="their accelerator and count, HW:N")
        serve.add_workload_parsers(verb, vsub)
        compare.add_parsers(verb, vsub)

    serve.add_simulate_parser(sub)
    vp = sub.add_parser("validate", help="predict published measurements and report the error")
    vp.add_argument("files", nargs="*", type=Path, help="case files (default: the shipped cases)")
    vp.add_argument("--json", action="store_true")
    vp.add_argument("--loso", action="store_true", help="also report leave-one-source-out error")
    vp.add_argument("--catalog", action="append", default=None, metavar="DIR")

    cp = sub.add_parser("catalog", help="list or show catalog entries")
    csub = cp.add_subparsers(dest="action", required=True)
    lp = csub.add_parser("list")
    lp.add_argument("kind", nargs="?", choices=["accelerators", "systems", "fabrics", "models"])
    lp.add_argument("--catalog", action="append", default=None, metavar="DIR")
    sp = csub.add_parser("show")
    sp.add_argument("id")
    sp.add_argument("--catalog", action="append", default=None, metavar="DIR")
    from fleetwise.cli import power

    power.add_parser(sub, _job_args, _plan_args)
    from fleetwise.cli import emit as emit_cli
    from fleetwise.cli import sweep as sweep_cli

    emit_cli.add_parser(sub)
    sweep_cli.add_parser(sub)
    return parser


def _progress(enabled: bool) -> Any:
    if not enabled:
        return None

    def bar(done: int, total: int) -> None:
        width = 30
        frac = done / max(total, 1)
        sys.stderr.write(f"\r  searching [{'#' * int(frac * width):<{width}}] {done:,}/{total:,}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return bar


def _pinned(args: argparse.Namespace) -> dict[str, Any]:
    names = {"mbs": "micro_batch"}
    out = {}
    for k in ("tp", "pp", "dp", "cp", "ep", "mbs", "vpp", "recompute", "zero", "sequence_parallel",
              "tp_comm_overlap", "ep_comm_overlap", "rank_order"):
        v = getattr(args, k, None)
        if v is not None:
            out[names.get(k, k)] = v
    return out


def _common(args: argparse.Namespace) -> dict[str, Any]:
    from fleetwise.catalog.types import SiteLink

    link = None
    if getattr(args, "site_link_gbit", None) is not None:
        try:
            link = SiteLink(gbit_per_s=args.site_link_gbit, rtt_ms=args.site_link_rtt_ms)
        except ValidationError as exc:
            raise SpecError(format_validation_error("--site-link", exc)) from None
    out = {"seq_len": args.seq_len, "global_batch": args.global_batch, "precision": args.precision,
           "tokens": args.tokens}
    if getattr(args, "attention_kernel", "flash") != "flash":
        out["attention_kernel"] = args.attention_kernel
    if getattr(args, "sites", 1) > 1 or link is not None:
        out.update(sites=args.sites, site_link=link)
    return out


def run(args: argparse.Namespace) -> int:
    from fleetwise import api
    from fleetwise.plan import TrainingPlan

    catalog = load_catalog(args.catalog) if getattr(args, "catalog", None) else load_catalog()
    if args.command == "catalog":
        render.catalog(catalog, args)
        return 0
    if args.command in ("emit", "sweep"):
        from fleetwise.cli import emit as emit_cli
        from fleetwise.cli import sweep as sweep_cli

        return emit_cli.run(args, catalog) if args.command == "emit" else sweep_cli.run(args, catalog)
    if args.command in ("compare", "match") and getattr(args, "workload", None) == "serve":
        return compare.run(args, catalog)
    if args.command == "simulate" or getattr(args, "workload", None) == "serve":
        return serve.run(args, catalog)
    if args.command == "validate":
        from fleetwise.validate.runner import bundled_case_files, validate_files

        missing = [f for f in args.files if not f.is_file()]
        if missing:
            raise SpecError(f"{missing[0]}: no such case file")
        report = validate_files(args.files or bundled_case_files(), catalog, loso=args.loso)
        render.validation(report, args.json)
        return 0
    if args.command == "plan" and ":" in args.hardware:
        from fleetwise.search.fleet import parse_fleet

        fleet = {p.accel.id: p.chips for p in parse_fleet(args.hardware, catalog)}
        comparison = api.compare_mixed_training(args.model, fleet, seq_len=args.seq_len,
                                                global_batch=args.global_batch, precision=args.precision,
                                                top=args.top, catalog=catalog)
        render.mixed_training(comparison, args.json)
        return 0
    if args.command == "plan":
        if args.chips is None:
            raise SpecError("--chips is required (or give a mixed fleet as --hardware HW:N,HW:N)")
        show_bar = not args.json and sys.stderr.isatty()
        result = api.plan_training(args.model, args.hardware, args.chips, system=args.system, pinned=_pinned(args),
                                   top=args.top, progress=_progress(show_bar), catalog=catalog,
                                   objective=args.objective, **_common(args))
        render.training_search(result, args.json, args.tokens is not None)
        return 0
    if args.command == "explain":
        fields = _pinned(args)
        try:
            plan = TrainingPlan(**fields)
        except ValidationError as exc:
            raise SpecError(format_validation_error("plan", exc)) from None
        r = api.explain_training(args.model, args.hardware, plan, system=args.system, catalog=catalog,
                                 **_common(args))
        render.plan_result(r, args.json)
        return 0
    if args.command == "power":
        from fleetwise.cli import power

        return power.run(args, catalog, _pinned(args), _common(args))
    if args.command == "compare":
        if not args.hardware and not args.systems:
            raise SpecError("compare train needs --hardware A,B,... or --systems A,B,...")
        hws = [h for h in (args.hardware or "").split(",") if h]
        systems = [x for x in (args.systems or "").split(",") if x] or None
        results = api.compare_training(args.model, hws, args.chips, systems=systems, catalog=catalog,
                                       **_common(args))
        render.comparison(results, args.json)
        return 0
    if args.command == "match":
        hw, _, n = args.theirs.partition(":")
        if not n:
            raise SpecError(f"--theirs must be HW:N, e.g. nvidia_h100_sxm:1024 (got {args.theirs!r})")
        try:
            their_n = positive_int(n)
        except argparse.ArgumentTypeError as exc:
            raise SpecError(f"--theirs: {exc}") from None
        m = api.match_training(args.model, args.ours, hw, their_n, seq_len=args.seq_len,
                               global_batch=args.global_batch, precision=args.precision, catalog=catalog)
        render.match(m, args.json)
        return 0
    raise SpecError(f"unknown command {args.command!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except FleetwiseError as exc:
        print(f"fleetwise: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

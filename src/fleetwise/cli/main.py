"""The ``fleetwise`` command line: it parses flags into a study's inputs, runs it, and renders the study.

Commands: ``plan|explain|compare|match train|serve``, ``power train``, ``simulate``, ``validate``,
``catalog list|show``. ``--json`` prints the study (a file ``explain``, ``simulate`` and ``power`` read back
with ``--plan``). Every flag lands in the study's inputs or is rejected; every user error prints one line
``fleetwise: error: …`` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleetwise.cli import calibrate, compare, serve, server, studies
from fleetwise.cli.args import BoundedArgumentParser, positive_float, positive_int
from fleetwise.errors import FleetwiseError, SpecError


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the study (inputs resolved, results) as JSON")
    p.add_argument("--catalog", action="append", default=None, metavar="DIR",
                   help="user catalog folder (repeatable); default $FLEETWISE_CATALOG")


def _job_args(p: argparse.ArgumentParser, chips: bool = True, hardware: bool = True,
              chips_required: bool = False) -> None:
    p.add_argument("--model", help="model id (fleetwise catalog list models) or a Hugging Face config.json path")
    if hardware:
        p.add_argument("--hardware", help="accelerator id; for plan train also a mixed fleet HW:N,HW:N")
    p.add_argument("--system", help="system id (node and network); default: the catalog's system for the chip")
    if chips:
        p.add_argument("--chips", type=positive_int, help="number of accelerators")
    p.add_argument("--seq-len", type=positive_int, help="tokens per sequence (default 4096)")
    p.add_argument("--global-batch", type=positive_int,
                   help="sequences per step (default ~4M tokens, a multiple of the chip count)")
    p.add_argument("--precision", choices=["bf16", "fp16", "fp8", "fp32", "tf32"], help="compute precision "
                   "(default bf16)")
    p.add_argument("--tokens", type=positive_float, help="tokens of the whole run (for days to train)")
    p.add_argument("--attention-kernel", choices=["flash", "unfused"],
                   help="flash (default), or unfused: the score matrix is materialised (stacks without a flash "
                        "kernel)")
    p.add_argument("--lora-rank", type=positive_int,
                   help="LoRA fine-tune: base weights frozen, rank-r adapters beside every weight matrix "
                        "(default: full training)")
    p.add_argument("--sites", type=positive_int,
                   help="spread the data-parallel replicas over this many data-centre sites (default 1)")
    p.add_argument("--site-link-gbit", type=positive_float, help="line rate between sites, Gbit/s")
    p.add_argument("--site-link-rtt-ms", type=float, help="round trip between sites, ms (default 1; needs "
                   "--site-link-gbit)")
    _json_arg(p)


def _plan_args(p: argparse.ArgumentParser, study_file: bool = False) -> None:
    sizes = {"tp": "tensor-parallel width", "pp": "pipeline stages", "dp": "data-parallel replicas",
             "cp": "context-parallel width", "ep": "expert-parallel width (inside dp)",
             "mbs": "micro-batch size (sequences)", "vpp": "virtual pipeline stages per rank (interleaved 1F1B)"}
    for name, what in sizes.items():
        p.add_argument(f"--{name}", type=positive_int, help=what)
    p.add_argument("--recompute", choices=["none", "selective", "full"], help="activation recomputation")
    p.add_argument("--recompute-frac", dest="recompute_layers_frac", type=positive_float,
                   help="with --recompute full: share of each stage's layers recomputed (0, 1]")
    p.add_argument("--zero", type=int, choices=[0, 1, 2, 3], help="ZeRO stage (optimizer/gradient/weight sharding)")
    p.add_argument("--sp", dest="sequence_parallel", action=argparse.BooleanOptionalAction, default=None,
                   help="sequence parallelism (default: on when tp > 1)")
    p.add_argument("--tp-overlap", dest="tp_comm_overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="TP communication overlapped with GEMMs (needs --sp)")
    p.add_argument("--ep-overlap", dest="ep_comm_overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="MoE all-to-all overlapped with another micro-batch")
    p.add_argument("--rank-order", choices=["tp-cp-dp-pp", "tp-cp-pp-dp"],
                   help="which groups share the scale-up domain first")
    if study_file:
        _study_file_args(p)


def _study_file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", type=Path, metavar="STUDY.json",
                   help="take the job and plan from a study file (what --json prints); flags given override it")
    p.add_argument("--row", type=int, help="which row of the study file (default 0, the best)")


class _Sink:
    """Stands in for the parser of a command this run does not take: every call is accepted and ignored."""

    def __getattr__(self, name: str) -> Any:
        return _Sink()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _Sink()

    def __iter__(self) -> Any:
        return iter(())


class _OnlySubparsers:
    """Wraps the command subparsers so that only ``wanted`` gets its arguments; every other command is
    registered with its name and help alone (``fleetwise --help`` lists them all; building each command's
    arguments costs about 30 ms of a fresh process, most of it argparse's gettext lookups)."""

    def __init__(self, real: Any, wanted: str) -> None:
        self._real, self._wanted = real, wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._wanted:
            return self._real.add_parser(name, **kwargs)
        self._real.add_parser(name, help=kwargs.get("help"), add_help=False)
        return _Sink()


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The command word of ``argv`` ("" when none is given), or None when it is not one of ours (then the
    whole parser is built, so that argparse's error lists every choice)."""
    args = list(sys.argv[1:] if argv is None else argv)
    word = next((a for a in args if not a.startswith("-")), "")
    return word if word in COMMANDS or word == "" else None


COMMANDS = ("plan", "explain", "compare", "match", "simulate", "validate", "catalog", "power", "place",
            "studies", "report", "server", "emit", "sweep", "calibrate")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, just that command's arguments (the others by name and help)."""
    from fleetwise.version import __version__

    parser = BoundedArgumentParser(prog="fleetwise", description="Plan, explain and validate AI infrastructure.")
    parser.add_argument("--version", action="version", version=f"fleetwise {__version__}",
                        help="print the version and exit")
    real_sub = parser.add_subparsers(dest="command", required=True)
    sub: Any = real_sub if only is None else _OnlySubparsers(real_sub, only)

    for verb, helptext in (("plan", "search the best plans"), ("explain", "explain one plan"),
                           ("compare", "compare accelerators"), ("match", "match a reference fleet")):
        vp = sub.add_parser(verb, help=helptext)
        vsub = vp.add_subparsers(dest="workload", required=True)
        tp = vsub.add_parser("train", help=f"{helptext} for training")
        if verb == "plan":
            _job_args(tp)
            _plan_args(tp)
            tp.add_argument("--top", type=positive_int, help="how many plans to list (default 10)")
            tp.add_argument("--objective", choices=["time", "energy", "cost", "carbon"],
                            help="rank plans by step time (default), or by energy / cost / CO2 per step")
            studies.add_output_args(tp)
        elif verb == "explain":
            _job_args(tp, chips=False)
            _plan_args(tp, study_file=True)
        elif verb == "compare":
            _job_args(tp, hardware=False)
            tp.add_argument("--hardware", help="accelerator ids, comma-separated")
            tp.add_argument("--systems", help="system ids, comma-separated (each with its chip and network)")
            tp.add_argument("--top", type=positive_int, help="plans kept per accelerator or system (default 3)")
        else:
            _job_args(tp, chips=False, hardware=False)
            tp.add_argument("--ours", help="our accelerator id (--system: our system)")
            tp.add_argument("--theirs", help="their accelerator and count, HW:N")
            tp.add_argument("--their-system", help="their system id (default: the catalog's for their chip)")
        serve.add_workload_parsers(verb, vsub, _json_arg, _study_file_args)
        compare.add_parsers(verb, vsub, _json_arg)

    serve.add_simulate_parser(sub, _json_arg, _study_file_args)
    vp = sub.add_parser("validate", help="predict published measurements and report the error")
    vp.add_argument("files", nargs="*", type=Path, help="case files (default: the shipped cases)")
    vp.add_argument("--loso", action="store_true", default=None, help="also report leave-one-source-out error")
    _json_arg(vp)

    cp = sub.add_parser("catalog", help="list or show catalog entries")
    csub = cp.add_subparsers(dest="action", required=True)
    lp = csub.add_parser("list", help="list the ids of one kind (or all)")
    lp.add_argument("kind", nargs="?", choices=["accelerators", "systems", "fabrics", "models"],
                    help="which kind (default: all)")
    lp.add_argument("--catalog", action="append", default=None, metavar="DIR", help="user catalog folder")
    sp = csub.add_parser("show", help="show one entry and the file it came from")
    sp.add_argument("id", help="an id of any kind")
    sp.add_argument("--catalog", action="append", default=None, metavar="DIR", help="user catalog folder")
    from fleetwise.cli import power

    power.add_parser(sub, _job_args, _plan_args)
    from fleetwise.cli import place

    place.add_parser(sub)
    studies.add_parsers(sub)
    server.add_parser(sub)
    from fleetwise.cli import emit as emit_cli
    from fleetwise.cli import sweep as sweep_cli

    emit_cli.add_parser(sub)
    sweep_cli.add_parser(sub)
    calibrate.add_parser(sub)
    return parser


def _progress(args: argparse.Namespace, label: str) -> Any:
    """A progress bar on stderr when it is a terminal and the output is not JSON (fleetwise.progress)."""
    from fleetwise.progress import progress_bar

    return None if getattr(args, "json", False) else progress_bar(label)


def load_catalog(folders: list[str] | None = None) -> Any:
    """The catalog (bundled, then ``folders`` or ``$FLEETWISE_CATALOG``); imported here, not for ``--help``."""
    from fleetwise.catalog.loader import load_catalog as load

    return load(folders) if folders else load()


def run(args: argparse.Namespace) -> int:
    # heavy modules (numpy, pydantic, the catalog) load here, so that --help stays instant
    from fleetwise import api
    from fleetwise.cli import display, render
    from fleetwise.cli.request import study_request

    if args.command in (*studies.COMMANDS, "server"):
        return studies.run(args) if args.command != "server" else server.run(args)
    catalog = load_catalog(args.catalog) if getattr(args, "catalog", None) else load_catalog()
    if args.command == "catalog":
        render.catalog(catalog, args)
        return 0
    if args.command == "calibrate":
        return calibrate.run(args, catalog)
    if args.command in ("emit", "sweep"):
        from fleetwise.cli import emit as emit_cli
        from fleetwise.cli import sweep as sweep_cli

        return emit_cli.run(args, catalog) if args.command == "emit" else sweep_cli.run(args, catalog)
    if args.command == "place":
        from fleetwise.cli import place

        return place.run(args, catalog)
    kind, inputs = study_request(args)
    labels = {"plan_train": "searching", "plan_train_mixed": "searching fleets", "compare_train": "comparing",
              "match_train": "matching", "validate": "validating"}
    progress = _progress(args, labels[kind]) if kind in labels else None
    study = api.run_study(kind, inputs, catalog=catalog, progress=progress)
    if args.json:
        print(study.to_json())
    else:
        display.study(study)
    if getattr(args, "plot", None) is not None or getattr(args, "save", None) is not None:
        studies.write_outputs(study, args.plot, args.save)
    invalid = study.results.get("invalid") if kind == "validate" else None
    if invalid:  # the valid cases ran and were reported; the run still fails, naming the first bad file
        more = f" (and {len(invalid) - 1} more)" if len(invalid) > 1 else ""
        raise SpecError(f"{invalid[0]['message'].splitlines()[0][:240]}{more}; the valid cases ran")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(only=_command_of(argv))
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

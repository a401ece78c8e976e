"""``fleetwise emit --plan STUDY.json --target T [--row N] [--out DIR]``: launch files for a plan of a study.

Thin shell over ``fleetwise.emit.emit``: prints the launch files (or writes them under ``--out``), then what the
framework cannot express and the nearest plan's predicted cost. ``--json`` prints the emission as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetwise.catalog.loader import Catalog


# fleetwise.emit.TARGETS, spelled out so that --help does not import the emitters (a test keeps them equal)
TARGETS = ("megatron", "mindspeed-llm", "vllm", "vllm-ascend", "sglang", "lws")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("emit", help="launch files (Megatron, MindSpeed-LLM, vLLM, vllm-ascend, SGLang, LWS) for a plan")
    p.add_argument("--plan", required=True, type=Path, metavar="STUDY.json",
                   help="a study file (plan train/serve --json); its plan rows are emitted")
    p.add_argument("--target", required=True, choices=TARGETS, help="the framework to launch the plan with")
    p.add_argument("--row", type=int, default=0, help="which plan row of the study (default 0, the best)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the files here (default: print them)")
    p.add_argument("--model-path", help="serving: the weights path or hub id the engine loads (default /models/<id>)")
    p.add_argument("--engine", choices=["vllm", "vllm-ascend", "sglang"],
                   help="lws: the engine inside the pods (default: vllm, or vllm-ascend on Ascend)")
    p.add_argument("--launcher", choices=["torchrun", "msrun"],
                   help="mindspeed-llm: torchrun (PyTorch backend, default) or msrun (MindSpore backend)")
    p.add_argument("--json", action="store_true", help="print the emission (plan, adjustments, commands) as JSON")
    p.add_argument("--catalog", action="append", default=None, metavar="DIR",
                   help="user catalog folder (repeatable); default $FLEETWISE_CATALOG")


def run(args: argparse.Namespace, catalog: Catalog) -> int:
    from fleetwise.emit import emit
    from fleetwise.study import Study

    study = Study.load(args.plan)
    e = emit(study, args.target, row=args.row, catalog=catalog, model_path=args.model_path, engine=args.engine,
             launcher=args.launcher)
    written = e.write(args.out) if args.out else []
    if args.json:
        print(json.dumps({**e.to_dict(), "written": [str(w) for w in written]}, indent=2, sort_keys=True))
        return 0
    if not written:
        for name, text in e.files.items():
            print(f"# ==> {name} <==")
            print(text)
    else:
        for w in written:
            print(f"wrote {w}")
    for a in e.adjustments:
        print(f"cannot express {a.line()}", file=sys.stderr)
    return 0

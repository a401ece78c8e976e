"""``fleetwise calibrate bench|fit|compare``: measure a device, fit its chip's efficiencies, see what changed.

``bench`` writes a device profile (measured-efficiency conventions), ``fit`` turns one into a user catalog
folder (``efficiency.yaml`` + ``residuals.txt``) with the fitter of the shipped table, and ``compare`` runs that
chip's validation cases without and with the folder. Thin shells over ``fleetwise.calibrate``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetwise.calibrate.compare import Comparison
    from fleetwise.catalog.loader import Catalog


def _catalog_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--catalog", action="append", default=None, metavar="DIR",
                   help=f"user catalog folder (repeatable; default $FLEETWISE_CATALOG): {what}")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="micro-benchmark a device, fit its efficiencies, compare the validation")
    csub = p.add_subparsers(dest="action", required=True)
    b = csub.add_parser("bench", help="run micro-benchmarks and write a device profile")
    b.add_argument("--hardware", required=True, help="accelerator id the profile is for (its catalog peaks)")
    b.add_argument("--out", required=True, type=Path, metavar="PROFILE.yaml", help="where to write the profile")
    b.add_argument("--backend", choices=["numpy", "torch"], default="numpy",
                   help="numpy: the host CPU (default); torch: a CUDA/NPU device (pip install 'fleetwise[calibrate]')")
    b.add_argument("--device", choices=["cuda", "npu", "cpu"],
                   help="device the torch backend measures (default cuda); numpy measures the cpu only")
    b.add_argument("--quick", action="store_true", help="small shapes and few repeats: seconds, not minutes")
    _catalog_arg(b, "where --hardware is looked up")
    f = csub.add_parser("fit", help="fit one chip's efficiencies on a profile into a user catalog folder")
    f.add_argument("profile", type=Path, help="a profile written by 'fleetwise calibrate bench'")
    f.add_argument("--hardware", required=True, help="accelerator id the profile must be of")
    f.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="user catalog folder to write (efficiency.yaml, residuals.txt); use it with --catalog DIR")
    _catalog_arg(f, "where --hardware is looked up")
    c = csub.add_parser("compare", help="validation cases of the folder's chips, before -> after the folder")
    c.add_argument("folder", type=Path, metavar="DIR", help="a folder written by 'fleetwise calibrate fit'")
    c.add_argument("files", nargs="*", type=Path, help="case files (default: the shipped cases)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    _catalog_arg(c, "layered under DIR in both runs")


def run(args: argparse.Namespace, catalog: Catalog) -> int:
    if args.action == "bench":
        from fleetwise.calibrate.bench import run_bench
        from fleetwise.calibrate.profile import check_writable, dump_profile

        check_writable(args.out)
        doc = run_bench(catalog.accelerator(args.hardware, "--hardware"), args.backend, args.device, args.quick,
                        say=lambda line: print(line, file=sys.stderr))
        dump_profile(doc, args.out)
        print(f"wrote {args.out}: " + ", ".join(f"{len(doc[s])} {s}" for s in
                                                ("gemm", "attention", "memory_bandwidth", "collectives", "overheads")))
        for why in doc["profile"]["skipped"]:
            print(f"skipped {why}")
        return 0
    if args.action == "fit":
        from fleetwise.calibrate.device import fit_device, write_catalog
        from fleetwise.calibrate.profile import load_profile

        acc = catalog.accelerator(args.hardware, "--hardware")
        fit = fit_device(load_profile(args.profile, acc.id), acc, str(args.profile))
        for path in write_catalog(fit, args.out, args.profile):
            print(f"wrote {path}")
        print("changed against the bundled table:\n  " + ("\n  ".join(fit.changed) or "nothing"))
        return 0
    from fleetwise.calibrate.compare import compare_folder

    comp = compare_folder(args.folder, args.files or None, args.catalog)
    if args.json:
        print(json.dumps(comp.to_json(), indent=2, sort_keys=True))
    else:
        _print_comparison(comp)
    return 0


def _print_comparison(comp: Comparison) -> None:
    print(f"validation of {', '.join(comp.chips)} without -> with {comp.folder} "
          f"({comp.changed} of {len(comp.rows)} predicted metrics changed)")
    print(f"{'case':>40s} {'metric':>22s} {'measured':>10s} {'before':>10s} {'after':>10s}  error before -> after")
    for r in comp.rows:
        print(f"{r.case_id[:40]:>40s} {r.metric[:22]:>22s} {r.measured:10.4g} {r.before:10.4g} {r.after:10.4g}  "
              f"{r.error_before:+7.1%} -> {r.error_after:+7.1%}")
    print("\nsummary (median |error|, within 10%, within 25%: before -> after):")
    for g, b in comp.summary_before.items():
        a = comp.summary_after.get(g) or b
        print(f"  {g:9s} n={b['count']:3d}  median {b['median_ape']:.1%} -> {a['median_ape']:.1%}  "
              f"within 10% {b['within_10']:.0%} -> {a['within_10']:.0%}  "
              f"within 25% {b['within_25']:.0%} -> {a['within_25']:.0%}  worst {b['worst']['id']} "
              f"({b['worst']['error']:+.0%}) -> {a['worst']['id']} ({a['worst']['error']:+.0%})")
    for e in comp.errors:
        print(f"  not predicted: {e['id']}: {e['after'] or e['before']}")

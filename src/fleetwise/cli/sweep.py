"""``fleetwise sweep GRID.yaml``: run every scenario of a grid, write Parquet, print a summary (and plots).

Thin shell over ``fleetwise.sweep``: the grid is validated in full first (one error, no work done), then run on
the chosen backend with a progress bar; a rerun after a kill computes only the missing scenarios.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetwise.catalog.loader import Catalog


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run a grid of scenarios (models x hardware x chips x workloads x objectives)")
    p.add_argument("grid", type=Path, metavar="GRID.yaml", help="the grid: axes to multiply, or listed scenarios")
    p.add_argument("--out", type=Path, help="results Parquet file (default: GRID.parquet next to the grid)")
    p.add_argument("--backend", choices=["process", "ray", "serial"], default="process",
                   help="process: a local process pool (default); ray: Ray tasks (fleetwise[ray]); serial: inline")
    p.add_argument("--address", help="Ray cluster address (with --backend ray; default: start a local one)")
    p.add_argument("--workers", type=int, help="pool processes / local Ray CPUs (default: the CPUs available)")
    p.add_argument("--batch", type=int, help="scenarios per task (default: adaptive)")
    p.add_argument("--yes", action="store_true", help="run grids above the scenario limit")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write plots here (needs fleetwise[plot])")
    p.add_argument("--ours", help="with --plots: hardware id for 'how many of ours match N of theirs'")
    p.add_argument("--theirs", help="with --plots: the hardware id to match")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of the summary")
    p.add_argument("--catalog", action="append", default=None, metavar="DIR",
                   help="user catalog folder (repeatable); default $FLEETWISE_CATALOG")


def run(args: argparse.Namespace, catalog: Catalog) -> int:
    from fleetwise.errors import SpecError
    from fleetwise.sweep import load_grid, plot, run_sweep, summary
    from fleetwise.sweep.run import progress_bar

    if (args.ours or args.theirs) and not (args.plots and args.ours and args.theirs):
        raise SpecError("--ours and --theirs go together, with --plots DIR")
    if args.workers is not None and args.workers < 1:
        raise SpecError(f"--workers must be >= 1 (got {args.workers})")
    if args.batch is not None and args.batch < 1:
        raise SpecError(f"--batch must be >= 1 (got {args.batch})")
    grid = load_grid(args.grid, catalog, yes=args.yes)
    out = args.out or args.grid.with_suffix(".parquet")
    show = sys.stderr.isatty() if args.progress is None else args.progress
    res = run_sweep(grid, out, backend=args.backend, workers=args.workers, address=args.address,
                    batch_size=args.batch, progress=progress_bar() if show else None)
    if args.json:
        print(json.dumps(res.rows, indent=1, sort_keys=True))
    else:
        print(summary(res.rows))
        print(f"\n{res.computed:,} computed, {res.reused:,} reused from a previous run, in {res.seconds:.1f} s "
              f"({res.rate:,.1f} scenarios/s on {res.workers} {res.backend} worker(s)); rows in {res.out}")
    if args.plots:
        for p in plot(res.rows, args.plots, args.ours, args.theirs):
            print(f"wrote {p}", file=sys.stderr)
    return 0

"""``fleetwise studies list|show|export|delete``, ``fleetwise report STUDY.json --html/--plot`` and the
``--save``/``--plot`` outputs of ``plan train``: stored studies and reports from the command line.

Entry points: ``add_parsers(sub)``, ``add_output_args(parser)``, ``run(args)``, ``write_outputs``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fleetwise.errors import SpecError
from fleetwise.study import STUDY_KINDS, Study

COMMANDS = ("studies", "report")


def add_output_args(p: argparse.ArgumentParser) -> None:
    """``--plot FILE.png|svg`` and ``--save [DB]`` on a command that produces a study."""
    p.add_argument("--plot", type=Path, metavar="FILE", help="write the breakdown and Pareto plot (.png or .svg; "
                   "needs the plot extra)")
    p.add_argument("--save", nargs="?", const="", default=None, metavar="DB",
                   help="store the study in the study database (default $FLEETWISE_DB or the user's data folder)")


def add_parsers(sub: Any) -> None:
    sp = sub.add_parser("studies", help="list, show, export or delete stored studies")
    ssub = sp.add_subparsers(dest="action", required=True)
    lp = ssub.add_parser("list", help="stored studies, newest first")
    lp.add_argument("query", nargs="?", default="", help="match the id prefix, kind, model or hardware")
    lp.add_argument("--kind", choices=STUDY_KINDS, help="only studies of this kind")
    lp.add_argument("--limit", type=int, default=50, help="at most this many studies (1..10000)")
    for name, helptext in (("show", "print a stored study as JSON"), ("delete", "delete a stored study")):
        x = ssub.add_parser(name, help=helptext)
        x.add_argument("id", help="the study id (fleetwise studies list)")
    ep = ssub.add_parser("export", help="write a stored study as JSON, CSV or an HTML report")
    ep.add_argument("id", help="the study id (fleetwise studies list)")
    ep.add_argument("--format", choices=["json", "csv", "html"], default="json", help="export format")
    ep.add_argument("--output", "-o", type=Path, help="file to write (default: standard output)")
    for x in (lp, *ssub.choices.values()):
        if "--db" not in x._option_string_actions:
            x.add_argument("--db", help="database URL or SQLite file (default $FLEETWISE_DB or the data folder)")
    rp = sub.add_parser("report", help="an HTML report or a plot of a study file")
    rp.add_argument("study", type=Path, help="a study JSON file (what --json writes)")
    rp.add_argument("--html", type=Path, metavar="FILE", help="write a self-contained HTML report")
    rp.add_argument("--csv", type=Path, metavar="FILE", help="write the rows as CSV")
    rp.add_argument("--plot", type=Path, metavar="FILE", help="write a PNG or SVG plot")
    rp.add_argument("--save", nargs="?", const="", default=None, metavar="DB", help="store the study in the database")


def _store(db: str | None) -> Any:
    try:
        from fleetwise.service.store import Store
    except ImportError:
        raise SpecError("stored studies need the web extra: pip install 'fleetwise[web]'") from None
    return Store.open(db or None)


def write_outputs(study: Study, plot: Path | None, save: str | None, html: Path | None = None,
                  csv: Path | None = None) -> None:
    """Write the requested files and store the study; one line on stderr for each."""
    if plot is not None:
        from fleetwise.report.plots import save_plot

        print(f"plot: {save_plot(study, plot)}", file=sys.stderr)
    if html is not None:
        from fleetwise.report.html import study_html

        html.write_text(study_html(study), encoding="utf-8")
        print(f"report: {html}", file=sys.stderr)
    if csv is not None:
        from fleetwise.report.tables import study_csv

        csv.write_text(study_csv(study), encoding="utf-8")
        print(f"csv: {csv}", file=sys.stderr)
    if save is not None:
        store = _store(save)
        new = store.put(study)
        print(f"study {study.id} {'stored' if new else 'already stored'} in {_masked(store.url)}", file=sys.stderr)
        store.close()


def _masked(url: str) -> str:
    from fleetwise.service.store import masked

    return masked(url)


def run(args: argparse.Namespace) -> int:
    if args.command == "report":
        if not (args.html or args.plot or args.csv or args.save is not None):
            raise SpecError("report needs at least one of --html FILE, --plot FILE, --csv FILE, --save")
        write_outputs(Study.load(args.study), args.plot, args.save, args.html, args.csv)
        return 0
    store = _store(args.db)
    try:
        if args.action == "list":
            if not 1 <= args.limit <= 10_000:
                raise SpecError(f"--limit must be 1..10000 (got {args.limit})")
            found = store.search(args.query, args.kind, args.limit)
            print(f"{'id':<17} {'kind':<14} {'created (UTC)':<20} {'rows':>4}  what")
            for s in found:
                print(f"{s.id:<17} {s.kind:<14} {s.created_at[:19].replace('T', ' '):<20} {s.n_rows:>4}  {s.title}")
            if not found:
                print("(no stored studies match)", file=sys.stderr)
        elif args.action == "show":
            print(store.get(args.id).to_json())
        elif args.action == "delete":
            if not store.delete(args.id):
                raise SpecError(f"no stored study has id {args.id[:40]!r}")
            print(f"deleted {args.id}", file=sys.stderr)
        else:
            _export(store.get(args.id), args.format, args.output)
    finally:
        store.close()
    return 0


def _export(study: Study, fmt: str, output: Path | None) -> None:
    if fmt == "json":
        text = study.to_json() + "\n"
    elif fmt == "csv":
        from fleetwise.report.tables import study_csv

        text = study_csv(study)
    else:
        from fleetwise.report.html import study_html

        text = study_html(study)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)


def dump(value: Any) -> str:
    return json.dumps(value, indent=2)

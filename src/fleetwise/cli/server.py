"""``fleetwise server [--host --port --db]``: the HTTP service and its page (needs the web extra).

Beyond loopback, write endpoints need the token in ``$FLEETWISE_API_TOKEN``; without one a random token is
made and printed once. Entry points: ``add_parser(sub)``, ``run(args)``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

from fleetwise.cli.args import positive_float, positive_int
from fleetwise.errors import SpecError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("server", help="serve the HTTP API, the stored studies and the web page")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--db", help="database URL (sqlite:///FILE, postgresql+psycopg://USER@HOST/DB) or SQLite file; "
                   "default $FLEETWISE_DB or studies.db in the user's data folder")
    p.add_argument("--catalog", action="append", default=None, metavar="DIR", help="user catalog folder")
    p.add_argument("--max-running", type=positive_int, default=2, help="studies computed at once")
    p.add_argument("--max-waiting", type=positive_int, default=64, help="studies waiting for a worker")
    p.add_argument("--time-budget-s", type=positive_float, default=120.0, help="seconds one study may compute")
    p.add_argument("--max-candidates", type=positive_int, default=20_000_000, help="largest search per study")
    p.add_argument("--max-request-kib", type=positive_int, default=256, help="largest request body, KiB")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow cross-site requests from this origin (repeatable; default none)")


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from fleetwise.service.app import Settings, create_app, is_loopback
        from fleetwise.service.jobs import Limits
    except ImportError:
        raise SpecError("fleetwise server needs the web extra: pip install 'fleetwise[web]'") from None
    if not 0 <= args.port <= 65535:
        raise SpecError(f"--port must be 0..65535 (got {args.port})")
    token = os.environ.get("FLEETWISE_API_TOKEN") or None
    if token is None and not is_loopback(args.host):
        token = secrets.token_urlsafe(24)
        print(f"fleetwise: listening beyond loopback; API token for writes: {token}", file=sys.stderr)
    limits = Limits(max_request_bytes=args.max_request_kib * 1024, max_running=args.max_running,
                    max_waiting=args.max_waiting, time_budget_s=args.time_budget_s,
                    max_candidates=args.max_candidates)
    settings = Settings(db=args.db, host=args.host, token=token, cors_origins=tuple(args.cors_origin),
                        limits=limits, catalog_dirs=tuple(args.catalog or ()))
    app = create_app(settings)
    from fleetwise.service.store import masked

    print(f"fleetwise: serving http://{args.host}:{args.port}/ (studies in {masked(app.state.store.url)})",
          file=sys.stderr, flush=True)
    # keep-alive longer than clients' idle gaps, so a reused connection is not closed under a request
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, timeout_keep_alive=75)
    return 0

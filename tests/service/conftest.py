"""Service fixtures: a study database on SQLite and (when FLEETWISE_TEST_PG names a server) PostgreSQL,
and the app served by uvicorn on a loopback port in a thread."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service tests need the web extra (in the test extra)")

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from fleetwise.catalog import Catalog  # noqa: E402
from fleetwise.service.app import Settings, create_app  # noqa: E402
from fleetwise.service.jobs import Limits  # noqa: E402
from fleetwise.service.store import Store  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PG = os.environ.get("FLEETWISE_TEST_PG")
SMALL_PLAN = {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "chips": 8, "seq_len": 2048, "top": 3,
              "pinned": {"tp": 1, "pp": 1, "recompute": "none", "zero": 1}}


def explain_inputs(mbs: int, zero: int = 1) -> dict[str, Any]:
    return {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm", "seq_len": 2048,
            "plan": {"dp": 8, "micro_batch": mbs, "zero": zero}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A fresh, empty database on the test PostgreSQL server (dropped afterwards)."""
    if not PG:
        pytest.skip("FLEETWISE_TEST_PG is not set (.ci/run starts a PostgreSQL server and sets it)")
    import psycopg
    import sqlalchemy as sa

    url = sa.make_url(PG)
    name = f"fw_test_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.db'}"
    return str(request.getfixturevalue("pg_url"))


def serve(store: Store, catalog: Catalog, **settings: Any) -> ThreadServer:
    limits = settings.pop("limits", Limits())
    return ThreadServer(create_app(Settings(limits=limits, **settings), store=store, catalog=catalog))


@pytest.fixture()
def service(db_url: str, catalog: Catalog) -> Iterator[httpx.Client]:
    """A client of the service over ``db_url`` (both backends)."""
    store = Store.open(db_url)
    with serve(store, catalog) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        yield client
    store.close()


@pytest.fixture(scope="module")
def sqlite_service(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Iterator[httpx.Client]:
    """One SQLite-backed service shared by a module's read-only tests."""
    store = Store.open(str(tmp_path_factory.mktemp("svc") / "studies.db"))
    with serve(store, catalog) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        yield client
    store.close()


def start_server_process(db: str, port: int, *extra: str, log: Path | None = None) -> Any:
    """``fleetwise server`` in its own process (for kill and load tests); returns the Popen once it answers.
    Its stderr goes to ``log`` (default: a file next to a SQLite database, else discarded)."""
    import subprocess
    import tempfile

    log = log or Path(tempfile.gettempdir()) / f"fleetwise-server-{port}.log"
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "fleetwise.cli.main", "server", "--port", str(port), "--db",
                                 db, *extra], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
    proc.kill()
    proc.wait()
    raise AssertionError("server did not answer within 60 s")

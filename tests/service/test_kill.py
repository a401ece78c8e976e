"""The server is SIGKILLed while it writes studies: on restart the database opens cleanly and every study
is whole (digest and content hash check) or absent, and every study the server acknowledged is there."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from pathlib import Path

import httpx

from fleetwise.service.store import Store
from tests.service.conftest import free_port, start_server_process

PLANS = [{"dp": 8, "micro_batch": m, "zero": z, "recompute": r}
         for m, z, r in itertools.product((1, 2, 4, 8, 16, 32), (0, 1, 2, 3), ("none", "selective", "full"))]


def test_kill_while_writing_leaves_every_study_whole_or_absent(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    port = free_port()
    proc = start_server_process(db, port, "--max-running", "2", log=tmp_path / "server.log")
    acked: list[str] = []
    sent = itertools.count()
    stop = threading.Event()

    def writer() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            while not stop.is_set():
                i = next(sent)
                if i >= len(PLANS):
                    return
                body = {"kind": "explain_train", "inputs": {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm",
                                                            "seq_len": 2048, "plan": PLANS[i]}}
                try:
                    r = c.post("/api/studies", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 201:
                    acked.append(r.json()["id"])

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-stream: six writers have requests in flight
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert len(acked) >= 8

    store = Store.open(db)  # opens (and migrates) cleanly
    assert store.integrity_check() == "ok"
    stored = store.ids()
    for sid in stored:
        assert store.get(sid).id == sid  # whole: digest and content hash verified
    assert set(acked) <= set(stored)
    store.close()

    proc = start_server_process(db, port, log=tmp_path / "server.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.get("/api/health").json()["studies"] == len(stored)
            assert len(c.get("/api/studies", params={"limit": 500}).json()["studies"]) == len(stored)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

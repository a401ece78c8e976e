"""Every request limit answers with its 4xx and a message naming the limit; writes need the token when one
is set; CORS is closed unless an origin is allowed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fleetwise.catalog import Catalog
from fleetwise.errors import SpecError
from fleetwise.service.app import Settings, create_app
from fleetwise.service.jobs import Limits
from fleetwise.service.store import Store
from tests.service.conftest import SMALL_PLAN, serve

PLAN = {"kind": "plan_train", "inputs": SMALL_PLAN}


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(str(tmp_path / "s.db"))
    yield s
    s.close()


def _limited(store: Store, catalog: Catalog, **limits: float) -> tuple[object, httpx.Client]:
    srv = serve(store, catalog, limits=Limits(**limits))  # type: ignore[arg-type]
    srv.__enter__()
    return srv, httpx.Client(base_url=srv.url, timeout=60)


def test_request_size_limit_is_413(store: Store, catalog: Catalog) -> None:
    srv, c = _limited(store, catalog, max_request_bytes=1000)
    try:
        big = {"kind": "plan_train", "inputs": {**SMALL_PLAN, "model": "x" * 2000}}
        r = c.post("/api/studies", json=big)
        assert r.status_code == 413 and r.json()["limit"] == "request_size"
        assert "request-size limit" in r.json()["error"] and "1,000 bytes" in r.json()["error"]
        chunks = (b'{"kind": "plan_train", "inputs": {"model": "' + b"y" * 600 + b'"', b' ' * 600 + b"}}")
        r = c.post("/api/studies", content=iter(chunks), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["limit"] == "request_size"
        assert "y" * 100 not in r.text  # the body is never echoed
    finally:
        c.close()
        srv.__exit__()  # type: ignore[attr-defined]


def test_search_size_and_time_budget_are_422(store: Store, catalog: Catalog) -> None:
    srv, c = _limited(store, catalog, max_candidates=100)
    try:
        r = c.post("/api/studies", json=PLAN)
        assert r.status_code == 422 and r.json()["limit"] == "search_size"
        assert "search-size limit" in r.json()["error"] and "the limit is 100" in r.json()["error"]
    finally:
        c.close()
        srv.__exit__()  # type: ignore[attr-defined]
    srv, c = _limited(store, catalog, time_budget_s=1e-4)
    try:
        r = c.post("/api/studies", json=PLAN)
        assert r.status_code == 422 and r.json()["limit"] == "time_budget"
        assert "time budget" in r.json()["error"]
        assert c.get("/api/health").json()["studies"] == 0  # nothing half-done was stored
    finally:
        c.close()
        srv.__exit__()  # type: ignore[attr-defined]


def test_concurrency_limit_is_429(store: Store, catalog: Catalog) -> None:
    srv, c = _limited(store, catalog, max_running=1, max_waiting=0)
    try:
        first = c.post("/api/jobs", json={"kind": "plan_train", "inputs": {**SMALL_PLAN, "pinned": {}}})
        assert first.status_code == 202
        r = c.post("/api/studies", json=PLAN)
        assert r.status_code == 429 and r.json()["limit"] == "concurrency"
        assert "concurrency limit: 1 studies are computing and 0 are waiting" in r.json()["error"]
        deadline = time.monotonic() + 60
        while c.get(f"/api/jobs/{first.json()['id']}").json()["state"] != "done":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.post("/api/studies", json=PLAN).status_code == 201  # a free worker takes it again
    finally:
        c.close()
        srv.__exit__()  # type: ignore[attr-defined]


def test_listing_query_compare_and_body_limits(sqlite_service: httpx.Client) -> None:
    checks = [(sqlite_service.get("/api/studies", params={"limit": 100_000}), 422, "list_size"),
              (sqlite_service.get("/api/studies", params={"q": "x" * 5000}), 422, "query_size"),
              (sqlite_service.get("/api/compare", params={"ids": "0123456789abcdef"}), 422, "compare_size")]
    for r, status, limit in checks:
        assert r.status_code == status and r.json()["limit"] == limit, r.text
        assert "limit" in r.json()["error"]
    r = sqlite_service.post("/api/studies", content=b"kind=plan_train", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    r = sqlite_service.post("/api/studies", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
    r = sqlite_service.post("/api/studies", content=b"[" * 100_000, headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_writes_need_the_token_when_one_is_set(store: Store, catalog: Catalog) -> None:
    with serve(store, catalog, token="s3cret-token", host="0.0.0.0") as srv, httpx.Client(base_url=srv.url,
                                                                                         timeout=60) as c:
        r = c.post("/api/studies", json=PLAN)
        assert r.status_code == 401 and "token" in r.json()["error"]
        r = c.post("/api/studies", json=PLAN, headers={"authorization": "Bearer guess-Zq7"})
        assert r.status_code == 401 and "guess-Zq7" not in r.text
        r = c.post("/api/studies", json=PLAN, headers={"authorization": "Bearer s3cret-token"})
        assert r.status_code == 201
        sid = r.json()["id"]
        assert c.get(f"/api/studies/{sid}").status_code == 200  # reads stay open
        assert c.delete(f"/api/studies/{sid}").status_code == 401
        assert c.delete(f"/api/studies/{sid}", headers={"x-api-token": "s3cret-token"}).status_code == 204
        assert c.get("/api/kinds").json()["token_required"] is True


def test_listening_beyond_loopback_without_a_token_is_refused(store: Store, catalog: Catalog) -> None:
    with pytest.raises(SpecError, match="needs an API token"):
        create_app(Settings(host="0.0.0.0"), store=store, catalog=catalog)


def test_cors_is_closed_by_default(sqlite_service: httpx.Client) -> None:
    pre = sqlite_service.options("/api/studies", headers={"origin": "https://evil.example",
                                                          "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    r = sqlite_service.get("/api/health", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_parallel_requests_wait_for_a_worker_instead_of_failing(store: Store, catalog: Catalog) -> None:
    srv, c = _limited(store, catalog, max_running=1, max_waiting=8)
    try:
        codes: list[int] = []

        def post(mbs: int) -> None:
            body = {"kind": "explain_train", "inputs": {"model": "gpt3-125m", "hardware": "nvidia_h100_sxm",
                                                        "seq_len": 2048, "plan": {"dp": 8, "micro_batch": mbs}}}
            codes.append(c.post("/api/studies", json=body).status_code)

        threads = [threading.Thread(target=post, args=(m,)) for m in (1, 2, 4, 8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [201] * 4
    finally:
        c.close()
        srv.__exit__()  # type: ignore[attr-defined]

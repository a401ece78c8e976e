"""The FastAPI app: create any study kind through ``api.run_study``, store, list, compare and export studies,
follow long searches as jobs, browse the catalog, and serve the page. Entry points: ``create_app``, ``Settings``.

Every error is JSON ``{"error": message, "limit": name-or-null}`` with a 4xx code (503 when the database is
down); messages are bounded and never carry a token, a password or a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException

from fleetwise.catalog.loader import Catalog, format_validation_error, load_catalog
from fleetwise.errors import FleetwiseError, SpecError
from fleetwise.service.jobs import MAX_KEPT_JOBS, Jobs, LimitError, Limits
from fleetwise.service.store import NotFoundError, Store, StoreError, StudySummary, check_study_id, masked
from fleetwise.study import STUDY_KINDS, Study

log = logging.getLogger("fleetwise.service")
UI = Path(__file__).resolve().parent / "ui"
JOB_ID = re.compile(r"[0-9a-f]{32}")
CATALOG_KINDS = ("accelerators", "systems", "fabrics", "models")
MAX_ERROR_CHARS = 2000
MAX_QUERY_CHARS = 200
MAX_COMPARE = 8
EXAMPLES: dict[str, dict[str, Any]] = {
    "plan_train": {"model": "llama3-8b", "hardware": "nvidia_h100_sxm", "chips": 64, "top": 10},
    "explain_train": {"model": "llama3-70b", "hardware": "nvidia_h100_sxm",
                      "plan": {"tp": 8, "pp": 4, "dp": 2, "vpp": 5}},
}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"),
    # vega compiles its expressions with Function(): 'unsafe-eval' for scripts; nothing loads from elsewhere
    (b"content-security-policy", b"default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
                                 b"'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
                                 b"frame-ancestors 'none'"),
]


@dataclass(frozen=True)
class Settings:
    """How the service runs.

    Args:
        db: database URL or SQLite path (default: ``$FLEETWISE_DB`` or the user's data folder).
        host: the address it listens on; beyond loopback, write endpoints need ``token``.
        token: API token for write endpoints (POST, DELETE); None leaves them open (loopback only).
        cors_origins: origins allowed cross-site requests (none by default: CORS closed).
        limits: bounds on work per request.
        catalog_dirs: user catalog folders on top of the bundled catalog.
    """

    db: str | None = None
    host: str = "127.0.0.1"
    token: str | None = None
    cors_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    catalog_dirs: tuple[str, ...] = ()


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class StudyRequest(BaseModel):
    """POST /api/studies and /api/jobs: which question, its inputs (as for ``api.run_study``), store it or not."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str
    inputs: dict[str, Any] = {}
    save: bool = True


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def error(status: int, message: str, limit: str | None = None) -> JSONResponse:
    return JSONResponse({"error": _bounded(message), "limit": limit}, status_code=status)


class _SecurityHeaders:
    """Pure ASGI middleware adding the security headers to every HTTP response."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[MutableMapping[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, refusing bodies over ``limit`` bytes before reading them whole."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, f"send the body as application/json (got {ctype[:60]!r})")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise LimitError("request_size", f"request-size limit: the body is {int(declared):,} bytes, the limit "
                         f"is {limit:,} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise LimitError("request_size", f"request-size limit: the body is over {limit:,} bytes", 413)
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, f"the body is not valid JSON ({str(exc)[:80]})") from None


def create_app(settings: Settings | None = None, *, store: Store | None = None,
               catalog: Catalog | None = None) -> FastAPI:
    """The service app. ``store`` and ``catalog`` default to ``Store.open(settings.db)`` and the bundled
    catalog plus ``settings.catalog_dirs``."""
    from fleetwise import api

    cfg = settings or Settings()
    if not is_loopback(cfg.host) and not cfg.token:
        raise SpecError(f"listening on {cfg.host[:60]} (beyond loopback) needs an API token for write endpoints: "
                        "set FLEETWISE_API_TOKEN")
    db = store or Store.open(cfg.db)
    cat = catalog or (load_catalog(list(cfg.catalog_dirs)) if cfg.catalog_dirs else load_catalog())
    limits = cfg.limits

    def run(kind: str, inputs: Mapping[str, Any], progress: Callable[[int, int], None]) -> Study:
        return api.run_study(kind, inputs, catalog=cat, progress=progress)

    jobs = Jobs(limits, run, db.put)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.shutdown()
        if store is None:
            db.close()

    app = FastAPI(title="fleetwise", version=_version(), docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.store, app.state.jobs, app.state.settings = db, jobs, cfg
    app.add_middleware(_SecurityHeaders)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_methods=["GET", "POST",
                           "DELETE"], allow_headers=["authorization", "content-type", "x-api-token"])

    @app.exception_handler(FleetwiseError)
    async def _fleetwise_error(_request: Request, exc: FleetwiseError) -> JSONResponse:
        if isinstance(exc, LimitError):
            return error(exc.status, str(exc), exc.limit)
        if isinstance(exc, NotFoundError):
            return error(404, str(exc))
        if isinstance(exc, StoreError):
            log.error("%s", exc)
            return error(503, "the study database is unavailable; try again later")
        return error(422, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return error(422, f"{where[:100]}: {str(first.get('msg', 'invalid'))[:200]}")

    @app.exception_handler(Exception)
    async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error", exc_info=exc)
        return error(500, "internal error (logged on the server)")

    def require_token(request: Request) -> None:
        if cfg.token is None:
            return
        given = request.headers.get("x-api-token") or request.headers.get("authorization", "").removeprefix(
            "Bearer ").strip()
        if not hmac.compare_digest(given.encode(), cfg.token.encode()):
            raise HTTPException(401, "this server needs its API token for writes: send 'Authorization: Bearer "
                                     "TOKEN' (the token was not given or is wrong)")

    async def study_request(request: Request) -> StudyRequest:
        data = await read_json(request, limits.max_request_bytes)
        try:
            req = StudyRequest.model_validate(data)
        except ValidationError as exc:
            raise SpecError(format_validation_error("request", exc)) from None
        if req.kind not in STUDY_KINDS:
            raise SpecError(f"kind must be one of {', '.join(STUDY_KINDS)} (got {req.kind[:40]!r})")
        return req

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "studies": db.count(), "database": db.engine.dialect.name, "version": _version()}

    @app.get("/api/kinds")
    def kinds() -> dict[str, Any]:
        return {"kinds": [{"kind": k, "example": EXAMPLES.get(k)} for k in STUDY_KINDS],
                "limits": asdict(limits), "token_required": cfg.token is not None}

    @app.post("/api/studies", status_code=201, dependencies=[Depends(require_token)])
    async def create_study(request: Request) -> JSONResponse:
        req = await study_request(request)
        _job, fut = jobs.submit(req.kind, req.inputs, req.save)
        study = await asyncio.wrap_future(fut)
        return JSONResponse(study.to_dict(), status_code=201, headers={"location": f"/api/studies/{study.id}"})

    @app.post("/api/jobs", status_code=202, dependencies=[Depends(require_token)])
    async def create_job(request: Request) -> JSONResponse:
        req = await study_request(request)
        job, fut = jobs.submit(req.kind, req.inputs, req.save)
        fut.add_done_callback(lambda f: None if f.cancelled() else f.exception())  # the outcome lives on the job
        return JSONResponse(job.to_dict(), status_code=202, headers={"location": f"/api/jobs/{job.id}"})

    def find_job(job_id: str) -> Any:
        job = jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise NotFoundError(f"no job has id {job_id[:40]!r} (the last {MAX_KEPT_JOBS} jobs are kept)")
        return job

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return dict(find_job(job_id).to_dict())

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str) -> StreamingResponse:
        job = find_job(job_id)

        async def stream() -> Any:
            deadline = time.monotonic() + limits.time_budget_s + 600
            while True:
                state = job.to_dict()
                yield f"data: {json.dumps(state)}\n\n"
                if state["state"] in ("done", "failed") or time.monotonic() > deadline:
                    return
                await asyncio.sleep(0.25)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    @app.get("/api/studies")
    def list_studies(q: str = "", kind: str | None = None, limit: int = Query(50, ge=1),
                     offset: int = Query(0, ge=0)) -> dict[str, Any]:
        if limit > limits.max_list:
            raise LimitError("list_size", f"list limit: at most {limits.max_list} studies per request "
                             f"(got limit={limit})", 422)
        if len(q) > MAX_QUERY_CHARS:
            raise LimitError("query_size", f"query limit: the search text is at most {MAX_QUERY_CHARS} "
                             f"characters (got {len(q):,})", 422)
        if kind is not None and kind not in STUDY_KINDS:
            raise SpecError(f"kind must be one of {', '.join(STUDY_KINDS)} (got {kind[:40]!r})")
        found: list[StudySummary] = db.search(q, kind, limit, offset)
        return {"studies": [asdict(s) for s in found], "limit": limit, "offset": offset}

    cache = _Views(db)

    @app.get("/api/studies/{study_id}")
    def get_study(study_id: str) -> Response:
        return Response(db.body(study_id), media_type="application/json")

    @app.delete("/api/studies/{study_id}", status_code=204, dependencies=[Depends(require_token)])
    def delete_study(study_id: str) -> Response:
        if not db.delete(study_id):
            raise NotFoundError(f"no stored study has id {study_id!r}")
        return Response(status_code=204)

    @app.get("/api/studies/{study_id}/charts")
    def study_charts(study_id: str) -> Response:
        return Response(cache.view(study_id, "charts"), media_type="application/json")

    @app.get("/api/studies/{study_id}/export/{fmt}")
    def export(study_id: str, fmt: str) -> Response:
        if fmt not in EXPORTS:
            raise NotFoundError(f"export format must be json, csv or html (got {fmt[:20]!r})")
        name = f"fleetwise-{study_id}.{fmt}"
        return Response(cache.view(study_id, fmt), media_type=EXPORTS[fmt],
                        headers={"content-disposition": f'attachment; filename="{name}"'})

    @app.get("/api/compare")
    def compare(ids: str = Query(..., max_length=20 * MAX_COMPARE)) -> dict[str, Any]:
        from fleetwise.report.charts import best_summary, comparison_spec
        from fleetwise.service.store import title_of

        wanted = [check_study_id(i.strip()) for i in ids.split(",") if i.strip()]
        if not 2 <= len(wanted) <= MAX_COMPARE:
            raise LimitError("compare_size", f"compare limit: give 2 to {MAX_COMPARE} study ids (got "
                             f"{len(wanted)})", 422)
        items = []
        for sid in dict.fromkeys(wanted):
            s = db.get(sid)
            items.append({"id": s.id, "kind": s.kind, "title": title_of(s), "inputs": dict(s.inputs),
                          "best": best_summary(s)})
        return {"studies": items, "spec": comparison_spec(items)}

    @app.get("/api/catalog")
    def catalog_index() -> dict[str, Any]:
        return {kind: [{"id": i, "name": getattr(spec, "name", "") or ""} for i, spec in sorted(cat.kind(kind).items())]
                for kind in CATALOG_KINDS}

    @app.get("/api/catalog/{kind}/{entry_id}")
    def catalog_entry(kind: str, entry_id: str) -> dict[str, Any]:
        if kind not in CATALOG_KINDS:
            raise NotFoundError(f"catalog kind must be one of {', '.join(CATALOG_KINDS)} (got {kind[:40]!r})")
        spec = cat.kind(kind).get(entry_id)
        if spec is None:
            raise NotFoundError(f"no {kind[:-1]} has id {entry_id[:60]!r} in the catalog")
        return {"kind": kind, "id": entry_id, "spec": spec.model_dump(mode="json", exclude_none=True)}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(UI / "index.html", media_type="text/html")

    app.mount("/ui", StaticFiles(directory=UI), name="ui")
    app.mount("/assets", StaticFiles(directory=str(resources.files("fleetwise.report").joinpath("assets"))),
              name="assets")

    log.info("fleetwise service: database %s", masked(db.url))
    return app


EXPORTS = {"json": "application/json", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}


class _Views:
    """Rendered views of stored studies (charts JSON, CSV, HTML, pretty JSON), kept for the most recently used
    studies and keyed by digest, so a replaced study is rendered again. Bounded: ``MAX_CHARS`` in all; HTML
    reports (each ~0.9 MB with the inlined libraries) are rendered on every request instead."""

    MAX_CHARS = 4 * 2**20

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._views: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._chars = 0

    def view(self, study_id: str, what: str) -> str:
        key = (study_id, self.store.digest(study_id), what)
        with self._lock:
            if key in self._views:
                self._views.move_to_end(key)
                return self._views[key]
        text = _render(self.store.get(study_id), what)
        with self._lock:
            if key not in self._views and what != "html" and len(text) <= self.MAX_CHARS // 8:
                self._views[key] = text
                self._chars += len(text)
            while self._chars > self.MAX_CHARS:
                self._chars -= len(self._views.popitem(last=False)[1])
        return text


def _render(study: Study, what: str) -> str:
    if what == "json":
        return study.to_json() + "\n"
    if what == "csv":
        from fleetwise.report.tables import study_csv

        return study_csv(study)
    if what == "html":
        from fleetwise.report.html import study_html

        return study_html(study)
    from fleetwise.report.charts import study_charts
    from fleetwise.report.tables import plan_table

    return json.dumps({**study_charts(study), "table": plan_table(study), "id": study.id, "kind": study.kind,
                       "inputs": dict(study.inputs)}, allow_nan=False)


def _version() -> str:
    from fleetwise.version import __version__

    return __version__

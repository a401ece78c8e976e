"""Stored studies: one table through SQLAlchemy 2, SQLite by default (WAL) or PostgreSQL; schema by Alembic.

A study is one row holding its whole JSON and the digest of it, written in one transaction, so a study is
stored whole or not at all, and a read checks the digest and the content hash before returning it.
Entry points: ``Store.open``, ``default_db_url``, ``Store.put/get/delete/list``, ``check_study_id``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fleetwise.errors import FleetwiseError, SpecError
from fleetwise.study import Study

STUDY_ID = re.compile(r"[0-9a-f]{16}")
MAX_TITLE = 200
MIGRATIONS = Path(__file__).resolve().parent / "migrations"

metadata = sa.MetaData()
studies = sa.Table(
    "studies", metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, index=True),
    sa.Column("title", sa.String(MAX_TITLE), nullable=False),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)


class StoreError(FleetwiseError):
    """The study database cannot be opened or read (the message never carries a password)."""


class NotFoundError(FleetwiseError):
    """No stored study has this id (or the id is not one)."""


def check_study_id(value: str) -> str:
    """Return ``value`` if it is a study id (16 lowercase hex digits); raise ``NotFoundError`` otherwise."""
    if not isinstance(value, str) or not STUDY_ID.fullmatch(value):
        shown = value[:20] + "..." if isinstance(value, str) and len(value) > 20 else value
        raise NotFoundError(f"not a study id: {shown!r} (a study id is 16 hex digits)")
    return value


def data_dir() -> Path:
    """The user's data folder: $FLEETWISE_DATA_DIR, else $XDG_DATA_HOME/fleetwise, else ~/.local/share/fleetwise."""
    if os.environ.get("FLEETWISE_DATA_DIR"):
        return Path(os.environ["FLEETWISE_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fleetwise"


def default_db_url() -> str:
    """$FLEETWISE_DB, else a SQLite file ``studies.db`` in the user's data folder."""
    return os.environ.get("FLEETWISE_DB") or f"sqlite:///{data_dir() / 'studies.db'}"


def masked(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "<unparseable database URL>"


def _normalise(db: str) -> str:
    """A URL (sqlite:///…, postgresql+psycopg://…) or a plain path to a SQLite file."""
    if "://" not in db:
        return f"sqlite:///{Path(db).expanduser()}"
    try:
        url = sa.make_url(db)
    except (SQLAlchemyError, ValueError):
        raise SpecError("--db: not a database URL (use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB)") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise SpecError(f"--db: backend must be sqlite or postgresql (got {url.get_backend_name()!r:.40})")
    if url.get_backend_name() == "postgresql" and url.drivername != "postgresql+psycopg":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")   # readers never block the writer; a crash leaves the last commit
    cur.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: durable across a process kill, atomic across power loss
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def title_of(study: Study) -> str:
    """A one-line summary of the question: model, hardware or systems, chip count."""
    parts = [str(study.inputs[k]) for k in ("model", "hardware", "systems", "ours", "theirs", "chips", "trace")
             if study.inputs.get(k) not in (None, "", [])]
    return " · ".join(parts)[:MAX_TITLE] or study.kind


@dataclass(frozen=True, slots=True)
class StudySummary:
    """One line of the study list."""

    id: str
    kind: str
    title: str
    version: str
    created_at: str
    n_rows: int
    size_bytes: int


class Store:
    """Stored studies in one database (create with ``Store.open``)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    @classmethod
    def open(cls, db: str | None = None, *, migrate: bool = True) -> Store:
        """Open (and migrate to the current schema) the database at ``db`` (URL or SQLite path; default
        ``default_db_url()``)."""
        url = _normalise(db or default_db_url())
        kw: dict[str, Any] = {"pool_pre_ping": not url.startswith("sqlite")}  # a server may drop idle connections
        if url.startswith("sqlite"):
            path = sa.make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            kw["connect_args"] = {"check_same_thread": False, "timeout": 30}
        try:
            engine = sa.create_engine(url, **kw)
            if url.startswith("sqlite"):
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            store = cls(engine, url)
            if migrate:
                store.migrate()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open the study database {masked(url)}: {_reason(exc)}") from None
        return store

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision shipped in the package."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StoreError(f"study database {masked(self.url)}: {_reason(exc)}") from None

    def put(self, study: Study) -> bool:
        """Store ``study`` in one transaction; False when a study with its id is already stored (kept as is)."""
        body = study.to_json(indent=None)
        row = {"id": study.id, "kind": study.kind, "title": title_of(study), "version": study.version[:40],
               "created_at": datetime.now(UTC), "n_rows": len(study.rows), "size_bytes": len(body.encode()),
               "digest": hashlib.sha256(body.encode()).hexdigest(), "body": body}
        try:
            with self.engine.begin() as conn:
                conn.execute(studies.insert().values(**row))
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:
            raise StoreError(f"study database {masked(self.url)}: {_reason(exc)}") from None
        return True

    def digest(self, study_id: str) -> str:
        """The digest of the stored study's JSON (changes only when the study is replaced)."""
        check_study_id(study_id)
        with self._errors(), self.engine.connect() as conn:
            found = conn.execute(sa.select(studies.c.digest).where(studies.c.id == study_id)).scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"no stored study has id {study_id!r}")
        return str(found)

    def body(self, study_id: str) -> str:
        """The stored study's JSON text, checked against its digest (so it is the whole study)."""
        check_study_id(study_id)
        with self._errors(), self.engine.connect() as conn:
            row = conn.execute(sa.select(studies.c.body, studies.c.digest).where(studies.c.id == study_id)).first()
        if row is None:
            raise NotFoundError(f"no stored study has id {study_id!r}")
        body, digest = row
        if hashlib.sha256(body.encode()).hexdigest() != digest:
            raise StoreError(f"stored study {study_id} fails its digest check (the database was edited)")
        return str(body)

    def get(self, study_id: str) -> Study:
        """The stored study; ``NotFoundError`` when none has this id, ``StoreError`` when it fails its digest."""
        study = Study.from_json(self.body(study_id), f"stored study {study_id}")
        if study.id != study_id:
            raise StoreError(f"stored study {study_id} holds a study with id {study.id}")
        return study

    def delete(self, study_id: str) -> bool:
        check_study_id(study_id)
        with self._errors(), self.engine.begin() as conn:
            n = conn.execute(studies.delete().where(studies.c.id == study_id)).rowcount
        return bool(n)

    def search(self, q: str = "", kind: str | None = None, limit: int = 50, offset: int = 0) -> list[StudySummary]:
        """Stored studies, newest first; ``q`` matches the id prefix, the kind or the title (case-insensitive)."""
        cols = [studies.c[k] for k in ("id", "kind", "title", "version", "created_at", "n_rows", "size_bytes")]
        stmt = sa.select(*cols).order_by(studies.c.created_at.desc(), studies.c.id).limit(limit).offset(offset)
        if kind:
            stmt = stmt.where(studies.c.kind == kind)
        for word in q.lower().split()[:8]:
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(sa.or_(sa.func.lower(studies.c.title).like(pattern, escape="\\"),
                                     studies.c.kind.like(pattern, escape="\\"),
                                     studies.c.id.like(word.replace("%", "") + "%")))
        with self._errors(), self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [StudySummary(r.id, r.kind, r.title, r.version, _iso(r.created_at), r.n_rows, r.size_bytes)
                for r in rows]

    def count(self) -> int:
        with self._errors(), self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(studies)).scalar_one())

    def ids(self) -> list[str]:
        with self._errors(), self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(studies.c.id).order_by(studies.c.id))]

    def integrity_check(self) -> str:
        """``ok`` when the database file is sound (SQLite ``PRAGMA integrity_check``; PostgreSQL: a query)."""
        with self._errors(), self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar_one())
            conn.execute(sa.select(sa.func.count()).select_from(studies)).scalar_one()
            return "ok"


def _iso(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite keeps no zone; the store writes UTC
        value = value.replace(tzinfo=UTC)
    return value.isoformat(timespec="seconds")


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's first line, bounded (never the statement or its parameters)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:200]

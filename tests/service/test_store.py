"""The study store on SQLite and PostgreSQL: Alembic schema, whole-study rows checked on read, safe errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from fleetwise.errors import SpecError
from fleetwise.service.store import NotFoundError, Store, StoreError, check_study_id, default_db_url
from fleetwise.study import Study


def _study(n: int) -> Study:
    return Study("plan_train", {"model": "m", "hardware": "h", "chips": n},
                 {"rows": [{"step_time_s": 1.0 / n, "plan": {"tp": 1, "pp": 1, "dp": n}}]})


def test_schema_comes_from_the_shipped_migrations(db_url: str) -> None:
    store = Store.open(db_url)
    Store.open(db_url).close()  # opening again (upgrade to head) changes nothing
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0001"
    assert store.integrity_check() == "ok"
    store.close()


def test_studies_round_trip_and_search(db_url: str) -> None:
    store = Store.open(db_url)
    a, b = _study(8), _study(16)
    assert store.put(a) and store.put(b) and not store.put(a)
    assert store.get(a.id) == a
    assert {s.id for s in store.search("m · h")} == {a.id, b.id}
    assert [s.id for s in store.search(b.id[:6])] == [b.id]
    assert store.search("100%_") == []  # LIKE wildcards are matched literally
    assert store.delete(a.id) and not store.delete(a.id)
    with pytest.raises(NotFoundError):
        store.get(a.id)
    store.close()


def test_an_edited_row_fails_its_digest_check(db_url: str) -> None:
    store = Store.open(db_url)
    s = _study(4)
    store.put(s)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE studies SET body = replace(body, '0.25', '0.5')"))
    with pytest.raises(StoreError, match="digest"):
        store.get(s.id)
    store.close()


def test_ids_are_checked_before_the_database_is_touched() -> None:
    for bad in ("../../x", "0123456789ABCDEF", "0123456789abcde", "'; DROP TABLE studies; --", "0" * 17):
        with pytest.raises(NotFoundError, match="not a study id"):
            check_study_id(bad)


def test_errors_never_show_the_password() -> None:
    with pytest.raises(StoreError) as err:
        Store.open("postgresql+psycopg://user:hunter2-secret@127.0.0.1:1/db")
    assert "hunter2-secret" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(SpecError, match="sqlite or postgresql"):
        Store.open("mysql://u:p@h/db")


def test_default_database_is_a_file_in_the_user_data_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FLEETWISE_DB", raising=False)
    monkeypatch.setenv("FLEETWISE_DATA_DIR", str(tmp_path / "data"))
    assert default_db_url() == f"sqlite:///{tmp_path / 'data' / 'studies.db'}"
    store = Store.open()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    store.close()
    assert (tmp_path / "data" / "studies.db").is_file()
    monkeypatch.setenv("FLEETWISE_DB", f"sqlite:///{tmp_path / 'other.db'}")
    assert default_db_url().endswith("other.db")

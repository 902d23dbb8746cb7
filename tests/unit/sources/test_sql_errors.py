"""A SQL source's failures, classified: retry what waiting can fix, fail the rest at once.

Real errors from real databases (SQLite files here, the PostgreSQL test server in the
``postgres`` tests): a server that refuses or times out, a lock that is not granted,
a statement cancelled by its timeout are :class:`SourceUnavailable` (retried); a
syntax error, a missing table or column, bad data and an undefined connection are a
:class:`SourceError` that is not retryable (the source DAG fails at once).
"""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from cva_tasks.settings import Settings
from cva_tasks.sources.base import (
    Interval,
    Source,
    SourceError,
    SourceUnavailable,
    SqlEntity,
)

INTERVAL = Interval.for_day(date(2025, 11, 28))
WINDOW = "WHERE updated_at >= :start AND updated_at < :end"
GOOD_QUERY = f"SELECT id, updated_at FROM orders {WINDOW}"


def identity(frame, interval):
    return frame


def extract(query: str, conn_id: str = "cva_probe_shop"):
    entity = SqlEntity("transactions", "probe.transactions", query, identity)
    source = Source("probe", "probe", (entity,), date(2024, 1, 1), conn_id=conn_id)
    return entity.extract(source, INTERVAL, Settings.from_env({}))


@pytest.fixture
def shop(tmp_path, monkeypatch):
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER, updated_at TEXT)")
        conn.execute("INSERT INTO orders VALUES (1, '2025-11-28 10:00:00')")
    monkeypatch.setenv("AIRFLOW_CONN_CVA_PROBE_SHOP", f"sqlite:///{db}")
    return db


def test_the_good_query_reads_its_rows(shop):
    assert extract(GOOD_QUERY)["id"].tolist() == [1]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"SELECT id, updated_at FROM ordres {WINDOW}", "no such table"),
        (f"SELECT idd, updated_at FROM orders {WINDOW}", "no such col"),
        (f"SELEC id, updated_at FROM orders {WINDOW}", "syntax error"),
    ],
    ids=["missing table", "missing column", "syntax"],
)
def test_a_broken_query_on_sqlite_fails_at_once(shop, query, message):
    with pytest.raises(SourceError, match=message) as info:
        extract(query)
    assert not info.value.retryable, f"{type(info.value).__name__} would be retried"
    assert "probe.transactions" in str(info.value) and "cva_probe_shop" in str(info.value)


def test_a_locked_sqlite_database_is_retried(shop):
    holder = sqlite3.connect(shop)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        waiting = sqlite3.connect(shop, timeout=0.05)
        with pytest.raises(sqlite3.OperationalError, match="locked") as info:
            waiting.execute("SELECT * FROM orders").fetchall()
        waiting.close()
    finally:
        holder.rollback()
        holder.close()
    from cva_tasks.sources.base import sql_failure

    failure = sql_failure(info.value, "probe.transactions")
    assert isinstance(failure, SourceUnavailable) and failure.retryable


def test_a_database_file_that_cannot_be_opened_is_retried(monkeypatch, tmp_path):
    # A file on a mount that is not there (yet) may be there on the next try.
    monkeypatch.setenv("AIRFLOW_CONN_CVA_PROBE_SHOP", f"sqlite:///{tmp_path}/absent/shop.db")
    with pytest.raises(SourceUnavailable, match="unable to open"):
        extract(GOOD_QUERY)


def test_an_undefined_connection_fails_at_once(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CVA_PROBE_SHOP", raising=False)
    with pytest.raises(SourceError, match="AIRFLOW_CONN_CVA_PROBE_SHOP") as info:
        extract(GOOD_QUERY)
    assert not info.value.retryable


def test_a_connection_of_an_unsupported_type_fails_at_once(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CVA_PROBE_SHOP", "mssql://user:s3cret@host/db")
    with pytest.raises(SourceError, match="unsupported connection type") as info:
        extract(GOOD_QUERY)
    assert not info.value.retryable
    assert "s3cret" not in str(info.value)


# --- PostgreSQL ----------------------------------------------------------------------


@pytest.fixture
def pg_shop(pg_schema, monkeypatch):
    import sqlalchemy as sa

    url, airflow_uri, _schema = pg_schema
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY, updated_at TIMESTAMP)"))
        conn.execute(sa.text("INSERT INTO orders VALUES (1, '2025-11-28 10:00:00')"))
    monkeypatch.setenv("AIRFLOW_CONN_CVA_PROBE_SHOP", airflow_uri)
    yield engine, airflow_uri
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"SELECT id, updated_at FROM ordres {WINDOW}", "ordres"),
        (f"SELECT idd, updated_at FROM orders {WINDOW}", "idd"),
        (f"SELEC id, updated_at FROM orders {WINDOW}", "syntax"),
        (f"SELECT id / 0, updated_at FROM orders {WINDOW}", "zero"),
    ],
    ids=["missing table", "missing column", "syntax", "data error"],
)
def test_a_broken_query_on_postgres_fails_at_once(pg_shop, query, message):
    with pytest.raises(SourceError, match=message) as info:
        extract(query)
    assert not info.value.retryable


@pytest.mark.postgres
def test_a_refused_connection_is_retried(monkeypatch):
    # Port 1 on the loopback refuses at once.
    monkeypatch.setenv("AIRFLOW_CONN_CVA_PROBE_SHOP", "postgres://cva:s3cret@127.0.0.1:1/shop")
    with pytest.raises(SourceUnavailable, match="refused") as info:
        extract(GOOD_QUERY)
    assert "s3cret" not in str(info.value)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("setting", "query", "message"),
    [
        ("lock_timeout", GOOD_QUERY, "lock timeout"),
        ("statement_timeout", "SELECT pg_sleep(2), :start, :end", "statement timeout"),
    ],
)
def test_a_lock_or_statement_timeout_is_retried(pg_shop, monkeypatch, setting, query, message):
    import sqlalchemy as sa

    engine, airflow_uri = pg_shop
    monkeypatch.setenv("AIRFLOW_CONN_CVA_PROBE_SHOP", f"{airflow_uri}%20-c{setting}%3D100")
    with engine.connect() as holder:
        holder.execute(sa.text("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(SourceUnavailable, match=message):
            extract(query)
        holder.rollback()

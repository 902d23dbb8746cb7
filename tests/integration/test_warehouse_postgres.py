"""The warehouse on a real PostgreSQL: reloads, failures mid-load, killed loaders.

customer_scores: one row per customer per as-of date, key (as_of_date, customer_id).
Each test gets its own schema (``pg_schema``); the warehouse finds it through the
connection's ``search_path`` option, as a deployment would.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from cva_tasks.warehouse import load
from cva_tasks.warehouse.backends import PostgresWarehouse, WarehouseUnavailable, get_warehouse
from cva_tasks.warehouse.migrations import MIGRATIONS, Migration, add_columns, migrate
from cva_tasks.warehouse.sample import sample_rows as _sample
from cva_tasks.warehouse.schema import TABLES, Column

pytestmark = pytest.mark.postgres

DAY = date(2025, 12, 31)
OTHER_DAY = DAY - timedelta(days=1)
SPEC = TABLES["customer_scores"]
BATCH = 500  # small CSV batches so a 3,000-row COPY has several to fail between


@pytest.fixture
def warehouse(pg_schema, monkeypatch) -> PostgresWarehouse:
    _, airflow_uri, _ = pg_schema
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", airflow_uri)
    found = get_warehouse(batch_rows=BATCH)
    assert isinstance(found, PostgresWarehouse)
    found.migrate()
    return found


def rows(day: date, n: int, seed: int) -> pa.Table:
    return _sample(SPEC, day, n, seed=seed)


def query(warehouse: PostgresWarehouse, sql: str, params=None) -> list[tuple]:
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.commit()
        conn.close()


ALL_TABLES = sorted([*TABLES, "schema_migrations"])


def tables(warehouse: PostgresWarehouse) -> list[str]:
    return [
        r[0]
        for r in query(
            warehouse,
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
        )
    ]


def locks_held(warehouse: PostgresWarehouse, settle_s: float = 15.0) -> int:
    """Advisory locks held in the database by sessions other than the asking one.

    Tests in other workers take short-lived advisory locks in the same database while
    they load their own schemas; a lock left behind by a failed load stays, so the
    count is polled until it is 0 or ``settle_s`` has passed.
    """
    import time

    deadline = time.monotonic() + settle_s
    while True:
        held = query(
            warehouse,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND pid <> pg_backend_pid()",
        )[0][0]
        if held == 0 or time.monotonic() > deadline:
            return held
        time.sleep(0.2)


def loaded(warehouse: PostgresWarehouse, day: date | None = None) -> pa.Table:
    return warehouse.read_table("customer_scores", day)


def terminate(warehouse: PostgresWarehouse, pid: int) -> None:
    assert query(warehouse, "SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]


# --- schema -------------------------------------------------------------------------


def test_migration_creates_v1_in_the_connection_schema_once(warehouse, pg_schema):
    _, _, schema_name = pg_schema
    columns = query(
        warehouse,
        "SELECT column_name, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'customer_scores' ORDER BY ordinal_position",
        (schema_name,),
    )
    assert [c[0] for c in columns] == SPEC.column_names
    assert {c[0] for c in columns if c[1] == "NO"} == {
        "as_of_date",
        "customer_id",
        "run_id",
        "loaded_at",
    }
    key = query(
        warehouse,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'customer_scores'::regclass "
        "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
    )
    assert [k[0] for k in key] == ["as_of_date", "customer_id"]
    assert migrate(warehouse) == []
    assert warehouse.applied_versions() == [m.version for m in MIGRATIONS]


def test_added_column_keeps_rows_and_is_loaded(warehouse, monkeypatch):
    warehouse.replace_partition("customer_scores", rows(DAY, 100, 1), DAY, "run-1")
    version = MIGRATIONS[-1].version + 1
    monkeypatch.setitem(
        TABLES, "customer_scores", SPEC.with_columns(Column("cluster", "SMALLINT", since=version))
    )
    extra = Migration(version, "customer_scores.cluster", add_columns("customer_scores", "cluster"))
    assert migrate(warehouse, [*MIGRATIONS, extra]) == [version]
    kept = loaded(warehouse, DAY)
    assert kept.num_rows == 100 and kept["cluster"].null_count == 100

    new = _sample(TABLES["customer_scores"], OTHER_DAY, 40, seed=2)
    assert warehouse.replace_partition("customer_scores", new, OTHER_DAY, "run-2") == 40
    assert loaded(warehouse, OTHER_DAY)["cluster"].to_pylist() == new["cluster"].to_pylist()


# --- (a) reloads ---------------------------------------------------------------------------


def test_reload_replaces_exactly_the_day_and_reruns_are_identical(warehouse):
    warehouse.replace_partition("customer_scores", rows(OTHER_DAY, 2000, 1), OTHER_DAY, "run-0")
    warehouse.replace_partition("customer_scores", rows(DAY, 3000, 2), DAY, "run-1")
    other_before = loaded(warehouse, OTHER_DAY)

    second = rows(DAY, 2500, 3)
    assert warehouse.replace_partition("customer_scores", second, DAY, "run-2") == 2500
    day = loaded(warehouse, DAY)
    assert day.drop_columns(["run_id", "loaded_at"]).equals(second)
    assert set(day["run_id"].to_pylist()) == {"run-2"}
    assert len(set(day["loaded_at"].to_pylist())) == 1
    assert loaded(warehouse, OTHER_DAY).equals(other_before)

    assert warehouse.replace_partition("customer_scores", second, DAY, "run-2") == 2500
    again = loaded(warehouse, DAY)
    assert again.drop_columns(["loaded_at"]).equals(day.drop_columns(["loaded_at"]))
    assert query(
        warehouse, "SELECT count(*), count(DISTINCT (as_of_date, customer_id)) FROM customer_scores"
    ) == [(4500, 4500)]
    assert tables(warehouse) == ALL_TABLES, "no staging table is left behind"


def test_values_survive_the_csv_copy_exactly(warehouse):
    base = rows(DAY, 6, 1)
    tricky_text = ["plain", "", None, 'quote " and , comma', "two\nlines", "Zürich ✓ \\N"]
    doubles = [0.1, -0.0, 1e-300, float("inf"), float("-inf"), float("nan")]
    stamps = [
        datetime(2025, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
        None,
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2025, 6, 1, 12, tzinfo=UTC),
        datetime(2025, 3, 30, 1, 30, tzinfo=UTC),  # a DST change in Europe
        datetime(2000, 1, 1, tzinfo=UTC),
    ]
    table = (
        base.set_column(2, "country", pa.array(tricky_text))
        .set_column(3, "recency_days", pa.array(doubles))
        .set_column(9, "last_order_at", pa.array(stamps, pa.timestamp("us", tz="UTC")))
    )
    warehouse.replace_partition("customer_scores", table, DAY, "run-1")
    back = loaded(warehouse, DAY)
    assert back["country"].to_pylist() == tricky_text
    assert back["last_order_at"].to_pylist() == stamps
    got = back["recency_days"].to_pylist()
    assert got[:5] == doubles[:5] and math.isnan(got[5])
    same = ["customer_id", "frequency", "monetary_value", "r_score", "rfm_cell", "segment"]
    assert back.select(same).equals(table.select(same))


# --- (b) the warehouse goes away mid-load --------------------------------------------------


def _state_is(warehouse: PostgresWarehouse, before: pa.Table) -> None:
    """The day has exactly its previous rows and the load left nothing behind."""
    assert loaded(warehouse, DAY).equals(before)
    assert tables(warehouse) == ALL_TABLES, "no staging table is left behind"


def test_server_gone_during_copy_keeps_the_day_and_rerun_completes(warehouse, monkeypatch):
    warehouse.replace_partition("customer_scores", rows(DAY, 3000, 1), DAY, "run-1")
    before = loaded(warehouse, DAY)
    seen = []

    def kill_mid_copy(step, conn=None, rows_sent=0, **context):
        if step == "copying" and rows_sent == 2 * BATCH:  # two batches sent, more to come
            seen.append(rows_sent)
            terminate(warehouse, conn.get_backend_pid())

    monkeypatch.setattr(load, "_reached", kill_mid_copy)
    new = rows(DAY, 3000, 2)
    with pytest.raises(WarehouseUnavailable) as info:
        warehouse.replace_partition("customer_scores", new, DAY, "run-2")
    assert seen == [2 * BATCH]
    assert "connection 'cva_warehouse'" in str(info.value)
    assert "customer_scores as_of_date=2025-12-31" in str(info.value)
    _state_is(warehouse, before)

    monkeypatch.undo()
    assert warehouse.replace_partition("customer_scores", new, DAY, "run-2") == 3000
    assert loaded(warehouse, DAY).drop_columns(["run_id", "loaded_at"]).equals(new)


@pytest.mark.parametrize("step", ["deleted", "copied"])
def test_server_gone_before_commit_keeps_the_day(warehouse, monkeypatch, step):
    """``deleted``: the day's rows deleted; ``copied``: COPY done too; no COMMIT yet."""
    warehouse.replace_partition("customer_scores", rows(DAY, 3000, 1), DAY, "run-1")
    before = loaded(warehouse, DAY)

    def kill(reached, conn=None, **context):
        if reached == step:
            terminate(warehouse, conn.get_backend_pid())

    monkeypatch.setattr(load, "_reached", kill)
    new = rows(DAY, 2000, 2)
    with pytest.raises(WarehouseUnavailable):
        warehouse.replace_partition("customer_scores", new, DAY, "run-2")
    _state_is(warehouse, before)
    monkeypatch.undo()
    assert warehouse.replace_partition("customer_scores", new, DAY, "run-2") == 2000
    assert loaded(warehouse, DAY).drop_columns(["run_id", "loaded_at"]).equals(new)


@pytest.mark.parametrize("where", ["deleted", "copying", "copied"])
def test_failure_injected_before_commit_keeps_the_day(warehouse, monkeypatch, where):
    """``deleted``: after DELETE; ``copying``: the CSV stream fails mid-COPY (second
    batch); ``copied``: after COPY, before COMMIT."""
    warehouse.replace_partition("customer_scores", rows(DAY, 1000, 1), DAY, "run-1")
    before = loaded(warehouse, DAY)

    def fail(step, rows_sent=0, **context):
        if step == where and rows_sent in (0, 2 * BATCH):
            raise RuntimeError(f"injected at {step}")

    monkeypatch.setattr(load, "_reached", fail)
    with pytest.raises(RuntimeError, match=f"injected at {where}"):
        warehouse.replace_partition("customer_scores", rows(DAY, 1500, 2), DAY, "run-2")
    _state_is(warehouse, before)
    assert locks_held(warehouse) == 0

    monkeypatch.undo()
    new = rows(DAY, 1500, 2)
    assert warehouse.replace_partition("customer_scores", new, DAY, "run-3") == 1500
    assert loaded(warehouse, DAY).drop_columns(["run_id", "loaded_at"]).equals(new)


def test_readers_see_the_previous_day_until_commit(warehouse, monkeypatch):
    warehouse.replace_partition("customer_scores", rows(DAY, 2000, 1), DAY, "run-1")
    before = loaded(warehouse, DAY)
    seen = {}

    def look(step, **context):
        if step in ("deleted", "copied"):
            # Another session, while this load holds the DELETE and the COPYed rows.
            seen[step] = loaded(warehouse, DAY)

    monkeypatch.setattr(load, "_reached", look)
    new = rows(DAY, 1500, 2)
    assert warehouse.replace_partition("customer_scores", new, DAY, "run-2") == 1500
    assert seen["deleted"].equals(before) and seen["copied"].equals(before)
    assert loaded(warehouse, DAY).drop_columns(["run_id", "loaded_at"]).equals(new)


def test_a_bad_row_found_by_the_database_keeps_the_day(warehouse):
    warehouse.replace_partition("customer_scores", rows(DAY, 1000, 1), DAY, "run-1")
    before = loaded(warehouse, DAY)
    with pytest.raises(Exception, match="run_id"):
        # run_id NOT NULL is only checked by PostgreSQL, during COPY, after the DELETE.
        warehouse.replace_partition("customer_scores", rows(DAY, 900, 2), DAY, None)
    _state_is(warehouse, before)


# --- (c) the loading task is killed ----------------------------------------------------------


def _run_killed_loader(airflow_uri: str, step: str, seed: int) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import date
        from cva_tasks.warehouse import get_warehouse, load
        from cva_tasks.warehouse.sample import sample_rows
        from cva_tasks.warehouse.schema import TABLES

        def die(step, rows_sent=None, **context):
            # copying: the second batch is being read, the first is at the server.
            if step == {step!r} and rows_sent in (None, {2 * BATCH}):
                os.kill(os.getpid(), signal.SIGKILL)

        load._reached = die
        day = date.fromisoformat("{DAY}")
        rows = sample_rows(TABLES["customer_scores"], day, 3000, seed={seed})
        warehouse = get_warehouse(batch_rows={BATCH})
        warehouse.replace_partition("customer_scores", rows, day, "killed-run")
        """
    )
    env = {"AIRFLOW_CONN_CVA_WAREHOUSE": airflow_uri, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("step", ["deleted", "copying", "copied"])
def test_loader_killed_before_commit(warehouse, pg_schema, step):
    """SIGKILL after DELETE, mid-COPY (one batch of six sent) or after COPY."""
    _, airflow_uri, _ = pg_schema
    warehouse.replace_partition("customer_scores", rows(DAY, 3000, 1), DAY, "run-1")
    before = loaded(warehouse, DAY)

    result = _run_killed_loader(airflow_uri, step, seed=2)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    # The killed client's transaction dies with its session: the server sees the
    # socket close and rolls back the DELETE and whatever COPY had written.
    _state_is(warehouse, before)

    new = rows(DAY, 3000, 2)
    assert warehouse.replace_partition("customer_scores", new, DAY, "run-3") == 3000
    assert loaded(warehouse, DAY).drop_columns(["run_id", "loaded_at"]).equals(new)


# --- concurrency -----------------------------------------------------------------------------


def _parallel(*loads) -> list:
    results: list = [None] * len(loads)

    def run(i, fn):
        try:
            results[i] = fn()
        except Exception as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(loads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_loads_of_different_days_and_of_the_same_day(warehouse):
    a, b = rows(DAY, 20_000, 1), rows(OTHER_DAY, 20_000, 2)
    results = _parallel(
        lambda: warehouse.replace_partition("customer_scores", a, DAY, "run-a"),
        lambda: warehouse.replace_partition("customer_scores", b, OTHER_DAY, "run-b"),
    )
    assert results == [20_000, 20_000]

    c, d = rows(DAY, 15_000, 3), rows(DAY, 12_000, 4)
    results = _parallel(
        lambda: warehouse.replace_partition("customer_scores", c, DAY, "run-c"),
        lambda: warehouse.replace_partition("customer_scores", d, DAY, "run-d"),
    )
    assert results == [15_000, 12_000]
    day = loaded(warehouse, DAY)
    winner = {"run-c": c, "run-d": d}[day["run_id"][0].as_py()]
    assert day.drop_columns(["run_id", "loaded_at"]).equals(winner)
    assert loaded(warehouse, OTHER_DAY).num_rows == 20_000
    assert tables(warehouse) == ALL_TABLES, "no staging table is left behind"


def test_wrong_database_names_the_connection_without_the_password(pg_schema, monkeypatch):
    _, airflow_uri, _ = pg_schema
    wrong = airflow_uri.replace("postgres://postgres@", "postgres://postgres:s3cret@").replace(
        "/test?", "/no_such_database_cva?"
    )
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", wrong)
    with pytest.raises(WarehouseUnavailable) as info:
        get_warehouse().replace_partition("customer_scores", rows(DAY, 5, 1), DAY, "r")
    message = str(info.value)
    assert "connection 'cva_warehouse'" in message and "no_such_database_cva" in message
    assert "s3cret" not in message

"""A table altered by hand in the PostgreSQL warehouse is found before the load.

Before, a type changed to text or a dropped primary key loaded silently (numbers as
text, duplicate keys let in) and a dropped or renamed column failed inside the COPY,
which the daily DAG retried twice.
"""

from __future__ import annotations

from datetime import date

import pytest

from cva_tasks.warehouse import WarehouseError, get_warehouse
from cva_tasks.warehouse.backends import PostgresWarehouse
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

pytestmark = pytest.mark.postgres

DAY = date(2025, 12, 31)


@pytest.fixture
def warehouse(pg_schema, monkeypatch) -> PostgresWarehouse:
    _, airflow_uri, _ = pg_schema
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", airflow_uri)
    first = get_warehouse()
    rows = sample_rows(TABLES["customer_scores"], DAY, 20, seed=1)
    assert first.replace_partition("customer_scores", rows, DAY, "run-1") == 20
    return first


def alter(warehouse: PostgresWarehouse, *statements: str) -> PostgresWarehouse:
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.commit()
    finally:
        conn.close()
    fresh = get_warehouse()  # the next publish's warehouse object
    assert isinstance(fresh, PostgresWarehouse)
    return fresh


def day_rows(warehouse: PostgresWarehouse) -> int:
    conn = warehouse.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM customer_scores WHERE as_of_date = %s", (DAY,))
            return cur.fetchone()[0]
    finally:
        conn.close()


def load(warehouse: PostgresWarehouse) -> int:
    rows = sample_rows(TABLES["customer_scores"], DAY, 10, seed=2)
    return warehouse.replace_partition("customer_scores", rows, DAY, "run-2")


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        (
            ["ALTER TABLE customer_scores ALTER COLUMN frequency TYPE text"],
            "customer_scores.frequency: type is text, the spec says integer",
        ),
        (
            ["ALTER TABLE customer_scores DROP CONSTRAINT customer_scores_pkey"],
            "customer_scores: primary key is none, the spec says (as_of_date, customer_id)",
        ),
        (
            ["ALTER TABLE customer_scores DROP COLUMN churn_tier"],
            "customer_scores.churn_tier: the column is missing; the spec says TEXT",
        ),
        (
            ["ALTER TABLE customer_scores RENAME COLUMN churn_tier TO churn_band"],
            "customer_scores.churn_tier: the column is missing (renamed to churn_band?)",
        ),
        (
            [
                "ALTER TABLE customer_scores ADD COLUMN approved_by text NOT NULL DEFAULT 'x'",
                "ALTER TABLE customer_scores ALTER COLUMN approved_by DROP DEFAULT",
            ],
            "customer_scores.approved_by: not in the spec (text, NOT NULL without a default",
        ),
        (["DROP TABLE model_runs"], "model_runs: the table is missing"),
    ],
    ids=[
        "type changed",
        "key dropped",
        "column dropped",
        "column renamed",
        "not null column added",
        "table dropped",
    ],
)
def test_a_hand_altered_table_stops_the_load_and_keeps_the_day(warehouse, statements, message):
    before = day_rows(warehouse)
    altered = alter(warehouse, *statements)
    with pytest.raises(WarehouseError) as info:
        load(altered)
    assert message in str(info.value)
    assert "nothing was loaded" in str(info.value)
    assert getattr(info.value, "retryable", None) is False
    assert day_rows(altered) == before == 20


def test_the_check_reads_the_connection_schema_only(warehouse, pg_schema):
    """A table of the same name in another schema of the database is not looked at."""
    import sqlalchemy as sa

    from cva_tasks.warehouse.checks import check

    url, _, schema = pg_schema
    other = f"{schema}_other"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {other}"))
            conn.execute(sa.text(f"CREATE TABLE {other}.customer_scores (x text)"))
        report = check(warehouse)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {other} CASCADE"))
        engine.dispose()
    assert report.ok and report.differences == ()
    assert report.pending == () and len(report.applied) == len(warehouse.migrations)

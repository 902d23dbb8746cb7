"""A table altered by hand in the embedded (DuckDB) warehouse is found before the load.

Each case alters a migrated warehouse with the SQL a person would type, then loads a
day: the load must stop before touching the table, naming the table, the column and
what differs. Before, a type changed to VARCHAR loaded silently (numbers stored as
text) and a dropped or renamed column failed deep in the INSERT, retried twice.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from cva_tasks.warehouse import WarehouseError
from cva_tasks.warehouse.backends import EmbeddedWarehouse
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

DAY = date(2025, 12, 31)


@pytest.fixture
def warehouse(tmp_path) -> EmbeddedWarehouse:
    first = EmbeddedWarehouse(tmp_path / "warehouse.duckdb")
    rows = sample_rows(TABLES["customer_scores"], DAY, 20, seed=1)
    assert first.replace_partition("customer_scores", rows, DAY, "run-1") == 20
    return first


def alter(warehouse: EmbeddedWarehouse, *statements: str) -> EmbeddedWarehouse:
    with duckdb.connect(str(warehouse.path)) as con:
        for statement in statements:
            con.execute(statement)
    return EmbeddedWarehouse(warehouse.path)  # the next publish's warehouse object


def load(warehouse: EmbeddedWarehouse) -> int:
    rows = sample_rows(TABLES["customer_scores"], DAY, 10, seed=2)
    return warehouse.replace_partition("customer_scores", rows, DAY, "run-2")


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        (
            ["ALTER TABLE customer_scores ALTER COLUMN frequency TYPE VARCHAR"],
            "customer_scores.frequency: type is VARCHAR, the spec says INTEGER",
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
            ["ALTER TABLE customer_scores ALTER COLUMN run_id DROP NOT NULL"],
            "customer_scores.run_id: nullable, the spec says NOT NULL",
        ),
        (["DROP TABLE feedback_topics"], "feedback_topics: the table is missing"),
    ],
    ids=["type changed", "column dropped", "column renamed", "not null dropped", "table dropped"],
)
def test_a_hand_altered_table_stops_the_load_and_keeps_the_day(warehouse, statements, message):
    before = warehouse.read_table("customer_scores", DAY)
    altered = alter(warehouse, *statements)
    with pytest.raises(WarehouseError) as info:
        load(altered)
    assert message in str(info.value)
    assert "nothing was loaded" in str(info.value)
    assert getattr(info.value, "retryable", None) is False
    if "frequency" not in message:  # a VARCHAR column reads back as text, compare the rest
        assert altered.read_table("customer_scores", DAY).num_rows == before.num_rows


def test_an_added_nullable_column_is_noted_and_loads_go_on(warehouse):
    from cva_tasks.warehouse.checks import check

    altered = alter(warehouse, "ALTER TABLE customer_scores ADD COLUMN marketing_note VARCHAR")
    assert load(altered) == 10
    report = check(altered)
    assert report.ok
    assert [str(d) for d in report.differences] == [
        "customer_scores.marketing_note: not in the spec (VARCHAR; loads leave it null)"
    ]


def test_an_added_primary_key_is_a_difference_on_duckdb(warehouse):
    from cva_tasks.warehouse.checks import check

    # DuckDB tables carry no primary key by design (see TableSpec.create_sql).
    altered = alter(warehouse, "ALTER TABLE segment_profiles ADD PRIMARY KEY (as_of_date, label)")
    problems = [str(d) for d in check(altered).blocking]
    assert problems == ["segment_profiles: primary key is (as_of_date, label), the spec says none"]


def test_a_fresh_warehouse_has_no_difference(tmp_path):
    from cva_tasks.warehouse.checks import check

    fresh = EmbeddedWarehouse(tmp_path / "fresh.duckdb")
    fresh.migrate()
    report = check(fresh)
    assert report.ok and report.differences == () and report.pending == ()

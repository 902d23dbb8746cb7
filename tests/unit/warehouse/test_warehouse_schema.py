"""Table specs and migrations, on the embedded (DuckDB) warehouse."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb
import pytest

from cva_tasks.warehouse import schema
from cva_tasks.warehouse.backends import EmbeddedWarehouse
from cva_tasks.warehouse.migrations import (
    MIGRATIONS,
    Migration,
    add_columns,
    create_table,
    migrate,
)
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES, Column

DAY = date(2025, 12, 31)

V1_COLUMNS = [
    ("as_of_date", "DATE", False),
    ("customer_id", "TEXT", False),
    ("country", "TEXT", True),
    ("recency_days", "DOUBLE PRECISION", True),
    ("frequency", "INTEGER", True),
    ("monetary_value", "DOUBLE PRECISION", True),
    ("avg_order_value", "DOUBLE PRECISION", True),
    ("tenure_days", "DOUBLE PRECISION", True),
    ("spend_90d", "DOUBLE PRECISION", True),
    ("last_order_at", "TIMESTAMPTZ", True),
    ("r_score", "SMALLINT", True),
    ("f_score", "SMALLINT", True),
    ("m_score", "SMALLINT", True),
    ("rfm_cell", "TEXT", True),
    ("segment", "TEXT", True),
    ("run_id", "TEXT", False),
    ("loaded_at", "TIMESTAMPTZ", False),
]


@pytest.fixture
def warehouse(tmp_path) -> EmbeddedWarehouse:
    return EmbeddedWarehouse(tmp_path / "warehouse.duckdb")


def _columns(warehouse: EmbeddedWarehouse, table: str) -> list[str]:
    return warehouse.read_table(table).column_names


def test_customer_scores_v1_is_the_published_contract():
    spec = TABLES["customer_scores"].at_version(1)
    assert [(c.name, c.type, c.nullable) for c in spec.columns] == V1_COLUMNS
    assert spec.key == ("as_of_date", "customer_id")
    assert spec.partition == "as_of_date"
    assert "PRIMARY KEY (as_of_date, customer_id)" in spec.create_sql(1, "postgres")


def test_migration_sql_forms():
    assert Migration(1, "d", "SELECT 1").statements("duckdb") == ["SELECT 1"]
    per_dialect = Migration(2, "d", {"postgres": ["A", "B"], "*": "C"})
    assert per_dialect.statements("postgres") == ["A", "B"]
    assert per_dialect.statements("duckdb") == ["C"]
    assert Migration(3, "d", lambda dialect: f"-- {dialect}").statements("duckdb") == ["-- duckdb"]
    with pytest.raises(ValueError, match="no SQL for duckdb"):
        Migration(4, "d", {"postgres": "A"}).statements("duckdb")


def test_migrate_is_idempotent_and_recorded(warehouse):
    assert migrate(warehouse) == [m.version for m in MIGRATIONS]
    assert migrate(warehouse) == []
    with duckdb.connect(str(warehouse.path)) as con:
        recorded = con.execute(
            "SELECT version, description, applied_at IS NOT NULL FROM schema_migrations"
        ).fetchall()
    assert recorded == [(m.version, m.description, True) for m in MIGRATIONS]
    for spec in TABLES.values():
        assert _columns(warehouse, spec.name) == spec.column_names
    v1 = _columns(warehouse, "customer_scores")[: len(V1_COLUMNS)]
    assert v1 == [c[0] for c in V1_COLUMNS]


def test_a_v1_warehouse_is_brought_forward_keeping_its_rows(warehouse):
    from datetime import date

    from cva_tasks.warehouse.sample import sample_rows

    assert migrate(warehouse, MIGRATIONS[:1]) == [1]
    v1 = TABLES["customer_scores"].at_version(1)
    day = date(2025, 3, 1)
    rows = sample_rows(v1, day, 20)
    with duckdb.connect(str(warehouse.path)) as con:
        con.register("v1_rows", rows)
        con.execute(
            "INSERT INTO customer_scores SELECT *, 'old-run', TIMESTAMPTZ '2025-03-02 00:00:00+00'"
            " FROM v1_rows"
        )
    assert migrate(warehouse) == [m.version for m in MIGRATIONS[1:]]
    kept = warehouse.read_table("customer_scores", day)
    assert kept.num_rows == 20
    assert kept.column_names == TABLES["customer_scores"].column_names
    assert kept["customer_id"].to_pylist() == rows["customer_id"].to_pylist()
    assert kept["churn_probability"].null_count == 20


def test_versions_must_increase_and_history_cannot_be_inserted_into(warehouse):
    with pytest.raises(ValueError, match="unique and increasing"):
        migrate(warehouse, [Migration(2, "b", "SELECT 1"), Migration(1, "a", "SELECT 1")])
    migrate(warehouse, [*MIGRATIONS, Migration(100, "later", "SELECT 1")])
    with pytest.raises(ValueError, match="migration 99 is pending but 100 is already applied"):
        migrate(warehouse, [*MIGRATIONS, Migration(99, "inserted", "SELECT 1")])


def test_a_failing_migration_leaves_nothing_behind(warehouse):
    migrate(warehouse)
    broken = Migration(
        len(MIGRATIONS) + 1,
        "half a migration",
        ["ALTER TABLE customer_scores ADD COLUMN half INTEGER", "THIS IS NOT SQL"],
    )
    with pytest.raises(Exception, match="syntax"):
        migrate(warehouse, [*MIGRATIONS, broken])
    assert "half" not in _columns(warehouse, "customer_scores")
    assert broken.version not in warehouse.applied_versions()


def test_added_column_migrates_existing_rows_and_the_loader_fills_it(warehouse, monkeypatch):
    """Create at v1, load, add a column (one migration + one spec line), load again."""
    migrate(warehouse)
    current = TABLES["customer_scores"]
    v1_rows = sample_rows(current, DAY, 50, seed=1)
    assert warehouse.replace_partition("customer_scores", v1_rows, DAY, "run-1") == 50

    version = MIGRATIONS[-1].version + 1
    monkeypatch.setitem(
        TABLES,
        "customer_scores",
        current.with_columns(Column("cluster", "SMALLINT", since=version)),
    )
    extra = Migration(version, "customer_scores.cluster", add_columns("customer_scores", "cluster"))
    assert migrate(warehouse, [*MIGRATIONS, extra]) == [version]

    kept = warehouse.read_table("customer_scores", DAY)
    assert kept.num_rows == 50
    assert kept["cluster"].null_count == 50
    assert kept.drop_columns(["cluster"]).equals(kept.select([c.name for c in current.columns]))
    assert kept["customer_id"].to_pylist() == v1_rows["customer_id"].to_pylist()

    spec = TABLES["customer_scores"]
    other_day = date(2026, 1, 1)
    v2_rows = sample_rows(spec, other_day, 20, seed=2)
    assert warehouse.replace_partition("customer_scores", v2_rows, other_day, "run-2") == 20
    loaded = warehouse.read_table("customer_scores", other_day)
    assert loaded["cluster"].to_pylist() == v2_rows["cluster"].to_pylist()
    assert warehouse.read_table("customer_scores", DAY)["cluster"].null_count == 50


def test_fresh_and_upgraded_warehouses_end_with_the_same_table(tmp_path, monkeypatch):
    """A column with since=2 is not in the CREATE of v1 but added by migration 2."""
    spec = schema.TableSpec(
        name="demo_scores",
        grain="one row per customer per day; key (as_of_date, customer_id)",
        columns=(
            Column("as_of_date", "DATE", nullable=False),
            Column("customer_id", "TEXT", nullable=False),
            Column("score", "DOUBLE PRECISION"),
            Column("run_id", "TEXT", nullable=False),
            Column("loaded_at", "TIMESTAMPTZ", nullable=False),
            Column("churn_probability", "DOUBLE PRECISION", since=2),
        ),
        key=("as_of_date", "customer_id"),
    )
    monkeypatch.setitem(TABLES, "demo_scores", spec)
    history = [
        Migration(1, "demo_scores", create_table("demo_scores")),
        Migration(
            2, "demo_scores.churn_probability", add_columns("demo_scores", "churn_probability")
        ),
    ]
    upgraded = EmbeddedWarehouse(tmp_path / "old.duckdb", auto_migrate=False)
    assert migrate(upgraded, history[:1]) == [1]
    assert "churn_probability" not in _columns(upgraded, "demo_scores")
    assert migrate(upgraded, history) == [2]
    fresh = EmbeddedWarehouse(tmp_path / "new.duckdb", auto_migrate=False)
    assert migrate(fresh, history) == [1, 2]
    assert _columns(upgraded, "demo_scores") == _columns(fresh, "demo_scores")
    assert _columns(fresh, "demo_scores") == spec.column_names


def test_sample_rows_are_deterministic_and_fit_the_spec():
    spec = TABLES["customer_scores"]
    a = sample_rows(spec, DAY, 1000, seed=3)
    assert a.equals(sample_rows(spec, DAY, 1000, seed=3))
    assert a.schema == spec.arrow_schema()
    assert set(a["as_of_date"].to_pylist()) == {DAY}
    assert len(set(a["customer_id"].to_pylist())) == 1000
    assert set(a["r_score"].to_pylist()) == {1, 2, 3, 4, 5}
    assert a["country"].null_count > 0
    assert max(a["last_order_at"].to_pylist()) <= datetime(2025, 12, 31, tzinfo=UTC)

"""Migration 12: ``feedback_sentiment.unscored_reason``, on DuckDB and on PostgreSQL.

A warehouse at migration 11 (feedback rows published without the column) is brought
forward: its rows are kept with a null reason, new days load their reasons, and a lake
partition written before the column existed still publishes (reason null).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pyarrow as pa
import pytest

from cva_tasks.steps.publish import with_added_columns
from cva_tasks.warehouse.backends import EmbeddedWarehouse, PostgresWarehouse, Warehouse
from cva_tasks.warehouse.migrations import MIGRATIONS
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

DAY = date(2025, 12, 30)
NEXT_DAY = DAY + timedelta(days=1)
SPEC = TABLES["feedback_sentiment"]
BEFORE = [m for m in MIGRATIONS if m.version < 12]


def _old_day(warehouse_at_11: Warehouse) -> pa.Table:
    """Publish a day of feedback as the pipeline did before migration 12."""
    rows = sample_rows(SPEC.at_version(11), DAY, 5, seed=1)
    assert "unscored_reason" not in rows.column_names
    warehouse_at_11.migrate(BEFORE)
    assert warehouse_at_11.replace_partition("feedback_sentiment", rows, DAY, "run-old") == 5
    return rows


def check_migration_12(make: Callable[..., Warehouse], location: object) -> None:
    old = make(location, tables={**TABLES, "feedback_sentiment": SPEC.at_version(11)})
    old_rows = _old_day(old)
    assert "unscored_reason" not in old.read_table("feedback_sentiment").column_names

    current = make(location)
    assert current.migrate() == [12]
    assert current.applied_versions() == [m.version for m in MIGRATIONS]
    kept = current.read_table("feedback_sentiment", DAY)
    assert kept.num_rows == 5 and kept["unscored_reason"].null_count == 5
    assert kept["feedback_id"].to_pylist() == old_rows["feedback_id"].to_pylist()

    # A new day: the reasons are loaded (the schema check passes on the migrated table).
    new = sample_rows(SPEC, NEXT_DAY, 3, seed=2)
    reasons = pa.array(["language:de", None, "blank"], pa.string())
    new = new.set_column(new.column_names.index("unscored_reason"), "unscored_reason", reasons)
    assert current.replace_partition("feedback_sentiment", new, NEXT_DAY, "run-new") == 3
    loaded = current.read_table("feedback_sentiment", NEXT_DAY)
    ids, got = loaded["feedback_id"].to_pylist(), loaded["unscored_reason"].to_pylist()
    by_id = dict(zip(ids, got, strict=True))
    assert by_id == dict(zip(new["feedback_id"].to_pylist(), reasons.to_pylist(), strict=True))

    # A lake partition written before the column existed republishes with a null reason.
    filled = with_added_columns("feedback_sentiment", old_rows)
    assert current.replace_partition("feedback_sentiment", filled, DAY, "run-again") == 5
    assert current.read_table("feedback_sentiment", DAY)["unscored_reason"].null_count == 5
    # Only the listed columns are filled: any other missing column still fails the load.
    with pytest.raises(Exception, match="missing columns"):
        current.replace_partition("feedback_sentiment", filled.drop(["label"]), DAY, "run-bad")


def test_migration_12_on_duckdb(tmp_path) -> None:
    check_migration_12(EmbeddedWarehouse, tmp_path / "warehouse.duckdb")


@pytest.mark.postgres
def test_migration_12_on_postgres(pg_schema) -> None:
    url, _airflow_uri, _schema = pg_schema
    check_migration_12(PostgresWarehouse, url)

"""The page's figures read from PostgreSQL equal those read from the embedded DuckDB."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cva_tasks.lake import Lake
from cva_tasks.ui import figures
from cva_tasks.ui.reader import WarehouseReader
from cva_tasks.ui.sample import publish_sample_days
from cva_tasks.warehouse import EmbeddedWarehouse, PostgresWarehouse, get_warehouse

pytestmark = pytest.mark.postgres

DAYS = [date(2025, 12, 1) + timedelta(days=i) for i in range(4)]


def without_load_times(report: dict) -> dict:
    report["summary"].pop("loaded_at")
    return report


def assert_same(left, right, where="report"):
    """Equal documents; floats to 1e-9 relative (the backends sum in different orders)."""
    if isinstance(left, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            assert_same(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(left, float) or isinstance(right, float):
        assert left == pytest.approx(right, rel=1e-9), where
    else:
        assert left == right, where


def test_both_backends_give_the_same_day(pg_schema, monkeypatch, tmp_path):
    _, airflow_uri, _ = pg_schema
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", airflow_uri)
    postgres = get_warehouse()
    assert isinstance(postgres, PostgresWarehouse)
    embedded = EmbeddedWarehouse(tmp_path / "w.duckdb")
    for warehouse, name in ((postgres, "pg"), (embedded, "duckdb")):
        publish_sample_days(warehouse, Lake(str(tmp_path / name)), DAYS, customers=150)

    reader = WarehouseReader.from_connection()
    assert isinstance(reader.warehouse, PostgresWarehouse)
    other = WarehouseReader(EmbeddedWarehouse(tmp_path / "w.duckdb", auto_migrate=False))
    assert figures.days_index(reader) == figures.days_index(other)
    for day in (DAYS[1], DAYS[3]):
        reports = []
        for source, name in ((reader, "pg"), (other, "duckdb")):
            with source.session():
                report = figures.day_report(
                    source,
                    day,
                    lake=Lake(str(tmp_path / name)),
                    data_docs_dir=None,
                    psi_threshold=0.2,
                )
            reports.append(without_load_times(report))
        assert_same(reports[0], reports[1])
    assert reports[0]["summary"]["customers_scored"] == 150


def test_the_postgres_session_is_read_only(pg_schema, monkeypatch):
    import psycopg2

    _, airflow_uri, _ = pg_schema
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", airflow_uri)
    get_warehouse().migrate()
    reader = WarehouseReader.from_connection()
    with reader.session(), pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        reader.query("DELETE FROM customer_scores")

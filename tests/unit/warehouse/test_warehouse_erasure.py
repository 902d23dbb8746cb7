"""Erasure in the warehouse: a customer's rows go from every table, on both backends."""

from __future__ import annotations

from datetime import date

import pytest

from cva_tasks.warehouse.backends import EmbeddedWarehouse, PostgresWarehouse, Warehouse
from cva_tasks.warehouse.erasure import customer_tables, erase_customers
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

DAYS = (date(2025, 12, 30), date(2025, 12, 31))


def load(warehouse: Warehouse) -> list[str]:
    for day in DAYS:
        for table in ("customer_scores", "customer_recommendations", "segment_profiles"):
            warehouse.replace_partition(table, sample_rows(TABLES[table], day, 6), day, "r1")
    return sorted(set(warehouse.read_table("customer_scores")["customer_id"].to_pylist()))


def ids_in(warehouse: Warehouse, table: str) -> set[str]:
    return set(warehouse.read_table(table)["customer_id"].to_pylist())


def check_erasure(warehouse: Warehouse) -> None:
    ids = load(warehouse)
    victims = set(ids[:2])
    before = {t: warehouse.read_table(t).num_rows for t in customer_tables(warehouse)}
    assert {"customer_scores", "customer_recommendations"} <= set(before)
    assert "segment_profiles" not in customer_tables(warehouse)

    removed = erase_customers(warehouse, [*victims, "not-a-customer"])

    for table in before:
        assert not ids_in(warehouse, table) & victims, table
        assert removed[table] == before[table] - warehouse.read_table(table).num_rows
    assert removed["customer_scores"] == 2 * len(DAYS)  # one row per customer per day
    assert ids_in(warehouse, "customer_scores") == set(ids) - victims
    assert warehouse.read_table("segment_profiles").num_rows == before_profiles(warehouse)
    assert set(erase_customers(warehouse, victims).values()) == {0}  # nothing left


def before_profiles(warehouse: Warehouse) -> int:
    return sum(len(sample_rows(TABLES["segment_profiles"], day, 6)) for day in DAYS)


def test_erasure_in_the_embedded_warehouse(tmp_path) -> None:
    check_erasure(EmbeddedWarehouse(tmp_path / "w.duckdb"))


def test_erasure_does_not_create_an_embedded_warehouse(tmp_path) -> None:
    warehouse = EmbeddedWarehouse(tmp_path / "absent.duckdb")
    assert erase_customers(warehouse, ["C1"]) == {}
    assert not warehouse.path.exists()


@pytest.mark.postgres
def test_erasure_in_postgres(pg_schema) -> None:
    url, _airflow_uri, _schema = pg_schema
    check_erasure(PostgresWarehouse(url))

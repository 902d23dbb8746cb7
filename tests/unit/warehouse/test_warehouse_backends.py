"""Which backend a connection id selects, and how an unreachable one is reported."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cva_tasks.warehouse.backends import (
    EmbeddedWarehouse,
    PostgresWarehouse,
    WarehouseUnavailable,
    duckdb_path,
    get_warehouse,
)
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

DAY = date(2025, 12, 31)


def test_undefined_connection_selects_the_embedded_file_in_cva_home(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    monkeypatch.setenv("CVA_HOME", str(tmp_path / "home"))
    warehouse = get_warehouse()
    assert isinstance(warehouse, EmbeddedWarehouse)
    assert warehouse.path == (tmp_path / "home" / "warehouse.duckdb").resolve()
    rows = sample_rows(TABLES["customer_scores"], DAY, 10)
    assert warehouse.replace_partition("customer_scores", rows, DAY, "r1") == 10
    assert warehouse.path.exists()


def test_duckdb_uri_selects_the_embedded_backend(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", f"duckdb:///{tmp_path}/w.duckdb")
    warehouse = get_warehouse()
    assert isinstance(warehouse, EmbeddedWarehouse)
    assert warehouse.path == tmp_path / "w.duckdb"
    assert "cva_warehouse" in warehouse.location


def test_duckdb_uri_paths_follow_the_sqlalchemy_convention():
    assert duckdb_path("duckdb:////abs/w.duckdb") == Path("/abs/w.duckdb")
    assert duckdb_path("duckdb:///rel/w.duckdb") == Path("rel/w.duckdb")
    with pytest.raises(ValueError, match="file path"):
        duckdb_path("duckdb:///:memory:")


def test_postgres_connection_selects_postgres_and_the_id_is_overridable(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_MARKETING_DW",
        "postgres://cva:s3cret@db.example:5433/dw?options=-csearch_path%3Dm",
    )
    warehouse = get_warehouse("marketing_dw")
    assert isinstance(warehouse, PostgresWarehouse)
    assert "marketing_dw" in warehouse.location
    assert "s3cret" not in warehouse.location and "s3cret" not in repr(warehouse)
    assert warehouse._params["options"] == "-csearch_path=m"
    assert warehouse._params["port"] == 5433


def test_unsupported_connection_type_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="connection 'cva_warehouse' is sqlite"):
        get_warehouse()


def test_unreachable_postgres_names_the_connection_without_the_password(monkeypatch):
    # Port 1 on the loopback refuses at once: no server needed, no waiting.
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", "postgres://cva:s3cret@127.0.0.1:1/dw")
    warehouse = get_warehouse()
    rows = sample_rows(TABLES["customer_scores"], DAY, 5)
    with pytest.raises(WarehouseUnavailable) as info:
        warehouse.replace_partition("customer_scores", rows, DAY, "r1")
    message = str(info.value)
    assert "connection 'cva_warehouse'" in message
    assert "127.0.0.1:1" in message and "unreachable" in message
    assert "s3cret" not in message

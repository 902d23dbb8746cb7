"""No silent fallback: the embedded warehouse only when ``cva_warehouse`` is truly undefined.

A connection that is set but cannot be read or used (an empty variable, a secrets
backend that fails, a DuckDB file in a folder that does not exist) must stop the load
with a message naming the connection, never quietly publish into
``$CVA_HOME/warehouse.duckdb`` where nobody reads.
"""

from __future__ import annotations

import json
from datetime import date

import pytest

from cva_tasks.warehouse.backends import (
    EmbeddedWarehouse,
    PostgresWarehouse,
    WarehouseError,
    WarehouseUnavailable,
    get_warehouse,
)
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

DAY = date(2025, 12, 31)


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("CVA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_an_empty_connection_variable_is_refused(monkeypatch, home):
    # e.g. AIRFLOW_CONN_CVA_WAREHOUSE=$WAREHOUSE_URL with WAREHOUSE_URL unset.
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", "")
    with pytest.raises(WarehouseError, match="AIRFLOW_CONN_CVA_WAREHOUSE is set but empty"):
        get_warehouse()
    assert not (home / "warehouse.duckdb").exists()


def test_a_connection_store_that_fails_is_not_taken_for_an_undefined_connection(monkeypatch, home):
    from airflow.sdk import BaseHook

    def unreachable(conn_id):
        raise ConnectionError("secrets backend at vault:8200 timed out")

    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    monkeypatch.setattr(BaseHook, "get_connection", unreachable)
    with pytest.raises(WarehouseUnavailable, match="'cva_warehouse' could not be read") as info:
        get_warehouse()
    assert "vault:8200 timed out" in str(info.value)
    assert "not used in its place" in str(info.value)
    assert not (home / "warehouse.duckdb").exists()


def test_an_undefined_connection_still_selects_the_embedded_file(monkeypatch, home):
    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    warehouse = get_warehouse()
    assert isinstance(warehouse, EmbeddedWarehouse) and warehouse.conn_id is None


def test_a_configured_duckdb_file_in_a_missing_folder_is_not_created(monkeypatch, tmp_path):
    # A typo in the folder would otherwise start a new, empty warehouse there.
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", f"duckdb:///{tmp_path}/warehose/cva.duckdb")
    warehouse = get_warehouse()
    rows = sample_rows(TABLES["customer_scores"], DAY, 5)
    with pytest.raises(WarehouseUnavailable, match=r"folder .*warehose does not exist"):
        warehouse.replace_partition("customer_scores", rows, DAY, "r1")
    assert not (tmp_path / "warehose").exists()


def test_a_json_connection_is_read_and_its_password_kept_out_of_messages(monkeypatch):
    value = {
        "conn_type": "postgres",
        "host": "db.example",
        "login": "cva",
        "password": "s3cret",
        "port": 5433,
        "schema": "dw",
        "extra": {"options": "-csearch_path=marketing"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", json.dumps(value))
    warehouse = get_warehouse()
    assert isinstance(warehouse, PostgresWarehouse)
    assert warehouse._params["host"] == "db.example" and warehouse._params["port"] == 5433
    assert warehouse._params["options"] == "-csearch_path=marketing"
    assert "s3cret" not in warehouse.location

    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", json.dumps({**value, "conn_type": "mssql"}))
    with pytest.raises(WarehouseError, match="mssql") as info:
        get_warehouse()
    assert "s3cret" not in str(info.value)


def test_a_duckdb_connection_defined_in_airflow_selects_its_file(monkeypatch, tmp_path):
    from airflow.sdk import BaseHook, Connection

    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    defined = Connection(conn_id="cva_warehouse", conn_type="duckdb", host=f"{tmp_path}/w.duckdb")
    monkeypatch.setattr(BaseHook, "get_connection", lambda conn_id: defined)
    warehouse = get_warehouse()
    assert isinstance(warehouse, EmbeddedWarehouse)
    assert warehouse.path == tmp_path / "w.duckdb" and warehouse.conn_id == "cva_warehouse"

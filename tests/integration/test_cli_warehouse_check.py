"""``cva warehouse check``: the schema comparison of every publish, as a command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb

from cva_tasks.warehouse.backends import EmbeddedWarehouse
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

CVA = str(Path(sys.executable).with_name("cva"))
DAY = date(2025, 12, 31)


def run_check(path_or_uri: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CVA_", "AIRFLOW"))}
    env["AIRFLOW_CONN_CVA_WAREHOUSE"] = path_or_uri
    return subprocess.run(
        [CVA, "warehouse", "check", *args], env=env, capture_output=True, text=True
    )


def test_check_passes_then_names_a_hand_altered_column(tmp_path):
    path = tmp_path / "dw" / "warehouse.duckdb"
    path.parent.mkdir()
    warehouse = EmbeddedWarehouse(path)
    warehouse.replace_partition(
        "customer_scores", sample_rows(TABLES["customer_scores"], DAY, 5), DAY, "r1"
    )
    clean = run_check(f"duckdb:///{path}", "--json")
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["differences"] == []

    with duckdb.connect(str(path)) as con:
        con.execute("ALTER TABLE customer_scores ALTER COLUMN frequency TYPE VARCHAR")
    before = path.stat().st_mtime_ns
    altered = run_check(f"duckdb:///{path}")
    assert altered.returncode == 1, altered.stderr
    assert "DIFFERS: customer_scores.frequency: type is VARCHAR, the spec says INTEGER" in (
        altered.stdout
    )
    assert path.stat().st_mtime_ns == before, "the check writes nothing"


def test_check_of_a_connection_that_cannot_be_used_says_so(tmp_path):
    result = run_check("")
    assert result.returncode == 1
    assert "AIRFLOW_CONN_CVA_WAREHOUSE is set but empty" in result.stdout
    missing = run_check(f"duckdb:///{tmp_path}/absent/warehouse.duckdb", "--json")
    assert missing.returncode == 1
    assert "does not exist" in json.loads(missing.stdout)["error"]
    assert not (tmp_path / "absent").exists()

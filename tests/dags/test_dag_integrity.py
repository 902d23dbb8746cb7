"""Every DAG imports cleanly, obeys the house rules, and parses fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = ("pandas", "pyarrow", "numpy", "great_expectations", "sklearn", "tensorflow", "duckdb")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dag_ids, "no DAG found"


def test_one_dag_per_registered_source(dagbag):
    from cva_tasks.sources.registry import all_sources

    expected = {f"cva_source_{s.name}" for s in all_sources()}
    assert expected <= set(dagbag.dag_ids)


def test_house_rules(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "cva" in dag.tags, dag_id
        assert dag.start_date is not None, dag_id
        for t in dag.tasks:
            if t.task_id.endswith("extract"):
                assert t.retries >= 2, f"{dag_id}.{t.task_id} touches a source: needs retries"


def test_source_dag_shape(dagbag):
    dag = dagbag.dags["cva_source_demo_shop"]
    ids = set(dag.task_ids)
    for entity in ("transactions", "customers", "items"):
        assert {f"{entity}.extract", f"{entity}.validate", f"{entity}.land"} <= ids
    land = dag.get_task("transactions.land")
    assert land.upstream_task_ids == {"transactions.validate"}
    assert [a.name for a in land.outlets] == ["cva.raw.demo_shop.transactions"]


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_parse_is_fast_and_light(path):
    # A fresh interpreter: import Airflow first (its own cost is not ours), then
    # measure our DAG file alone and list the heavy modules it pulled in. CPU time,
    # not wall time: on a shared machine the wall clock measures the neighbours.
    code = f"""
import sys, time, runpy
import airflow.sdk, pendulum
before = {{m.split('.')[0] for m in sys.modules}}
t = time.process_time()
runpy.run_path({str(path)!r})
print("SECONDS", time.process_time() - t)
added = {{m.split('.')[0] for m in sys.modules}} - before
print("HEAVY", ",".join(sorted(added & set({HEAVY!r}))))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    report = dict(
        line.split(" ", 1) for line in out.splitlines() if line.startswith(("SECONDS", "HEAVY"))
    )
    seconds, heavy = float(report["SECONDS"]), report["HEAVY"].strip()
    assert heavy == "", f"{path.name} imports {heavy} at parse time"
    assert seconds < 0.5, f"{path.name} took {seconds:.2f} s of CPU to parse"

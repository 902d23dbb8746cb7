"""Every cva task alerts on failure; every cva DAG has an owner and a run timeout."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cva_tasks import alerts

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_task_of_every_dag_alerts_on_failure_and_has_the_owner(dagbag):
    assert {"cva_customer_value", "cva_source_demo_shop"} <= set(dagbag.dag_ids)
    for dag_id, dag in dagbag.dags.items():
        assert dag.dagrun_timeout == timedelta(hours=24), dag_id
        assert dag.on_failure_callback == [alerts.on_dag_run_failure] or (
            dag.on_failure_callback is alerts.on_dag_run_failure
        ), dag_id
        for task in dag.tasks:
            # A mapped task (score, recommend) holds the one callback itself, not a list.
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert alerts.on_task_failure in callbacks, f"{dag_id}.{task.task_id}"
            assert task.owner == "data-engineering", f"{dag_id}.{task.task_id}"


def test_sensors_give_up_after_the_sensor_timeout(dagbag):
    dag = dagbag.dags["cva_customer_value"]
    sensors = [t for t in dag.tasks if t.task_id.startswith("wait_for_")]
    assert sensors
    for sensor in sensors:
        assert sensor.timeout == timedelta(hours=6).total_seconds(), sensor.task_id
        assert alerts.on_task_failure in sensor.on_failure_callback


def test_training_runs_day_after_day_and_is_not_retried(dagbag):
    dag = dagbag.dags["cva_customer_value"]
    trains = [t for t in dag.tasks if t.task_id.startswith("train_")]
    assert {t.task_id for t in trains} >= {"train_churn", "train_clv", "train_clusters"}
    for t in trains:
        assert t.depends_on_past is True, t.task_id
        assert t.retries == 0, t.task_id
    assert dag.get_task("score").retries == 2  # the other steps keep their retries

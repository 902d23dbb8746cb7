"""A source run that failed for a day makes the daily DAG's sensor fail at once.

The source tasks' callbacks write and remove the marker, the sensor's step reads it
and names the source, the day and the commands that rerun them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from cva_tasks import storage
from cva_tasks.lake import Lake
from cva_tasks.source_failures import SourceRunFailed, failed_run
from cva_tasks.steps.stage import source_landed

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAY = date(2025, 11, 30)
CONTEXT = {
    "data_interval_start": datetime(2025, 11, 30, tzinfo=UTC),
    "data_interval_end": datetime(2025, 12, 1, tzinfo=UTC),
    "run_id": "scheduled__2025-12-01T00:00:00+00:00",
}
RERUN = "airflow tasks clear cva_source_demo_feedback -s 2025-11-30 -e 2025-11-30 --only-failed"


class FakeTaskInstance:
    def __init__(self, task_id: str):
        self.task_id = task_id
        self.dag_id = "cva_source_demo_feedback"
        self.run_id = CONTEXT["run_id"]
        self.try_number = 3
        self.log_url = "http://localhost:8080/log"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def run_callbacks(task, kind: str, exception: BaseException | None = None) -> None:
    callbacks = getattr(task, kind)
    context = {
        **CONTEXT,
        "task_instance": FakeTaskInstance(task.task_id),
        "exception": exception,
    }
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        callback(context)


def test_a_failed_source_task_marks_the_day_and_its_success_clears_it(dagbag, lake):
    extract = dagbag.dags["cva_source_demo_feedback"].get_task("feedback.extract")
    assert source_landed("demo_feedback", DAY) is False  # not landed: keep waiting

    run_callbacks(
        extract, "on_failure_callback", ValueError("feedback_2025-11-30.jsonl line 1: not JSON")
    )
    [marker] = failed_run(Lake(str(lake)), "demo_feedback", DAY)
    assert marker["task"] == "feedback.extract"
    assert marker["run_id"] == CONTEXT["run_id"]
    assert "line 1: not JSON" in marker["error"]
    with pytest.raises(SourceRunFailed) as failed:
        source_landed("demo_feedback", DAY)
    message = str(failed.value)
    assert "source demo_feedback failed for ds=2025-11-30" in message
    assert RERUN in message
    assert "airflow tasks clear cva_customer_value -s 2025-11-30 -e 2025-11-30" in message
    # Another source, another day: not concerned.
    assert failed_run(Lake(str(lake)), "demo_feedback", date(2025, 12, 1)) == []
    assert failed_run(Lake(str(lake)), "demo_shop", DAY) == []

    run_callbacks(extract, "on_success_callback")
    assert failed_run(Lake(str(lake)), "demo_feedback", DAY) == []
    assert not storage.exists(Lake(str(lake)).source_failures("demo_feedback", DAY))
    assert source_landed("demo_feedback", DAY) is False


def test_the_daily_sensor_fails_at_once_on_a_failed_source_day(dagbag, lake):
    land = dagbag.dags["cva_source_demo_feedback"].get_task("feedback.land")
    run_callbacks(land, "on_failure_callback", OSError("disk full"))
    sensor = dagbag.dags["cva_customer_value"].get_task("wait_for_demo_feedback")
    with pytest.raises(AirflowFailException, match="source demo_feedback failed") as failed:
        sensor.python_callable("demo_feedback", **CONTEXT)
    assert RERUN in str(failed.value)
    # The other sources' sensors keep waiting for their own day.
    assert sensor.python_callable("demo_shop", **CONTEXT) is False


def test_a_landed_day_wins_over_an_old_marker(dagbag, lake):
    import pyarrow as pa

    validate = dagbag.dags["cva_source_demo_feedback"].get_task("feedback.validate")
    run_callbacks(validate, "on_failure_callback", RuntimeError("quality gate"))
    raw = Lake(str(lake)).raw("demo_feedback", "feedback", DAY)
    storage.write_table(pa.table({"feedback_id": ["F1"]}), f"{raw}/part-0.parquet")
    assert source_landed("demo_feedback", DAY) is True


def test_only_the_landing_tasks_mark_and_every_source_dag_has_a_runbook(dagbag):
    for dag_id, dag in dagbag.dags.items():
        if not dag_id.startswith("cva_source_"):
            continue
        source = dag_id.removeprefix("cva_source_")
        assert f"wait_for_{source}" in dag.doc_md
        assert f"airflow tasks clear {dag_id} -s YYYY-MM-DD -e YYYY-MM-DD" in dag.doc_md
        assert "airflow tasks clear cva_customer_value" in dag.doc_md
        for task in dag.tasks:
            marks = len(task.on_failure_callback) > 1
            assert marks == (task.task_id.rsplit(".", 1)[-1] in {"extract", "validate", "land"})

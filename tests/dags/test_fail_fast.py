"""Failures a retry cannot fix end the task at once; the rest are left to Airflow's retries.

Each DAG task's body is called as Airflow calls it, with its step replaced by one that
raises: bad data (a ``DataQualityError``, a ``SourceError`` that is not retryable, a
warehouse whose tables were altered by hand) must raise ``AirflowFailException``, which
Airflow does not retry; a source that is down must raise as it is, so the task's
``retries=2`` apply.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from cva_tasks.quality import DataQualityError
from cva_tasks.sources.base import SourceError, SourceUnavailable

DAGS = Path(__file__).resolve().parents[2] / "dags"
DS = datetime(2025, 11, 30, tzinfo=UTC)
CONTEXT = {
    "data_interval_start": DS,
    "data_interval_end": datetime(2025, 12, 1, tzinfo=UTC),
    "run_id": "manual__test",
}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def run_task(dagbag, dag_id: str, task_id: str, *args, **kwargs):
    task = dagbag.dags[dag_id].get_task(task_id)
    return task.python_callable(*args, **kwargs, **CONTEXT)


#: The arguments of the tasks mapped over the customers' parts (and of publish).
SHARD = {"score": {"shard": 0, "shards": 1}, "publish": {"shards": 1}}


def raising(exc: BaseException):
    def step(*_args, **_kwargs):
        raise exc

    return step


def quality_error() -> DataQualityError:
    return DataQualityError(
        "features.customer ds=2025-11-30: critical rule expect_column_values_to_be_unique"
        "(customer_id) failed on 2 rows",
        source="features",
        entity="customer",
    )


@pytest.mark.parametrize(
    ("task_id", "module", "function"),
    [
        ("build_features", "cva_tasks.steps.features", "build_features"),
        ("score", "cva_tasks.steps.score", "score"),
    ],
)
def test_a_quality_failure_in_the_daily_dag_is_not_retried(
    dagbag, monkeypatch, task_id, module, function
):
    import importlib

    monkeypatch.setattr(importlib.import_module(module), function, raising(quality_error()))
    with pytest.raises(AirflowFailException, match="critical rule"):
        run_task(dagbag, "cva_customer_value", task_id, **SHARD.get(task_id, {}))
    assert dagbag.dags["cva_customer_value"].get_task(task_id).retries == 2


def test_a_source_that_is_down_is_retried_and_bad_input_is_not(dagbag, monkeypatch):
    from cva_tasks.steps import land

    monkeypatch.setattr(land, "extract", raising(SourceUnavailable("demo_shop: db down")))
    with pytest.raises(SourceUnavailable):
        run_task(dagbag, "cva_source_demo_shop", "transactions.extract", "transactions")
    monkeypatch.setattr(land, "extract", raising(SourceError("demo_shop: no such table: orders")))
    with pytest.raises(AirflowFailException, match="no such table"):
        run_task(dagbag, "cva_source_demo_shop", "transactions.extract", "transactions")


def test_an_unexpected_error_in_the_daily_dag_is_left_to_the_retries(dagbag, monkeypatch):
    from cva_tasks.steps import score

    monkeypatch.setattr(score, "score", raising(RuntimeError("lake read timed out")))
    with pytest.raises(RuntimeError, match="lake read timed out"):
        run_task(dagbag, "cva_customer_value", "score", **SHARD["score"])


def test_a_hand_altered_warehouse_fails_publish_at_once_and_a_down_one_is_retried(
    dagbag, monkeypatch
):
    from cva_tasks.steps import publish
    from cva_tasks.warehouse import WarehouseSchemaError, WarehouseUnavailable

    altered = WarehouseSchemaError(
        "warehouse DuckDB file w.duckdb: tables differ from their specs, nothing was loaded: "
        "customer_scores.frequency: type is VARCHAR, the spec says INTEGER"
    )
    monkeypatch.setattr(publish, "publish", raising(altered))
    with pytest.raises(AirflowFailException, match=r"customer_scores\.frequency"):
        run_task(dagbag, "cva_customer_value", "publish", **SHARD["publish"])
    monkeypatch.setattr(publish, "publish", raising(WarehouseUnavailable("pg down")))
    with pytest.raises(WarehouseUnavailable):
        run_task(dagbag, "cva_customer_value", "publish", **SHARD["publish"])


def test_a_missing_source_day_fails_staging_at_once():
    from cva_tasks.staging import MissingPartition
    from cva_tasks.steps.failures import fail_fast

    def stage():
        raise MissingPartition("staging ds=2025-06-10: source 'demo_shop' ... land it first")

    with pytest.raises(AirflowFailException, match="land it first"):
        fail_fast(stage)

"""``score`` and ``recommend`` are mapped over ``CVA_SCORE_SHARDS`` parts; publish reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "cva_customer_value.py"


def parse(monkeypatch, shards: str | None):
    from airflow.dag_processing.dagbag import DagBag

    if shards is None:
        monkeypatch.delenv("CVA_SCORE_SHARDS", raising=False)
    else:
        monkeypatch.setenv("CVA_SCORE_SHARDS", shards)
    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors
    return bag.dags["cva_customer_value"]


@pytest.mark.parametrize(("shards", "expected"), [(None, 1), ("3", 3)])
def test_score_and_recommend_are_mapped_over_the_parts(monkeypatch, shards, expected):
    dag = parse(monkeypatch, shards)
    for task_id in ("score", "recommend"):
        task = dag.get_task(task_id)
        assert task.op_kwargs_expand_input.value == {"shard": list(range(expected))}, task_id
        assert task.partial_kwargs["op_kwargs"] == {"shards": expected}, task_id
        assert task.retries == 2, task_id
    publish = dag.get_task("publish")
    assert publish.op_args == (expected,), "publish checks the same number of parts"
    assert publish.upstream_task_ids == {"score", "recommend"}
    assert dag.get_task("recommend").upstream_task_ids == {"train_recommender"}
    assert dag.get_task("score").upstream_task_ids == {
        "train_clusters",
        "train_clv",
        "train_churn",
        "score_feedback",
    }
    # The day's lake scores are whole only once publish has read the parts as one.
    assert {a.name for a in publish.outlets} == {
        "cva.scores.customer_scores",
        "cva.scores.customer_recommendations",
        "cva.warehouse.customer_scores",
    }


def test_a_shard_count_out_of_range_is_an_import_error(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CVA_SCORE_SHARDS", "0")
    bag = DagBag(dag_folder=str(DAG_FILE))
    [error] = bag.import_errors.values()
    assert "CVA_SCORE_SHARDS: 0 must be at least 1" in error

"""``cva_customer_value`` with ``dag.test()`` on both warehouses."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake
from cva_tasks.shards import shard_counts

DAY = date(2025, 11, 30)


@pytest.fixture(scope="module")
def airflow_home():
    from cva_tasks.airflow_runner import prepare_airflow_home

    return prepare_airflow_home()


@pytest.fixture
def landed_lake(lake, demo_frames):
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_START

    days = [DEFAULT_START + timedelta(days=n) for n in range((DAY - DEFAULT_START).days + 1)]
    write_raw_from_frames(demo_frames, str(lake), days=days)
    return lake


TABLES = (
    "customer_scores",
    "segment_profiles",
    "customer_recommendations",
    "feedback_sentiment",
    "feedback_topics",
    "audience_members",
    "audience_sizes",
)
# A rerun retrains the day's models: these say when, not what.
VOLATILE = {"customer_scores": (), "model_runs": ("trained_at", "metrics_json")}


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if not k.endswith("seconds")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def published(day: date, table_name: str = "customer_scores"):
    from cva_tasks.warehouse import get_warehouse
    from cva_tasks.warehouse.schema import TABLES as SPECS

    table = get_warehouse().read_table(table_name, day)
    drop = ["loaded_at", "run_id", *VOLATILE.get(table_name, ())]
    key = [(name, "ascending") for name in SPECS[table_name].key]
    rows = table.drop_columns(drop).sort_by(key).to_pylist()
    for row in rows:
        if "params_json" in row:
            row["params_json"] = _without_timings(json.loads(row["params_json"]))
    return rows


def check_models(day: date, scores: list[dict]) -> None:
    """Every model trained on the day's first run, and its outputs landed."""
    runs = published(day, "model_runs")
    assert {r["kind"] for r in runs} == {"clusters", "clv", "churn", "recommender", "sentiment"}
    assert all(r["promoted"] and r["metric_value"] is not None for r in runs), runs
    versions = {r["kind"]: r["version"] for r in runs}

    assert {r["cluster_model_version"] for r in scores} == {versions["clusters"]}
    assert all(r["cluster_id"] is not None and r["cluster_label"] for r in scores)
    profiles = published(day, "segment_profiles")
    assert sorted(p["cluster_id"] for p in profiles) == sorted({r["cluster_id"] for r in scores})
    assert sum(p["customers"] for p in profiles) == len(scores)

    repeaters = [r for r in scores if r["frequency"] >= 2]
    assert {r["clv_model_version"] for r in scores} == {versions["clv"]}
    assert all(0 <= r["p_alive"] <= 1 for r in repeaters)
    assert all(r["p_alive"] is None for r in scores if r["frequency"] <= 1)
    assert all(r["clv_365d"] >= 0 and r["expected_orders_365d"] >= 0 for r in repeaters)

    assert {r["churn_model_version"] for r in scores} == {versions["churn"]}
    assert all(0 <= r["churn_probability"] <= 1 for r in scores)
    assert {r["churn_tier"] for r in scores} <= {"Low", "Medium", "High"}
    assert any(r["churn_reasons"] for r in scores)

    with_feedback = [r for r in scores if r["sentiment_model_version"] is not None]
    assert with_feedback and {r["sentiment_model_version"] for r in with_feedback} == {
        versions["sentiment"]
    }
    assert all(r["negative_feedback_90d"] >= 0 for r in with_feedback)
    for row in published(day, "feedback_sentiment"):
        assert row["as_of_date"] == day == row["submitted_at"].date()
        assert row["label"] in {"negative", "neutral", "positive", "unscored"}
        # A reason exactly where there is no probability (migration 12).
        assert (row["unscored_reason"] is None) == (row["probability"] is not None), row

    recommendations = published(day, "customer_recommendations")
    assert recommendations and {r["model_version"] for r in recommendations} == {
        versions["recommender"]
    }
    next_best = [r for r in recommendations if r["list"] == "next_best"]
    assert max(r["rank"] for r in next_best) == 10
    assert all(r["item_id"] and r["reason"] for r in next_best)


def check_run_and_rerun(lake, day: date, monkeypatch, rerun_shards: int = 1) -> None:
    """Run the day, check it, rerun it with ``score`` and ``recommend`` mapped over
    ``rerun_shards`` parts: the same rows, none twice."""
    from cva_tasks.airflow_runner import run_dag_for_day

    monkeypatch.delenv("CVA_SCORE_SHARDS", raising=False)
    assert run_dag_for_day("cva_customer_value", day) == "success"
    features = storage.read_table(Lake(str(lake)).features("customer", day))
    first = published(day)
    assert len(first) == features.num_rows > 50
    assert {row["as_of_date"] for row in first} == {day}
    assert len({row["customer_id"] for row in first}) == len(first)
    assert {row["segment"] for row in first} >= {"Champions", "Hibernating"}
    check_models(day, first)
    everything = {name: published(day, name) for name in (*TABLES, "model_runs")}

    # The DAG is parsed again for the rerun: its mapped tasks follow the setting.
    monkeypatch.setenv("CVA_SCORE_SHARDS", str(rerun_shards))
    assert run_dag_for_day("cva_customer_value", day) == "success"
    for name, rows in everything.items():
        assert published(day, name) == rows, f"a rerun of the day gives the same {name} rows"
    # The day's parts are those of the last shard count only (none with one part).
    paths = Lake(str(lake))
    counts = [
        n
        for n in shard_counts("customer_scores", paths)
        if storage.exists(paths.shard("customer_scores", n, 0, day))
    ]
    assert counts == ([rerun_shards] if rerun_shards > 1 else [])


def test_daily_dag_on_the_embedded_warehouse(airflow_home, landed_lake, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    check_run_and_rerun(landed_lake, DAY, monkeypatch, rerun_shards=3)


@pytest.mark.postgres
def test_daily_dag_on_postgresql(airflow_home, landed_lake, pg_schema, monkeypatch):
    _url, airflow_uri, _schema = pg_schema
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", airflow_uri)
    check_run_and_rerun(landed_lake, DAY, monkeypatch)


def test_sensor_waits_for_a_missing_partition(landed_lake):
    from cva_tasks.steps.stage import source_landed

    assert source_landed("demo_shop", DAY)
    assert not source_landed("demo_shop", DAY + timedelta(days=1))
    assert source_landed("online_retail", DAY), "a source not active on the day does not block"

"""The daily DAG on a real CeleryExecutor: two workers share a day's customer parts.

Redis broker and PostgreSQL metadata, results and warehouse, all on this machine.
``score`` and ``recommend`` are mapped over 4 parts (``CVA_SCORE_SHARDS``); the parts
must run on both workers, and the warehouse must get exactly the rows that a run of
the same day in one process, unsharded, gives.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pytest

DAY = date(2025, 12, 1)
DAG_ID = "cva_customer_value"
SHARDS = 4
WORKERS = ("worker1", "worker2")
TABLES = ("customer_scores", "segment_profiles", "customer_recommendations")


def land(frames, root) -> None:
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_START

    days = [DEFAULT_START + timedelta(days=n) for n in range((DAY - DEFAULT_START).days + 1)]
    write_raw_from_frames(frames, str(root), days=days)


def published() -> dict[str, list[dict]]:
    """The day's rows of :data:`TABLES` (the warehouse of ``AIRFLOW_CONN_CVA_WAREHOUSE``),
    without the columns that say which run loaded them."""
    from cva_tasks.warehouse import get_warehouse
    from cva_tasks.warehouse.schema import TABLES as SPECS

    warehouse = get_warehouse()
    out = {}
    for name in TABLES:
        table = warehouse.read_table(name, DAY).drop_columns(["loaded_at", "run_id"])
        out[name] = table.sort_by([(k, "ascending") for k in SPECS[name].key]).to_pylist()
    return out


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_two_celery_workers_share_the_day_and_load_the_rows_of_one(
    tmp_path, lake, demo_frames, pg_schema, redis_server, monkeypatch
):
    from airflow_cluster import AirflowCluster

    from cva_tasks.airflow_runner import prepare_airflow_home, run_dag_for_day

    _url, airflow_uri, _schema = pg_schema
    light = {
        "AIRFLOW_CONN_CVA_WAREHOUSE": airflow_uri,
        "CVA_SENSOR_POKE_SECONDS": "2",
        # The two light models keep the test to minutes (as the backfill test does).
        "CVA_MODELS": "clusters,clv",
    }
    # The reference: the same day in this process (dag.test), in one part.
    for key, value in light.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CVA_SCORE_SHARDS", raising=False)
    land(demo_frames, lake)
    prepare_airflow_home()
    assert run_dag_for_day(DAG_ID, DAY) == "success"
    one = published()
    assert len(one["customer_scores"]) > 100 and one["customer_recommendations"]

    # The cluster: its own lake of the same shop, the same warehouse (the day replaced).
    cluster_lake = tmp_path / "cluster-lake"
    land(demo_frames, cluster_lake)
    env = {
        **light,
        "CVA_HOME": str(tmp_path / "cluster-home"),
        "CVA_DATA_ROOT": str(cluster_lake),
        "CVA_SCORE_SHARDS": str(SHARDS),
    }
    pg_dsn = os.environ.get("CVA_TEST_PG_DSN", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    with AirflowCluster(tmp_path / "airflow", pg_dsn, env, celery_workers=WORKERS) as cluster:
        cluster.wait_for_workers()
        cluster.wait_for_dags([DAG_ID])
        cluster.airflow("dags", "unpause", DAG_ID)
        cluster.airflow(
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            DAY.isoformat(),
            "--to-date",
            DAY.isoformat(),
            "--reprocess-behavior",
            "completed",
        )
        [run] = cluster.wait_for_runs(DAG_ID, 1, run_type="backfill", timeout=900)
        assert run["state"] == "success", cluster.task_failures(DAG_ID)
        parts = cluster.task_instances(DAG_ID, ("score", "recommend"), run_type="backfill")

    # Which worker ran which part (pytest -s shows it; the README quotes these figures).
    for ti in parts:
        print(f"{ti['task_id']}[{ti['map_index']}] on {ti['hostname']}: {ti['seconds']:.1f} s")
    assert sorted((ti["task_id"], ti["map_index"]) for ti in parts) == sorted(
        (task, k) for task in ("recommend", "score") for k in range(SHARDS)
    )
    assert {ti["state"] for ti in parts} == {"success"}
    assert {ti["hostname"] for ti in parts} == set(WORKERS), "the parts ran on both workers"

    four = published()
    for name in TABLES:
        assert len(four[name]) == len(one[name]), f"{name}: no row lost or loaded twice"
        assert four[name] == one[name], f"{name}: the rows of the unsharded run"

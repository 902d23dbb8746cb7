"""A 7-day backfill of ``cva_customer_value`` run by a real scheduler.

LocalExecutor, PostgreSQL metadata DB, PostgreSQL warehouse. The demo shop's
history is landed in the lake first (in bulk, as the source DAGs would land
it); the backfill then has to produce exactly one feature and one score
partition per day and exactly that day's rows in the warehouse, and clearing a
day must rerun it to identical rows.
"""

from __future__ import annotations

import itertools
import os
from datetime import date, datetime, timedelta

import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake

FIRST, LAST = date(2025, 12, 1), date(2025, 12, 7)
DAYS = [FIRST + timedelta(days=n) for n in range((LAST - FIRST).days + 1)]
DAG_ID = "cva_customer_value"


def get_columns() -> list[str]:
    from cva_tasks.warehouse.schema import TABLES

    return [c for c in TABLES["customer_scores"].column_names if c not in ("loaded_at", "run_id")]


def warehouse_rows(conn_id_env: dict, day: date) -> list[tuple]:
    from cva_tasks.warehouse import get_warehouse

    saved = {k: os.environ.get(k) for k in conn_id_env}
    os.environ.update(conn_id_env)
    try:
        table = get_warehouse().read_table("customer_scores", day)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    table = table.drop_columns(["loaded_at", "run_id"]).sort_by("customer_id")
    return list(zip(*[table.column(n).to_pylist() for n in table.column_names], strict=True))


@pytest.mark.postgres
@pytest.mark.slow
def test_seven_day_backfill_and_clear_rerun(tmp_path, pg_schema):
    from airflow_cluster import AirflowCluster

    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_START, generate_frames

    _url, airflow_uri, _schema = pg_schema
    lake = tmp_path / "lake"
    frames = generate_frames(n_customers=300, seed=5)
    history = [DEFAULT_START + timedelta(days=n) for n in range((LAST - DEFAULT_START).days + 1)]
    write_raw_from_frames(frames, str(lake), days=history)
    env = {
        "CVA_HOME": str(tmp_path / "home"),
        "CVA_DATA_ROOT": str(lake),
        "AIRFLOW_CONN_CVA_WAREHOUSE": airflow_uri,
        "CVA_SENSOR_POKE_SECONDS": "2",
        # The two light models keep the test to minutes (each task is a fresh process:
        # TensorFlow alone costs seconds per import); test_model_steps covers the rest.
        "CVA_MODELS": "clusters,clv",
    }
    pg_dsn = os.environ.get("CVA_TEST_PG_DSN", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    with AirflowCluster(tmp_path / "airflow", pg_dsn, env) as cluster:
        cluster.wait_for_dags([DAG_ID])
        cluster.airflow("dags", "unpause", DAG_ID)
        cluster.airflow(
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            FIRST.isoformat(),
            "--to-date",
            LAST.isoformat(),
            "--max-active-runs",
            "2",
            "--reprocess-behavior",
            "completed",
        )
        runs = cluster.wait_for_runs(DAG_ID, len(DAYS), run_type="backfill", timeout=1200)
        assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in DAYS]
        assert {r["state"] for r in runs} == {"success"}, cluster.task_failures(DAG_ID)
        # Two runs at a time, but training goes day after day (depends_on_past).
        for task_id in ("train_clv", "train_clusters"):
            spans = cluster.task_spans(DAG_ID, task_id, run_type="backfill")
            assert [day for day, _start, _end in spans] == DAYS, spans
            for (day, _, before_end), (_, start, _) in itertools.pairwise(spans):
                assert start >= before_end, f"{task_id} of the day after {day} overlapped it"

        paths = Lake(str(lake))
        for zone in (paths.features("customer"), paths.scores("customer_scores")):
            days = storage.list_partitions(zone)
            assert days == DAYS, zone
        per_day = {}
        for day in DAYS:
            features = storage.read_table(paths.features("customer", day))
            per_day[day] = warehouse_rows({"AIRFLOW_CONN_CVA_WAREHOUSE": airflow_uri}, day)
            assert len(per_day[day]) == features.num_rows > 100
            assert {row[0] for row in per_day[day]} == {day}
            assert len({row[1] for row in per_day[day]}) == len(per_day[day]), "one row a customer"
            names = get_columns()
            versions = {row[names.index("clv_model_version")] for row in per_day[day]}
            assert len(versions) == 1 and None not in versions, versions
            trained = datetime.strptime(versions.pop().split("-")[1], "%Y%m%d").date()
            assert trained <= day, f"{day} scored by a model trained on {trained}"

        rerun_day = DAYS[2]
        cluster.airflow(
            "tasks",
            "clear",
            DAG_ID,
            "--start-date",
            rerun_day.isoformat(),
            "--end-date",
            rerun_day.isoformat(),
            "--yes",
        )
        cluster.wait_for_runs(DAG_ID, len(DAYS), run_type="backfill", timeout=600, cleared=True)
        assert (
            warehouse_rows({"AIRFLOW_CONN_CVA_WAREHOUSE": airflow_uri}, rerun_day)
            == (per_day[rerun_day])
        )
        for day in DAYS:
            assert len(warehouse_rows({"AIRFLOW_CONN_CVA_WAREHOUSE": airflow_uri}, day)) == len(
                per_day[day]
            )

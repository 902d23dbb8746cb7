"""``cva_customer_value`` with ``dag.test()`` on both warehouses."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cva_tasks import storage

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


def published(day: date):
    from cva_tasks.warehouse import get_warehouse

    table = get_warehouse().read_table("customer_scores", day)
    return table.drop_columns(["loaded_at", "run_id"]).sort_by("customer_id").to_pylist()


def check_run_and_rerun(lake, day: date) -> None:
    from cva_tasks.airflow_runner import run_dag_for_day

    assert run_dag_for_day("cva_customer_value", day) == "success"
    features = storage.read_table(storage.join(str(lake), "features", "customer", f"ds={day}"))
    first = published(day)
    assert len(first) == features.num_rows > 50
    assert {row["as_of_date"] for row in first} == {day}
    assert len({row["customer_id"] for row in first}) == len(first)
    assert {row["segment"] for row in first} >= {"Champions", "Hibernating"}

    assert run_dag_for_day("cva_customer_value", day) == "success"
    assert published(day) == first, "a rerun of the day gives the same rows, no duplicates"


def test_daily_dag_on_the_embedded_warehouse(airflow_home, landed_lake, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    check_run_and_rerun(landed_lake, DAY)


@pytest.mark.postgres
def test_daily_dag_on_postgresql(airflow_home, landed_lake, pg_schema, monkeypatch):
    _url, airflow_uri, _schema = pg_schema
    monkeypatch.setenv("AIRFLOW_CONN_CVA_WAREHOUSE", airflow_uri)
    check_run_and_rerun(landed_lake, DAY)


def test_sensor_waits_for_a_missing_partition(landed_lake):
    from cva_tasks.pipeline import source_landed

    assert source_landed("demo_shop", DAY)
    assert not source_landed("demo_shop", DAY + timedelta(days=1))
    assert source_landed("online_retail", DAY), "a source not active on the day does not block"

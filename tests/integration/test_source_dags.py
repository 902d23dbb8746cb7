"""Each source DAG run with ``dag.test()`` on the demo shop: SQLite, PostgreSQL, files."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake

DAY = date(2025, 11, 28)  # a busy pre-Christmas day of the demo shop


@pytest.fixture(scope="module")
def airflow_home():
    from cva_tasks.airflow_runner import prepare_airflow_home

    return prepare_airflow_home()


@pytest.fixture
def shop_sqlite(tmp_path, demo_frames, lake, monkeypatch):
    from cva_tasks.demo.shop import write_database, write_feedback_drops

    db = tmp_path / "shop.db"
    write_database(demo_frames, f"sqlite:///{db}")
    write_feedback_drops(demo_frames, tmp_path / "drops")
    monkeypatch.setenv("AIRFLOW_CONN_CVA_DEMO_SHOP", f"sqlite:///{db}")
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(tmp_path / "drops"))
    return db


def expected_transaction_ids(conn, day: date) -> set[str]:
    start, end = f"{day} 00:00:00", f"{day.toordinal()}"
    end = date.fromordinal(day.toordinal() + 1).isoformat() + " 00:00:00"
    params = {"s": start, "e": end}
    cur = conn.cursor()
    lines = cur.execute(
        "select 'L' || l.order_line_id from order_lines l join orders o using (order_id)"
        " where o.updated_at >= %(s)s and o.updated_at < %(e)s".replace("%(s)s", ":s").replace(
            "%(e)s", ":e"
        ),
        params,
    ).fetchall()
    cancelled = cur.execute(
        "select 'C' || l.order_line_id from order_lines l join orders o using (order_id)"
        " where o.status = 'cancelled' and o.updated_at >= :s and o.updated_at < :e",
        params,
    ).fetchall()
    returns = cur.execute(
        "select 'R' || return_id from returns where updated_at >= :s and updated_at < :e", params
    ).fetchall()
    return {r[0] for r in lines + cancelled + returns}


def raw(lake, source: str, entity: str, day: date = DAY):
    return storage.read_table(Lake(str(lake)).raw(source, entity, day))


def test_demo_shop_dag_on_sqlite_lands_the_day_and_reruns_identically(
    airflow_home, shop_sqlite, lake
):
    from cva_tasks.airflow_runner import run_dag_for_day

    assert run_dag_for_day("cva_source_demo_shop", DAY) == "success"
    with sqlite3.connect(shop_sqlite) as conn:
        expected = expected_transaction_ids(conn, DAY)
    landed = raw(lake, "demo_shop", "transactions")
    assert len(expected) > 20
    assert set(landed.column("transaction_id").to_pylist()) == expected
    assert landed.num_rows == len(expected)
    first = {e: raw(lake, "demo_shop", e) for e in ("transactions", "customers", "items")}

    assert run_dag_for_day("cva_source_demo_shop", DAY) == "success"
    for entity, table in first.items():
        assert raw(lake, "demo_shop", entity).equals(table), entity
    fs, path = storage.filesystem(Lake(str(lake)).raw("demo_shop", "transactions", DAY))
    assert fs.ls(path, detail=False) == [f"{path}/part-0.parquet"]


def test_negative_price_is_quarantined_in_a_dag_run(airflow_home, shop_sqlite, lake):
    from cva_tasks.airflow_runner import run_dag_for_day

    with sqlite3.connect(shop_sqlite) as conn:
        line_id = conn.execute(
            "select l.order_line_id from order_lines l join orders o using (order_id)"
            " where o.updated_at >= ? and o.updated_at < ? and o.status = 'placed' limit 1",
            (f"{DAY} 00:00:00", f"{DAY} 23:59:59"),
        ).fetchone()[0]
        conn.execute("update order_lines set unit_price = -4.5 where order_line_id = ?", (line_id,))
    assert run_dag_for_day("cva_source_demo_shop", DAY) == "success"
    quarantine = storage.read_table(
        Lake(str(lake)).quarantine("demo_shop", "transactions", DAY)
    ).to_pylist()
    assert {q["transaction_id"] for q in quarantine} == {f"L{line_id}"}
    assert "expect_column_values_to_be_between(unit_price)" in quarantine[0]["dq_rules"]
    assert (
        f"L{line_id}"
        not in raw(lake, "demo_shop", "transactions").column("transaction_id").to_pylist()
    )
    # The day's summary, as the warehouse's dq_results gets it, names the rule and count.
    from cva_tasks.quality.summary import dq_result_rows

    entities = [("demo_shop", e) for e in ("transactions", "customers", "items")]
    results = {r["entity"]: r for r in dq_result_rows(Lake(str(lake)), DAY, entities).to_pylist()}
    assert set(results) == {"customers", "items", "transactions"}
    transactions = results["transactions"]
    assert transactions["failed_rules"] == "expect_column_values_to_be_between(unit_price): 1 row"
    assert transactions["rows_quarantined"] == 1
    assert transactions["rows_clean"] == raw(lake, "demo_shop", "transactions").num_rows
    assert transactions["rows_checked"] == transactions["rows_clean"] + 1
    assert transactions["failing_share"] == pytest.approx(1 / transactions["rows_checked"])
    assert transactions["suite"] and transactions["validated_by_run"]
    assert results["items"]["failed_rules"] is None


def test_failed_run_keeps_the_landed_partition_and_alerts_once(
    airflow_home, shop_sqlite, lake, tmp_path, webhook, monkeypatch
):
    from cva_tasks.airflow_runner import run_dag_for_day

    url, alerts, _ = webhook
    monkeypatch.setenv("CVA_ALERT_WEBHOOK_URL", url)
    assert run_dag_for_day("cva_source_demo_feedback", DAY) == "success"
    assert alerts == []
    before = raw(lake, "demo_feedback", "feedback")
    (tmp_path / "drops" / f"feedback_{DAY}.jsonl").write_text('{"feedback_id": "F1"\n')
    assert run_dag_for_day("cva_source_demo_feedback", DAY) == "failed"
    assert raw(lake, "demo_feedback", "feedback").equals(before)
    # One failed task, one alert (the run's own failure callback does not repeat it).
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert alert["kind"] == "task_failed"
    assert (alert["dag"], alert["ds"], alert["try"]) == ("cva_source_demo_feedback", str(DAY), 1)
    assert alert["task"] in {"feedback.extract", "feedback.validate"}
    assert "feedback_" in alert["exception"]
    assert "/dags/cva_source_demo_feedback/runs/" in alert["log_url"]


@pytest.mark.postgres
def test_demo_shop_dag_on_postgresql(
    airflow_home, demo_frames, lake, pg_schema, monkeypatch, tmp_path
):
    import sqlalchemy as sa

    from cva_tasks.airflow_runner import run_dag_for_day
    from cva_tasks.demo.shop import write_database

    url, airflow_uri, _schema = pg_schema
    write_database(demo_frames, url)
    monkeypatch.setenv("AIRFLOW_CONN_CVA_DEMO_SHOP", airflow_uri)
    assert run_dag_for_day("cva_source_demo_shop", DAY) == "success"
    landed = raw(lake, "demo_shop", "transactions")

    # The same day from SQLite must land the very same rows.
    db = tmp_path / "same.db"
    write_database(demo_frames, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        expected = expected_transaction_ids(conn, DAY)
    assert set(landed.column("transaction_id").to_pylist()) == expected
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        customers = conn.execute(
            sa.text("select count(*) from customers where updated_at >= :s and updated_at < :e"),
            {"s": f"{DAY} 00:00:00", "e": f"{date.fromordinal(DAY.toordinal() + 1)} 00:00:00"},
        ).scalar()
    engine.dispose()
    assert raw(lake, "demo_shop", "customers").num_rows == customers


def test_online_retail_dag_on_the_real_export(airflow_home, lake, shared_data, monkeypatch):
    from cva_tasks.airflow_runner import run_dag_for_day

    monkeypatch.setenv("CVA_ONLINE_RETAIL_PATH", str(shared_data / "online_retail"))
    day = date(2010, 12, 1)
    assert run_dag_for_day("cva_source_online_retail", day) == "success"
    landed = raw(lake, "online_retail", "transactions", day)
    quarantine = storage.read_table(
        Lake(str(lake)).quarantine("online_retail", "transactions", day)
    ).to_pandas()
    # 3,108 lines that day: 1,140 guest lines and 44 exact repeats are rejected on purpose.
    assert landed.num_rows + len(quarantine) == 3108
    reasons = quarantine["dq_rules"].value_counts().to_dict()
    assert reasons["mapping: guest line without CustomerID"] == 1140
    assert reasons["mapping: exact duplicate of an earlier line"] == 44
    assert raw(lake, "online_retail", "customers", day).num_rows == 98

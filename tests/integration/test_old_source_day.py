"""A day of a source older than the demo (``online_retail``, 2010-12-01 on) runs end to end.

Before, the daily DAG started on 2024-01-01 and Airflow ran no task for 2011-06-01 yet
reported the run a success: no features, no scores, no warehouse rows, no error. Now
the DAG starts on the earliest source's first day, and ``run_dag_for_day`` refuses a
day before a DAG's start date (or after its end date) instead of reporting success.
"""

from __future__ import annotations

from datetime import date

import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake

DAY = date(2011, 6, 1)
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
LINES = [
    "556001,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2011-05-31 09:10:00,2.55,17850,UK",
    "556001,71053,WHITE METAL LANTERN,6,2011-05-31 09:10:00,3.39,17850,UK",
    "556002,22633,HAND WARMER UNION JACK,6,2011-05-31 11:00:00,1.85,13047,UK",
    "556101,85123A,WHITE HANGING HEART T-LIGHT HOLDER,12,2011-06-01 10:00:00,2.55,17850,UK",
    "556102,84879,ASSORTED COLOUR BIRD ORNAMENT,8,2011-06-01 12:30:00,1.69,12583,France",
    "556103,22745,POPPY'S PLAYHOUSE BEDROOM,6,2011-06-01 15:45:00,2.10,13047,UK",
]


@pytest.fixture(scope="module")
def airflow_home():
    from cva_tasks.airflow_runner import prepare_airflow_home

    return prepare_airflow_home()


@pytest.fixture
def export(tmp_path, lake, monkeypatch):
    path = tmp_path / "exports" / "online_retail.csv"
    path.parent.mkdir()
    path.write_text("\n".join([HEADER, *LINES]) + "\n")
    monkeypatch.setenv("CVA_ONLINE_RETAIL_PATH", str(path.parent))
    monkeypatch.setenv("CVA_PIPELINE_SOURCES", "online_retail")
    monkeypatch.setenv("CVA_MODELS", "")
    monkeypatch.setenv("CVA_SENSOR_POKE_SECONDS", "1")
    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    return path


@pytest.mark.slow
def test_a_day_of_an_old_source_runs_the_daily_pipeline(airflow_home, export, lake):
    from cva_tasks.airflow_runner import run_dag_for_day
    from cva_tasks.warehouse import get_warehouse

    for day in (date(2011, 5, 31), DAY):
        assert run_dag_for_day("cva_source_online_retail", day) == "success"
    assert run_dag_for_day("cva_customer_value", DAY) == "success"

    features = storage.read_table(Lake(str(lake)).features("customer", DAY)).to_pylist()
    assert {f["customer_id"] for f in features} == {"17850", "13047", "12583"}
    by_id = {f["customer_id"]: f for f in features}
    assert by_id["17850"]["frequency"] == 2
    scores = get_warehouse().read_table("customer_scores", DAY).to_pylist()
    assert sorted(r["customer_id"] for r in scores) == ["12583", "13047", "17850"]


def test_a_day_before_a_dag_starts_is_refused_not_reported_as_success(airflow_home):
    from cva_tasks.airflow_runner import run_dag_for_day

    with pytest.raises(ValueError, match=r"cva_customer_value starts on 2010-12-01.*2009-06-01"):
        run_dag_for_day("cva_customer_value", date(2009, 6, 1))
    with pytest.raises(ValueError, match=r"cva_source_online_retail ends on 2011-12-09"):
        run_dag_for_day("cva_source_online_retail", date(2012, 1, 5))

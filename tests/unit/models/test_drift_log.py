"""Churn drift checks kept per day in the lake."""

from __future__ import annotations

import math
from datetime import date

from cva_tasks import storage
from cva_tasks.lake import Lake
from cva_tasks.models.drift_log import drift_record, read_drift, record_drift


def test_record_names_the_features_over_the_threshold():
    record = drift_record(
        "churn",
        date(2025, 12, 5),
        "churn-20251201",
        {"tenure_days": 0.25, "recency_days": 0.05, "avg_rating": math.nan},
        threshold=0.2,
    )
    assert record["psi"] == {"avg_rating": None, "recency_days": 0.05, "tenure_days": 0.25}
    assert record["over_threshold"] == ["tenure_days"]
    assert (record["max_feature"], record["max_psi"]) == ("tenure_days", 0.25)
    assert record["as_of_date"] == "2025-12-05" and record["champion_version"] == "churn-20251201"


def test_read_back_by_day_and_a_rerun_replaces_the_day(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    for day in (1, 2, 3):
        record_drift(lake, "churn", date(2025, 12, day), "churn-x", {"f": day / 10}, 0.2)
    path = record_drift(lake, "churn", date(2025, 12, 2), "churn-y", {"f": 0.3}, 0.2)
    assert path.endswith("drift/churn/ds=2025-12-02/psi.json") and storage.exists(path)

    records = read_drift(lake, "churn", until=date(2025, 12, 2))
    assert [(r["as_of_date"], r["max_psi"]) for r in records] == [
        ("2025-12-01", 0.1),
        ("2025-12-02", 0.3),
    ]
    assert records[1]["over_threshold"] == ["f"]
    since = read_drift(lake, "churn", until=date(2025, 12, 3), since=date(2025, 12, 3))
    assert [r["as_of_date"] for r in since] == ["2025-12-03"]
    assert read_drift(lake, "clv", until=date(2025, 12, 3)) == []

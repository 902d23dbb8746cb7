"""The page's figures against a warehouse whose rows the test wrote and knows."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest

from cva_tasks.lake import Lake
from cva_tasks.ui import figures
from cva_tasks.ui.reader import WarehouseReader
from cva_tasks.ui.sample import publish_sample_days
from cva_tasks.warehouse import EmbeddedWarehouse, WarehouseUnavailable

DAYS = [date(2025, 12, 1) + timedelta(days=i) for i in range(8)]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    lake = Lake(str(root / "lake"))
    written = publish_sample_days(
        EmbeddedWarehouse(root / "warehouse.duckdb"),
        lake,
        DAYS,
        customers=300,
        data_docs_dir=root / "data_docs",
    )
    reader = WarehouseReader(EmbeddedWarehouse(root / "warehouse.duckdb", auto_migrate=False))
    return reader, lake, root, written


def scores_of(written, day):
    return written["days"][day]["customer_scores"]


def test_an_absent_warehouse_has_no_day_and_is_not_created(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    reader = WarehouseReader(EmbeddedWarehouse(path, auto_migrate=False))
    assert figures.published_days(reader) == []
    with reader.session():
        assert figures.days_index(reader) == {"days": [], "latest": None}
    assert not path.exists()


def test_a_warehouse_held_by_a_load_is_reported_busy(tmp_path: Path):
    import subprocess
    import sys

    path = tmp_path / "warehouse.duckdb"
    EmbeddedWarehouse(path).migrate()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(path)!r}); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        reader = WarehouseReader(EmbeddedWarehouse(path, auto_migrate=False), lock_timeout=0.5)
        with pytest.raises(WarehouseUnavailable, match="busy"):
            figures.published_days(reader)
    finally:
        holder.kill()
        holder.wait()
    assert figures.published_days(reader) == []  # free again


def test_a_session_reads_through_one_connection(published, monkeypatch):
    import duckdb

    reader, *_ = published
    opened = []
    real_connect = duckdb.connect
    monkeypatch.setattr(
        duckdb, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k)
    )
    with reader.session():
        figures.summary(reader, DAYS[0])
        figures.segments(reader, DAYS[0])
        figures.clusters(reader, DAYS[0])
    assert len(opened) == 1
    figures.summary(reader, DAYS[0])
    assert len(opened) == 2  # outside a session, a connection per query


def test_a_migrated_but_empty_warehouse_has_no_day(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    EmbeddedWarehouse(path).migrate()
    reader = WarehouseReader(EmbeddedWarehouse(path, auto_migrate=False))
    assert figures.days_index(reader) == {"days": [], "latest": None}
    with pytest.raises(figures.DayNotPublished):
        figures.require_published(reader, DAYS[0])


def test_days_newest_first(published):
    reader, *_ = published
    index = figures.days_index(reader)
    assert index["days"] == [d.isoformat() for d in reversed(DAYS)]
    assert index["latest"] == DAYS[-1].isoformat()


def test_summary_counts_the_days_rows(published):
    reader, _, _, written = published
    day = DAYS[4]
    rows = scores_of(written, day)
    summary = figures.summary(reader, day)
    assert summary["customers_scored"] == len(rows) == 300
    assert summary["active_customers"] == sum(r["r_score"] is not None for r in rows)
    assert summary["customers_with_clv"] == sum(r["clv_365d"] is not None for r in rows)
    assert summary["total_clv_365d"] == pytest.approx(
        sum(r["clv_365d"] for r in rows if r["clv_365d"] is not None), abs=0.01
    )
    assert summary["high_churn_customers"] == sum(r["churn_tier"] == "High" for r in rows)
    assert summary["run_id"].startswith("scheduled__2025-12-06")


def test_segments_and_tiers_are_the_days_counts(published):
    reader, _, _, written = published
    day = DAYS[2]
    rows = scores_of(written, day)
    segments = figures.segments(reader, day)["segments"]
    assert {s["segment"]: s["customers"] for s in segments} == Counter(r["segment"] for r in rows)
    assert [s["customers"] for s in segments] == sorted(
        (s["customers"] for s in segments), reverse=True
    )
    assert sum(s["share"] for s in segments) == pytest.approx(1, abs=1e-3)
    tiers = figures.churn_tiers(reader, day)["tiers"]
    assert [t["tier"] for t in tiers] == ["Low", "Medium", "High"]
    assert {t["tier"]: t["customers"] for t in tiers} == Counter(r["churn_tier"] for r in rows)


def test_clusters_come_from_segment_profiles(published):
    reader, _, _, written = published
    day = DAYS[0]
    clusters = figures.clusters(reader, day)["clusters"]
    counted = Counter(r["cluster_id"] for r in scores_of(written, day))
    assert {c["cluster_id"]: c["customers"] for c in clusters} == counted
    assert [c["label"] for c in clusters] == [
        "lapsed customers",
        "frequent high spenders",
        "new customers",
    ]


def test_clv_histogram_holds_every_customer_with_a_clv(published):
    reader, _, _, written = published
    day = DAYS[7]
    values = sorted(r["clv_365d"] for r in scores_of(written, day) if r["clv_365d"] is not None)
    clv = figures.clv_distribution(reader, day, bins=10)
    assert len(clv["bins"]) == 10
    assert clv["bins"][0]["low"] == 0 and clv["bins"][-1]["high"] == pytest.approx(clv["p99"])
    assert sum(b["customers"] for b in clv["bins"]) + clv["above"]["customers"] == len(values)
    assert clv["above"]["customers"] == sum(v > clv["p99"] for v in values)
    assert clv["not_scored"] == 300 - len(values)
    assert clv["max"] == pytest.approx(values[-1], abs=0.01)
    for b in clv["bins"]:
        assert b["customers"] == sum(b["low"] <= v < b["high"] for v in values) + (
            b is clv["bins"][-1] and values.count(clv["p99"])
        )


def test_model_runs_history_stops_at_the_day_and_names_champions(published):
    reader, *_ = published
    early = figures.model_runs(reader, DAYS[5])
    assert set(early["history"]) == {"clv", "clusters", "churn", "recommender", "sentiment"}
    assert [r["as_of_date"] for r in early["history"]["churn"]] == ["2025-12-01", "2025-12-04"]
    assert early["on_day"] == []
    late = figures.model_runs(reader, DAYS[7])
    assert {r["kind"] for r in late["on_day"]} == set(late["history"])
    clv = late["history"]["clv"][-1]
    assert clv["promoted"] is False and "not promoted" in clv["reason"]
    assert late["champions"]["clv"]["version"] == "clv-20251201"  # the challenger lost
    assert late["champions"]["churn"]["version"] == "churn-20251208"


def test_quality_history_and_the_days_rows(published):
    reader, _, root, _ = published
    quality = figures.quality(reader, DAYS[3], root / "data_docs", history_days=3)
    assert quality["since"] == "2025-12-02"
    names = [(e["source"], e["entity"]) for e in quality["entities"]]
    assert names == sorted(names) and len(names) == 4
    transactions = next(e for e in quality["entities"] if e["entity"] == "transactions")
    assert [h["as_of_date"] for h in transactions["history"]] == [
        "2025-12-02",
        "2025-12-03",
        "2025-12-04",
    ]
    assert transactions["history"][0]["rows_quarantined"] == 3
    assert transactions["history"][0]["failing_share"] == pytest.approx(3 / 91)
    assert transactions["on_day"]["as_of_date"] == "2025-12-04"
    assert quality["data_docs"] == {
        "demo_feedback": None,  # no site was built for it
        "demo_shop": "data-docs/demo_shop/index.html",
    }


def test_drift_reads_the_recorded_checks_up_to_the_day(published):
    _, lake, _, written = published
    drift = figures.drift(lake, DAYS[4], threshold=0.2)
    assert drift["on_day"]["as_of_date"] == "2025-12-05"
    assert drift["on_day"]["over_threshold"] == ["tenure_days"]
    assert [h["as_of_date"] for h in drift["history"]] == [
        "2025-12-02",
        "2025-12-03",
        "2025-12-04",
        "2025-12-05",
    ]
    assert figures.drift(lake, DAYS[0], threshold=0.2)["on_day"] is None  # churn trained
    assert written["days"][DAYS[0]]["drift_file"] is None


def test_audiences_are_the_days_sizes_and_their_history_up_to_the_day(published):
    reader, _, _, written = published
    result = figures.audiences(reader, DAYS[3])
    sizes = written["days"][DAYS[3]]["audience_sizes"]
    assert {r["audience"]: r["customers"] for r in result["on_day"]} == sizes
    assert sizes["vip"] > 0 and sizes["win_back"] > 0, "the sample scores fill some audiences"
    assert set(result["history"]) == set(sizes)
    for name, points in result["history"].items():
        assert [p["as_of_date"] for p in points] == [d.isoformat() for d in DAYS[:4]]
        assert [p["customers"] for p in points] == [
            written["days"][d]["audience_sizes"][name] for d in DAYS[:4]
        ]
    assert all(r["description"] for r in result["on_day"])


def test_audiences_of_a_warehouse_without_the_table_are_empty(tmp_path: Path):
    from cva_tasks.warehouse import MIGRATIONS

    warehouse = EmbeddedWarehouse(tmp_path / "w.duckdb")
    warehouse.migrate(MIGRATIONS[:8])
    reader = WarehouseReader(EmbeddedWarehouse(tmp_path / "w.duckdb", auto_migrate=False))
    assert figures.audiences(reader, DAYS[0]) == {
        "as_of_date": "2025-12-01",
        "since": "2025-10-03",
        "on_day": [],
        "history": {},
    }


def test_day_report_refuses_a_day_not_published(published):
    reader, lake, root, _ = published
    with pytest.raises(figures.DayNotPublished, match="2025-11-30"):
        figures.day_report(
            reader, date(2025, 11, 30), lake=lake, data_docs_dir=root, psi_threshold=0.2
        )
    report = figures.day_report(
        reader, DAYS[-1], lake=lake, data_docs_dir=root / "data_docs", psi_threshold=0.2
    )
    assert set(report) == {
        "as_of_date",
        "summary",
        "segments",
        "clusters",
        "churn_tiers",
        "clv",
        "model_runs",
        "quality",
        "drift",
        "audiences",
    }

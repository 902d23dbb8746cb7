"""extract -> validate -> land on files, without Airflow: gates and quarantine."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake
from cva_tasks.quality import DataQualityError
from cva_tasks.quality.summary import recent_row_counts
from cva_tasks.sources.base import Interval, SourceError
from cva_tasks.steps import land as landing

DAY = date(2025, 6, 10)


def feedback_line(fid: str, rating, day: date = DAY, **extra) -> dict:
    row = {
        "feedback_id": fid,
        "customer_id": 1,
        "order_id": 2,
        "rating": rating,
        "comment": "fast delivery but the fabric feels cheap",
        "submitted_at": f"{day.isoformat()}T10:00:00Z",
    }
    row.update(extra)
    return row


@pytest.fixture
def drops(tmp_path, lake, monkeypatch):
    folder = tmp_path / "drops"
    folder.mkdir()
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(folder))

    def write(rows, day: date = DAY, raw: str | None = None):
        path = folder / f"feedback_{day.isoformat()}.jsonl"
        path.write_text(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in rows))
        return path

    return write


def run_day(day: date = DAY, run_id: str = "manual__1"):
    interval = Interval.for_day(day)
    args = ("demo_feedback", "feedback", interval.start.isoformat(), interval.end.isoformat())
    landing.extract(*args, run_id)
    summary = landing.validate(*args, run_id)
    landed = landing.land(*args, run_id)
    return summary, landed


def raw_rows(lake, day: date = DAY):
    uri = Lake(str(lake)).raw("demo_feedback", "feedback", day)
    return storage.read_table(uri).to_pylist()


def quarantine_rows(lake, day: date = DAY):
    uri = Lake(str(lake)).quarantine("demo_feedback", "feedback", day)
    return storage.read_table(uri).to_pylist() if storage.exists(uri) else []


def test_clean_day_lands_and_rerun_gives_same_rows(drops, lake):
    drops([feedback_line("F1", 5), feedback_line("F2", None), feedback_line("F3", 2)])
    summary, _landed = run_day()
    assert summary["rows_clean"] == 3 and summary["passed"]
    first = raw_rows(lake)
    assert [r["feedback_id"] for r in first] == ["F1", "F2", "F3"]
    run_day(run_id="manual__2")
    assert raw_rows(lake) == first
    assert not storage.exists(Lake(str(lake)).work("manual__2", "demo_feedback", "feedback", DAY))


def test_rating_of_seven_is_quarantined_with_its_rule(drops, lake):
    rows = [feedback_line(f"F{i}", 4) for i in range(40)] + [feedback_line("BAD", 7)]
    drops(rows)
    summary, _ = run_day()
    assert summary["rows_quarantined"] == 1
    assert [r["feedback_id"] for r in quarantine_rows(lake)] == ["BAD"]
    assert "expect_column_values_to_be_between(rating)" in quarantine_rows(lake)[0]["dq_rules"]
    assert "BAD" not in {r["feedback_id"] for r in raw_rows(lake)}


def test_fractional_rating_is_rejected_by_the_mapping(drops, lake):
    drops([feedback_line(f"F{i}", 4) for i in range(5)] + [feedback_line("HALF", 3.5)])
    summary, _ = run_day()
    assert summary["rows_rejected_by_mapping"] == 1
    rule = quarantine_rows(lake)[0]["dq_rules"]
    assert rule == "mapping: rating is not a whole number"


def test_duplicate_key_fails_and_keeps_the_landed_partition(drops, lake):
    drops([feedback_line("F1", 5), feedback_line("F2", 4)])
    run_day()
    before = raw_rows(lake)
    drops([feedback_line("F1", 5), feedback_line("F1", 5), feedback_line("F9", 1)])
    with pytest.raises(DataQualityError) as info:
        run_day(run_id="manual__2")
    message = str(info.value)
    assert "demo_feedback" in message and "2025-06-10" in message
    assert "expect_column_values_to_be_unique(feedback_id)" in message and "F1" in message
    assert raw_rows(lake) == before


def test_too_many_bad_rows_fail_the_run(drops, lake, monkeypatch):
    monkeypatch.setenv("CVA_MAX_FAILING_SHARE", "0.2")
    drops([feedback_line("F1", 5), feedback_line("F2", 9), feedback_line("F3", 0)])
    with pytest.raises(DataQualityError, match=r"2 of 3 rows .* more than the allowed 20.0%"):
        run_day()
    assert not storage.exists(Lake(str(lake)).raw("demo_feedback", "feedback", DAY))
    assert len(quarantine_rows(lake)) == 2, "the quarantine is kept for inspection"


def test_malformed_drop_names_file_and_line(drops, lake):
    drops([], raw='{"feedback_id": "F1"}\n{oops\n')
    with pytest.raises(SourceError, match=r"feedback_2025-06-10.jsonl line 2"):
        run_day()


def test_drop_missing_a_column_fails_before_anything_lands(drops, lake):
    row = feedback_line("F1", 5)
    del row["rating"]
    drops([row])
    with pytest.raises(SourceError, match="rating"):
        run_day()
    assert storage.list_partitions(Lake(str(lake)).raw("demo_feedback", "feedback")) == []


def test_timestamp_outside_the_interval_is_quarantined(drops, lake):
    # Two days on: a row of the next UTC day is left to the next day's run (issue 13).
    late = feedback_line("LATE", 4, submitted_at=f"{DAY + timedelta(days=2)}T00:00:00Z")
    drops([feedback_line(f"F{i}", 4) for i in range(30)] + [late])
    _summary, _ = run_day()
    assert [r["feedback_id"] for r in quarantine_rows(lake)] == ["LATE"]
    assert "submitted_at" in quarantine_rows(lake)[0]["dq_rules"]


def test_row_count_rule_uses_recent_days(drops, lake):
    for offset in range(4, 0, -1):
        day = DAY - timedelta(days=offset)
        drops([feedback_line(f"D{offset}-{i}", 4, day=day) for i in range(10)], day=day)
        run_day(day)
    drops([feedback_line(f"N{i}", 4) for i in range(600)])
    with pytest.raises(DataQualityError, match="row_count"):
        run_day()
    assert recent_row_counts(Lake(str(lake)), "demo_feedback", "feedback", DAY, days=7) == [10] * 4

"""A failed source step leaves no work/ folder (it holds the day's rows, PII included)."""

from __future__ import annotations

import json
import os
import time
from datetime import date

import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake
from cva_tasks.lake_check import check_lake, repair_lake
from cva_tasks.quality import DataQualityError
from cva_tasks.settings import Settings
from cva_tasks.sources.base import Interval
from cva_tasks.steps import land as landing

DAY = date(2025, 6, 10)
RUN = "manual__failed"
SECRET_TEXT = "call me on 07700 900123, Alice Liddell"


@pytest.fixture
def drop(tmp_path, lake, monkeypatch):
    folder = tmp_path / "drops"
    folder.mkdir()
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(folder))

    def write(feedback_ids: list[str]) -> None:
        rows = [
            {
                "feedback_id": fid,
                "customer_id": 1,
                "order_id": 2,
                "rating": 4,
                "comment": SECRET_TEXT,
                "submitted_at": f"{DAY.isoformat()}T10:00:00Z",
            }
            for fid in feedback_ids
        ]
        (folder / f"feedback_{DAY.isoformat()}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows)
        )

    return write


def args() -> tuple[str, str, str, str]:
    interval = Interval.for_day(DAY)
    return ("demo_feedback", "feedback", interval.start.isoformat(), interval.end.isoformat())


def work_folder(lake) -> str:
    return Lake(str(lake)).work(RUN, "demo_feedback", "feedback", DAY)


def test_failed_gate_leaves_no_work_folder(drop, lake):
    drop(["F1", "F1", "F2"])  # a duplicate key: a critical rule
    landing.extract(*args(), RUN)
    assert storage.exists(work_folder(lake))
    with pytest.raises(DataQualityError):
        landing.validate(*args(), RUN)
    assert not storage.exists(work_folder(lake))


def test_failed_extract_leaves_no_work_folder(drop, lake, monkeypatch):
    drop(["F1", "F2"])

    def broken_write(*_args, **_kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(landing.storage, "write_json", broken_write)
    with pytest.raises(OSError, match="disk full"):
        landing.extract(*args(), RUN)
    assert not storage.exists(work_folder(lake))


def test_retry_after_a_cleaned_failure_extracts_again(drop, lake, monkeypatch):
    """A retried validate (or land) finds its input gone and rebuilds it: same rows."""
    drop(["F1", "F2"])
    landing.extract(*args(), RUN)
    storage.remove(work_folder(lake))  # what a failed attempt leaves: nothing
    summary = landing.validate(*args(), RUN)
    assert summary["rows_clean"] == 2
    storage.remove(work_folder(lake))
    landed = landing.land(*args(), RUN)
    assert landed["rows"] == 2
    assert not storage.exists(work_folder(lake))


def test_lake_check_lists_and_repair_removes_an_abandoned_work_folder(drop, lake):
    drop(["F1", "F2"])
    landing.extract(*args(), RUN)  # then the worker is SIGKILLed: no cleanup runs
    settings = Settings.from_env()
    fresh = check_lake(settings)
    assert fresh["abandoned_work"] == []  # a run may still be between its tasks
    old = time.time() - 2 * 86400
    for folder, _dirs, files in os.walk(lake / "work"):
        for name in [*files, "."]:
            os.utime(os.path.join(folder, name), (old, old))
    found = check_lake(settings)
    assert not found["ok"]
    assert [item["folder"] for item in found["abandoned_work"]] == [work_folder(lake)]
    done = repair_lake(settings)
    assert any("work" in line for line in done)
    assert not storage.exists(work_folder(lake))
    assert check_lake(settings)["abandoned_work"] == []

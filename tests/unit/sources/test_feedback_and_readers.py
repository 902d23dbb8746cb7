from __future__ import annotations

import gzip
from datetime import date

import pandas as pd
import pytest

from cva_tasks.settings import Settings
from cva_tasks.sources import demo_feedback
from cva_tasks.sources.base import Interval, SourceError
from cva_tasks.sources.readers import read_csv_text, read_jsonl

DAY = Interval.for_day(date(2025, 12, 31))


def test_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "feedback_2025-12-31.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(SourceError, match=r"feedback_2025-12-31.jsonl line 3: not valid JSON"):
        read_jsonl(str(path))


def test_jsonl_rejects_non_objects(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(SourceError, match="line 1: expected a JSON object"):
        read_jsonl(str(path))


def test_csv_reads_text_and_names_malformed_file(tmp_path):
    good = tmp_path / "a.csv.gz"
    with gzip.open(good, "wt") as handle:
        handle.write("InvoiceNo,CustomerID\n536365,17850\nC1,\n")
    frame = read_csv_text(str(good))
    assert frame["InvoiceNo"].tolist() == ["536365", "C1"]
    assert frame["CustomerID"].isna().tolist() == [False, True]
    broken = tmp_path / "b.csv.gz"
    broken.write_bytes(b"not gzip at all")
    with pytest.raises(SourceError, match=r"b\.csv\.gz: malformed CSV"):
        read_csv_text(str(broken))


def test_feedback_mapping_keeps_null_ratings_and_rejects_fractions():
    frame = pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3", "F4"],
            "customer_id": [1, 2, 3, 4],
            "order_id": [10, None, 30, 40],
            "rating": [5, None, 3.5, 7],
            "comment": ["great", "ok", "meh", "wow"],
            "submitted_at": ["2025-12-31T10:00:00Z"] * 4,
        }
    )
    out = demo_feedback.feedback(frame, DAY)
    assert out["rating"].tolist()[:2] == [5, pd.NA] or pd.isna(out["rating"].iloc[1])
    assert out["rating"].iloc[3] == 7, "out-of-range whole numbers are left to the suite"
    assert out["rejected_reason"].iloc[2] == "rating is not a whole number"
    assert out["rejected_reason"].iloc[[0, 1, 3]].isna().all()
    assert out["order_id"].iloc[1] is None or pd.isna(out["order_id"].iloc[1])
    assert out["customer_id"].tolist() == ["1", "2", "3", "4"]


def test_missing_drop_is_a_clear_error(lake, tmp_path, monkeypatch):
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(tmp_path / "drops"))
    spec = demo_feedback.SOURCE.entity("feedback")
    from cva_tasks.sources.base import DropNotArrived

    with pytest.raises(DropNotArrived, match=r"no drop for ds=2025-12-31"):
        spec.extract(demo_feedback.SOURCE, DAY, Settings.from_env())


def test_drop_missing_a_column_is_a_clear_error(lake, tmp_path, monkeypatch):
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "feedback_2025-12-31.jsonl").write_text(
        '{"feedback_id": "F1", "customer_id": 1, "order_id": 2, "comment": "x",'
        ' "submitted_at": "2025-12-31T10:00:00Z"}\n'
    )
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(drops))
    spec = demo_feedback.SOURCE.entity("feedback")
    with pytest.raises(SourceError, match=r"lacks required column\(s\) \['rating'\]"):
        spec.extract(demo_feedback.SOURCE, DAY, Settings.from_env())


def test_empty_drop_is_an_empty_day(lake, tmp_path, monkeypatch):
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "feedback_2025-12-31.jsonl").write_text("")
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(drops))
    out = demo_feedback.SOURCE.entity("feedback").extract(
        demo_feedback.SOURCE, DAY, Settings.from_env()
    )
    assert len(out) == 0


def test_missing_drop_is_retryable_malformed_is_not(tmp_path):
    from cva_tasks.sources.base import DropNotArrived, SourceUnavailable

    assert DropNotArrived("x").retryable and SourceUnavailable("x").retryable
    assert not SourceError("x").retryable

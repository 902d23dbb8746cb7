"""The stage step restages what changed under it and refuses a day a source never landed."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from cva_tasks import storage
from cva_tasks.entities import SCHEMAS
from cva_tasks.lake import Lake
from cva_tasks.staging import MissingPartition, stage_day
from cva_tasks.steps.stage import stage

D1 = date(2025, 6, 10)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)
SHOP = {"transactions", "customers", "items"}


def customer(cid: str, day: date) -> dict:
    at = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    return {
        "customer_id": cid,
        "email": f"{cid}@example.com",
        "full_name": None,
        "country": "NL",
        "signup_at": at,
        "updated_at": at,
    }


def feedback(fid: str, day: date) -> dict:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return {
        "feedback_id": fid,
        "customer_id": "1",
        "order_id": "O1",
        "rating": 4,
        "text": "fine",
        "submitted_at": at,
    }


def land(root, source: str, entity: str, rows: list[dict], day: date) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[entity])
    storage.replace_partition(table, Lake(str(root)).raw(source, entity, day))


def land_shop(root, day: date, customers: list[dict] | None = None) -> None:
    for entity in sorted(SHOP):
        rows = (customers or []) if entity == "customers" else []
        land(root, "demo_shop", entity, rows, day)


def land_feedback(root, day: date, rows: list[dict] | None = None) -> None:
    land(root, "demo_feedback", "feedback", rows or [], day)


def staged(root, entity: str, day: date) -> pa.Table:
    return storage.read_table(Lake(str(root)).staged(entity, day))


def test_an_earlier_day_a_source_never_landed_is_refused_not_staged(lake):
    land_shop(lake, D1)  # the feedback drop of D1 was never landed
    land_shop(lake, D2)
    land_feedback(lake, D2)

    with pytest.raises(MissingPartition) as refused:
        stage(D2)

    message = str(refused.value)
    for named in ("demo_feedback", "feedback", D1.isoformat(), "cva_source_demo_feedback"):
        assert named in message
    assert not storage.exists(Lake(str(lake)).staged("transactions", D1))
    assert not storage.exists(Lake(str(lake)).staged("transactions", D2))


def test_a_day_no_source_landed_between_landed_days_is_refused(lake):
    for day in (D1, D3):
        land_shop(lake, day)
        land_feedback(lake, day)

    with pytest.raises(MissingPartition, match=D2.isoformat()) as refused:
        stage(D3)

    assert "demo_shop" in str(refused.value) and "demo_feedback" in str(refused.value)


def test_a_source_day_landed_after_staging_is_restaged(lake, caplog):
    land_shop(lake, D1)
    stage_day(D1, ["demo_shop"], str(lake))  # staged while the feedback drop was missing
    land_feedback(lake, D1, [feedback("F1", D1)])  # ...which lands later
    land_shop(lake, D2)
    land_feedback(lake, D2)

    with caplog.at_level(logging.INFO):
        result = stage(D2)

    assert staged(lake, "feedback", D1).column("feedback_id").to_pylist() == ["F1"]
    assert result["days_staged"] == 2
    said = caplog.text
    assert "restag" in said and "demo_feedback.feedback" in said and D1.isoformat() in said


def test_a_deleted_staged_entity_day_is_rebuilt(lake):
    land_shop(lake, D1, [customer("7", D1)])
    land_feedback(lake, D1)
    stage(D1)
    storage.remove(Lake(str(lake)).staged("customers", D1))
    land_shop(lake, D2)
    land_feedback(lake, D2)

    stage(D2)

    assert staged(lake, "customers", D1).column("customer_id").to_pylist() == ["7"]


def test_a_raw_partition_landed_again_is_restaged(lake):
    land_shop(lake, D1, [customer("7", D1)])
    land_feedback(lake, D1)
    stage(D1)
    land(lake, "demo_shop", "customers", [customer("7", D1), customer("8", D1)], D1)
    land_shop(lake, D2)
    land_feedback(lake, D2)

    stage(D2)

    assert staged(lake, "customers", D1).column("customer_id").to_pylist() == ["7", "8"]


def test_days_staged_up_to_date_are_not_staged_again(lake):
    for day in (D1, D2):
        land_shop(lake, day)
        land_feedback(lake, day)
    stage(D1)
    before = storage.filesystem(Lake(str(lake)).staged("items", D1))
    fs, path = before
    written = fs.info(f"{path}/part-0.parquet")

    assert stage(D2)["days_staged"] == 1
    assert fs.info(f"{path}/part-0.parquet") == written


def test_the_demo_lake_counts_as_staged(lake, demo_frames):
    from cva_tasks.demo.lake import write_raw_from_frames

    days = [demo_frames.start + timedelta(days=n) for n in range(5)]
    write_raw_from_frames(demo_frames, str(lake), days=days)

    assert stage(days[-1])["days_staged"] == 1

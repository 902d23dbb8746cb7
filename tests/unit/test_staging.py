"""Staging (union, dedupe, empty days, missing partitions) and the demo shop written to the lake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest

from cva_tasks import storage
from cva_tasks.entities import SCHEMAS
from cva_tasks.lake import Lake
from cva_tasks.staging import MissingPartition, stage_day, staged_schema

DAY = date(2025, 6, 10)
SHOP_ENTITIES = ("transactions", "customers", "items")


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def tx(tid: str, updated: str, quantity: int = 1, **extra) -> dict:
    row = {
        "transaction_id": tid,
        "order_id": "O1",
        "customer_id": "1",
        "item_id": "A",
        "quantity": quantity,
        "unit_price": 2.5,
        "kind": "purchase",
        "is_product": True,
        "occurred_at": ts("2025-06-10 08:00"),
        "updated_at": ts(updated),
    }
    row.update(extra)
    return row


def land(root, source: str, entity: str, rows: list[dict], day: date = DAY) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[entity])
    storage.replace_partition(table, Lake(str(root)).raw(source, entity, day))


def staged(root, entity: str, day: date = DAY) -> pa.Table:
    return storage.read_table(Lake(str(root)).staged(entity, day))


def land_empty_shop(root, day: date = DAY, skip: tuple[str, ...] = ()) -> None:
    for entity in SHOP_ENTITIES:
        if entity not in skip:
            land(root, "demo_shop", entity, [], day)


def test_union_adds_source_and_keeps_the_latest_version_within_a_source(lake):
    land(
        lake,
        "demo_shop",
        "transactions",
        [
            tx("L1", "2025-06-10 09:00", quantity=1),
            tx("L1", "2025-06-10 17:00", quantity=4),  # a later version of the same line
            tx("L2", "2025-06-10 10:00"),
        ],
    )
    land(lake, "demo_shop", "customers", [])
    land(lake, "demo_shop", "items", [])
    # Same transaction id in another source: another key, kept.
    land(lake, "online_retail", "transactions", [tx("L1", "2025-06-10 11:00", quantity=7)])
    land(lake, "online_retail", "customers", [])
    land(lake, "online_retail", "items", [])
    land(
        lake,
        "demo_feedback",
        "feedback",
        [
            {
                "feedback_id": "F1",
                "customer_id": "1",
                "order_id": "O1",
                "rating": None,
                "text": "ok",
                "submitted_at": ts("2025-06-10 12:00"),
            }
        ],
    )

    counts = stage_day(DAY, ["demo_shop", "online_retail", "demo_feedback"], str(lake))

    assert counts == {"transactions": 3, "customers": 0, "items": 0, "feedback": 1}
    rows = staged(lake, "transactions").to_pylist()
    assert [(r["source"], r["transaction_id"], r["quantity"]) for r in rows] == [
        ("demo_shop", "L1", 4),
        ("demo_shop", "L2", 1),
        ("online_retail", "L1", 7),
    ]
    assert staged(lake, "transactions").schema == staged_schema("transactions")
    assert staged(lake, "feedback").column("source").to_pylist() == ["demo_feedback"]


def test_empty_day_writes_empty_partitions_with_the_schema(lake):
    land_empty_shop(lake)
    land(lake, "demo_feedback", "feedback", [])

    counts = stage_day(DAY, ["demo_shop", "demo_feedback"], str(lake))

    assert counts == dict.fromkeys(SCHEMAS, 0)
    for entity in SCHEMAS:
        table = staged(lake, entity)
        assert table.num_rows == 0 and table.schema == staged_schema(entity)


def test_missing_raw_partition_names_source_entity_and_day(lake):
    land_empty_shop(lake)  # the feedback drop of the day was never landed

    with pytest.raises(MissingPartition, match=r"demo_feedback.*feedback.*2025-06-10"):
        stage_day(DAY, ["demo_shop", "demo_feedback"], str(lake))


def test_a_source_without_an_entity_is_skipped_and_a_rerun_replaces(lake):
    land(lake, "demo_feedback", "feedback", [])
    assert stage_day(DAY, ["demo_feedback"], str(lake))["transactions"] == 0

    land(lake, "demo_feedback", "feedback", [], day=DAY)
    land_empty_shop(lake)
    land(lake, "demo_shop", "transactions", [tx("L9", "2025-06-10 09:00")])
    assert stage_day(DAY, ["demo_shop", "demo_feedback"], str(lake))["transactions"] == 1
    assert staged(lake, "transactions").column("transaction_id").to_pylist() == ["L9"]


# --------------------------------------------------------------------------- #
# The demo shop straight into the lake == the source DAGs' landing
# --------------------------------------------------------------------------- #


def _days_to_compare(frames) -> list[date]:
    """A day with cancellations, returns and feedback, and a day a product changed."""
    cancelled = frames.orders.loc[frames.orders["status"] == "cancelled", "updated_at"]
    returned = set(frames.returns["updated_at"].dt.date)
    feedback = set(frames.feedback["submitted_at"].dt.date)
    busy = sorted(d for d in set(cancelled.dt.date) if d in returned and d in feedback)
    products = sorted(
        d for d in frames.products["updated_at"].dt.date if frames.start <= d <= frames.end
    )
    return sorted({busy[-1], products[-1]})


def _by_key(table: pa.Table, key: str) -> pa.Table:
    return table.sort_by([(key, "ascending")])


@pytest.mark.slow
def test_write_raw_from_frames_equals_extract_validate_land(
    demo_frames, lake, tmp_path, monkeypatch
):
    from cva_tasks.demo.lake import SOURCES, write_raw_from_frames
    from cva_tasks.demo.shop import write_database, write_feedback_drops
    from cva_tasks.sources.base import Interval
    from cva_tasks.steps import land as landing

    db = tmp_path / "shop.db"
    write_database(demo_frames, f"sqlite:///{db}")
    write_feedback_drops(demo_frames, tmp_path / "drops")
    monkeypatch.setenv("AIRFLOW_CONN_CVA_DEMO_SHOP", f"sqlite:///{db}")
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(tmp_path / "drops"))
    days = _days_to_compare(demo_frames)
    entities = [("demo_shop", e) for e in SHOP_ENTITIES] + [("demo_feedback", "feedback")]
    for day in days:
        interval = Interval.for_day(day)
        args = (interval.start.isoformat(), interval.end.isoformat(), f"manual__{day}")
        for source, entity in entities:
            landing.extract(source, entity, *args)
            assert landing.validate(source, entity, *args)["rows_quarantined"] == 0
            landing.land(source, entity, *args)
        stage_day(day, SOURCES, str(lake))

    direct = tmp_path / "direct"
    write_raw_from_frames(demo_frames, str(direct), days=days)

    keys = {"transactions": "transaction_id", "customers": "customer_id", "items": "item_id"}
    keys["feedback"] = "feedback_id"
    for day in days:
        for source, entity in entities:
            via_dags = storage.read_table(Lake(str(lake)).raw(source, entity, day))
            ours = storage.read_table(Lake(str(direct)).raw(source, entity, day))
            assert ours.schema == via_dags.schema
            assert _by_key(ours, keys[entity]).equals(_by_key(via_dags, keys[entity])), (
                f"{source}.{entity} ds={day}"
            )
            assert ours.num_rows > 0 or entity in ("customers", "items")
        for entity in SCHEMAS:
            assert staged(direct, entity, day).equals(staged(lake, entity, day)), entity
    kinds = set(staged(direct, "transactions", days[0]).column("kind").to_pylist()) | set(
        staged(direct, "transactions", days[-1]).column("kind").to_pylist()
    )
    assert kinds == {"purchase", "cancellation", "return"}


def test_write_raw_from_frames_lands_every_requested_day(demo_frames, tmp_path):
    from cva_tasks.demo.lake import write_raw_from_frames

    days = [demo_frames.start + timedelta(days=n) for n in range(3)]
    write_raw_from_frames(demo_frames, str(tmp_path), days=days)
    for day in days:
        for entity in SHOP_ENTITIES:
            assert storage.exists(Lake(str(tmp_path)).raw("demo_shop", entity, day))
        assert storage.exists(Lake(str(tmp_path)).raw("demo_feedback", "feedback", day))
        for entity in SCHEMAS:
            assert staged(tmp_path, entity, day).schema == staged_schema(entity)
    assert not storage.exists(
        Lake(str(tmp_path)).raw("demo_shop", "items", days[-1] + timedelta(1))
    )

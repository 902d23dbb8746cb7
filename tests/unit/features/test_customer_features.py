"""Point-in-time customer features: known answers, the pandas reference, determinism,
the feature suite, and the leakage test."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pyarrow as pa
import pytest

from benchmarks.reference_pandas import build_customer_features_pandas
from cva_tasks import storage
from cva_tasks.entities import SCHEMAS
from cva_tasks.features.customer import (
    build_customer_features,
    feature_schema,
    validate_features,
    write_customer_features,
)
from cva_tasks.lake import Lake
from cva_tasks.settings import Settings
from cva_tasks.staging import stage_day

AS_OF = datetime(2025, 3, 1, tzinfo=UTC)  # as of the end of 2025-02-28
SOURCES = ("demo_shop", "demo_feedback")
ENTITIES = {
    "transactions": "demo_shop",
    "customers": "demo_shop",
    "items": "demo_shop",
    "feedback": "demo_feedback",
}


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def line(tid, order, customer, item, qty, price, occurred, updated=None, kind="purchase", **kw):
    return {
        "transaction_id": tid,
        "order_id": order,
        "customer_id": customer,
        "item_id": item,
        "quantity": qty,
        "unit_price": price,
        "kind": kind,
        "is_product": kw.get("is_product", True),
        "occurred_at": ts(occurred),
        "updated_at": ts(updated or occurred),
    }


def customer(cid, country, signup, updated):
    return {
        "customer_id": cid,
        "email": f"c{cid}@example.com",
        "full_name": "A Person",
        "country": country,
        "signup_at": ts(signup),
        "updated_at": ts(updated),
    }


def item(iid, category, updated):
    return {
        "item_id": iid,
        "name": iid,
        "category": category,
        "unit_price": 1.0,
        "updated_at": ts(updated),
    }


def feedback(fid, cid, rating, submitted):
    return {
        "feedback_id": fid,
        "customer_id": cid,
        "order_id": None,
        "rating": rating,
        "text": "fine",
        "submitted_at": ts(submitted),
    }


def land_days(root, rows: dict[date, dict[str, list[dict]]]) -> None:
    """Land the given rows (every other entity empty) and stage each day."""
    for day, by_entity in rows.items():
        for entity, source in ENTITIES.items():
            table = pa.Table.from_pylist(by_entity.get(entity, []), schema=SCHEMAS[entity])
            storage.replace_partition(table, Lake(str(root)).raw(source, entity, day))
        stage_day(day, SOURCES, str(root))


D = date.fromisoformat

# Customer 1: three counted orders, a cancelled one, a return, a corrected line, a
# changed profile, a recategorised item, three pieces of feedback (one unrated).
# Customer 2: one order, no profile, one unrated piece of feedback.
# Customer 3: only a cancelled order. Customer 4: only a return (not in the grain).
HISTORY = {
    D("2025-01-10"): {
        "transactions": [
            line("L1", "O1", "1", "A", 2, 10.0, "2025-01-10 10:00"),
            line("L2", "O1", "1", "B", 1, 5.0, "2025-01-10 10:00"),
        ],
        "customers": [customer("1", "France", "2024-12-01 00:00", "2025-01-10 09:00")],
        "items": [item("A", "Kitchen", "2025-01-10 01:00"), item("B", "Toys", "2025-01-10 01:00")],
    },
    D("2025-01-20"): {
        "transactions": [
            line("L3", "O2", "1", "A", 1, 10.0, "2025-01-20 10:00"),
            line("L4", "O2", "1", "POST", 1, 3.0, "2025-01-20 10:00", is_product=False),
        ]
    },
    D("2025-02-01"): {
        "customers": [customer("1", "Germany", "2024-12-01 00:00", "2025-02-01 09:00")],
        "items": [item("B", "Games", "2025-02-01 01:00")],
        "feedback": [feedback("F1", "1", 4, "2025-02-01 12:00")],
    },
    D("2025-02-02"): {
        "transactions": [
            line("L7", "O6", "3", "A", 1, 10.0, "2025-02-01 10:00", "2025-02-02 10:00"),
            line("C7", "O6", "3", "A", -1, 10.0, "2025-02-02 10:00", kind="cancellation"),
        ]
    },
    D("2025-02-03"): {
        "transactions": [line("R9", "O0", "4", "A", -1, 10.0, "2025-02-03 10:00", kind="return")]
    },
    D("2025-02-05"): {"feedback": [feedback("F2", "1", None, "2025-02-05 12:00")]},
    D("2025-02-09"): {"transactions": [line("L5", "O3", "1", "C", 1, 8.0, "2025-02-09 10:00")]},
    D("2025-02-10"): {
        # A corrected version of L5 (quantity 2) replaces the first one.
        "transactions": [line("L5", "O3", "1", "C", 2, 8.0, "2025-02-09 10:00", "2025-02-10 08:00")]
    },
    D("2025-02-16"): {
        # O4 was placed on 02-15 and cancelled on 02-16: both arrive on the cancellation day.
        "transactions": [
            line("L6", "O4", "1", "A", 3, 10.0, "2025-02-15 10:00", "2025-02-16 12:00"),
            line("C6", "O4", "1", "A", -3, 10.0, "2025-02-16 12:00", kind="cancellation"),
        ]
    },
    D("2025-02-20"): {
        "transactions": [line("R1", "O1", "1", "A", -1, 10.0, "2025-02-20 09:00", kind="return")],
        "feedback": [feedback("F3", "1", 2, "2025-02-20 12:00")],
    },
    D("2025-02-25"): {
        "transactions": [line("L8", "O5", "2", "B", 1, 5.0, "2025-02-25 08:00")],
        "feedback": [feedback("F4", "2", None, "2025-02-25 12:00")],
    },
}


@pytest.fixture
def history(lake):
    land_days(lake, HISTORY)
    return lake


def rows_by_customer(table: pa.Table) -> dict[str, dict]:
    return {row["customer_id"]: row for row in table.to_pylist()}


def test_known_answers(history):
    table = build_customer_features(AS_OF, str(history))
    assert table.schema == feature_schema()
    assert table.column("customer_id").to_pylist() == ["1", "2", "3"]
    c1, c2, c3 = (rows_by_customer(table)[k] for k in ("1", "2", "3"))

    assert c1["as_of_date"] == date(2025, 2, 28)
    # The later profile version wins; the signup precedes the first order.
    assert (c1["country"], c1["signup_at"]) == ("Germany", ts("2024-12-01 00:00"))
    assert c1["first_order_at"] == ts("2025-01-10 10:00")
    assert c1["last_order_at"] == ts("2025-02-15 10:00")  # placing O4 is activity
    assert c1["recency_days"] == pytest.approx(13 + 14 / 24)
    assert c1["tenure_days"] == pytest.approx(90.0)
    # O4 was cancelled: three orders count. L5 counts in its corrected version (2 x 8).
    assert (c1["frequency"], c1["n_cancelled_orders"]) == (3, 1)
    assert c1["gross_revenue"] == pytest.approx(25 + 13 + 16)
    assert c1["avg_order_value"] == pytest.approx(54 / 3)
    # Net: purchases 84, cancellation -30, return -10.
    assert c1["monetary_value"] == pytest.approx(44.0)
    assert (c1["n_returned_lines"], c1["returned_units"]) == (1, 1)
    assert c1["return_rate"] == pytest.approx(1 / 7)
    # Gaps between counted orders: 10 and 20 days.
    assert c1["mean_days_between_orders"] == pytest.approx(15.0)
    assert c1["std_days_between_orders"] == pytest.approx(7.0710678118654755)
    # Since 2025-01-30: L5 (16), L6 (30), C6 (-30), R1 (-10).
    assert c1["spend_30d"] == pytest.approx(6.0)
    assert c1["spend_90d"] == c1["spend_365d"] == pytest.approx(44.0)
    assert c1["orders_90d"] == 3
    # Product lines of counted orders: Kitchen 30, Games 5 (B's later version), unknown 16.
    assert (c1["n_categories"], c1["top_category"]) == (3, "Kitchen")
    assert c1["top_category_share"] == pytest.approx(30 / 51)
    assert c1["n_distinct_items"] == 3
    assert (c1["feedback_count"], c1["avg_rating"]) == (3, pytest.approx(3.0))

    assert (c2["country"], c2["signup_at"]) == (None, None)
    assert c2["recency_days"] == c2["tenure_days"] == pytest.approx(3 + 16 / 24)
    assert (c2["frequency"], c2["avg_order_value"], c2["orders_90d"]) == (1, 5.0, 1)
    assert c2["mean_days_between_orders"] is None and c2["std_days_between_orders"] is None
    assert (c2["feedback_count"], c2["avg_rating"]) == (1, None)
    assert (c2["top_category"], c2["top_category_share"]) == ("Games", 1.0)

    assert (c3["frequency"], c3["n_cancelled_orders"]) == (0, 1)
    assert (c3["gross_revenue"], c3["monetary_value"]) == (0.0, 0.0)
    assert c3["avg_order_value"] is None and c3["return_rate"] is None
    assert (c3["n_categories"], c3["top_category"], c3["n_distinct_items"]) == (0, None, 0)


def test_the_as_of_instant_cuts_partitions_versions_and_events(history):
    earlier = rows_by_customer(
        build_customer_features(datetime(2025, 2, 10, tzinfo=UTC), str(history))
    )
    # ds 2025-02-10 is not visible yet: L5 still has its first version (1 x 8).
    assert earlier["1"]["gross_revenue"] == pytest.approx(25 + 13 + 8)
    assert earlier["1"]["country"] == "Germany" and earlier["1"]["feedback_count"] == 2
    assert "2" not in earlier and "3" in earlier
    assert build_customer_features(datetime(2025, 1, 10, tzinfo=UTC), str(history)).num_rows == 0


def test_pandas_reference_gives_the_same_table_on_hand_made_rows(history):
    for as_of in (AS_OF, datetime(2025, 2, 10, tzinfo=UTC), datetime(2025, 2, 3, 6, tzinfo=UTC)):
        assert_same(
            build_customer_features(as_of, str(history)),
            build_customer_features_pandas(as_of, str(history)),
        )


def assert_same(ours: pa.Table, reference: pa.Table) -> None:
    assert ours.schema == reference.schema
    pd.testing.assert_frame_equal(
        ours.to_pandas(), reference.to_pandas(), check_exact=False, rtol=1e-9, atol=1e-9
    )


def test_remote_root_through_fsspec(history):
    """The same lake on ``memory://`` (fsspec registered with DuckDB) gives the same table."""
    import fsspec

    remote = f"memory://cva-features-{id(history)}"
    local_fs = fsspec.filesystem("file")
    memory = fsspec.filesystem("memory")
    try:
        for path in local_fs.find(str(history / "staged")):
            relative = path[len(str(history)) :]
            with local_fs.open(path, "rb") as src, memory.open(remote + relative, "wb") as dst:
                dst.write(src.read())
        local = build_customer_features(AS_OF, str(history))
        assert build_customer_features(AS_OF, remote).equals(local)
        assert_same(build_customer_features_pandas(AS_OF, remote), local)
    finally:
        memory.rm(remote, recursive=True)


# --------------------------------------------------------------------------- #
# The demo shop
# --------------------------------------------------------------------------- #

DEMO_AS_OF = datetime(2025, 12, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_lake(demo_frames, tmp_path_factory):
    from cva_tasks.demo.lake import write_raw_from_frames

    root = tmp_path_factory.mktemp("demo-lake")
    write_raw_from_frames(demo_frames, str(root))
    return str(root)


@pytest.fixture(scope="module")
def demo_features(demo_lake):
    return build_customer_features(DEMO_AS_OF, demo_lake)


def test_pandas_reference_gives_the_same_table_on_the_demo_shop(demo_lake, demo_features):
    assert demo_features.num_rows > 200
    assert_same(demo_features, build_customer_features_pandas(DEMO_AS_OF, demo_lake))
    mid_year = datetime(2025, 7, 1, 12, tzinfo=UTC)
    assert_same(
        build_customer_features(mid_year, demo_lake),
        build_customer_features_pandas(mid_year, demo_lake),
    )


def test_rebuilds_write_byte_identical_parquet(demo_lake, demo_features, tmp_path):
    ds = DEMO_AS_OF.date() - timedelta(days=1)
    first = write_customer_features(demo_features, ds, str(tmp_path / "a"))
    # Another thread count changes DuckDB's aggregation order, not the bytes.
    again = build_customer_features(DEMO_AS_OF, demo_lake, threads=1)
    second = write_customer_features(again, ds, str(tmp_path / "b"))
    assert first.endswith(f"features/customer/ds={ds.isoformat()}/part-0.parquet")
    assert read_bytes(first) == read_bytes(second)


def read_bytes(uri: str) -> bytes:
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as handle:
        return handle.read()


def test_feature_suite_passes_on_real_output_and_fails_on_a_duplicate_key(demo_features):
    from cva_tasks.quality import DataQualityError

    ds = DEMO_AS_OF.date() - timedelta(days=1)
    summary = validate_features(demo_features, ds, Settings.from_env().expectations_dir)
    assert summary["passed"] and summary["rows"] == demo_features.num_rows
    planted = pa.concat_tables([demo_features, demo_features.slice(5, 1)])
    with pytest.raises(DataQualityError, match=r"features.customer.*unique\(customer_id\)"):
        validate_features(planted, ds, Settings.from_env().expectations_dir)


# --------------------------------------------------------------------------- #
# Leakage
# --------------------------------------------------------------------------- #

LATER = {
    # T's own day and after: new orders, a new version of an old line, new feedback,
    # a changed profile and a recategorised item.
    D("2025-03-01"): {
        "transactions": [
            line("L10", "O10", "1", "B", 4, 5.0, "2025-03-01 09:00"),
            line("L11", "O11", "5", "A", 1, 10.0, "2025-03-01 10:00"),
            line("L1", "O1", "1", "A", 5, 10.0, "2025-01-10 10:00", "2025-03-01 12:00"),
        ],
        "feedback": [feedback("F9", "2", 5, "2025-03-01 08:00")],
    },
    D("2025-03-02"): {
        "transactions": [
            line("C8", "O5", "2", "B", -1, 5.0, "2025-03-02 10:00", kind="cancellation"),
            line("R2", "O2", "1", "A", -1, 10.0, "2025-03-02 11:00", kind="return"),
        ],
        "customers": [customer("2", "Italy", "2025-02-25 07:00", "2025-03-02 09:00")],
    },
    D("2025-03-05"): {"items": [item("A", "Garden", "2025-03-05 01:00")]},
}


def test_leakage_rows_after_as_of_change_nothing(history):
    ds = AS_OF.date() - timedelta(days=1)
    before = read_bytes(
        write_customer_features(build_customer_features(AS_OF, str(history)), ds, str(history))
    )

    land_days(history, LATER)
    # Defence in depth: rows that break the watermark contract in a partition before T
    # (an update stamped at/after T, an event dated at/after T) are cut too.
    stray = {
        D("2025-02-28"): {
            "transactions": [
                line("L12", "O12", "1", "A", 9, 10.0, "2025-02-27 10:00", "2025-03-01 00:00"),
                line("L13", "O13", "2", "A", 9, 10.0, "2025-03-03 10:00", "2025-02-28 10:00"),
            ],
            "feedback": [feedback("F10", "1", 1, "2025-03-01 00:00")],
        }
    }
    land_days(history, stray)

    rebuilt = build_customer_features(AS_OF, str(history))
    assert read_bytes(write_customer_features(rebuilt, ds, str(history))) == before
    assert_same(build_customer_features_pandas(AS_OF, str(history)), rebuilt)

    # The same rows do change a later as-of: the test can fail.
    later = rows_by_customer(
        build_customer_features(datetime(2025, 3, 6, tzinfo=UTC), str(history))
    )
    assert set(later) == {"1", "2", "3", "5"}
    assert later["1"]["gross_revenue"] == pytest.approx(54 + 30 + 20 + 90)
    # O5 got cancelled; the stray O13 (dated 2025-03-03) counts by now.
    assert (later["2"]["frequency"], later["2"]["n_cancelled_orders"]) == (1, 1)
    assert later["2"]["country"] == "Italy"
    assert later["1"]["top_category"] == "Garden"
    assert later["1"]["feedback_count"] == 4

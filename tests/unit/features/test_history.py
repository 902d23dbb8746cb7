"""Point-in-time order history: counted orders, purchase lines, visible versions."""

from __future__ import annotations

from datetime import UTC, datetime

from test_customer_features import HISTORY, land_days

from cva_tasks.features.history import counted_orders, purchase_lines, visible_rows


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_counted_orders_follow_what_was_known_at_the_instant(lake):
    land_days(lake, HISTORY)
    # Before 02-16 the cancelled order O4 has not landed (it arrives on its
    # cancellation day), and O6 is cancelled from the day it lands.
    orders = counted_orders(at("2025-02-16 00:00"), str(lake))
    assert orders[["customer_id", "order_id"]].values.tolist() == [
        ["1", "O1"],
        ["1", "O2"],
        ["1", "O3"],
    ]
    o3 = orders.set_index("order_id").loc["O3"]
    assert o3["gross"] == 16.0, "the corrected line version (quantity 2) counts"
    assert o3["ordered_at"] == at("2025-02-09 10:00")
    assert str(orders["ordered_at"].dt.tz) == "UTC"

    later = counted_orders(at("2025-03-01 00:00"), str(lake))
    assert later["order_id"].tolist() == ["O1", "O2", "O3", "O5"], "O4 cancelled: not counted"
    # the O1 gross is its purchase lines (2 x 10 + 5); the return does not change it
    assert later.set_index("order_id").loc["O1", "gross"] == 25.0


def test_an_uncorrected_version_before_the_correction_lands(lake):
    land_days(lake, HISTORY)
    orders = counted_orders(at("2025-02-10 00:00"), str(lake)).set_index("order_id")
    assert orders.loc["O3", "gross"] == 8.0


def test_purchase_lines_skip_non_products_and_cancelled_orders(lake):
    land_days(lake, HISTORY)
    lines = purchase_lines(at("2025-03-01 00:00"), str(lake))
    assert lines[["order_id", "item_id", "quantity"]].values.tolist() == [
        ["O1", "A", 2],
        ["O1", "B", 1],
        ["O2", "A", 1],
        ["O3", "C", 2],
        ["O5", "B", 1],
    ]
    assert lines.loc[lines["item_id"] == "A", "item_name"].unique().tolist() == ["A"]
    assert lines.loc[lines["item_id"] == "C", "item_name"].isna().all(), "item C never landed"


def test_visible_rows_take_the_latest_version_before_the_instant(lake):
    land_days(lake, HISTORY)
    early = visible_rows("customers", at("2025-01-15 00:00"), str(lake))
    late = visible_rows("customers", at("2025-03-01 00:00"), str(lake))
    assert early["country"].tolist() == ["France"]
    assert late["country"].tolist() == ["Germany"]
    feedback = visible_rows("feedback", at("2025-02-21 00:00"), str(lake))
    assert sorted(feedback["feedback_id"]) == ["F1", "F2", "F3"]


def test_an_empty_lake_gives_empty_frames(lake):
    assert counted_orders(at("2025-03-01 00:00"), str(lake)).empty
    assert purchase_lines(at("2025-03-01 00:00"), str(lake)).empty

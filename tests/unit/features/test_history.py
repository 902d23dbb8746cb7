"""Point-in-time order history: counted orders, purchase lines, visible versions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from test_customer_features import HISTORY, land_days

from cva_tasks.features.history import (
    counted_orders,
    purchase_interactions,
    purchase_lines,
    visible_rows,
)


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


#: The purchase-line query before streaming (one ``.df()`` of every line): the reference
#: the streamed functions must reproduce.
_REFERENCE_LINES_SQL = """WITH {cte},
    items AS (SELECT source, item_id, name FROM {items})
    SELECT t.customer_id, t.source, t.order_id, t.item_id, i.name AS item_name,
           t.quantity, t.amount, t.occurred_at
    FROM tx AS t
    JOIN orders AS o USING (customer_id, source, order_id)
    LEFT JOIN items AS i USING (source, item_id)
    WHERE t.kind = 'purchase' AND t.is_product AND o.n_cancellation_lines = 0
    ORDER BY t.customer_id, t.occurred_at, t.item_id, t.order_id"""


def reference_lines(as_of: datetime, root: str):
    from cva_tasks.features.history import _ORDERS_CTE, _query

    return _query(
        as_of,
        root,
        lambda versions, as_of_literal: _REFERENCE_LINES_SQL.format(
            cte=_ORDERS_CTE.format(transactions=versions["transactions"], as_of=as_of_literal),
            items=versions["items"],
        ),
    )


@pytest.fixture
def demo_lake(lake, demo_frames):
    from cva_tasks.demo.lake import write_raw_from_frames

    write_raw_from_frames(demo_frames, str(lake))
    return lake


@pytest.mark.parametrize("batch_rows", [1_000_000, 997])
def test_streamed_purchase_lines_equal_the_one_query_frame(demo_lake, batch_rows):
    import pandas as pd

    as_of = at("2025-11-01 00:00")
    expected = reference_lines(as_of, str(demo_lake))
    assert len(expected) > 3 * 997, "the demo lake must span several batches"
    streamed = purchase_lines(as_of, str(demo_lake), batch_rows=batch_rows)
    pd.testing.assert_frame_equal(streamed, expected)

    # The recommenders' cut: the same lines, four columns, one name per item (its last line's).
    interactions, items = purchase_interactions(as_of, str(demo_lake), batch_rows=batch_rows)
    columns = ["customer_id", "item_id", "quantity", "occurred_at"]
    pd.testing.assert_frame_equal(interactions, expected[columns])
    expected_items = expected[["item_id", "item_name"]].drop_duplicates("item_id", keep="last")
    pd.testing.assert_frame_equal(items, expected_items.reset_index(drop=True))


def test_purchase_lines_return_only_the_columns_asked_for(demo_lake):
    lines = purchase_lines(at("2025-11-01 00:00"), str(demo_lake), ["item_id", "quantity"])
    assert list(lines.columns) == ["item_id", "quantity"]
    with pytest.raises(ValueError, match="order_total"):
        purchase_lines(at("2025-11-01 00:00"), str(demo_lake), ["order_total"])


def test_streaming_an_empty_lake_gives_empty_frames(lake):
    interactions, items = purchase_interactions(at("2025-03-01 00:00"), str(lake))
    assert interactions.empty and items.empty
    assert list(items.columns) == ["item_id", "item_name"]


def test_day_data_keeps_the_orders_of_one_instant_only(lake, monkeypatch):
    from datetime import date

    from cva_tasks.features import history
    from cva_tasks.features.snapshots import DayData
    from cva_tasks.lake import Lake

    calls: list[datetime] = []

    def fake_counted_orders(instant, root):
        calls.append(instant)
        return f"orders as of {instant}"

    monkeypatch.setattr(history, "counted_orders", fake_counted_orders)
    data = DayData(date(2025, 3, 1), Lake(str(lake)))
    first, second = at("2025-01-01 00:00"), at("2025-02-01 00:00")
    assert data.orders_as_of(first) == data.orders_as_of(first) == f"orders as of {first}"
    assert calls == [first], "asked twice in a row, read once"
    data.orders_as_of(second)
    assert len(data._orders) == 1, "churn's six label instants must not all stay in memory"
    data.orders_as_of(first)
    assert calls == [first, second, first]

"""The bestseller fallback: recent bestsellers not bought yet, for customers without a list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from cva_tasks.models.recommend.fallback import bestseller_lists

AS_OF = datetime(2025, 11, 30, tzinfo=UTC)


def lines(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(customer, item, days before AS_OF) -> purchase lines."""
    return pd.DataFrame(
        {
            "customer_id": [c for c, _, _ in rows],
            "item_id": [i for _, i, _ in rows],
            "quantity": 1,
            "occurred_at": [AS_OF - timedelta(days=d) for _, _, d in rows],
        }
    )


ITEMS = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "name": ["A", "B", "C", None]})


def test_recent_bestsellers_without_the_items_bought_ranked_by_buyers():
    interactions = lines(
        [
            ("x", "a", 1),
            ("y", "a", 2),
            ("z", "a", 3),
            ("x", "b", 1),
            ("y", "b", 5),
            ("z", "c", 4),
            ("y", "d", 90),  # bought before the window: d is not a recent bestseller
            ("w", "d", 100),
            ("late", "c", -1),  # after the as-of: ignored
        ]
    )
    rows = bestseller_lists(["x", "new"], interactions, ITEMS, AS_OF, k=3)
    by_customer = {c: g for c, g in rows.groupby("customer_id")}
    assert by_customer["new"]["item_id"].tolist() == ["a", "b", "c"]
    assert by_customer["new"]["rank"].tolist() == [1, 2, 3]
    assert by_customer["x"]["item_id"].tolist() == ["c"], "a and b were bought by x"
    assert set(rows["model"]) == {"bestseller"} and set(rows["list"]) == {"next_best"}
    first = by_customer["new"].iloc[0]
    assert first["item_name"] == "A" and first["score"] == 1.0
    assert first["reason"] == "bestseller: bought by 3 customers in the last 30 days"
    assert rows["customer_id"].tolist()[0] == "x", "in the order asked"


def test_all_history_counts_when_nobody_bought_recently_and_no_lines_give_no_rows():
    interactions = lines([("x", "d", 200), ("y", "d", 300), ("y", "b", 250)])
    rows = bestseller_lists(["new"], interactions, ITEMS, AS_OF, k=10)
    assert rows["item_id"].tolist() == ["d", "b"]
    assert rows["item_name"].tolist() == ["d", "B"], "an item without a name shows its id"
    assert rows["reason"].iloc[0].endswith("of all time")
    assert bestseller_lists(["new"], interactions.iloc[:0], ITEMS, AS_OF).empty


def test_the_same_inputs_give_the_same_rows():
    interactions = lines(
        [(f"c{i}", item, i % 20) for i in range(50) for item in "abcd"[: i % 4 + 1]]
    )
    first = bestseller_lists(["c1", "n"], interactions, ITEMS, AS_OF)
    pd.testing.assert_frame_equal(first, bestseller_lists(["c1", "n"], interactions, ITEMS, AS_OF))


def test_customers_in_chunks_get_the_same_lists(monkeypatch):
    from cva_tasks.models.recommend import fallback

    interactions = lines([(f"c{i}", item, i % 20) for i in range(30) for item in "abcd"[: i % 4]])
    customers = [f"c{i}" for i in range(30)] + ["new"]
    whole = bestseller_lists(customers, interactions, ITEMS, AS_OF, k=3)
    monkeypatch.setattr(fallback, "CHUNK_CUSTOMERS", 4)
    pd.testing.assert_frame_equal(
        bestseller_lists(customers, interactions, ITEMS, AS_OF, k=3), whole
    )
    assert len(whole) > 30

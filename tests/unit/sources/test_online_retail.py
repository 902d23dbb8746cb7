from __future__ import annotations

from datetime import date

import pandas as pd

from cva_tasks.sources import online_retail
from cva_tasks.sources.base import Interval
from cva_tasks.sources.canonical import REJECTED, to_table

DAY = Interval.for_day(date(2010, 12, 1))
HEADER = list(online_retail.COLUMNS)


def lines(*rows):
    return pd.DataFrame([dict(zip(HEADER, r, strict=True)) for r in rows], dtype="string")


def test_each_quirk_is_mapped_or_rejected_on_purpose():
    frame = lines(
        ("536365", "85123A", "HEART", "6", "2010-12-01 08:26:00", "2.55", "17850.0", "UK"),
        ("536365", "85123A", "HEART", "6", "2010-12-01 08:26:00", "2.55", "17850.0", "UK"),
        ("C536379", "D", "Discount", "-1", "2010-12-01 09:41:00", "27.5", "14527", "UK"),
        ("536370", "POST", "POSTAGE", "3", "2010-12-01 08:45:00", "18", "12583", "France"),
        ("536414", "22139", None, "56", "2010-12-01 11:52:00", "0", None, "UK"),
        ("536544", "21773", "SOAP", "1", "2010-12-01 14:32:00", "2.51", None, "UK"),
        ("536999", "21773", "SOAP", "1", "2010-12-02 10:00:00", "2.51", "12583", "UK"),
        ("C536400", "21773", "SOAP", "2", "2010-12-01 15:00:00", "2.51", "12583", "UK"),
    )
    out = online_retail.transactions(frame, DAY)
    assert len(out) == 7, "the line of 2010-12-02 is outside the interval"
    by_id = out.set_index("transaction_id")
    assert by_id.loc["536365-1", REJECTED] is None or pd.isna(by_id.loc["536365-1", REJECTED])
    assert by_id.loc["536365-2", REJECTED] == "exact duplicate of an earlier line"
    assert by_id.loc["536365-1", "customer_id"] == "17850"
    assert by_id.loc["C536379-1", "kind"] == "cancellation"
    assert by_id.loc["C536379-1", "quantity"] == -1
    assert not by_id.loc["C536379-1", "is_product"]
    assert not by_id.loc["536370-1", "is_product"]
    assert by_id.loc["536414-1", REJECTED] == "guest line without CustomerID"
    assert by_id.loc["536544-1", REJECTED] == "guest line without CustomerID"
    assert by_id.loc["C536400-1", REJECTED] == "cancellation with a positive quantity"
    table = to_table(out, "transactions", "test")
    assert table.num_rows == 7


def test_customers_and_items_of_the_day():
    frame = lines(
        ("1", "A1", "MUG", "2", "2010-12-01 08:00:00", "2.0", "5", "UK"),
        ("2", "A1", "MUG BLUE", "1", "2010-12-01 09:00:00", "3.0", "5", "France"),
        ("3", "A1", "MUG", "1", "2010-12-01 10:00:00", "4.0", "6", "UK"),
    )
    customers = online_retail.customers(frame, DAY).set_index("customer_id")
    assert customers.loc["5", "country"] == "France"
    assert customers["signup_at"].isna().all()
    items = online_retail.items(frame, DAY)
    assert items["name"].tolist() == ["MUG"]
    assert items["unit_price"].tolist() == [3.0]
    to_table(customers.reset_index(), "customers", "test")
    to_table(items, "items", "test")

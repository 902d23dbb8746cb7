"""A value that does not parse or convert sends its row to quarantine with the reason.

On main a timestamp like ``07/08/2018`` dropped an Online Retail line silently (it fell
in no interval), a quantity ``"abc"`` failed the whole entity-day, and an identifier that
is not text (a JSON object) was landed as the text of the object.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from cva_tasks.quality import DataQualityError
from tests.unit.sources.conftest import feedback_row, run_entity

DAY = date(2025, 6, 10)
TX = ("demo_shop", "transactions")
FB = ("demo_feedback", "feedback")
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def good_orders(shop, count: int = 30) -> None:
    for n in range(count):
        shop.order(100 + n, "2025-06-10 09:00:00", lines=[(1000 + n, 1, 9.5)])


def test_feedback_with_an_unparseable_timestamp_is_quarantined_by_the_mapping(feedback_drops, view):
    feedback_drops(
        DAY,
        [feedback_row(f"F{i}", "2025-06-10T09:00:00Z") for i in range(30)]
        + [feedback_row("BAD", "07/08/2018")],
    )
    summary = run_entity(*FB, DAY)
    quarantined = view.quarantine(*FB, DAY)
    assert [q["feedback_id"] for q in quarantined] == ["BAD"]
    assert quarantined[0]["dq_rules"] == (
        "mapping: submitted_at is not a timestamp: '07/08/2018' (feedback_2025-06-10.jsonl line 31)"
    )
    assert summary["rows_rejected_by_mapping"] == 1
    assert "BAD" not in view.ids(*FB, DAY, "feedback_id")


def test_an_export_line_with_an_unparseable_date_is_quarantined_once(
    tmp_path, lake, view, monkeypatch
):
    export = tmp_path / "exports"
    export.mkdir()
    good = [f"{n},A1,MUG,1,2010-12-01 10:{n:02d}:00,2.0,5,UK\n" for n in range(30)]
    (export / "2010-12.csv").write_text(
        HEADER + "".join(good[:15]) + "99,A1,MUG,1,07/08/2018,2.0,5,UK\n" + "".join(good[15:])
    )
    monkeypatch.setenv("CVA_ONLINE_RETAIL_PATH", str(export))
    tx = ("online_retail", "transactions")
    first, second = date(2010, 12, 1), date(2010, 12, 2)
    run_entity(*tx, first)
    run_entity(*tx, second)
    quarantined = view.quarantine(*tx, first)
    assert [q["transaction_id"] for q in quarantined] == ["99-1"]
    assert quarantined[0]["dq_rules"] == (
        "mapping: InvoiceDate is not a timestamp: '07/08/2018' (2010-12.csv line 17)"
    )
    assert view.quarantine(*tx, second) == []
    assert len(view.ids(*tx, first, "transaction_id")) == 30


def test_a_shop_order_with_an_unparseable_order_time_is_quarantined(tiny_shop, view):
    good_orders(tiny_shop)
    tiny_shop.order(1, "2025-06-10 10:00:00", ordered_at="07/08/2018", lines=[(11, 1, 9.5)])
    tiny_shop.run("transactions", DAY)
    quarantined = view.quarantine(*TX, DAY)
    assert [q["transaction_id"] for q in quarantined] == ["L11"]
    assert quarantined[0]["dq_rules"] == "mapping: occurred_at is not a timestamp: '07/08/2018'"


def test_an_unparseable_watermark_is_quarantined_on_the_day_its_text_names(tiny_shop, view):
    good_orders(tiny_shop)
    tiny_shop.order(
        1, "2025-06-10 25:00:00", ordered_at="2025-06-10 10:00:00", lines=[(11, 1, 9.5)]
    )
    for day in (date(2025, 6, 9), DAY, date(2025, 6, 11)):
        tiny_shop.run("transactions", day)
    assert view.quarantine(*TX, date(2025, 6, 9)) == []
    assert view.quarantine(*TX, date(2025, 6, 11)) == []
    assert [q["dq_rules"] for q in view.quarantine(*TX, DAY)] == [
        "mapping: updated_at is not a timestamp: '2025-06-10 25:00:00'"
    ]


def test_a_quantity_that_is_not_a_number_quarantines_its_row_only(tiny_shop, view):
    good_orders(tiny_shop, 40)
    tiny_shop.order(1, "2025-06-10 10:00:00", lines=[(11, "abc", 9.5), (12, 2, 9.5)])
    summary = tiny_shop.run("transactions", DAY)
    quarantined = view.quarantine(*TX, DAY)
    assert [(q["transaction_id"], q["dq_rules"]) for q in quarantined] == [
        ("L11", "mapping: quantity is not a whole number: 'abc'")
    ]
    assert "L12" in view.ids(*TX, DAY, "transaction_id")
    assert summary["rows_clean"] == 41


def test_an_identifier_that_is_not_text_is_quarantined(feedback_drops, view):
    feedback_drops(
        DAY,
        [feedback_row(f"F{i}", "2025-06-10T09:00:00Z") for i in range(30)]
        + [feedback_row("OBJ", "2025-06-10T09:00:00Z", customer_id={"id": 7})],
    )
    run_entity(*FB, DAY)
    quarantined = view.quarantine(*FB, DAY)
    assert [q["feedback_id"] for q in quarantined] == ["OBJ"]
    assert quarantined[0]["dq_rules"].startswith(
        "mapping: customer_id is not text: {'id': 7} (feedback_2025-06-10.jsonl line 31)"
    )


def test_values_that_do_not_convert_count_against_the_failing_share(tiny_shop, view):
    """A column whose format changed upstream is a defect, not an expected quirk: the day
    fails naming the rule, instead of landing nothing silently."""
    for n in range(5):
        tiny_shop.order(100 + n, "2025-06-10 09:00:00", lines=[(1000 + n, "two", 9.5)])
    with pytest.raises(DataQualityError) as info:
        tiny_shop.run("transactions", DAY)
    message = str(info.value)
    assert "demo_shop.transactions ds=2025-06-10" in message
    assert "mapping: quantity is not a whole number failed on 5 rows" in message
    assert len(view.quarantine(*TX, DAY)) == 5


def test_convert_types_row_by_row():
    from cva_tasks.sources.canonical import convert

    frame = pd.DataFrame(
        {
            "item_id": ["A", "B", ["x"], "D"],
            "name": ["mug", "cup", "bowl", 12],
            "category": [None, "Kitchen", "Kitchen", "Kitchen"],
            "unit_price": [1.5, "2.5", "cheap", None],
            "updated_at": ["2025-06-10 10:00:00", "2025-06-10T12:00:00+02:00", "x", None],
        }
    )
    table, invalid = convert(frame, "items", "test.items")
    assert table.column("unit_price").to_pylist() == [1.5, 2.5, None, None]
    assert table.column("name").to_pylist() == ["mug", "cup", "bowl", "12"]
    assert [str(v) for v in table.column("updated_at").to_pylist()] == [
        "2025-06-10 10:00:00+00:00",
        "2025-06-10 10:00:00+00:00",
        "None",
        "None",
    ]
    assert invalid.tolist() == [
        None,
        None,
        "item_id is not text: ['x']",
        None,
    ]


def test_a_reason_does_not_repeat_a_value_that_may_be_personal_data():
    from cva_tasks.sources.canonical import convert

    frame = pd.DataFrame(
        {
            "customer_id": ["7", "8"],
            "email": ["a@b.example", {"mail": "jane.doe@example.com"}],
            "full_name": ["A B", "Jane Doe"],
            "country": ["FR", "FR"],
            "signup_at": [None, None],
            "updated_at": ["2025-06-10 10:00:00"] * 2,
        }
    )
    _table, invalid = convert(frame, "customers", "test.customers")
    assert invalid.tolist() == [None, "email is not text"]

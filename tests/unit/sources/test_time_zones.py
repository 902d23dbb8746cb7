"""Source timestamps are converted to UTC before the watermark picks the day.

A SQLite text timestamp with an offset used to be compared as text by the SQL
``WHERE``: ``2025-06-10T23:30:00-02:00`` (01:30 UTC on 06-11) was picked on 06-10,
quarantined there as outside the interval, and never landed.
"""

from __future__ import annotations

from datetime import date, timedelta

from tests.unit.sources.conftest import feedback_row, run_entity

JUN10, JUN11 = date(2025, 6, 10), date(2025, 6, 11)
TX = ("demo_shop", "transactions")


def test_an_offset_that_crosses_midnight_forward_lands_on_the_utc_day(tiny_shop, view):
    tiny_shop.order(1, "2025-06-10 12:00:00", lines=[(11, 1, 9.5)])
    tiny_shop.order(2, "2025-06-10T23:30:00-02:00", lines=[(21, 1, 9.5)])  # 06-11 01:30 UTC
    tiny_shop.run("transactions", JUN10)
    tiny_shop.run("transactions", JUN11)
    assert view.ids(*TX, JUN10, "transaction_id") == ["L11"]
    assert view.quarantine(*TX, JUN10) == []
    landed = view.raw(*TX, JUN11).to_pylist()
    assert [r["transaction_id"] for r in landed] == ["L21"]
    assert str(landed[0]["updated_at"]) == "2025-06-11 01:30:00+00:00"


def test_an_offset_that_crosses_midnight_backward_lands_on_the_utc_day(tiny_shop, view):
    tiny_shop.order(1, "2025-06-11T00:30:00+02:00", lines=[(11, 1, 9.5)])  # 06-10 22:30 UTC
    tiny_shop.order(2, "2025-06-11 12:00:00", lines=[(21, 1, 9.5)])
    tiny_shop.run("transactions", JUN10)
    tiny_shop.run("transactions", JUN11)
    assert view.ids(*TX, JUN10, "transaction_id") == ["L11"]
    assert view.ids(*TX, JUN11, "transaction_id") == ["L21"]
    assert view.quarantine(*TX, JUN11) == []


def test_customers_and_items_use_the_utc_watermark_too(tiny_shop, view):
    tiny_shop.execute(
        "INSERT INTO customers VALUES (7, 'a@b.example', 'A', 'B', 'FR',"
        " '2024-01-01 00:00:00', '2025-06-10T23:30:00-02:00')"
    )
    tiny_shop.run("customers", JUN10)
    tiny_shop.run("customers", JUN11)
    assert view.raw("demo_shop", "customers", JUN10).num_rows == 0
    assert view.ids("demo_shop", "customers", JUN11, "customer_id") == ["7"]


def test_online_retail_export_with_offsets_lands_each_line_on_its_utc_day(
    tmp_path, lake, view, monkeypatch
):
    export = tmp_path / "exports"
    export.mkdir()
    (export / "2010-12.csv").write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "1,A1,MUG,1,2010-12-01 12:00:00,2.0,5,UK\n"
        "2,A1,MUG,1,2010-12-01T23:30:00-02:00,2.0,5,UK\n"
        "3,A1,MUG,1,2010-12-02T00:30:00+02:00,2.0,5,UK\n"
    )
    monkeypatch.setenv("CVA_ONLINE_RETAIL_PATH", str(export))
    first, second = date(2010, 12, 1), date(2010, 12, 2)
    for day in (first, second):
        run_entity("online_retail", "transactions", day)
    tx = ("online_retail", "transactions")
    assert view.ids(*tx, first, "transaction_id") == ["1-1", "3-1"]
    assert view.ids(*tx, second, "transaction_id") == ["2-1"]
    assert view.quarantine(*tx, first) == [] and view.quarantine(*tx, second) == []


def test_a_drop_row_past_midnight_utc_lands_on_the_next_day(feedback_drops, view):
    """A drop named after the shop's local day holds rows of the next UTC day: the next
    day's run (its lookback reaches the drop) lands them, the drop's own day leaves them."""
    feedback_drops(
        JUN10,
        [
            feedback_row("F1", "2025-06-10T12:00:00Z"),
            feedback_row("F2", "2025-06-10T23:30:00-02:00"),  # 06-11 01:30 UTC
        ],
    )
    feedback_drops(JUN11, [feedback_row("F3", "2025-06-11T08:00:00Z")])
    first = run_entity("demo_feedback", "feedback", JUN10)
    run_entity("demo_feedback", "feedback", JUN11)
    fb = ("demo_feedback", "feedback")
    assert view.ids(*fb, JUN10, "feedback_id") == ["F1"]
    assert view.quarantine(*fb, JUN10) == []
    assert first["rows_left_for_next_day"] == 1
    assert view.ids(*fb, JUN11, "feedback_id") == ["F2", "F3"]


def test_a_query_that_renames_its_watermark_is_windowed_on_the_mapped_version(tiny_shop, lake):
    """The README's worked example: the query returns ``modified``, the mapping names it
    ``updated_at``; the window applies to the mapped version, in UTC."""
    from cva_tasks.settings import Settings
    from cva_tasks.sources.base import Interval, Source, SqlEntity
    from cva_tasks.sources.canonical import id_text

    tiny_shop.execute(
        "INSERT INTO customers VALUES (7, 'a@b.example', 'A', 'B', 'FR',"
        " '2024-01-01 00:00:00', '2025-06-10T23:30:00-02:00')"
    )
    query = (
        "SELECT customer_id AS id, email AS mail, country, signup_at, updated_at AS modified"
        " FROM customers WHERE updated_at >= :start AND updated_at < :end"
    )

    def customers(frame, interval):
        return frame.assign(
            customer_id=id_text(frame["id"]),
            email=frame["mail"],
            full_name=None,
            updated_at=frame["modified"],
        )

    spec = SqlEntity("customers", "demo_shop.customers", query, customers)
    source = Source("crm", "CRM", (spec,), JUN10, conn_id="cva_demo_shop")
    settings = Settings.from_env()
    day = timedelta(hours=24)
    assert spec.extract(source, Interval.for_day(JUN10, day), settings).empty
    rows = spec.extract(source, Interval.for_day(JUN11, day), settings)
    assert rows["customer_id"].tolist() == ["7"]

"""Late data: rows whose watermark falls on a day that was already extracted.

A transaction committed after the day's extract ran, with an ``updated_at`` of that
day, used to be lost for good: the next day's watermark window starts after it.
"""

from __future__ import annotations

from datetime import date

from tests.unit.sources.conftest import feedback_row, run_entity

PREV, DAY = date(2025, 6, 9), date(2025, 6, 10)
TX = ("demo_shop", "transactions")


def test_a_row_committed_after_its_day_was_extracted_lands_the_next_day(tiny_shop, view):
    tiny_shop.order(1, "2025-06-09 10:00:00", lines=[(11, 2, 9.5)])
    tiny_shop.run("transactions", PREV)
    # committed after the extract of 06-09 ran, with an updated_at of 06-09
    tiny_shop.order(2, "2025-06-09 23:50:00", lines=[(21, 1, 9.5)])
    tiny_shop.order(3, "2025-06-10 08:00:00", lines=[(31, 1, 9.5)])
    summary = tiny_shop.run("transactions", DAY)
    assert view.ids(*TX, DAY, "transaction_id") == ["L21", "L31"], "L11 was landed on 06-09"
    assert view.ids(*TX, PREV, "transaction_id") == ["L11"]
    assert summary["rows_quarantined"] == 0 and summary["rows_already_landed"] == 1
    assert view.quarantine(*TX, DAY) == []


def test_a_newer_version_of_a_landed_row_lands_and_the_same_version_does_not(tiny_shop, view):
    tiny_shop.order(1, "2025-06-09 10:00:00", lines=[(11, 2, 9.5)])
    tiny_shop.order(2, "2025-06-09 11:00:00", lines=[(21, 1, 9.5)])
    tiny_shop.run("transactions", PREV)
    # order 1 cancelled late on 06-09, after that day's extract
    tiny_shop.execute(
        "UPDATE orders SET status = 'cancelled', updated_at = '2025-06-09 23:00:00'"
        " WHERE order_id = 1"
    )
    tiny_shop.run("transactions", DAY)
    landed = view.raw(*TX, DAY).to_pylist()
    assert sorted(r["transaction_id"] for r in landed) == ["C11", "L11"]
    assert {str(r["updated_at"]) for r in landed} == {"2025-06-09 23:00:00+00:00"}


def test_a_rerun_of_the_day_gives_the_same_rows(tiny_shop, view):
    tiny_shop.order(1, "2025-06-09 10:00:00", lines=[(11, 2, 9.5)])
    tiny_shop.run("transactions", PREV)
    tiny_shop.order(2, "2025-06-09 23:50:00", lines=[(21, 1, 9.5)])
    tiny_shop.order(3, "2025-06-10 08:00:00", lines=[(31, 1, 9.5)])
    tiny_shop.run("transactions", DAY)
    first = view.raw(*TX, DAY)
    tiny_shop.run("transactions", DAY, run_id="manual__rerun")
    assert view.raw(*TX, DAY).equals(first)
    assert first.num_rows == 2


def test_a_day_never_extracted_is_left_to_its_own_run(tiny_shop, view):
    """The lookback catches rows its day's extract missed; a day not yet landed gets its
    own rows when it runs, so they are not landed twice."""
    tiny_shop.order(2, "2025-06-09 23:50:00", lines=[(21, 1, 9.5)])
    tiny_shop.order(3, "2025-06-10 08:00:00", lines=[(31, 1, 9.5)])
    summary = tiny_shop.run("transactions", DAY)
    assert view.ids(*TX, DAY, "transaction_id") == ["L31"]
    assert summary["rows_not_yet_due"] == 1
    tiny_shop.run("transactions", PREV)
    assert view.ids(*TX, PREV, "transaction_id") == ["L21"]


def test_the_lookback_is_a_setting_with_a_per_source_override(tiny_shop, view, monkeypatch):
    tiny_shop.order(1, "2025-06-09 10:00:00", lines=[(11, 2, 9.5)])
    tiny_shop.run("transactions", PREV)
    tiny_shop.order(2, "2025-06-09 20:00:00", lines=[(21, 1, 9.5)])
    monkeypatch.setenv("CVA_EXTRACT_LOOKBACK_HOURS", "2")
    tiny_shop.run("transactions", DAY)
    assert view.ids(*TX, DAY, "transaction_id") == [], "20:00 is 4 hours before the day"
    monkeypatch.setenv("CVA_EXTRACT_LOOKBACK_HOURS_DEMO_SHOP", "6")
    tiny_shop.run("transactions", DAY, run_id="manual__wider")
    assert view.ids(*TX, DAY, "transaction_id") == ["L21"]


def test_a_late_piece_of_feedback_in_the_next_drop_lands(feedback_drops, view):
    feedback_drops(PREV, [feedback_row("F1", "2025-06-09T10:00:00Z")])
    run_entity("demo_feedback", "feedback", PREV)
    feedback_drops(
        DAY,
        [
            feedback_row("F1", "2025-06-09T10:00:00Z"),  # sent again: already landed
            feedback_row("F2", "2025-06-09T23:40:00Z"),  # late
            feedback_row("F3", "2025-06-10T09:00:00Z"),
        ],
    )
    summary = run_entity("demo_feedback", "feedback", DAY)
    assert view.ids("demo_feedback", "feedback", DAY, "feedback_id") == ["F2", "F3"]
    assert view.quarantine("demo_feedback", "feedback", DAY) == []
    assert summary["rows_already_landed"] == 1


def test_feedback_older_than_the_lookback_is_still_quarantined(feedback_drops, view):
    feedback_drops(
        DAY,
        [feedback_row(f"F{i}", "2025-06-10T09:00:00Z") for i in range(30)]
        + [feedback_row("OLD", "2025-06-08T09:00:00Z")],
    )
    run_entity("demo_feedback", "feedback", DAY)
    quarantined = view.quarantine("demo_feedback", "feedback", DAY)
    assert [q["feedback_id"] for q in quarantined] == ["OLD"]
    assert quarantined[0]["dq_rules"] == "expect_column_values_to_be_between(submitted_at)"

"""Per source: the zone of its local timestamps, and the share of bad rows it may have."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from cva_tasks.quality import DataQualityError
from cva_tasks.settings import Settings, SettingsError
from cva_tasks.sources.timestamps import local_zone, utc

JUN10, JUN11 = date(2025, 6, 10), date(2025, 6, 11)
TX = ("demo_shop", "transactions")


def test_local_times_are_read_in_the_zone_and_offsets_are_kept():
    values = pd.Series(
        ["2025-06-10 23:30:00", "2025-06-10T23:30:00+00:00", "2025-10-26 01:30:00", "x", None]
    )
    with local_zone("Europe/London"):
        parsed = utc(values)
    assert str(parsed[0]) == "2025-06-10 22:30:00+00:00"  # BST is UTC+1
    assert str(parsed[1]) == "2025-06-10 23:30:00+00:00"  # an offset names its instant
    assert str(parsed[2]) == "2025-10-26 00:30:00+00:00"  # the repeated hour: its summer instant
    assert parsed[3:].isna().all()
    assert str(utc(values)[0]) == "2025-06-10 23:30:00+00:00", "UTC outside the zone"
    naive = pd.Series(pd.to_datetime(["2025-01-10 08:00"]))
    with local_zone("America/New_York"):
        assert str(utc(naive)[0]) == "2025-01-10 13:00:00+00:00"


def test_a_source_in_its_zone_lands_a_local_late_evening_on_the_next_utc_day(
    tiny_shop, view, monkeypatch
):
    monkeypatch.setenv("CVA_SOURCE_TIMEZONE_DEMO_SHOP", "America/New_York")
    tiny_shop.order(1, "2025-06-10 12:00:00", lines=[(11, 1, 9.5)])
    tiny_shop.order(2, "2025-06-10 21:30:00", lines=[(21, 1, 9.5)])  # 06-11 01:30 UTC
    tiny_shop.run("transactions", JUN10)
    tiny_shop.run("transactions", JUN11)
    assert view.ids(*TX, JUN10, "transaction_id") == ["L11"]
    landed = view.raw(*TX, JUN11).to_pylist()
    assert [r["transaction_id"] for r in landed] == ["L21"]
    assert str(landed[0]["updated_at"]) == "2025-06-11 01:30:00+00:00"
    assert str(landed[0]["occurred_at"]) == "2025-06-11 01:30:00+00:00"


def small_day_with_one_bad_row(tiny_shop) -> None:
    for n in range(1, 10):
        tiny_shop.order(n, f"2025-06-10 1{n}:00:00", lines=[(n * 10 + 1, 1, 9.5)])
    tiny_shop.order(10, "2025-06-10 09:00:00", lines=[(101, 1, -9.5)])  # a negative price


def test_one_bad_row_fails_a_small_source_under_the_global_share(tiny_shop, view):
    small_day_with_one_bad_row(tiny_shop)
    with pytest.raises(DataQualityError, match=r"1 of 10 rows \(10.0%\)"):
        tiny_shop.run("transactions", JUN10)


def test_a_source_share_lets_one_bad_row_go_to_quarantine(tiny_shop, view, monkeypatch):
    monkeypatch.setenv("CVA_MAX_FAILING_SHARE_DEMO_SHOP", "0.2")
    small_day_with_one_bad_row(tiny_shop)
    summary = tiny_shop.run("transactions", JUN10)
    assert summary["passed"] and summary["max_failing_share"] == 0.2
    assert len(view.ids(*TX, JUN10, "transaction_id")) == 9
    assert [r["transaction_id"] for r in view.quarantine(*TX, JUN10)] == ["L101"]


def test_the_source_declares_and_the_variable_overrides():
    from cva_tasks.sources.base import Source

    source = Source(
        "shop", "a shop", (), date(2025, 1, 1), timezone="Europe/Paris", max_failing_share=0.25
    )
    assert source.zone(Settings.from_env({})) == "Europe/Paris"
    assert source.failing_share(Settings.from_env({})) == 0.25
    assert source.failing_share(Settings.from_env({"CVA_MAX_FAILING_SHARE": "0.01"})) == 0.25
    overridden = Settings.from_env(
        {"CVA_SOURCE_TIMEZONE_SHOP": "Asia/Tokyo", "CVA_MAX_FAILING_SHARE_SHOP": "0.5"}
    )
    assert source.zone(overridden) == "Asia/Tokyo" and source.failing_share(overridden) == 0.5
    assert Source("crm", "", (), date(2025, 1, 1)).failing_share(overridden) == 0.05


def test_bad_zones_and_shares_are_refused_naming_them():
    from cva_tasks.sources.base import Source

    with pytest.raises(SettingsError, match="CVA_SOURCE_TIMEZONE_SHOP: 'Mars/Olympus'"):
        Settings.from_env({"CVA_SOURCE_TIMEZONE_SHOP": "Mars/Olympus"})
    with pytest.raises(SettingsError, match=r"CVA_MAX_FAILING_SHARE_SHOP: 2\.0 must be a share"):
        Settings.from_env({"CVA_MAX_FAILING_SHARE_SHOP": "2"})
    with pytest.raises(ValueError, match=r"source shop: 'CET\+1' is no IANA zone"):
        Source("shop", "", (), date(2025, 1, 1), timezone="CET+1")
    with pytest.raises(ValueError, match="max_failing_share 5 is not in"):
        Source("shop", "", (), date(2025, 1, 1), max_failing_share=5)

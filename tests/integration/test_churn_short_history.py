"""Churn on a lake with little history ends as "not enough data", never as an error.

``train_churn`` stacks six snapshots 14 days apart, the latest 90 days before the day
(labels known on the day), and splits them by time into fit, calibration and
validation rows, the last two on the 30% of customers held out. On the demo shop (300
customers from 2024-01-01) the first snapshot with customers is about 100 days in; at
120 days the validation rows are 11 customers with 1 churner, at 200 days 21 with 7:
figures no model can be judged or promoted on. Each of these days must end as
``trained: False`` with ``reason: not enough data: ...`` (what
:func:`cva_tasks.steps.train.train_model` returns for
:class:`~cva_tasks.models.base.NotEnoughData`), so the daily run goes on without a
churn model instead of failing after its retries.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cva_tasks.demo.shop import DEFAULT_START
from cva_tasks.steps.train import train_model

pytestmark = pytest.mark.slow


def land_days(lake, demo_frames, days: int, until: date | None = None) -> date:
    """Land the demo shop's first ``days`` days (or up to ``until``); return the last day."""
    from cva_tasks.demo.lake import write_raw_from_frames

    landed = [DEFAULT_START + timedelta(days=n) for n in range(days)]
    write_raw_from_frames(demo_frames, str(lake), days=landed)
    return landed[-1] if until is None else until


@pytest.mark.parametrize("history_days", [1, 30, 100, 120, 200])
def test_too_little_history_ends_as_not_enough_data(lake, demo_frames, history_days):
    ds = land_days(lake, demo_frames, history_days)
    outcome = train_model("churn", ds, f"short-{history_days}")
    assert outcome["trained"] is False, outcome
    assert outcome["reason"].startswith("not enough data: churn training"), outcome


def test_a_label_window_with_one_class_ends_as_not_enough_data(lake, demo_frames):
    # A year of trade, then nothing: every label window of a run six months later lies
    # after the last order, so every customer churned in it.
    ds = land_days(lake, demo_frames, 366, until=date(2025, 6, 30))
    outcome = train_model("churn", ds, "one-class")
    assert outcome["trained"] is False, outcome
    assert "fewer than two label classes" in outcome["reason"]
    assert outcome["reason"].startswith("not enough data: "), outcome


def test_a_year_of_history_is_enough(lake, demo_frames):
    """The control: the floor does not refuse a history that holds enough of each class."""
    ds = land_days(lake, demo_frames, 365)
    outcome = train_model("churn", ds, "a-year")
    assert outcome["trained"] is True, outcome
    assert outcome["version"] == f"churn-{ds:%Y%m%d}"

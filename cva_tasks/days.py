"""Days and instants: the one place that turns run dates into UTC instants.

Every step is keyed by ``ds``, the day of the run's data interval ``[ds, ds + 1)``
in UTC. Features "as of ``ds``" use only what happened before :func:`as_of_instant`
(the end of that interval). Naive datetimes mean UTC everywhere.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def as_day(value: date | datetime | str) -> date:
    """The UTC day of ``value`` (a date, an aware or naive datetime, or ISO text)."""
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return as_utc(value).date()
    return value


def utc_midnight(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def as_of_instant(ds: date) -> datetime:
    """The end of day ``ds``'s interval: features use only what happened before it."""
    return utc_midnight(ds) + timedelta(days=1)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive means UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def as_of_date(as_of: datetime) -> date:
    """The ds of the interval that ends at ``as_of``."""
    return (as_utc(as_of) - timedelta(days=1)).date()


def parse_instant(value: datetime | str) -> datetime:
    """An interval bound from Airflow's context or its ISO text (offsets kept)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def utc_timestamp(value: object) -> pd.Timestamp:
    """``value`` (datetime, Timestamp or ISO text; naive means UTC) as an aware UTC Timestamp."""
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def utc_series(values: pd.Series) -> pd.Series:
    """A datetime column in UTC (naive values mean UTC)."""
    return values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")

"""The demo shop's period and calendar: the default period, days as epoch seconds, and the
seasonality of demand (month profile, weekly and daily rhythm, Black Friday, Christmas, sales)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

DEFAULT_START = date(2024, 1, 1)
DEFAULT_END = date(2025, 12, 31)  # inclusive last day

DAY = 86_400
_EPOCH = date(1970, 1, 1)

# Month profile of demand (Jan..Dec), mean about 1; summer dip, Nov-Dec peak.
_MONTH_FACTOR = np.array([0.9, 0.85, 0.95, 0.95, 0.9, 0.8, 0.75, 0.75, 0.95, 1.05, 1.5, 1.65])
_MONTH_FACTOR = _MONTH_FACTOR / _MONTH_FACTOR.mean()
# Monday..Sunday.
_WEEKDAY_FACTOR = np.array([1.05, 1.0, 0.98, 0.97, 0.92, 0.88, 1.2])
# Hour-of-day weights (UTC): quiet nights, lunch bump, evening peak.
_HOUR_WEIGHTS = np.array(
    [0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.5, 1.0, 1.5, 1.8, 2.0, 2.2,
     2.6, 2.5, 2.1, 2.0, 2.0, 2.2, 2.6, 3.1, 3.4, 3.2, 2.4, 1.3]
)  # fmt: skip
_HOUR_WEIGHTS = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()


@dataclass(frozen=True)
class _Period:
    start: date
    end: date

    @property
    def start_day(self) -> int:
        return (self.start - _EPOCH).days

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_s(self) -> int:
        return self.start_day * DAY

    @property
    def end_s(self) -> int:
        """Last second of the period (inclusive)."""
        return (self.start_day + self.n_days) * DAY - 1


def _daily_intensity(period: _Period) -> np.ndarray:
    """Relative order intensity per day of the period (mean about 1 over a year)."""
    days = np.arange(period.start_day, period.start_day + period.n_days).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    month_idx = (months.astype(np.int64) % 12).astype(np.int64)
    dom = (days - months).astype(np.int64)  # 0-based day of month
    month_len = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(
        np.int64
    )
    # Smooth month profile: interpolate between mid-month anchors.
    pos = dom / month_len - 0.5
    nxt = np.where(pos >= 0, (month_idx + 1) % 12, (month_idx - 1) % 12)
    w = np.abs(pos)
    level = (1 - w) * _MONTH_FACTOR[month_idx] + w * _MONTH_FACTOR[nxt]
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    level = level * _WEEKDAY_FACTOR[weekday]
    # Events: Black Friday to Cyber Monday, Christmas days, January sales.
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    boost = np.ones(len(days))
    for year in np.unique(years):
        nov1 = date(int(year), 11, 1)
        first_thu = nov1 + timedelta(days=(3 - nov1.weekday()) % 7)
        black_friday = first_thu + timedelta(days=22)
        bf = np.datetime64(black_friday, "D")
        boost[(days >= bf) & (days <= bf + 3)] = 2.2
        xmas = np.datetime64(date(int(year), 12, 25), "D")
        boost[days == xmas - 1] = 0.6
        boost[days == xmas] = 0.35
        boost[days == xmas + 1] = 1.2
        jan = np.datetime64(date(int(year), 1, 1), "D")
        boost[(days >= jan + 1) & (days <= jan + 7)] = 1.15
    return level * boost


def _sale_days(period: _Period) -> np.ndarray:
    """Boolean per day: a sales event (Black Friday week, Boxing Day to mid-January)."""
    days = np.arange(period.start_day, period.start_day + period.n_days).astype("datetime64[D]")
    sale = np.zeros(len(days), dtype=bool)
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    for year in np.unique(years):
        nov1 = date(int(year), 11, 1)
        black_friday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 22)
        bf = np.datetime64(black_friday, "D")
        sale |= (days >= bf - 3) & (days <= bf + 3)
        boxing = np.datetime64(date(int(year), 12, 26), "D")
        jan = np.datetime64(date(int(year), 1, 1), "D")
        sale |= (days >= boxing) & (days <= boxing + 5)
        sale |= (days >= jan) & (days <= jan + 13)
    return sale


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS)
    return hours * 3600 + rng.integers(0, 3600, size=n)

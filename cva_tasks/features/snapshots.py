"""What the model steps of one day read from the lake, each loaded once.

Everything is as known at the end of ``ds`` (:func:`cva_tasks.days.as_of_instant`);
features of an earlier day are rebuilt point in time from the staged lake when that
day's partition is absent (snapshots for churn training, holdouts for CLV). Nothing
later than ``ds`` can be asked for.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from cva_tasks import storage
from cva_tasks.days import as_of_instant
from cva_tasks.lake import Lake

if TYPE_CHECKING:
    import pandas as pd

#: The per-customer sentiment roll-up (``features/customer_sentiment``) columns.
SENTIMENT_FEATURES = ("avg_sentiment_90d", "last_feedback_sentiment", "negative_feedback_90d")


class DayData:
    """The lake as known at the end of day ``ds``."""

    def __init__(self, ds: date, lake: Lake) -> None:
        self.ds = ds
        self.lake = lake
        self.root = lake.root
        self._features: dict[date, pd.DataFrame] = {}
        self._orders: dict[datetime, pd.DataFrame] = {}

    @property
    def as_of(self) -> datetime:
        return as_of_instant(self.ds)

    def features_at(self, day: date) -> pd.DataFrame:
        """Customer features as of the end of ``day`` (the feature partition of ``day``)."""
        if day > self.ds:
            raise ValueError(f"features of {day} requested while running {self.ds}: future data")
        if day not in self._features:
            uri = self.lake.features("customer", day)
            if storage.exists(uri):
                frame = storage.read_table(uri).to_pandas()
            else:
                from cva_tasks.features.customer import build_customer_features

                frame = build_customer_features(as_of_instant(day), self.root).to_pandas()
            self._features[day] = frame
        return self._features[day]

    def features_before(self, day: date) -> pd.DataFrame:
        """Features using only events before ``day`` 00:00 UTC (the "as of ``day``" of the
        evaluation protocols): the features of ``day - 1``."""
        return self.features_at(day - timedelta(days=1))

    def orders_as_of(self, instant: datetime) -> pd.DataFrame:
        """Counted orders known at ``instant`` (never later than the end of ``ds``).

        Only the last instant asked for is kept: churn asks for one per snapshot (six),
        each the whole order history, which at a million customers is gigabytes apiece;
        no caller asks for an earlier instant again.
        """
        from cva_tasks.features.history import counted_orders

        instant = min(instant, self.as_of)
        if instant not in self._orders:
            self._orders.clear()
            self._orders[instant] = counted_orders(instant, self.root)
        return self._orders[instant]

    def visible(self, entity: str) -> pd.DataFrame:
        """The latest version of every row of ``entity`` known at the end of ``ds``."""
        from cva_tasks.features.history import visible_rows

        return visible_rows(entity, self.as_of, self.root)

    def customer_sentiment(self, day: date | None = None) -> pd.DataFrame | None:
        """The per-customer sentiment roll-up of ``day`` (default: the run's day), or None
        before a sentiment model."""
        day = self.ds if day is None else day
        if day > self.ds:
            raise ValueError(f"sentiment of {day} requested while running {self.ds}: future data")
        uri = self.lake.features("customer_sentiment", day)
        return storage.read_table(uri).to_pandas() if storage.exists(uri) else None

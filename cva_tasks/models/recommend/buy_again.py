"""The "buy again" list: items a customer bought on several days, recent ones first.

Repeat purchases are common in retail, so they get their own list instead of crowding
out discovery in the ``next_best`` list (which leaves bought items out by default).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from cva_tasks.models.recommend.lists import BUY_AGAIN
from cva_tasks.models.recommend.purchases import DAY_US, PurchaseLog, stamp_us
from cva_tasks.models.recommend.ranking import run_starts, sorted_unique


@dataclass(frozen=True)
class BuyAgain:
    """The "buy again" list.

    Attributes:
        k: Items per customer (0 turns the list off).
        min_purchases: Distinct days an item must have been bought on.
        half_life_days: Recency half-life of each purchase day's weight.
    """

    k: int = 10
    min_purchases: int = 2
    half_life_days: float = 90.0

    def __post_init__(self) -> None:
        if self.k < 0 or self.min_purchases < 1 or not self.half_life_days > 0:
            raise ValueError(f"invalid buy-again settings: {self}")


def buy_again_lists(
    purchases: PurchaseLog, start: int, stop: int, k: int, settings: BuyAgain
) -> dict[str, np.ndarray]:
    """The buy-again lists of customers ``start:stop`` of ``purchases``, flattened.

    An item qualifies when the customer bought it on at least
    ``settings.min_purchases`` distinct days; its score is the sum over those days of
    ``0.5 ** (days before as_of / settings.half_life_days)``; ties go to the lower
    item code.

    Returns:
        Columns ``row`` (customer position within the chunk), ``list``, ``rank``,
        ``item``, ``score``, ``reason`` and ``model``, as
        :func:`cva_tasks.models.recommend.lists.flatten` gives them.
    """
    lo, hi = purchases.indptr[start], purchases.indptr[stop]
    customer = (purchases.customer[lo:hi] - start).astype(np.int64)
    pair = customer * purchases.n_items + purchases.item[lo:hi]
    day = purchases.day[lo:hi].astype(np.int64)
    first_day = int(day.min()) if len(day) else 0
    span = (int(day.max()) - first_day + 1) if len(day) else 1
    pair_day = sorted_unique(pair * span + (day - first_day))
    pair_of, day_of = pair_day // span, pair_day % span + first_day
    # pair_of is sorted: runs of one pair are its purchase days, oldest first.
    first = run_starts(pair_of)
    days = np.diff(np.r_[first, len(pair_of)])
    pairs = pair_of[first]
    last_day = day_of[first + days - 1]
    as_of_day = stamp_us(purchases.as_of) / DAY_US
    weight = np.exp2(-(as_of_day - day_of) / settings.half_life_days)
    score = np.add.reduceat(weight, first) if len(first) else np.zeros(0)
    repeat = days >= settings.min_purchases
    pairs, days, last_day, score = pairs[repeat], days[repeat], last_day[repeat], score[repeat]
    row, item = pairs // purchases.n_items, pairs % purchases.n_items
    order = np.lexsort((item, -score, row))
    row, item, days, last_day, score = (a[order] for a in (row, item, days, last_day, score))
    group_start = np.r_[0, np.flatnonzero(row[1:] != row[:-1]) + 1] if len(row) else row
    rank = np.arange(len(row)) - np.repeat(group_start, np.diff(np.r_[group_start, len(row)]))
    keep = rank < k
    row, item, days, last_day, score, rank = (
        a[keep] for a in (row, item, days, last_day, score, rank)
    )
    combos, inverse = np.unique(np.stack([days, last_day]), axis=1, return_inverse=True)
    texts = np.asarray([_buy_again_reason(int(n), int(d)) for n, d in combos.T], dtype=object)
    return {
        "row": row,
        "list": np.full(len(row), 1, dtype=np.int8),
        "rank": rank + 1,
        "item": item,
        "score": score,
        "reason": texts[inverse.ravel()] if len(row) else np.zeros(0, dtype=object),
        "model": np.full(len(row), BUY_AGAIN, dtype=object),
    }


@functools.lru_cache(maxsize=1 << 16)
def _buy_again_reason(n_days: int, last_day: int) -> str:
    last = date(1970, 1, 1) + timedelta(days=last_day)
    return f"bought on {n_days} days, last on {last.isoformat()}"

"""Model inputs: customer features (or counted orders) to BG/NBD and Gamma-Gamma inputs.

Time unit one day; :func:`clv_inputs` lists the approximations the feature table
imposes.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from cva_tasks.days import utc_timestamp

#: The model's time unit, in days.
TIME_UNIT_DAYS = 1.0
#: The feature columns :func:`clv_inputs` reads.
FEATURE_COLUMNS = ("customer_id", "first_order_at", "last_order_at", "frequency", "avg_order_value")


def as_of_timestamp(as_of: object) -> pd.Timestamp:
    """``as_of`` (datetime or Timestamp; naive means UTC) as an aware UTC Timestamp.

    Unlike :func:`cva_tasks.days.utc_timestamp` it refuses dates and text: features
    are as of an instant, and a day would be ambiguous (its start or its end?).
    """
    if not isinstance(as_of, datetime):
        raise TypeError(
            f"as_of must be a datetime (the instant features are as of), got {type(as_of).__name__}"
        )
    return utc_timestamp(as_of)


def _days(delta: pd.Series) -> np.ndarray:
    return (delta.dt.total_seconds() / 86_400.0).to_numpy(dtype=float)


def clv_inputs(features: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Map the point-in-time customer features to BG/NBD and Gamma-Gamma inputs.

    Time unit: one day (``TIME_UNIT_DAYS``), in fractions, from the feature timestamps.

    * ``x`` (repeat purchases) = ``frequency - 1``: counted orders after the first.
    * ``t_x`` (recency) = ``last_order_at - first_order_at``; 0 when ``x == 0``.
    * ``T`` (age) = ``as_of - first_order_at``.
    * ``n_orders`` = ``frequency`` and ``spend_per_order`` = ``avg_order_value``
      (gross revenue of counted orders / counted orders): the Gamma-Gamma inputs,
      i.e. the mean of all counted orders, the first one included.

    Approximations, all from what the feature table holds:

    * A transaction is a counted order, not a purchase day (the CDNOW protocol merges
      same-day purchases): several orders on one day count several times.
    * ``first_order_at`` / ``last_order_at`` are the earliest / latest purchase lines,
      cancelled orders included (the feature's definition), while ``frequency`` counts
      only orders that were not cancelled; the ages can therefore stretch a little past
      the counted orders. ``t_x`` is clipped to ``[0, T]``.
    * Spend is gross order value: returns are not subtracted.
    * Customers whose first order in the lake was before the lake's history starts
      (left-truncated) are treated as born at their first visible order.

    Customers with ``frequency == 0`` (every order cancelled) made no counted purchase:
    ``is_modelled`` is False and their inputs are NaN.

    Args:
        features: The customer feature table (:mod:`cva_tasks.features.customer`), at
            least the columns of ``FEATURE_COLUMNS``.
        as_of: The instant the features are as of (naive means UTC); must agree with
            the table's ``as_of_date`` column (``as_of - 1 day``) when present.

    Returns:
        One row per input row, same order: ``customer_id``, ``is_modelled``,
        ``has_spend`` (modelled with ``spend_per_order > 0``), ``x``, ``t_x``, ``T``,
        ``n_orders``, ``spend_per_order``.

    Raises:
        ValueError: naming the column or the rule a row breaks.
    """
    missing = [c for c in FEATURE_COLUMNS if c not in features.columns]
    if missing:
        raise ValueError(f"clv_inputs: the features lack column(s) {missing}")
    stamp = as_of_timestamp(as_of)
    if "as_of_date" in features.columns and len(features):
        dates = set(pd.to_datetime(features["as_of_date"]).dt.date)
        expected = (stamp - pd.Timedelta(days=1)).date()
        if dates != {expected}:
            raise ValueError(
                f"clv_inputs: as_of {stamp.isoformat()} implies as_of_date {expected}, "
                f"but the features hold {sorted(map(str, dates))}"
            )
    frequency = pd.to_numeric(features["frequency"]).to_numpy(dtype=float)
    if np.any(np.isnan(frequency)) or np.any(frequency < 0):
        raise ValueError("clv_inputs: frequency must be a count >= 0 on every row")
    modelled = frequency >= 1
    first = pd.to_datetime(features["first_order_at"], utc=True)
    last = pd.to_datetime(features["last_order_at"], utc=True)
    bad = modelled & (first.isna() | last.isna()).to_numpy()
    if bad.any():
        raise ValueError(
            f"clv_inputs: {int(bad.sum())} customer(s) with counted orders lack "
            "first_order_at/last_order_at"
        )
    age = _days(stamp - first)
    recency = _days(last - first)
    late = modelled & ~(age > 0)
    if late.any():
        raise ValueError(
            f"clv_inputs: first_order_at must be before as_of {stamp.isoformat()}; "
            f"{int(late.sum())} row(s) are not (features built for another day?)"
        )
    if np.any(modelled & (recency < 0)):
        raise ValueError("clv_inputs: last_order_at before first_order_at")
    x = np.where(modelled, frequency - 1, np.nan)
    t_x = np.where(modelled, np.where(x > 0, np.clip(recency, 0, age), 0.0), np.nan)
    spend = pd.to_numeric(features["avg_order_value"]).to_numpy(dtype=float)
    has_spend = modelled & np.isfinite(spend) & (spend > 0)
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "is_modelled": modelled,
            "has_spend": has_spend,
            "x": x,
            "t_x": t_x,
            "T": np.where(modelled, age, np.nan),
            "n_orders": np.where(modelled, frequency, np.nan),
            "spend_per_order": np.where(has_spend, spend, np.nan),
        }
    )


def purchase_day_inputs(orders: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """BG/NBD inputs with purchase *days* as transactions (the CDNOW protocol).

    Counted orders placed on the same UTC day are one purchase occasion, timed at the
    day's first order; otherwise as :func:`clv_inputs` (days, spend = mean gross per
    order). For comparisons and tests: the production model reads the feature table,
    which counts orders.

    Args:
        orders: Counted orders (:func:`cva_tasks.features.history.counted_orders`).
        as_of: Only orders before it are used.

    Returns:
        Columns as :func:`clv_inputs`, one row per customer with an order before ``as_of``.
    """
    stamp = as_of_timestamp(as_of)
    ordered = pd.to_datetime(orders["ordered_at"], utc=True)
    before = orders.assign(ordered_at=ordered)[ordered < stamp]
    by_customer = before.groupby("customer_id")
    n_orders = by_customer.size()
    spend = by_customer["gross"].sum() / n_orders
    days = before.assign(day=before["ordered_at"].dt.floor("D"))
    occasions = days.groupby(["customer_id", "day"])["ordered_at"].min().groupby("customer_id")
    first, last, count = occasions.min(), occasions.max(), occasions.size()
    x = (count - 1).astype(float)
    return pd.DataFrame(
        {
            "customer_id": n_orders.index.to_numpy(),
            "is_modelled": True,
            "has_spend": (spend > 0).to_numpy(),
            "x": x.to_numpy(),
            "t_x": np.where(x > 0, _days(last - first), 0.0),
            "T": _days(stamp - first),
            "n_orders": n_orders.to_numpy(dtype=float),
            "spend_per_order": spend.where(spend > 0).to_numpy(),
        }
    )

"""Churn labels and labelled snapshots: who churned after an as-of day, known when.

A customer is *active* at the as-of day ``T`` when the feature table as of ``T`` (events
before ``T`` 00:00 UTC) has a row for them. They *churn* when they place no counted
order in ``[T, T + horizon)`` (:func:`churn_labels`); that label is known only on
``T + horizon``. A training run on day ``ds`` therefore stacks snapshots whose labels
are known on ``ds``: as-of days ``ds - horizon``, ``ds - horizon - step``, ...
(:func:`snapshot_days`, :func:`build_training_set`). Customers are split into a fitted
and a held-out share by a stable hash of their id (:func:`holdout_customers`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.days import utc_midnight

log = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 90
DEFAULT_N_SNAPSHOTS = 6
DEFAULT_STEP_DAYS = 14
DEFAULT_HOLDOUT_SHARE = 0.3

FeaturesAt = Callable[[date], pd.DataFrame]
OrdersAsOf = Callable[[datetime], pd.DataFrame]


def require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` naming the ``columns`` missing from ``frame``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}")


def churn_labels(
    features: pd.DataFrame,
    orders: pd.DataFrame,
    as_of_day: date,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> pd.Series:
    """Churn label of every customer active before ``as_of_day``.

    Args:
        features: The feature table as of ``as_of_day`` (events before its 00:00 UTC):
            one row per active customer; needs ``customer_id``.
        orders: Counted orders known on ``as_of_day + horizon_days``
            (:func:`cva_tasks.features.history.counted_orders`); needs ``customer_id``
            and ``ordered_at`` (tz-aware UTC). Orders outside the window are ignored.
        as_of_day: ``T``.
        horizon_days: ``h``; the label window is ``[T, T + h)``.

    Returns:
        ``churned`` (int 0/1) aligned with ``features``' index: 1 when the customer
        placed no counted order in ``[T, T + h)``.

    Raises:
        ValueError: when a column is missing, the horizon is not positive, a customer id
            repeats, or the feature table saw events at or after ``T`` (it would not be
            as of ``T``).
    """
    if horizon_days < 1:
        raise ValueError(f"horizon_days must be >= 1, got {horizon_days}")
    require_columns(features, ["customer_id"], "churn_labels features")
    require_columns(orders, ["customer_id", "ordered_at"], "churn_labels orders")
    if features["customer_id"].duplicated().any():
        raise ValueError("churn_labels features: customer_id must be unique (one row each)")
    start = pd.Timestamp(utc_midnight(as_of_day))
    end = start + pd.Timedelta(days=horizon_days)
    if "last_order_at" in features.columns:
        last = pd.to_datetime(features["last_order_at"], utc=True)
        if (last >= start).any():
            raise ValueError(
                f"churn_labels: features hold orders at or after the as-of {start.isoformat()}"
                " (they must be built as of that day)"
            )
    if "as_of_date" in features.columns and len(features):
        expected = as_of_day - timedelta(days=1)
        seen = set(pd.to_datetime(features["as_of_date"]).dt.date)
        if seen != {expected}:
            raise ValueError(
                f"churn_labels: feature as_of_date {sorted(seen)} does not match the as-of "
                f"day {as_of_day} (expected as_of_date {expected})"
            )
    ordered_at = pd.to_datetime(orders["ordered_at"], utc=True)
    in_window = (ordered_at >= start) & (ordered_at < end)
    buyers = set(orders.loc[in_window, "customer_id"].astype(str))
    churned = ~features["customer_id"].astype(str).isin(buyers)
    return churned.astype("int64").rename("churned")


def snapshot_days(
    ds: date,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    n_snapshots: int = DEFAULT_N_SNAPSHOTS,
    step_days: int = DEFAULT_STEP_DAYS,
) -> list[date]:
    """As-of days whose churn labels are known on ``ds``, oldest first.

    The latest is ``ds - horizon_days`` (its window ``[T, T + h)`` ends on ``ds``); the
    others go back ``step_days`` at a time.

    Raises:
        ValueError: for a non-positive horizon, count or step.
    """
    for name, value in (
        ("horizon_days", horizon_days),
        ("n_snapshots", n_snapshots),
        ("step_days", step_days),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    latest = ds - timedelta(days=horizon_days)
    return [latest - timedelta(days=step_days * i) for i in reversed(range(n_snapshots))]


def build_training_set(
    days: Sequence[date],
    features_at: FeaturesAt,
    orders_as_of: OrdersAsOf,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> pd.DataFrame:
    """Stack labelled snapshots.

    Args:
        days: As-of days (e.g. :func:`snapshot_days`).
        features_at: ``day -> feature table`` using only events before ``day`` 00:00 UTC.
        orders_as_of: ``instant -> counted orders known at that instant``; called with
            ``T + horizon`` for the label of snapshot ``T``.
        horizon_days: Label window length.

    Returns:
        One row per (snapshot, active customer): the feature columns plus
        ``snapshot_day`` (date) and ``churned`` (0/1), ordered by snapshot then input
        order.
    """
    frames = []
    started = time.perf_counter()
    for number, day in enumerate(sorted(days), start=1):
        features = features_at(day)
        clash = {"snapshot_day", "churned"} & set(features.columns)
        if clash:
            raise ValueError(f"features_at({day}): reserved column(s) {sorted(clash)}")
        orders = orders_as_of(utc_midnight(day + timedelta(days=horizon_days)))
        labels = churn_labels(features, orders, day, horizon_days)
        frame = features.reset_index(drop=True).assign(snapshot_day=day, churned=labels.to_numpy())
        frames.append(frame)
        log.info(
            "churn snapshot %s: %d customers, churn rate %.3f (%d/%d, %.1f s)",
            day,
            len(frame),
            float(frame["churned"].mean()) if len(frame) else float("nan"),
            number,
            len(days),
            time.perf_counter() - started,
        )
    if not frames:
        raise ValueError("build_training_set: no snapshot days given")
    return pd.concat(frames, ignore_index=True)


def holdout_customers(customer_ids: Any, share: float, seed: int = 0) -> np.ndarray:
    """Whether each customer is held out from fitting: a stable hash of the id below ``share``.

    The hash (BLAKE2b of ``"<seed>:<customer_id>"``) does not depend on the process, the
    run or the other customers, so the same customers are held out in every training
    run: a champion trained last week never saw the rows it is compared on today.

    Raises:
        ValueError: when ``share`` is not strictly between 0 and 1.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"holdout share must be strictly between 0 and 1, got {share}")
    ids = pd.Series(customer_ids).astype(str)
    position = np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{seed}:{c}".encode(), digest_size=8).digest(), "big")
            for c in ids
        ],
        dtype=np.float64,
    )
    return position / 2.0**64 < share

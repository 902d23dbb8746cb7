"""Model inputs of churn risk: engineered features from the point-in-time feature table.

Both model families see the same engineered features (:func:`engineer_features`,
defined by :data:`FEATURE_INPUTS`): log RFM, tenure, recency relative to tenure and to
the customer's usual gap between orders ("overdue"), order rate, the last 30/90 days'
spend and orders, cancellations, returns, product breadth, ratings, the feedback
sentiment columns ``avg_sentiment_90d``, ``last_feedback_sentiment``,
``negative_feedback_90d`` when the feature table has them, and three BG/NBD figures
(P(alive), P(no order in the horizon), expected orders in the horizon) from a BG/NBD
model fitted, without labels, on each snapshot's own customers (:func:`fit_bgnbd`, so
it is point in time by construction).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.models.churn.labels import DEFAULT_HORIZON_DAYS, require_columns

log = logging.getLogger(__name__)

#: BG/NBD is fitted on at most this many customers of a snapshot (a seeded sample).
BGNBD_MAX_FIT_CUSTOMERS = 20_000
#: Below this many customers predict() reuses the BG/NBD fit of the validation snapshot.
BGNBD_MIN_FIT_CUSTOMERS = 200

#: Raw feature-table columns every churn model needs.
CORE_COLUMNS = (
    "customer_id",
    "recency_days",
    "tenure_days",
    "frequency",
    "first_order_at",
    "last_order_at",
    "gross_revenue",
    "avg_order_value",
    "mean_days_between_orders",
    "std_days_between_orders",
    "orders_90d",
    "spend_30d",
    "spend_90d",
    "n_cancelled_orders",
)
SENTIMENT_COLUMNS = ("avg_sentiment_90d", "last_feedback_sentiment", "negative_feedback_90d")

#: Engineered feature -> the raw columns it is computed from (optional ones are used
#: only when every input is in the feature table).
FEATURE_INPUTS: dict[str, tuple[str, ...]] = {
    "log_recency": ("recency_days",),
    "log_tenure": ("tenure_days",),
    "recency_tenure_ratio": ("recency_days", "tenure_days"),
    "log_active_span": ("recency_days", "tenure_days"),
    "log_frequency": ("frequency",),
    "orders_per_30d": ("frequency", "tenure_days"),
    "log_mean_gap": ("mean_days_between_orders", "tenure_days"),
    "recency_gap_ratio": ("recency_days", "mean_days_between_orders", "tenure_days"),
    "log_std_gap": ("std_days_between_orders",),
    "overdue_z": ("recency_days", "mean_days_between_orders", "std_days_between_orders"),
    "log_gross_revenue": ("gross_revenue",),
    "log_avg_order_value": ("avg_order_value",),
    "log_orders_90d": ("orders_90d",),
    "log_spend_30d": ("spend_30d",),
    "log_spend_90d": ("spend_90d",),
    "spend_90d_share": ("spend_90d", "gross_revenue"),
    "cancel_rate": ("n_cancelled_orders", "frequency"),
    "log_cancelled_orders": ("n_cancelled_orders",),
    "bg_p_alive": ("frequency", "recency_days", "first_order_at", "last_order_at"),
    "bg_p_no_order": ("frequency", "recency_days", "first_order_at", "last_order_at"),
    "bg_log_expected_orders": ("frequency", "recency_days", "first_order_at", "last_order_at"),
    "net_to_gross": ("monetary_value", "gross_revenue"),
    "log_distinct_items": ("n_distinct_items",),
    "return_rate": ("return_rate",),
    "log_returned_lines": ("n_returned_lines",),
    "log_feedback_count": ("feedback_count",),
    "avg_rating": ("avg_rating",),
    "avg_sentiment_90d": ("avg_sentiment_90d",),
    "last_feedback_sentiment": ("last_feedback_sentiment",),
    "log_negative_feedback_90d": ("negative_feedback_90d",),
}


def numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as float64, unparsable values null."""
    return pd.to_numeric(frame[column], errors="coerce").astype("float64")


def _bgnbd_inputs(features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD ``(x, t_x, T)`` in days, from the feature table alone.

    ``T`` is the age since the first order, rebuilt as the span between first and last
    order plus the recency, so no as-of instant is needed.
    """
    first = pd.to_datetime(features["first_order_at"], utc=True)
    last = pd.to_datetime(features["last_order_at"], utc=True)
    span = ((last - first).dt.total_seconds() / 86400.0).fillna(0.0).clip(lower=0.0)
    recency = numeric(features, "recency_days").fillna(0.0).clip(lower=0.0)
    x = (numeric(features, "frequency").fillna(1.0) - 1.0).clip(lower=0.0)
    age = (span + recency).to_numpy()
    t_x = np.where(x.to_numpy() > 0, span.to_numpy(), 0.0)
    return x.to_numpy(), np.minimum(t_x, age), age


def fit_bgnbd(features: pd.DataFrame, seed: int = 0) -> Any | None:
    """Fit BG/NBD (:class:`cva_tasks.models.clv.BetaGeoFitter`) on one snapshot's customers.

    No label is used: the fit sees only the history before the snapshot's as-of day.
    Larger populations are fitted on a seeded sample of
    :data:`BGNBD_MAX_FIT_CUSTOMERS`.

    Returns:
        The fitted model, or None when it cannot be fitted (too few customers, or the
        optimiser failed); the BG/NBD features are then missing (null).
    """
    from cva_tasks.models.clv import BetaGeoFitter

    x, t_x, age = _bgnbd_inputs(features)
    keep = age > 0
    if keep.sum() < 20:
        return None
    x, t_x, age = x[keep], t_x[keep], age[keep]
    if x.size > BGNBD_MAX_FIT_CUSTOMERS:
        pick = np.sort(
            np.random.default_rng(seed).choice(x.size, BGNBD_MAX_FIT_CUSTOMERS, replace=False)
        )
        x, t_x, age = x[pick], t_x[pick], age[pick]
    started = time.perf_counter()
    try:
        fitter = BetaGeoFitter().fit(x, t_x, age)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as exc:
        log.warning("BG/NBD fit failed on %d customers (%s): BG/NBD features null", x.size, exc)
        return None
    log.info(
        "BG/NBD fitted on %d customers in %.1f s: %s",
        x.size,
        time.perf_counter() - started,
        {k: round(v, 4) for k, v in fitter.params_.items()},
    )
    return fitter


def _bgnbd_features(
    features: pd.DataFrame, fitter: Any | None, horizon_days: int
) -> dict[str, np.ndarray]:
    n = len(features)
    if fitter is None or n == 0:
        return {
            "bg_p_alive": np.full(n, np.nan),
            "bg_p_no_order": np.full(n, np.nan),
            "bg_log_expected_orders": np.full(n, np.nan),
        }
    x, t_x, age = _bgnbd_inputs(features)
    age = np.maximum(age, 1e-6)
    with np.errstate(all="ignore"):
        alive = fitter.probability_alive(x, t_x, age)
        expected = fitter.expected_purchases(float(horizon_days), x, t_x, age)
        p = fitter.params_
        # P(no order in (T, T + h]) = P(dropped out) + P(alive) * P(no Poisson event),
        # the rate's posterior being Gamma(r + x, alpha + T).
        none_if_alive = np.exp(
            (p["r"] + x) * (np.log(p["alpha"] + age) - np.log(p["alpha"] + age + horizon_days))
        )
        no_order = 1.0 - alive + alive * none_if_alive
    return {
        "bg_p_alive": alive,
        "bg_p_no_order": no_order,
        "bg_log_expected_orders": np.log1p(np.clip(expected, 0.0, None)),
    }


def available_features(columns: Sequence[str]) -> list[str]:
    """Engineered features whose raw inputs are all in ``columns`` (in a fixed order)."""
    have = set(columns)
    return [name for name, inputs in FEATURE_INPUTS.items() if set(inputs) <= have]


def engineer_features(
    features: pd.DataFrame,
    bgnbd: Any | None,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Model inputs from the raw feature table (definitions: :data:`FEATURE_INPUTS`).

    Counts, money and durations are ``log1p``'d (negative money clipped to 0); a
    customer with one order has no gap between orders, so their usual gap is taken as
    their tenure (they have not reordered in that long); ``overdue_z`` is
    ``(recency - usual gap) / (gap std + 7 days)`` clipped to [-5, 10] (0 when unknown).

    Args:
        features: Raw feature rows (one per customer).
        bgnbd: A fitted BG/NBD (:func:`fit_bgnbd`) of this population, or None.
        horizon_days: Horizon of the BG/NBD figures.
        names: Features to return (default :func:`available_features`).

    Returns:
        Float columns ``names``, index aligned with ``features``.

    Raises:
        ValueError: naming raw columns a requested feature needs but ``features`` lacks.
    """
    names = list(names) if names is not None else available_features(features.columns)
    needed = sorted({c for n in names for c in FEATURE_INPUTS[n]})
    require_columns(features, needed, "churn features")
    out: dict[str, Any] = {}

    def col(name: str) -> pd.Series:
        return numeric(features, name)

    def log_pos(name: str) -> pd.Series:
        return np.log1p(col(name).clip(lower=0.0))

    wanted = set(names)
    if "log_recency" in wanted:
        out["log_recency"] = log_pos("recency_days")
    if "recency_tenure_ratio" in wanted:
        out["recency_tenure_ratio"] = col("recency_days") / (col("tenure_days") + 1.0)
    if "log_active_span" in wanted:
        span = col("tenure_days") - col("recency_days")
        out["log_active_span"] = np.log1p(span.clip(lower=0.0))
    if "log_tenure" in wanted:
        out["log_tenure"] = log_pos("tenure_days")
    if "log_frequency" in wanted:
        out["log_frequency"] = log_pos("frequency")
    if "orders_per_30d" in wanted:
        out["orders_per_30d"] = col("frequency") / (col("tenure_days") + 1.0) * 30.0
    if wanted & {"log_mean_gap", "recency_gap_ratio"}:
        gap = col("mean_days_between_orders").fillna(col("tenure_days")).clip(lower=0.0)
        out["log_mean_gap"] = np.log1p(gap)
        if "recency_gap_ratio" in wanted:
            out["recency_gap_ratio"] = np.log1p(col("recency_days").clip(lower=0.0) / (gap + 1.0))
    if "log_std_gap" in wanted:
        out["log_std_gap"] = np.log1p(col("std_days_between_orders").fillna(0.0).clip(lower=0.0))
    if "overdue_z" in wanted:
        overdue = (col("recency_days") - col("mean_days_between_orders")) / (
            col("std_days_between_orders").fillna(0.0) + 7.0
        )
        out["overdue_z"] = overdue.clip(-5.0, 10.0).fillna(0.0)
    for name, raw in (
        ("log_gross_revenue", "gross_revenue"),
        ("log_avg_order_value", "avg_order_value"),
        ("log_orders_90d", "orders_90d"),
        ("log_spend_30d", "spend_30d"),
        ("log_spend_90d", "spend_90d"),
        ("log_cancelled_orders", "n_cancelled_orders"),
        ("log_distinct_items", "n_distinct_items"),
        ("log_returned_lines", "n_returned_lines"),
        ("log_feedback_count", "feedback_count"),
        ("log_negative_feedback_90d", "negative_feedback_90d"),
    ):
        if name in wanted:
            out[name] = log_pos(raw).fillna(0.0)
    if "spend_90d_share" in wanted:
        out["spend_90d_share"] = (
            col("spend_90d").clip(lower=0.0) / col("gross_revenue").clip(lower=1.0)
        ).clip(0.0, 1.0)
    if "cancel_rate" in wanted:
        cancelled = col("n_cancelled_orders").fillna(0.0)
        out["cancel_rate"] = cancelled / (col("frequency").fillna(0.0) + cancelled).clip(lower=1.0)
    if "net_to_gross" in wanted:
        out["net_to_gross"] = (col("monetary_value") / col("gross_revenue").clip(lower=1.0)).clip(
            -1.0, 2.0
        )
    if "return_rate" in wanted:
        out["return_rate"] = col("return_rate").fillna(0.0).clip(0.0, 2.0)
    for name in ("avg_rating", "avg_sentiment_90d", "last_feedback_sentiment"):
        if name in wanted:
            out[name] = col(name)  # null = no feedback; imputed (LR) or routed (trees)
    if wanted & {"bg_p_alive", "bg_p_no_order", "bg_log_expected_orders"}:
        out.update(_bgnbd_features(features, bgnbd, horizon_days))
    frame = pd.DataFrame({n: np.asarray(out[n], dtype="float64") for n in names})
    frame.index = features.index
    # A near-degenerate BG/NBD fit can overflow; unknown is what such a value means.
    return frame.replace([np.inf, -np.inf], np.nan)


def engineer_snapshots(
    frame: pd.DataFrame,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[date, Any]]:
    """:func:`engineer_features` per snapshot, each with a BG/NBD fitted on its own rows.

    Returns:
        The engineered rows (index aligned with ``frame``) and the BG/NBD fit per
        snapshot day (None where it could not be fitted).
    """
    names = list(names) if names is not None else available_features(frame.columns)
    parts, fits = [], {}
    for day, rows in frame.groupby("snapshot_day", sort=True):
        needs_bg = bool(set(names) & {"bg_p_alive", "bg_p_no_order", "bg_log_expected_orders"})
        fits[day] = fit_bgnbd(rows, seed) if needs_bg else None
        parts.append(engineer_features(rows, fits[day], horizon_days=horizon_days, names=names))
    return pd.concat(parts).loc[frame.index], fits

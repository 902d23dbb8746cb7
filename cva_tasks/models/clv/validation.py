"""Out-of-time validation: naive baselines, holdout actuals, the scores and P(alive) AUC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.models.clv.inputs import as_of_timestamp, clv_inputs
from cva_tasks.models.clv.model import LifetimeValueModel


def naive_forecasts(
    features: pd.DataFrame, as_of: datetime, horizon_days: float
) -> dict[str, pd.DataFrame]:
    """The naive baselines: each customer repeats their past rate.

    * ``calibration_rate``: orders (gross spend) per day over the history visible at
      ``as_of`` (from the earliest ``first_order_at`` of the table to ``as_of``), times
      ``horizon_days``; i.e. the same count again, scaled to the window.
    * ``rate_since_first_order``: orders (gross spend) per day since the customer's own
      first order (at least one day), times ``horizon_days``.

    Args:
        features: Customer features as of ``as_of``.
        as_of: Their instant.
        horizon_days: Length of the forecast window in days.

    Returns:
        Baseline name -> frame with ``customer_id``, ``expected_orders``,
        ``expected_spend`` (NaN for customers without a counted order).
    """
    if "gross_revenue" not in features.columns:
        raise ValueError("naive_forecasts: the features lack column 'gross_revenue'")
    inputs = clv_inputs(features, as_of)
    rows = inputs["is_modelled"].to_numpy(dtype=bool)
    orders = np.where(rows, inputs["n_orders"].to_numpy(dtype=float), np.nan)
    gross = pd.to_numeric(features["gross_revenue"]).to_numpy(dtype=float)
    gross = np.where(rows, gross, np.nan)
    ages = inputs["T"].to_numpy(dtype=float)
    history_days = float(np.nanmax(ages)) if rows.any() else np.nan
    out = {}
    for name, days in (
        ("calibration_rate", np.full(len(inputs), history_days)),
        ("rate_since_first_order", np.maximum(ages, 1.0)),
    ):
        out[name] = pd.DataFrame(
            {
                "customer_id": inputs["customer_id"].to_numpy(),
                "expected_orders": orders / days * horizon_days,
                "expected_spend": gross / days * horizon_days,
            }
        )
    return out


def _score(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    from scipy.stats import spearmanr

    if np.isnan(predicted).any():
        return {"predicted_total": None, "mae": None, "spearman": None}
    if np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        rho = None
    else:
        rho = float(spearmanr(predicted, actual)[0])
    return {
        "predicted_total": float(predicted.sum()),
        "mae": float(np.mean(np.abs(predicted - actual))),
        "spearman": rho,
    }


def holdout_actuals(
    features: pd.DataFrame, holdout_orders: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    """Counted orders and gross spend per customer of ``features`` in ``[start, end)``.

    Args:
        features: The calibration features (defines the customers, in order).
        holdout_orders: Counted orders (:func:`cva_tasks.features.history.counted_orders`).
        start: Start of the window (inclusive).
        end: End of the window (exclusive).

    Returns:
        ``customer_id``, ``orders``, ``spend`` aligned with ``features``.
    """
    ordered = pd.to_datetime(holdout_orders["ordered_at"], utc=True)
    window = holdout_orders[(ordered >= as_of_timestamp(start)) & (ordered < as_of_timestamp(end))]
    per_customer = window.groupby("customer_id").agg(
        orders=("order_id", "size"), spend=("gross", "sum")
    )
    ids = features["customer_id"].astype(str).to_numpy()
    per_customer.index = per_customer.index.astype(str)
    aligned = per_customer.reindex(ids).fillna(0.0)
    return pd.DataFrame(
        {
            "customer_id": features["customer_id"].to_numpy(),
            "orders": aligned["orders"].to_numpy(dtype=float),
            "spend": aligned["spend"].to_numpy(dtype=float),
        }
    )


def validate_out_of_time(
    model: LifetimeValueModel,
    features: pd.DataFrame,
    as_of: datetime,
    holdout_orders: pd.DataFrame,
    horizon_days: float,
) -> dict[str, Any]:
    """Score a fitted model and the naive baselines on ``[as_of, as_of + horizon_days)``.

    Customers: those of ``features`` with a counted order before ``as_of`` (customers
    acquired in the window are predicted by neither side). Actuals: their counted
    orders and gross spend in the window.

    Args:
        model: A model fitted on data before ``as_of`` (or a stored champion).
        features: Customer features as of ``as_of``.
        as_of: Start of the holdout window.
        holdout_orders: Counted orders known at the end of the window.
        horizon_days: Length of the window.

    Returns:
        JSON-able figures: ``n_customers``, ``actual_orders``, ``actual_spend``, and per
        forecaster (``model`` and each baseline) ``orders`` / ``spend`` scores
        (``predicted_total``, ``mae``, ``spearman``); ``p_alive_auc_repeaters``: ROC AUC
        of P(alive) for "placed an order in the window" among repeat customers (None
        when P(alive) is not published).
    """
    end = as_of_timestamp(as_of) + pd.Timedelta(days=horizon_days)
    inputs = clv_inputs(features, as_of)
    rows = inputs["is_modelled"].to_numpy(dtype=bool)
    actual = holdout_actuals(features, holdout_orders, as_of, end)
    actual_orders = actual["orders"].to_numpy()[rows]
    actual_spend = actual["spend"].to_numpy()[rows]
    forecasters = {"model": model.forecast(features, as_of, horizon_days)}
    forecasters.update(naive_forecasts(features, as_of, horizon_days))
    result: dict[str, Any] = {
        "window_start": as_of_timestamp(as_of).isoformat(),
        "window_end_exclusive": end.isoformat(),
        "horizon_days": horizon_days,
        "n_customers": int(rows.sum()),
        "actual_orders": float(actual_orders.sum()),
        "actual_spend": float(actual_spend.sum()),
    }
    for name, frame in forecasters.items():
        result[name] = {
            "orders": _score(frame["expected_orders"].to_numpy()[rows], actual_orders),
            "spend": _score(frame["expected_spend"].to_numpy()[rows], actual_spend),
        }
    auc = None
    if model.published["p_alive"]:
        alive = model.predict(features, as_of)["p_alive"].to_numpy()[rows]
        repeaters = inputs["x"].to_numpy()[rows] > 0
        auc = rank_auc(actual_orders[repeaters] > 0, alive[repeaters])
    result["p_alive_auc_repeaters"] = auc
    return result


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC by ranks (Mann-Whitney U), ties averaged; None with a single class."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

"""Figures of a churn model's probabilities: ranking, calibration, lift."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Probabilities are clipped to [floor, 1 - floor] before log loss (and when predicted).
PROBABILITY_FLOOR = 1e-4


def top_decile_lift(labels: Any, scores: Any) -> float:
    """Churn rate among the 10% highest scores over the overall churn rate.

    Ties at the cut share the remaining places in proportion, so the figure does not
    depend on row order.
    """
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    if y.size == 0 or y.mean() == 0:
        return float("nan")
    k = math.ceil(0.1 * y.size)
    threshold = np.sort(s)[::-1][k - 1]
    above, tied = s > threshold, s == threshold
    churned_top = y[above].sum() + (k - above.sum()) * y[tied].mean()
    return float(churned_top / k / y.mean())


def calibration_table(labels: Any, probabilities: Any, bins: int = 10) -> list[dict[str, Any]]:
    """Reliability table: equal-width probability bins with their mean prediction and rate.

    Returns:
        One dict per non-empty bin: ``lower``, ``upper``, ``n``, ``mean_predicted``,
        ``observed_rate``.
    """
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        member = index == b
        if member.any():
            rows.append(
                {
                    "lower": round(b / bins, 4),
                    "upper": round((b + 1) / bins, 4),
                    "n": int(member.sum()),
                    "mean_predicted": round(float(p[member].mean()), 4),
                    "observed_rate": round(float(y[member].mean()), 4),
                }
            )
    return rows


def expected_calibration_error(labels: Any, probabilities: Any, bins: int = 10) -> float:
    """Share-weighted mean |mean predicted - observed rate| over :func:`calibration_table`."""
    table = calibration_table(labels, probabilities, bins)
    n = sum(r["n"] for r in table)
    return float(sum(r["n"] * abs(r["mean_predicted"] - r["observed_rate"]) for r in table) / n)


def churn_metrics(labels: Any, probabilities: Any) -> dict[str, Any]:
    """AUC, log loss, Brier, top-decile lift, churn rate, mean prediction, calibration table."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(labels, dtype=int)
    p = np.clip(np.asarray(probabilities, dtype=float), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    if len(np.unique(y)) < 2:
        raise ValueError("churn_metrics: the labels hold one class only; AUC is undefined")
    return {
        "n": int(y.size),
        "churn_rate": round(float(y.mean()), 4),
        "mean_predicted": round(float(p.mean()), 4),
        "auc": round(float(roc_auc_score(y, p)), 4),
        "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "top_decile_lift": round(top_decile_lift(y, p), 4),
        "calibration_error": round(expected_calibration_error(y, p), 4),
        "calibration": calibration_table(y, p),
    }


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))

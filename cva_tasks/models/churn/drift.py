"""Feature drift of churn inputs: population stability index against a reference.

The model keeps decile bin edges and shares of key raw features of its validation
snapshot (:func:`drift_reference`, :attr:`ChurnModel.reference_`);
:func:`feature_drift` gives the population stability index of a new feature table per
feature and :func:`retrain_due_to_drift` says whether any passes the threshold (0.2 by
default, the usual "significant shift").
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cva_tasks.models.churn.features import SENTIMENT_COLUMNS, numeric
from cva_tasks.models.churn.labels import require_columns
from cva_tasks.models.churn.metrics import PROBABILITY_FLOOR

log = logging.getLogger(__name__)

#: Raw features whose distribution is watched for drift (those present are used).
DRIFT_FEATURES = (
    "recency_days",
    "frequency",
    "tenure_days",
    "gross_revenue",
    "avg_order_value",
    "mean_days_between_orders",
    "orders_90d",
    "spend_90d",
    "n_cancelled_orders",
    "return_rate",
    "avg_rating",
    *SENTIMENT_COLUMNS,
)


class HasDriftReference(Protocol):
    """What :func:`feature_drift` reads of a model (:class:`ChurnModel` has it)."""

    #: Per feature, the ``edges``, ``shares`` and ``n`` of :func:`drift_reference`.
    reference_: dict[str, dict[str, Any]]


def _quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.array([], dtype=float)
    return np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of the bins ``(-inf, e1], (e1, e2], ..., (ek, inf)`` plus a last bin for nulls."""
    finite = np.isfinite(values)
    counts = np.bincount(
        np.searchsorted(edges, values[finite], side="left"), minlength=edges.size + 1
    ).astype(float)
    counts = np.append(counts, (~finite).sum())
    return counts / max(values.size, 1)


def _psi(expected_shares: np.ndarray, actual_shares: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected_shares, dtype=float), PROBABILITY_FLOOR)
    a = np.maximum(np.asarray(actual_shares, dtype=float), PROBABILITY_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def population_stability_index(expected: Any, actual: Any, bins: int = 10) -> float:
    """PSI of ``actual`` against ``expected``: sum over bins of (a - e) * ln(a / e).

    Bins are the quantiles of ``expected`` (ties merged), nulls form a bin of their
    own, and empty bins count as a share of 1e-4. 0 means the same distribution;
    0.1-0.2 is usually read as a moderate shift, above 0.2 as a significant one.

    Raises:
        ValueError: when either sample is empty or ``bins`` < 2.
    """
    e = np.asarray(pd.to_numeric(pd.Series(expected), errors="coerce"), dtype=float)
    a = np.asarray(pd.to_numeric(pd.Series(actual), errors="coerce"), dtype=float)
    if e.size == 0 or a.size == 0:
        raise ValueError("population_stability_index: expected and actual must be non-empty")
    if bins < 2:
        raise ValueError(f"population_stability_index: bins must be >= 2, got {bins}")
    edges = _quantile_edges(e, bins)
    return _psi(_bin_shares(e, edges), _bin_shares(a, edges))


def drift_reference(features: pd.DataFrame, bins: int = 10) -> dict[str, dict[str, Any]]:
    """Bin edges and shares of the :data:`DRIFT_FEATURES` present in ``features`` (JSON-able)."""
    reference = {}
    for name in DRIFT_FEATURES:
        if name in features.columns:
            values = numeric(features, name).to_numpy()
            edges = _quantile_edges(values, bins)
            reference[name] = {
                "edges": [float(v) for v in edges],
                "shares": [float(v) for v in _bin_shares(values, edges)],
                "n": int(values.size),
            }
    return reference


def feature_drift(model: HasDriftReference, features: pd.DataFrame) -> dict[str, float]:
    """PSI of each reference feature of ``model`` in the new ``features``.

    Raises:
        ValueError: naming reference features missing from ``features``, or for an
            empty table.
    """
    reference = model.reference_
    require_columns(features, list(reference), "feature_drift features")
    if features.empty:
        raise ValueError("feature_drift: the feature table is empty")
    drift = {}
    for name, ref in reference.items():
        actual = _bin_shares(
            numeric(features, name).to_numpy(), np.asarray(ref["edges"], dtype=float)
        )
        drift[name] = round(_psi(np.asarray(ref["shares"]), actual), 4)
    return drift


def drifted_features(drift: dict[str, float], threshold: float = 0.2) -> dict[str, float]:
    """The features of ``drift`` whose PSI exceeds ``threshold``, largest first."""
    if threshold <= 0:
        raise ValueError(f"drift threshold must be > 0, got {threshold}")
    over = {k: v for k, v in drift.items() if v > threshold}
    return dict(sorted(over.items(), key=lambda kv: -kv[1]))


def retrain_due_to_drift(drift: dict[str, float], threshold: float = 0.2) -> bool:
    """True when any feature's PSI exceeds ``threshold`` (the drifted ones are logged)."""
    over = drifted_features(drift, threshold)
    if over:
        log.info("churn feature drift above PSI %.2f: %s", threshold, over)
    return bool(over)

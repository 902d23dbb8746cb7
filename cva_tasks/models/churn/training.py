"""Training churn risk for a day of the pipeline, and its early retrain on drift."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from cva_tasks.features.snapshots import SENTIMENT_FEATURES

if TYPE_CHECKING:
    import pandas as pd

    from cva_tasks.features.snapshots import DayData
    from cva_tasks.models.churn.model import ChurnModel
    from cva_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Days of feedback the sentiment roll-up of a churn snapshot looks back over.
SENTIMENT_WINDOW_DAYS = 90


def train_for_day(
    data: DayData, current: ChurnModel | None, settings: Settings
) -> tuple[ChurnModel, dict[str, Any]]:
    """Stack labelled snapshots known at the end of the day, fit, calibrate, validate."""
    from cva_tasks.models.churn import train_churn

    model, report = train_churn(
        data.ds,
        features_with_sentiment(data, settings),
        data.orders_as_of,
        horizon_days=settings.churn_horizon_days,
        champion=current,
        tolerance=settings.promotion_tolerance_for("churn"),
    )
    windows = report.get("windows", {})
    fit_window = windows.get("fit_label_window") or [None, None]
    validation_window = windows.get("validation_label_window") or [None, None]
    report.update(
        {
            "algorithm": f"{report.get('chosen')} + {model.params.get('calibration', 'platt')}"
            " calibration",
            "metric_value": report.get("value"),
            "training_window": {"start": fit_window[0], "end": fit_window[1]},
            "validation_window": {"start": validation_window[0], "end": validation_window[1]},
        }
    )
    return model, report


def features_with_sentiment(data: DayData, settings: Settings) -> Callable[[date], pd.DataFrame]:
    """``features_before`` plus the sentiment roll-up as of the same instant, when a
    sentiment model exists on ``ds``.

    The feedback is scored once by the day's sentiment champion; each snapshot only
    sees feedback submitted before its own instant. That model was trained on ratings
    up to ``ds``, which are not churn labels, so no label leaks into a snapshot.
    """
    from cva_tasks.models.registry import champion_model

    champion = champion_model("sentiment", data.ds, data.lake, settings.model_cache_dir)
    if champion is None:
        return data.features_before
    from cva_tasks.days import as_of_instant
    from cva_tasks.models import sentiment

    scored = sentiment.score_feedback(champion.model, data.visible("feedback"))

    def features_at(day: date) -> pd.DataFrame:
        instant = as_of_instant(day - timedelta(days=1))
        rollup = sentiment.customer_sentiment_features(scored, instant, SENTIMENT_WINDOW_DAYS)
        return data.features_before(day).merge(
            rollup[["customer_id", *SENTIMENT_FEATURES]], on="customer_id", how="left"
        )

    return features_at


def churn_inputs(features: pd.DataFrame, sentiment: pd.DataFrame | None) -> pd.DataFrame:
    """Features the churn model reads: the day's features plus the sentiment roll-up."""
    if sentiment is None:
        return features
    return features.merge(
        sentiment[["customer_id", *SENTIMENT_FEATURES]], on="customer_id", how="left"
    )


def drift_due(data: DayData, settings: Settings) -> tuple[bool, str]:
    """Retrain churn early when a key feature's population stability index passes
    ``CVA_CHURN_PSI_THRESHOLD`` (default 0.2) against the day before.

    The reference is the churn inputs as of the previous day (features and sentiment
    roll-up), binned like the champion's own reference and on the same features. The
    champion's validation snapshot lies about 90 days back (its labels need the
    horizon), so against it ``tenure_days`` and ``recency_days`` drifted every day and
    churn retrained daily; slow drift is caught by the weekly schedule instead.

    The day's figures are logged and kept in the lake (``drift/churn/ds=.../psi.json``).
    """
    from cva_tasks.models.churn import drifted_features
    from cva_tasks.models.drift_log import record_drift
    from cva_tasks.models.registry import champion_model

    champion = champion_model("churn", data.ds, data.lake, settings.model_cache_dir)
    if champion is None:
        return False, "no churn champion to compare the features with"
    threshold = settings.churn_psi_threshold
    previous = data.ds - timedelta(days=1)
    reference = churn_inputs(data.features_at(previous), data.customer_sentiment(previous))
    if reference.empty:
        return False, f"no customers as of {previous} to compare the features with"
    inputs = churn_inputs(data.features_at(data.ds), data.customer_sentiment())
    drift = drift_against(reference, inputs, list(champion.model.reference_))
    figures = ", ".join(f"{name} {psi:.3f}" for name, psi in sorted(drift.items()))
    log.info("churn feature drift against %s (PSI): %s", previous, figures)
    # Kept per day for the "Customer value" page (cva_tasks.models.drift_log).
    record_drift(data.lake, "churn", data.ds, champion.run.version, drift, threshold)
    over = drifted_features(drift, threshold)
    if over:
        return True, f"feature drift above PSI {threshold:g}: {', '.join(over)} ({figures})"
    return False, f"no feature drift above PSI {threshold:g} ({figures})"


def drift_against(
    reference: pd.DataFrame, features: pd.DataFrame, names: list[str]
) -> dict[str, float]:
    """PSI of each of ``names`` in ``features`` against the same column of ``reference``
    (names missing from either table are left out: a day without sentiment yet)."""
    from types import SimpleNamespace

    from cva_tasks.models.churn import drift_reference, feature_drift

    bins = drift_reference(reference)
    return feature_drift(
        SimpleNamespace(
            reference_={n: bins[n] for n in names if n in bins and n in features.columns}
        ),
        features,
    )

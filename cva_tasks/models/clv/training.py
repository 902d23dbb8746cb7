"""Training the lifetime-value model: validate out of time, score the champion, refit.

:func:`train_clv` is the protocol (on any ``features_at`` / ``orders_as_of``);
:func:`train_for_day` runs it on a day of the pipeline's lake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from cva_tasks.days import as_of_instant, utc_midnight
from cva_tasks.models.clv.model import LifetimeValueModel
from cva_tasks.models.clv.validation import validate_out_of_time

if TYPE_CHECKING:
    from cva_tasks.features.snapshots import DayData
    from cva_tasks.settings import Settings

log = logging.getLogger(__name__)


def train_for_day(
    data: DayData, current: LifetimeValueModel | None, settings: Settings
) -> tuple[LifetimeValueModel, dict[str, Any]]:
    """Validate on the last 90 days out of time, then refit on everything."""
    # train_clv's features_at(day) means "events before day 00:00 UTC".
    model, report = train_clv(
        data.features_before,
        data.orders_as_of,
        data.ds,
        champion=current,
        discount_rate=settings.clv_discount_rate,
    )
    report.setdefault("algorithm", "BG/NBD + Gamma-Gamma")
    report.setdefault("higher_is_better", False)
    return model, report


def train_clv(
    features_at: Callable[[date], pd.DataFrame],
    orders_as_of: Callable[[datetime], pd.DataFrame],
    ds: date,
    *,
    holdout_days: int = 90,
    champion: LifetimeValueModel | None = None,
    **model_options: Any,
) -> tuple[LifetimeValueModel, dict[str, Any]]:
    """Validate out of time, then fit the model that scores from ``ds`` on.

    Protocol. ``as_of`` is the end of day ``ds`` (``ds + 1`` 00:00 UTC) and
    ``T0 = as_of - holdout_days``. A model is fitted on the features as of ``T0`` and
    predicts each customer's counted orders in ``[T0, as_of)``; the actual counted
    orders (known at ``as_of``) give the per-customer MAE (the metric, lower is better),
    the Spearman correlation and the totals, next to the naive baselines
    (:func:`naive_forecasts`). A ``champion`` is scored the same way with its stored
    parameters (not refitted); if it was fitted after ``T0`` it saw part of the window,
    which the report flags. Then the model is refitted on the features as of ``as_of``:
    that refit, not the validated fit, is returned for scoring; the validation measures
    the procedure one window earlier.

    Args:
        features_at: ``day -> features`` using only events before ``day`` 00:00 UTC
            (e.g. ``lambda d: features_as_of(d, lake)``).
        orders_as_of: ``instant -> counted orders placed before it``
            (:func:`cva_tasks.features.history.counted_orders`).
        ds: The training day: data up to its end is used.
        holdout_days: Length of the validation window.
        champion: The current champion, scored on the same window.
        **model_options: Passed to :class:`LifetimeValueModel`.

    Returns:
        ``(model, report)``; the report is JSON-able with ``algorithm``, ``metric``
        (``"mae_orders"``), ``metric_value`` (None when the window cannot be validated),
        ``higher_is_better`` (False), ``champion_metric``, ``training_window``,
        ``validation_window``, ``params``, ``validation`` (all figures, baselines
        included), ``degenerate`` and ``protocol``.

    Raises:
        NotEnoughData: when there is nothing to fit on at ``ds``.
        ValueError: when ``holdout_days < 1``.
    """
    if holdout_days < 1:
        raise ValueError(f"holdout_days must be >= 1, got {holdout_days}")
    end_day = ds + timedelta(days=1)
    as_of = as_of_instant(ds)
    start_day = end_day - timedelta(days=holdout_days)
    t0 = utc_midnight(start_day)

    log.info("CLV validation: fit as of %s, holdout [%s, %s)", t0.date(), t0.date(), as_of.date())
    validation: dict[str, Any] | None = None
    validation_fit: dict[str, Any] | None = None
    not_validated = None
    champion_metric = None
    champion_fitted = None
    features_t0 = features_at(start_day)
    if features_t0.empty or not (pd.to_numeric(features_t0["frequency"]) > 0).any():
        not_validated = f"no customer with a counted order before {start_day}"
    else:
        holdout = orders_as_of(as_of)
        challenger = LifetimeValueModel(**model_options).fit(features_t0, t0)
        validation = validate_out_of_time(challenger, features_t0, t0, holdout, holdout_days)
        validation_fit = {
            "params": challenger.params,
            "degenerate_reasons": challenger.degenerate_reasons,
            "published": challenger.published,
        }
        if champion is not None:
            scored = validate_out_of_time(champion, features_t0, t0, holdout, holdout_days)
            champion_metric = scored["model"]["orders"]["mae"]
            champion_fitted = champion.fitted_as_of_
            validation["champion"] = scored["model"]
    if not_validated:
        log.warning("CLV: not validated: %s", not_validated)

    log.info("CLV: refitting on the features as of %s for scoring", as_of.date())
    features_now = features_at(end_day)
    model = LifetimeValueModel(**model_options).fit(features_now, as_of)
    metric_value = validation["model"]["orders"]["mae"] if validation else None
    first_orders = pd.to_datetime(features_now["first_order_at"], utc=True)
    report: dict[str, Any] = {
        "algorithm": "BG/NBD + Gamma-Gamma (closed-form likelihoods, scipy)"
        + (
            f", dropout penalty {model.fallback_['dropout_penalizer']:g}"
            if model.fallback_["dropout_penalizer"]
            else ""
        ),
        "metric": "mae_orders",
        "metric_value": metric_value,
        "higher_is_better": False,
        "champion_metric": champion_metric,
        "champion_fitted_as_of": champion_fitted,
        "champion_saw_validation_window": (
            pd.Timestamp(champion_fitted) > pd.Timestamp(t0) if champion_fitted else None
        ),
        "training_window": {
            "start": first_orders.min().date().isoformat() if len(features_now) else None,
            "end": ds.isoformat(),
        },
        "validation_window": {
            "fit_as_of": t0.isoformat(),
            "start": start_day.isoformat(),
            "end": ds.isoformat(),
        },
        "holdout_days": holdout_days,
        "not_validated": not_validated,
        "validation": validation,
        "params": model.params,
        "degenerate": {
            "final_fit": model.degenerate_reasons,
            "published": model.published,
            "fallback": {k: v for k, v in model.fallback_.items() if k != "attempts"},
            "validation_fit": validation_fit,
        },
        "protocol": (
            f"fit on features as of {t0.date()} 00:00 UTC, predict counted orders in "
            f"[{start_day}, {end_day}) per customer with a counted order before {start_day}, "
            "MAE/Spearman/totals vs actual counted orders, next to naive baselines; "
            f"the returned model is refitted on features as of {end_day} 00:00 UTC"
        ),
    }
    model.validation_ = validation
    return model, report

"""Daily DAG step ``train_<kind>``: train a model kind when it is due, decide its promotion.

A kind (:mod:`cva_tasks.models.kinds`) trains when
:func:`cva_tasks.models.registry.training_due` says so: every ``CVA_TRAIN_EVERY_DAYS``
days (default 7; per kind ``CVA_TRAIN_EVERY_DAYS_<KIND>``), at once when no model
exists, and when the kind's own retrain check fires (churn: feature drift). A new
model replaces the champion unless it is worse on the same out-of-time validation by
more than ``CVA_PROMOTION_TOLERANCE`` (absolute, in the kind's metric; per kind
``CVA_PROMOTION_TOLERANCE_<KIND>``). Scoring a day always uses the champion of that
day, so a backfilled day never sees a model trained on later data.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from typing import Any

from cva_tasks.days import as_day
from cva_tasks.features.snapshots import DayData
from cva_tasks.models import registry
from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.kinds import get_kind
from cva_tasks.settings import Settings

log = logging.getLogger(__name__)


def train_model(kind: str, ds: date | datetime | str, run_id: str) -> dict[str, Any]:
    """Train ``kind`` for day ``ds`` if due; save the run and decide its promotion.

    Returns:
        A summary: whether it trained and why, the version, the metric, promotion.
    """
    ds = as_day(ds)
    spec = get_kind(kind)
    settings = Settings.from_env()
    if kind not in settings.models:
        return {"kind": kind, "trained": False, "reason": "not in CVA_MODELS"}
    lake = settings.lake
    due, why = registry.training_due(kind, ds, settings.train_every_days_for(kind), lake)
    data = DayData(ds, lake)
    retrain_check = spec.retrain_function()
    if not due and retrain_check is not None:
        due, why = retrain_check(data, settings)
    if not due:
        log.info("%s: not training on %s (%s)", kind, ds, why)
        return {"kind": kind, "trained": False, "reason": why}
    if data.features_at(ds).empty:
        log.warning("%s: no customers as of %s, nothing to train on", kind, ds)
        return {"kind": kind, "trained": False, "reason": "no customers yet"}

    # The champion to beat is the one in force before this day's training (a rerun of
    # the day must not compare a model with itself).
    current = registry.champion_model(kind, ds - timedelta(days=1), lake, settings.model_cache_dir)
    started = time.perf_counter()
    log.info("%s: training for %s (%s)", kind, ds, why)
    try:
        model, report = spec.train_function()(data, current.model if current else None, settings)
    except NotEnoughData as exc:
        log.warning("%s: not enough data to train on %s: %s", kind, ds, exc)
        return {"kind": kind, "trained": False, "reason": f"not enough data: {exc}"}
    report.setdefault("train_seconds", round(time.perf_counter() - started, 1))
    run = registry.new_run(
        kind,
        ds,
        run_id,
        report,
        current.run if current else None,
        tolerance=settings.promotion_tolerance_for(kind),
        why=why,
    )
    registry.save_run(run, model.save, lake)
    return {
        "kind": kind,
        "trained": True,
        "version": run.version,
        "metric": run.metric,
        "metric_value": run.metric_value,
        "champion_metric_value": run.champion_metric_value,
        "promoted": run.promoted,
        "reason": run.reason,
        "seconds": report["train_seconds"],
    }

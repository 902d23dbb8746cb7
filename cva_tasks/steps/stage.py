"""Daily DAG steps before the features: is every source's day landed, and staging."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from cva_tasks import storage
from cva_tasks.days import as_day
from cva_tasks.settings import Settings
from cva_tasks.sources.registry import pipeline_sources

log = logging.getLogger(__name__)


def source_landed(source_name: str, ds: date | datetime | str) -> bool:
    """True when every entity of the source has its raw partition for ``ds``.

    A source that does not feed the pipeline on ``ds`` counts as landed.

    Raises:
        SourceRunFailed: the day has not landed and the source's own run for it failed
            (:mod:`cva_tasks.source_failures`): it would never land by waiting. The
            message names the source, the day and the commands that rerun them.
    """
    from cva_tasks.source_failures import SourceRunFailed, failed_run, rerun_message

    ds = as_day(ds)
    settings = Settings.from_env()
    if _landed(source_name, ds, settings):
        return True
    failures = failed_run(settings.lake, source_name, ds)
    if failures:
        raise SourceRunFailed(rerun_message(source_name, ds, failures))
    return False


def _landed(source_name: str, ds: date, settings: Settings) -> bool:
    feeding = {s.name: s for s in pipeline_sources(ds, settings)}
    if source_name not in feeding:
        return True
    missing = [
        spec.entity
        for spec in feeding[source_name].entities
        if not storage.exists(settings.lake.raw(source_name, spec.entity, ds))
    ]
    if missing:
        log.info("%s has not landed %s for ds=%s yet", source_name, missing, ds)
    return not missing


def stage(ds: date | datetime | str) -> dict[str, Any]:
    """Stage day ``ds`` and restage every earlier day whose raw inputs changed.

    Earlier days matter when the daily DAG starts on a lake whose sources were
    backfilled first, when a source landed a day late or again, and when a staged
    partition was deleted: features read every day before the as-of instant.

    Raises:
        MissingPartition: when a source that feeds the pipeline on ``ds`` or an
            earlier day has no raw partition for it; nothing is staged then.
    """
    from cva_tasks.restaging import check_staging, restage
    from cva_tasks.staging import MissingPartition

    ds = as_day(ds)
    settings = Settings.from_env()
    check = check_staging(settings, up_to=ds)
    if check.missing:
        raise MissingPartition(check.missing_message(f"staging ds={ds.isoformat()}"))
    todo: dict[date, dict[str, str] | None] = {
        day: entities for day, entities in check.stale_by_day().items() if day < ds
    }
    todo[ds] = None  # the day itself is always staged again: a rerun reproduces it
    staged = restage(todo, check, settings)
    return {"ds": ds.isoformat(), "days_staged": len(todo), "rows": staged[ds]}

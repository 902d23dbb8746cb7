"""Daily DAG steps before the features: is every source's day landed, and staging."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from cva_tasks import storage
from cva_tasks.days import as_day
from cva_tasks.settings import Settings
from cva_tasks.sources.registry import all_sources, pipeline_sources

log = logging.getLogger(__name__)


def source_landed(source_name: str, ds: date | datetime | str) -> bool:
    """True when every entity of the source has its raw partition for ``ds``.

    A source that does not feed the pipeline on ``ds`` counts as landed.
    """
    ds = as_day(ds)
    settings = Settings.from_env()
    return _landed(source_name, ds, settings)


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
    """Stage day ``ds`` and any earlier landed day that was never staged.

    Earlier days matter when the daily DAG starts on a lake whose sources were
    backfilled first: features need every day before the as-of instant.
    """
    from cva_tasks.staging import stage_day

    ds = as_day(ds)
    settings = Settings.from_env()
    lake = settings.lake
    staged_days = set(storage.list_partitions(lake.staged("transactions")))
    landed_days: set[date] = set()
    for source in all_sources(settings.source_modules):
        for spec in source.entities:
            landed_days.update(storage.list_partitions(lake.raw(source.name, spec.entity)))
    todo = [*sorted(d for d in landed_days if d < ds and d not in staged_days), ds]
    rows: dict[str, int] = {}
    for number, day in enumerate(todo, start=1):
        names = [s.name for s in pipeline_sources(day, settings) if _landed(s.name, day, settings)]
        counts = stage_day(day, names, settings.data_root, settings.source_modules)
        if len(todo) > 1:
            log.info("staged %s (%d of %d days): %s", day, number, len(todo), counts)
        if day == ds:
            rows = counts
    return {"ds": ds.isoformat(), "days_staged": len(todo), "rows": rows}

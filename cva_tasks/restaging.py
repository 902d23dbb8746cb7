"""Is the staged lake what the raw lake says it should be? Which days must be (re)staged.

A staged partition records the raw files it was built from
(:data:`cva_tasks.lake.STAGED_INPUTS_FILE`, :func:`cva_tasks.staging.write_staged`).
:func:`check_staging` compares, for every day from the first landed one, what the
sources feeding the pipeline that day (:func:`cva_tasks.sources.registry.feeds_pipeline`)
have in ``raw/`` now with that record:

* a feeding source with no raw partition for the day is *missing*: the day (every
  entity of it) cannot be staged until it is landed (staging it without would lose
  the source's rows silently);
* a staged partition that is absent, has no record, or was built from other raw files
  (a source landed later, a partition landed again, a source no longer feeding) is
  *stale* and is restaged.

One listing per raw source-entity and one batched read of the records per entity, so
the check costs a few requests on an object store, not one per day.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.entities import SCHEMAS
from cva_tasks.staging import stage_day

if TYPE_CHECKING:
    from cva_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Restaging logs every day when there are at most this many, else every tenth.
_LOG_EVERY_DAY_UP_TO = 30


@dataclass(frozen=True)
class MissingRaw:
    """A source feeds the pipeline on ``ds`` but its raw ``entity`` partition is absent."""

    source: str
    entity: str
    ds: date


@dataclass(frozen=True)
class Stale:
    """``staged/<entity>/ds=...`` is not what the raw lake says, and why."""

    ds: date
    entity: str
    why: str


@dataclass
class StagingCheck:
    """What :func:`check_staging` found.

    Attributes:
        feeding: the sources that feed the pipeline on each day checked.
        missing: raw partitions that feeding sources lack.
        stale: staged partitions to (re)build.
    """

    feeding: dict[date, list[str]] = field(default_factory=dict)
    missing: list[MissingRaw] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)

    def stale_by_day(self) -> dict[date, dict[str, str]]:
        by_day: dict[date, dict[str, str]] = defaultdict(dict)
        for item in self.stale:
            by_day[item.ds][item.entity] = item.why
        return dict(sorted(by_day.items()))

    def missing_message(self, what: str) -> str:
        """The error for :attr:`missing`: each source entity with its days, and how to land them.

        Args:
            what: what is refused, e.g. ``"staging ds=2025-06-11"``.
        """
        return "\n".join(
            [
                f"{what} refused: sources that feed the pipeline have not landed these days:",
                *self.missing_lines(),
                "then clear the failed stage task. If a source should not feed those days, "
                "narrow CVA_PIPELINE_SOURCES or its start_date/end_date in the source registry.",
            ]
        )

    def missing_lines(self) -> list[str]:
        """Each source entity with its missing days, then the commands that land them."""
        days: dict[tuple[str, str], list[date]] = defaultdict(list)
        for item in self.missing:
            days[item.source, item.entity].append(item.ds)
        lines = [
            f"  {source}.{entity} (raw/{source}/{entity}): {day_ranges(sorted(found))}"
            for (source, entity), found in sorted(days.items())
        ]
        lines.append("Land them with each source's DAG, e.g.")
        for source in sorted({source for source, _ in days}):
            found = sorted(d for (name, _), ds in days.items() if name == source for d in ds)
            lines.append(
                f"  airflow backfill create --dag-id cva_source_{source} --from-date "
                f"{found[0].isoformat()} --to-date {found[-1].isoformat()} "
                "--reprocess-behavior completed"
            )
        return lines


def day_ranges(days: list[date]) -> str:
    """``2025-06-03, 2025-06-05..2025-06-09`` for sorted days."""
    runs: list[list[date]] = []
    for day in days:
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(
        run[0].isoformat() if len(run) == 1 else f"{run[0].isoformat()}..{run[-1].isoformat()}"
        for run in runs
    )


def check_staging(settings: Settings, up_to: date | None = None) -> StagingCheck:
    """Compare the staged lake with the raw lake, day by day.

    Args:
        up_to: the last day to check (the day being staged); default the last day
            anything was landed or staged.

    Returns:
        The days' feeding sources, the missing raw partitions and the stale staged
        partitions, from the first day anything was landed or staged.
    """
    from cva_tasks.sources.registry import all_sources, feeds_pipeline

    lake = settings.lake
    sources = all_sources(settings.source_modules)
    entities_of = {s.name: {spec.entity for spec in s.entities} for s in sources}
    raw = {
        (name, entity): storage.partition_fingerprints(lake.raw(name, entity))
        for name, entities in entities_of.items()
        for entity in entities
    }
    staged_days = {entity: set(storage.list_partitions(lake.staged(entity))) for entity in SCHEMAS}
    seen = {d for found in raw.values() for d in found} | {
        d for found in staged_days.values() for d in found
    }
    if up_to is not None:
        seen = {d for d in seen if d <= up_to} | {up_to}
    check = StagingCheck()
    if not seen:
        return check
    first, last = min(seen), max(seen)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    for day in days:
        feeding = [s.name for s in sources if feeds_pipeline(s, day, settings)]
        if feeding or day == up_to:
            check.feeding[day] = feeding
        for name in feeding:
            for entity in sorted(entities_of[name]):
                if day not in raw[name, entity]:
                    check.missing.append(MissingRaw(name, entity, day))
    # A day a feeding source has not landed is not staged at all, not even its other
    # entities: a day is staged whole or not yet.
    blocked = {m.ds for m in check.missing}
    for entity in SCHEMAS:
        checked = [d for d in check.feeding if d not in blocked]
        records = _records(settings, entity, [d for d in checked if d in staged_days[entity]])
        for day in checked:
            expected = {
                name: raw[name, entity][day]
                for name in check.feeding[day]
                if entity in entities_of[name]
            }
            why = _why_stale(entity, day in staged_days[entity], records.get(day), expected)
            if why:
                check.stale.append(Stale(day, entity, why))
    check.stale.sort(key=lambda item: (item.ds, item.entity))
    return check


def _records(settings: Settings, entity: str, days: list[date]) -> dict[date, Any]:
    uris = [settings.lake.staged_inputs(entity, day) for day in days]
    return dict(zip(days, storage.read_json_files(uris), strict=True))


def _why_stale(
    entity: str, staged: bool, record: Any, expected: Mapping[str, list[list[Any]]]
) -> str | None:
    if not staged:
        return "not staged"
    if not isinstance(record, dict) or not isinstance(record.get("inputs"), dict):
        return "staged without a record of its raw inputs"
    built_from = record["inputs"]
    reasons = []
    for name in sorted(set(expected) | set(built_from)):
        if name not in built_from:
            reasons.append(f"{name}.{entity} landed after the day was staged")
        elif name not in expected:
            reasons.append(f"{name}.{entity} no longer feeds the day")
        elif built_from[name] != expected[name]:
            reasons.append(f"{name}.{entity} was landed again")
    return "; ".join(reasons) or None


def restage(
    todo: Mapping[date, Mapping[str, str] | None], check: StagingCheck, settings: Settings
) -> dict[date, dict[str, int]]:
    """Stage the days of ``todo`` in date order, saying what and why.

    Args:
        todo: per day, the stale entities with why (``None``: every entity).
        check: the :func:`check_staging` that gave the days' feeding sources.

    Returns:
        Rows staged per entity, per day.
    """
    reasons = Counter(why for entities in todo.values() if entities for why in entities.values())
    if reasons:
        log.info(
            "restaging %d staged partition(s): %s",
            sum(reasons.values()),
            "; ".join(f"{count} {why}" for why, count in reasons.most_common()),
        )
    total = len(todo)
    every = 1 if total <= _LOG_EVERY_DAY_UP_TO else max(1, total // 10)
    staged: dict[date, dict[str, int]] = {}
    for number, (day, entities) in enumerate(sorted(todo.items()), start=1):
        if entities and (number % every == 0 or number in (1, total)):
            log.info(
                "restaging ds=%s (%d of %d days): %s",
                day.isoformat(),
                number,
                total,
                "; ".join(f"{entity}: {why}" for entity, why in sorted(entities.items())),
            )
        staged[day] = stage_day(
            day,
            check.feeding.get(day, []),
            settings.data_root,
            settings.source_modules,
            entities=None if entities is None else set(entities),
            pseudonymise_key=settings.pseudonymise_key,
        )
    return staged

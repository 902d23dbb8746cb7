"""``cva land SOURCE --from D1 --to D2``: land a source's history in bulk, day by day.

Each day goes through exactly the steps of the source's DAG (extract with its lookback,
the mapping, the expectation suite and its gate, then the whole-partition swap, from
:mod:`cva_tasks.steps.land`), in this process and without Airflow. A day is landed only
when every entity of it passed its gate, so a day is landed whole or not at all; the
first day that fails stops the command, names the day and the reason, and leaves the
days before it landed and that day's earlier partitions as they were. A rerun of a day
gives the same rows (the steps replace the day's partitions whole), so after fixing the
cause, run the command again from the failed day.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

HELP = "land a source's history in bulk, day by day, through its DAG's steps"
DESCRIPTION = (
    "Land every day from --from to --to (both included) of SOURCE through the same "
    "extraction, mapping and quality gate as its DAG (cva_source_SOURCE), without Airflow. "
    "A day lands whole (all its entities) or not at all; the first failed day stops the "
    "command with the reason. Rerunning a day replaces it with the same rows. Afterwards "
    "the daily pipeline restages the days it had staged before."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cva_tasks.commands_run import parse_day

    parser.add_argument("source", metavar="SOURCE", help="a registered source (cva sources)")
    parser.add_argument("--from", dest="first", required=True, type=parse_day, metavar="D1")
    parser.add_argument("--to", dest="last", required=True, type=parse_day, metavar="D2")
    parser.add_argument("--json", action="store_true")


def days_to_land(source, first: date, last: date) -> list[date]:
    """The days ``first..last`` of ``source``, refused when outside its active period.

    Raises:
        ValueError: ``first`` after ``last``, or a day before the source's start date or
            after its end date (its DAG would never run for it).
    """
    if first > last:
        raise ValueError(f"--from {first} is after --to {last}")
    if first < source.start_date:
        raise ValueError(f"{source.name} starts on {source.start_date}: its DAG never runs {first}")
    if source.end_date is not None and last > source.end_date:
        raise ValueError(f"{source.name} ends on {source.end_date}: its DAG never runs {last}")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def land_day(source, ds: date) -> dict[str, dict[str, Any]]:
    """Extract and validate every entity of ``source`` for ``ds``, then land them all.

    Returns:
        Per entity: rows extracted, clean, quarantined, and landed.

    Raises:
        SourceError, DataQualityError: the step's own error, naming source, entity, day.
    """
    from cva_tasks import storage
    from cva_tasks.settings import Settings
    from cva_tasks.steps import land as steps

    lake = Settings.from_env().lake
    start = datetime(ds.year, ds.month, ds.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    # One run id per day: a rerun of the day overwrites its own results, not adds to them.
    run_id = f"cva_land__{source.name}__{ds.isoformat()}"
    entities = [spec.entity for spec in source.entities]
    counts: dict[str, dict[str, Any]] = {}
    try:
        for entity in entities:
            steps.extract(source.name, entity, start, end, run_id)
            summary = steps.validate(source.name, entity, start, end, run_id)
            counts[entity] = {
                "rows_extracted": summary["rows_extracted"],
                "rows_clean": summary["rows_clean"],
                "rows_quarantined": summary["rows_quarantined"]
                + summary["rows_rejected_by_mapping"],
            }
    finally:
        if len(counts) < len(entities):  # a failed day leaves no work files behind
            for entity in entities:
                storage.remove(lake.work(run_id, source.name, entity, ds))
    for entity in entities:
        counts[entity]["rows_landed"] = steps.land(source.name, entity, start, end, run_id)["rows"]
    return counts


def command(args: argparse.Namespace) -> dict[str, Any]:
    """Land ``args.source`` from ``args.first`` to ``args.last``; a result with ``ok``."""
    from cva_tasks.settings import Settings
    from cva_tasks.sources.registry import get_source

    started = time.monotonic()
    settings = Settings.from_env()
    result: dict[str, Any] = {
        "source": args.source,
        "from": args.first.isoformat(),
        "to": args.last.isoformat(),
        "days": [],
    }
    try:
        source = get_source(args.source, settings.source_modules)
        days = days_to_land(source, args.first, args.last)
    except (KeyError, ValueError) as exc:
        reason = exc.args[0] if exc.args else str(exc)
        result.update(ok=False, error=str(reason), text=f"cva land {args.source}: {reason}")
        return result
    from cva_tasks.sources.base import reads_cached

    with reads_cached():
        lines = _land_days(source, days, args, result)
    result["seconds"] = round(time.monotonic() - started, 1)
    done = len(result["days"])
    lines.append(f"{source.name}: {done} of {len(days)} day(s) landed in {result['seconds']} s")
    result["text"] = "\n".join(lines)
    return result


def _land_days(source, days: list[date], args: argparse.Namespace, result: dict) -> list[str]:
    """Land ``days`` in order into ``result["days"]``; stop at the first that fails."""
    lines = []
    for k, ds in enumerate(days, start=1):
        log.info("landing %s: day %d of %d (ds=%s)", source.name, k, len(days), ds)
        day_started = time.monotonic()
        try:
            counts = land_day(source, ds)
        except Exception as exc:
            if not _is_data_error(exc):
                raise
            result.update(ok=False, failed_day=ds.isoformat(), error=str(exc))
            lines.append(f"day {k} of {len(days)} ds={ds}: FAILED, nothing of it landed: {exc}")
            lines.append(
                f"fix the cause and rerun: cva land {source.name} --from {ds} --to {args.last}"
            )
            break
        seconds = round(time.monotonic() - day_started, 2)
        result["days"].append({"ds": ds.isoformat(), "entities": counts, "seconds": seconds})
        landed = ", ".join(f"{e} {c['rows_landed']}" for e, c in counts.items())
        quarantined = sum(c["rows_quarantined"] for c in counts.values())
        lines.append(
            f"day {k} of {len(days)} ds={ds}: landed {landed}; "
            f"{quarantined} quarantined ({seconds} s)"
        )
        log.info("landed %s ds=%s (day %d of %d) in %s s", source.name, ds, k, len(days), seconds)
    else:
        result["ok"] = True
    return lines


def _is_data_error(exc: Exception) -> bool:
    """A failure of the day's data or its source (reported), not a bug (raised as it is)."""
    from cva_tasks.sources.base import SourceError

    if isinstance(exc, SourceError | FileNotFoundError):
        return True
    from cva_tasks.quality import DataQualityError

    return isinstance(exc, DataQualityError)

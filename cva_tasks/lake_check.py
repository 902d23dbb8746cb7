"""``cva lake check [--repair]``: the lake's own integrity, as a user can see and fix it.

The check lists:

* what killed or racing writers left (:func:`cva_tasks.storage.find_leftovers`): a
  partition or model version taken away by a writer killed between its two moves,
  unfinished writes, copies nested inside a live folder, lock files of dead writers;
* staged partitions that are not what the raw lake says (never staged, deleted, built
  before a source landed or landed again): :func:`cva_tasks.restaging.check_staging`;
* days a source that feeds the pipeline has not landed, with the commands that land
  them (the stage step refuses these days);
* work folders of source runs untouched for a day: a task killed outright (``SIGKILL``,
  out of memory) cannot clean up, and its folder holds the day's rows, PII included.

``--repair`` puts back and cleans up what writers left (never while a writer holds the
folder) and restages the stale partitions whose raw inputs are all there. Missing
source days need the source's DAG: the check says which.
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.restaging import check_staging, day_ranges, restage

if TYPE_CHECKING:
    from cva_tasks.settings import Settings

log = logging.getLogger(__name__)

#: A run's work folder untouched this long is taken as left by a killed task: a source
#: run's tasks hand over to each other within minutes, retries included.
ABANDONED_WORK_SECONDS = 24 * 3600


def command(args: argparse.Namespace) -> dict[str, Any]:
    from cva_tasks.settings import Settings

    settings = Settings.from_env()
    repaired = repair_lake(settings) if args.repair else []
    result = check_lake(settings)
    result["repaired"] = repaired
    result["text"] = _text(result)
    return result


def check_lake(settings: Settings) -> dict[str, Any]:
    """The lake's leftovers, stale staged partitions and missing source days.

    Returns:
        ``ok`` (nothing found), ``lake``, ``leftovers`` (folder, entry, state,
        problem), ``stale`` (ds, entity, why), ``missing`` (source, entity, ds),
        ``missing_help`` (lines saying how to land them) and ``abandoned_work`` (folder).
    """
    staging = check_staging(settings)  # reading puts back what killed writers took away
    leftovers = storage.find_leftovers(settings.data_root)
    abandoned = storage.abandoned_partitions(settings.lake.work_root(), ABANDONED_WORK_SECONDS)
    return {
        "ok": not (leftovers or staging.stale or staging.missing or abandoned),
        "lake": settings.data_root,
        "leftovers": [{**asdict(item), "problem": item.describe()} for item in leftovers],
        "stale": [
            {"ds": item.ds.isoformat(), "entity": item.entity, "why": item.why}
            for item in staging.stale
        ],
        "missing": [
            {"source": item.source, "entity": item.entity, "ds": item.ds.isoformat()}
            for item in staging.missing
        ],
        "missing_help": staging.missing_lines() if staging.missing else [],
        "abandoned_work": [{"folder": folder} for folder in abandoned],
    }


def repair_lake(settings: Settings) -> list[str]:
    """Recover every folder writers left something of, then restage stale partitions.

    Returns:
        What was done (or skipped, and why), one sentence each.
    """
    done = []
    for folder in sorted({item.folder for item in storage.find_leftovers(settings.data_root)}):
        try:
            actions = storage.recover(folder)
        except storage.PartitionBusy:
            done.append(f"skipped {folder}: a writer holds it now; check again when it is done")
            continue
        done += actions or [f"released the lock a dead writer left on {folder}"]
    for folder in storage.abandoned_partitions(settings.lake.work_root(), ABANDONED_WORK_SECONDS):
        storage.remove(folder)
        done.append(f"removed the abandoned work folder {folder}")
    staging = check_staging(settings)
    todo = staging.stale_by_day()
    if todo:
        restage(dict(todo), staging, settings)
        done += [
            f"restaged ds={day.isoformat()} {entity}: {why}"
            for day, entities in todo.items()
            for entity, why in sorted(entities.items())
        ]
    for line in done:
        log.info("%s", line)
    return done


def _stale_lines(stale: list[dict[str, Any]]) -> list[str]:
    """Stale partitions grouped by entity and reason, with their days."""
    days: dict[tuple[str, str], list[date]] = defaultdict(list)
    for item in stale:
        days[item["entity"], item["why"]].append(date.fromisoformat(item["ds"]))
    return [
        f"  {entity}: {why}: {day_ranges(sorted(found))}"
        for (entity, why), found in sorted(days.items())
    ]


def _text(result: dict[str, Any]) -> str:
    lines = [f"lake: {result['lake']}"]
    if result["repaired"]:
        lines.append(f"repaired ({len(result['repaired'])}):")
        lines += [f"  {line}" for line in result["repaired"][:20]]
        if len(result["repaired"]) > 20:
            lines.append(f"  ... and {len(result['repaired']) - 20} more (--json lists all)")
    if result["leftovers"]:
        lines.append(f"left by killed or racing writers ({len(result['leftovers'])}):")
        lines += [f"  {item['problem']}" for item in result["leftovers"]]
    if result["stale"]:
        lines.append(f"staged partitions behind their raw inputs ({len(result['stale'])}):")
        lines += _stale_lines(result["stale"])
    if result["missing"]:
        lines.append("raw partitions missing for sources that feed the pipeline:")
        lines += result["missing_help"]
    if result["abandoned_work"]:
        lines.append(
            f"work folders of killed tasks, untouched for a day ({len(result['abandoned_work'])}):"
        )
        lines += [f"  {item['folder']}" for item in result["abandoned_work"]]
    if result["leftovers"] or result["stale"] or result["abandoned_work"]:
        lines.append("run `cva lake check --repair` to put back, clean up and restage")
    if result["ok"]:
        lines.append("ok: no leftovers, every staged day matches its raw inputs")
    return "\n".join(lines)

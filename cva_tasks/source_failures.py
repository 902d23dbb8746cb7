"""A source's run that failed for a day, kept in the lake so the daily DAG stops waiting.

When an ``extract``, ``validate`` or ``land`` task of a source DAG ends failed (its
retries spent, or bad data), its failure callback writes a marker,
``failures/<source>/ds=YYYY-MM-DD/<task>.json`` (:func:`record_failure`); the same task
succeeding later (a cleared rerun, a backfill) removes its marker
(:func:`clear_failure`). The daily DAG's sensor for that source asks
:func:`failed_run` while the day has not landed and, if a marker is there, fails at
once with :func:`rerun_message` instead of poking until its timeout: nothing will land
the day until someone reruns it.

A landed day wins over a marker (a day landed by ``cva land`` or by hand is landed,
whatever failed before).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from cva_tasks.lake import Lake

# The storage layer (fsspec) is imported inside the functions: the DAG files import this
# module (for the runbook) while Airflow parses them.


class SourceRunFailed(RuntimeError):
    """The source's own run for the day failed: waiting longer cannot help."""

    retryable = False


def record_failure(
    lake: Lake, source: str, ds: date, task_id: str, run_id: str | None, error: str
) -> str:
    """Write the marker of ``task_id`` of the source's run for ``ds``; returns its path."""
    from cva_tasks import storage

    uri = lake.source_failure(source, ds, task_id)
    storage.write_json(
        {
            "source": source,
            "ds": ds.isoformat(),
            "task": task_id,
            "run_id": run_id,
            "error": error,
            "failed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        uri,
    )
    return uri


def clear_failure(lake: Lake, source: str, ds: date, task_id: str) -> bool:
    """Remove the marker of ``task_id`` for ``ds`` (and the day's folder once empty).

    Returns:
        Whether there was a marker.
    """
    from cva_tasks import storage

    uri = lake.source_failure(source, ds, task_id)
    existed = storage.exists(uri)
    if existed:
        storage.remove(uri)
    folder = lake.source_failures(source, ds)
    if storage.exists(folder) and not storage.json_files(folder):
        storage.remove(folder)
    return existed


def failed_run(lake: Lake, source: str, ds: date) -> list[dict[str, Any]]:
    """The markers of the source's failed tasks for ``ds``, by task id; empty when none."""
    from cva_tasks import storage

    return [
        record
        for record in storage.read_json_files(storage.json_files(lake.source_failures(source, ds)))
        if record is not None
    ]


def rerun_commands(source: str, ds: date) -> list[str]:
    """What an operator runs once the cause is fixed: the source's day, then the daily's."""
    day = ds.isoformat()
    return [
        f"airflow tasks clear cva_source_{source} -s {day} -e {day} --only-failed --yes",
        f"airflow tasks clear cva_customer_value -s {day} -e {day} --only-failed --yes",
    ]


def rerun_message(source: str, ds: date, failures: list[dict[str, Any]]) -> str:
    """Why the daily run cannot go on, naming the source, the day and the commands."""
    tasks = ", ".join(
        f"{f.get('task')} (run {f.get('run_id')}): {f.get('error') or 'no message'}"
        for f in failures
    )
    first, second = rerun_commands(source, ds)
    return (
        f"source {source} failed for ds={ds.isoformat()}: {tasks}. It will not land this day "
        f"by itself. Fix the cause, then rerun the source's day: `{first}`; when it has "
        f"landed, rerun this day of the daily pipeline: `{second}`"
    )


def runbook(source: Any) -> str:
    """The ``doc_md`` of a source's DAG: what it extracts and what to do when it fails.

    ``source`` is a :class:`cva_tasks.sources.base.Source` (duck-typed: this module
    stays free of the source layer).
    """
    where = (
        f"the Airflow connection `{source.conn_id}`"
        if source.conn_id
        else f"files at `{source.location_env or source.default_location}`"
        + (f" (default `{source.default_location}`)" if source.location_env else "")
    )
    lines = [
        f"# Source `{source.name}`",
        "",
        f"{source.description}",
        "",
        f"Reads {where}, one day (`ds`, the run's data interval, UTC) per run, from "
        f"{source.start_date.isoformat()}"
        + (f" to {source.end_date.isoformat()}" if source.end_date else "")
        + ". Per entity: `extract` (into the run's work area), `validate` (the Great "
        "Expectations suite; rejected rows go to quarantine), `land` (the day's raw "
        "partition, swapped in whole); then `data_docs`.",
        "",
        "| entity | quality suite | read from |",
        "|---|---|---|",
    ]
    for spec in source.entities:
        pattern = getattr(spec, "pattern", None)
        read = f"file `{pattern}`" if pattern else f"SQL on `{getattr(spec, 'watermark', '?')}`"
        lines.append(f"| {spec.entity} | `{spec.suite}` | {read} |")
    day = "YYYY-MM-DD"
    first, second = rerun_commands(source.name, date(2000, 1, 1))
    first, second = (c.replace("2000-01-01", day) for c in (first, second))
    lines += [
        "",
        "## When a run fails",
        "",
        "A failed `extract`/`validate`/`land` writes "
        f"`failures/{source.name}/ds={day}/<task>.json` in the lake, so the daily DAG's "
        f"`wait_for_{source.name}` fails at once for that day (instead of waiting), and an "
        "alert goes out (`CVA_ALERT_WEBHOOK_URL`, `CVA_ALERT_NOTIFIER`).",
        "",
        "1. Read the failed task's log. Bad data (a quality rule, a malformed file, a "
        "missing column or table) failed at once; a source that was down failed after "
        "its retries.",
        "2. Fix the cause (the data at the source, the suite in `expectations/`, the "
        "connection or the drop).",
        f"3. Rerun the source's day (`ds` as in the logs): `{first}`. Clear every task "
        "instead (drop `--only-failed`) to rerun the whole day; a rerun replaces the "
        "day's partitions, never appends. Succeeding removes the failure marker.",
        f"4. Rerun the daily pipeline's day: `{second}` (it also clears the tasks the "
        "failed sensor held back). A later day waiting at `stage` (which depends on the "
        "previous day's) goes on once this day has staged; a later run that already "
        "failed or passed its `dagrun_timeout` needs the same clear for its own day.",
        "",
        f"Several days: `airflow backfill create --dag-id cva_source_{source.name} "
        "--from-date FIRST --to-date LAST --reprocess-behavior failed`. "
        "`cva lake check` lists the days a source has not landed.",
    ]
    return "\n".join(lines)

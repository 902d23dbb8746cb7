"""Boundary functions of the source DAGs: extract, validate, land.

Each takes plain values (source name, entity, interval bounds, run id), reads
and writes the lake, and returns a small JSON-able summary for XCom. Tasks hand
frames to each other through ``work/<run>/...`` files, never through XCom.

A day's raw partition changes only in :func:`land`, and only by a whole-folder
swap: a failed extract or a failed quality gate leaves the previously landed
partition exactly as it was.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.settings import Settings
from cva_tasks.sources.base import Interval, SourceError
from cva_tasks.sources.canonical import REJECTED, from_table, to_table
from cva_tasks.sources.registry import get_source

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MAPPING_RULE_PREFIX = "mapping: "


def _run_key(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


def work_uri(settings: Settings, run_id: str, source: str, entity: str, ds: date) -> str:
    return storage.join(
        settings.data_root, "work", _run_key(run_id), source, entity, f"ds={ds.isoformat()}"
    )


def _interval(start: datetime | str, end: datetime | str) -> Interval:
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if isinstance(end, str):
        end = datetime.fromisoformat(end)
    return Interval(start, end)


def extract(
    source_name: str, entity: str, start: datetime | str, end: datetime | str, run_id: str
) -> dict[str, Any]:
    """Extract one entity of one source for ``[start, end)`` into the work area.

    Returns:
        ``{"uri", "rows", "rejected"}``: where the canonical rows are, how many,
        and how many the mapping rejected on purpose.

    Raises:
        SourceError: naming source, entity, day and the problem.
    """
    import pandas as pd

    settings = Settings.from_env()
    source = get_source(source_name)
    spec = source.entity(entity)
    interval = _interval(start, end)
    where = f"{source_name}.{entity} ds={interval.ds}"
    log.info("extracting %s over [%s, %s)", where, interval.start, interval.end)
    try:
        frame = spec.extract(source, interval)
    except SourceError as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise SourceError(f"{where}: mapping failed: {exc!r}") from exc
    table = to_table(frame, entity, where)
    reasons = (
        frame[REJECTED].astype("string")
        if REJECTED in frame.columns
        else pd.Series(pd.NA, index=frame.index, dtype="string")
    )
    import pyarrow as pa

    table = table.append_column(REJECTED, pa.array(reasons, type=pa.string(), from_pandas=True))
    uri = storage.join(
        work_uri(settings, run_id, source_name, entity, interval.ds), "extracted.parquet"
    )
    storage.write_table(table, uri)
    rejected = int(reasons.notna().sum())
    log.info("extracted %s: %d rows, %d rejected by the mapping", where, len(frame), rejected)
    return {"uri": uri, "rows": len(frame), "rejected": rejected}


def recent_row_counts(settings: Settings, source: str, entity: str, ds: date) -> list[int]:
    """Rows checked on the landed days before ``ds`` (at most the configured history)."""
    dq_entity = storage.join(settings.data_root, "dq", source, entity)
    earlier = [d for d in storage.list_partitions(dq_entity) if d < ds]
    counts = []
    for day in earlier[-settings.row_count_history_days :]:
        summary_uri = storage.join(dq_entity, f"ds={day.isoformat()}", "summary.json")
        if storage.exists(summary_uri):
            counts.append(int(storage.read_json(summary_uri)["rows_checked"]))
    return counts


def _suite_path(settings: Settings, suite: str):
    path = settings.expectations_dir / f"{suite}.json"
    if not path.exists():
        raise FileNotFoundError(f"expectation suite {suite!r} not found at {path}")
    return path


def validate(
    source_name: str, entity: str, start: datetime | str, end: datetime | str, run_id: str
) -> dict[str, Any]:
    """Run the entity's suite on the extracted rows; quarantine, record, gate.

    Rows rejected by the mapping and rows breaking a row-level rule go to
    ``quarantine/<source>/<entity>/ds=.../`` with the rule in ``dq_rules``; the
    result is kept under ``dq/`` (one JSON per run plus the day's summary).

    Returns:
        The day's summary (rows checked, clean, quarantined, failed rules).

    Raises:
        DataQualityError: a critical rule failed, or the share of rows breaking
            row-level rules passed ``CVA_MAX_FAILING_SHARE``.
    """
    import pandas as pd

    from cva_tasks.quality import enforce, validate_frame

    settings = Settings.from_env()
    source = get_source(source_name)
    spec = source.entity(entity)
    interval = _interval(start, end)
    ds = interval.ds
    work = work_uri(settings, run_id, source_name, entity, ds)
    frame = from_table(storage.read_table(storage.join(work, "extracted.parquet")))
    rejected_mask = frame[REJECTED].notna()
    rejected = frame.loc[rejected_mask]
    candidates = frame.loc[~rejected_mask].drop(columns=[REJECTED]).reset_index(drop=True)

    history = recent_row_counts(settings, source_name, entity, ds)
    outcome = validate_frame(
        candidates,
        _suite_path(settings, spec.suite),
        interval_start=interval.start,
        interval_end=interval.end,
        recent_row_counts=history,
    )
    quarantined = pd.concat(
        [
            rejected.drop(columns=[REJECTED]).assign(
                dq_rules=MAPPING_RULE_PREFIX + rejected[REJECTED].astype(str)
            ),
            outcome.quarantined,
        ],
        ignore_index=True,
    )
    quarantine_partition = storage.partition_uri(
        settings.data_root, "quarantine", source_name, entity, ds
    )
    if len(quarantined):
        storage.replace_partition(_quarantine_table(quarantined, entity), quarantine_partition)
    else:
        storage.remove(quarantine_partition)

    summary = {
        "source": source_name,
        "entity": entity,
        "suite": spec.suite,
        "ds": ds.isoformat(),
        "run_id": run_id,
        "rows_extracted": len(frame),
        "rows_rejected_by_mapping": int(rejected_mask.sum()),
        "rows_checked": len(candidates),
        "rows_clean": len(outcome.clean),
        "rows_quarantined": len(outcome.quarantined),
        "failing_share": outcome.failing_share,
        "failed_rules": [f.__dict__ for f in outcome.failures],
        "skipped_rules": list(outcome.skipped),
        "recent_row_counts": history,
        "passed": not outcome.critical_failures
        and outcome.failing_share <= settings.max_failing_share,
    }
    dq_partition = storage.partition_uri(settings.data_root, "dq", source_name, entity, ds)
    storage.write_json(outcome.result, storage.join(dq_partition, f"run={_run_key(run_id)}.json"))
    if summary["passed"]:
        storage.write_json(summary, storage.join(dq_partition, "summary.json"))
    enforce(
        outcome,
        source=source_name,
        entity=entity,
        ds=ds,
        max_failing_share=settings.max_failing_share,
    )
    storage.write_table(
        to_table(outcome.clean, entity, f"{source_name}.{entity}"),
        storage.join(work, "clean.parquet"),
    )
    log.info(
        "validated %s.%s ds=%s: %d clean, %d quarantined, %d rejected by mapping",
        source_name,
        entity,
        ds,
        len(outcome.clean),
        len(outcome.quarantined),
        len(rejected),
    )
    return summary


def quality_results(ds: date, source_names: list[str]):
    """The day's validation summaries of ``source_names``, as ``dq_results`` rows.

    Grain: one row per source entity whose validation for ``ds`` passed (only a passed
    validation writes ``summary.json``; a failed one stops the day). Entities without a
    summary, e.g. landed in bulk without validation, have no row.

    Returns:
        A table with the input columns of the warehouse table ``dq_results``; failed
        rules read ``rule: N rows`` (``rule`` alone for a table-level rule) joined by
        ``; `` (null when none).
    """
    import pyarrow as pa

    from cva_tasks.warehouse.schema import TABLES

    settings = Settings.from_env()
    rows = []
    for source_name in source_names:
        for spec in get_source(source_name).entities:
            uri = storage.join(
                storage.partition_uri(settings.data_root, "dq", source_name, spec.entity, ds),
                "summary.json",
            )
            if not storage.exists(uri):
                continue
            summary = storage.read_json(uri)
            failed = "; ".join(
                f"{f['rule']}: {f['unexpected_count']} row{'s' * (f['unexpected_count'] != 1)}"
                if f["unexpected_count"]
                else f["rule"]
                for f in summary["failed_rules"]
            )
            rows.append(
                {
                    "as_of_date": ds,
                    "source": source_name,
                    "entity": spec.entity,
                    "suite": summary["suite"],
                    "validated_by_run": summary["run_id"],
                    **{
                        name: int(summary[name])
                        for name in (
                            "rows_extracted",
                            "rows_rejected_by_mapping",
                            "rows_checked",
                            "rows_clean",
                            "rows_quarantined",
                        )
                    },
                    "failing_share": float(summary["failing_share"]),
                    "failed_rules": failed or None,
                    "skipped_rules": "; ".join(summary["skipped_rules"]) or None,
                }
            )
    return pa.Table.from_pylist(rows, schema=TABLES["dq_results"].arrow_schema())


def _quarantine_table(frame: pd.DataFrame, entity: str):
    import pyarrow as pa

    base = to_table(frame, entity, f"quarantine of {entity}")
    return base.append_column("dq_rules", pa.array(frame["dq_rules"].astype(str), pa.string()))


def land(
    source_name: str, entity: str, start: datetime | str, end: datetime | str, run_id: str
) -> dict[str, Any]:
    """Swap the validated rows in as the day's raw partition; clear the work area.

    Returns:
        ``{"uri", "rows"}`` of the landed partition.
    """
    settings = Settings.from_env()
    interval = _interval(start, end)
    work = work_uri(settings, run_id, source_name, entity, interval.ds)
    table = storage.read_table(storage.join(work, "clean.parquet"))
    partition = storage.partition_uri(settings.data_root, "raw", source_name, entity, interval.ds)
    storage.replace_partition(table, partition)
    storage.remove(work)
    log.info(
        "landed %s.%s ds=%s: %d rows at %s",
        source_name,
        entity,
        interval.ds,
        table.num_rows,
        partition,
    )
    return {"uri": partition, "rows": table.num_rows}


def build_docs(source_name: str, ds: date | str) -> str:
    """Render the day's validation results of one source as GX Data Docs.

    Returns:
        Path of the Data Docs ``index.html``.
    """
    from cva_tasks.quality import build_data_docs

    settings = Settings.from_env()
    ds = date.fromisoformat(ds) if isinstance(ds, str) else ds
    source = get_source(source_name)
    results = []
    for spec in source.entities:
        dq_partition = storage.partition_uri(settings.data_root, "dq", source_name, spec.entity, ds)
        if not storage.exists(dq_partition):
            continue
        fs, path = storage.filesystem(dq_partition)
        names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(path, detail=False))
        results += [
            storage.read_json(storage.join(dq_partition, name))
            for name in names
            if name.startswith("run=")
        ]
    docs_dir = settings.home / "data_docs" / source_name
    return str(build_data_docs(results, docs_dir))

"""Source DAG steps: extract, validate, land, and the day's Data Docs.

Each takes plain values (source name, entity, interval bounds, run id), reads and
writes the lake, and returns a small JSON-able summary for XCom. Tasks hand frames
to each other through ``work/<run>/...`` files, never through XCom.

A day's raw partition changes only in :func:`land`, and only by a whole-folder
swap: a failed extract or a failed quality gate leaves the previously landed
partition exactly as it was.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.days import as_day, parse_instant
from cva_tasks.quality.summary import recent_row_counts, write_summary
from cva_tasks.settings import Settings
from cva_tasks.sources.base import Interval, SourceError
from cva_tasks.sources.canonical import REJECTED, from_table, to_table
from cva_tasks.sources.registry import get_source

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

MAPPING_RULE_PREFIX = "mapping: "


def _interval(start: datetime | str, end: datetime | str) -> Interval:
    return Interval(parse_instant(start), parse_instant(end))


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
    import pyarrow as pa

    settings = Settings.from_env()
    source = get_source(source_name, settings.source_modules)
    spec = source.entity(entity)
    interval = _interval(start, end)
    where = f"{source_name}.{entity} ds={interval.ds}"
    log.info("extracting %s over [%s, %s)", where, interval.start, interval.end)
    try:
        frame = spec.extract(source, interval, settings)
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
    table = table.append_column(REJECTED, pa.array(reasons, type=pa.string(), from_pandas=True))
    uri = settings.lake.work_file(run_id, source_name, entity, interval.ds, "extracted.parquet")
    storage.write_table(table, uri)
    rejected = int(reasons.notna().sum())
    log.info("extracted %s: %d rows, %d rejected by the mapping", where, len(frame), rejected)
    return {"uri": uri, "rows": len(frame), "rejected": rejected}


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
    lake = settings.lake
    spec = get_source(source_name, settings.source_modules).entity(entity)
    interval = _interval(start, end)
    ds = interval.ds
    extracted = lake.work_file(run_id, source_name, entity, ds, "extracted.parquet")
    frame = from_table(storage.read_table(extracted))
    rejected_mask = frame[REJECTED].notna()
    rejected = frame.loc[rejected_mask]
    candidates = frame.loc[~rejected_mask].drop(columns=[REJECTED]).reset_index(drop=True)

    history = recent_row_counts(lake, source_name, entity, ds, settings.row_count_history_days)
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
    quarantine_partition = lake.quarantine(source_name, entity, ds)
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
    storage.write_json(outcome.result, lake.dq_run_result(source_name, entity, ds, run_id))
    if summary["passed"]:
        write_summary(lake, summary)
    enforce(
        outcome,
        source=source_name,
        entity=entity,
        ds=ds,
        max_failing_share=settings.max_failing_share,
    )
    storage.write_table(
        to_table(outcome.clean, entity, f"{source_name}.{entity}"),
        lake.work_file(run_id, source_name, entity, ds, "clean.parquet"),
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
    lake = Settings.from_env().lake
    ds = _interval(start, end).ds
    table = storage.read_table(lake.work_file(run_id, source_name, entity, ds, "clean.parquet"))
    partition = lake.raw(source_name, entity, ds)
    storage.replace_partition(table, partition)
    storage.remove(lake.work(run_id, source_name, entity, ds))
    log.info(
        "landed %s.%s ds=%s: %d rows at %s", source_name, entity, ds, table.num_rows, partition
    )
    return {"uri": partition, "rows": table.num_rows}


def build_docs(source_name: str, ds: date | str) -> str:
    """Render the day's validation results of one source as GX Data Docs.

    Returns:
        Path of the Data Docs ``index.html``.
    """
    from cva_tasks.quality import build_data_docs

    settings = Settings.from_env()
    lake = settings.lake
    ds = as_day(ds)
    results = []
    for spec in get_source(source_name, settings.source_modules).entities:
        dq_partition = lake.dq(source_name, spec.entity, ds)
        if not storage.exists(dq_partition):
            continue
        fs, path = storage.filesystem(dq_partition)
        names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(path, detail=False))
        results += [
            storage.read_json(lake.dq_file(source_name, spec.entity, ds, name))
            for name in names
            if name.startswith("run=")
        ]
    docs_dir = settings.home / "data_docs" / source_name
    return str(build_data_docs(results, docs_dir))

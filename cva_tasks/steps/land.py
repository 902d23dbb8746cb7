"""Source DAG steps: extract, validate, land, and the day's Data Docs.

Each takes plain values (source name, entity, interval bounds, run id), reads and
writes the lake, and returns a small JSON-able summary for XCom. Tasks hand frames
to each other through ``work/<run>/...`` files, never through XCom.

A day's raw partition changes only in :func:`land`, and only by a whole-folder
swap: a failed extract or a failed quality gate leaves the previously landed
partition exactly as it was.

The work folder holds the day's rows, personal data included, so it goes when a
step fails as well as when ``land`` finishes. A retried ``validate`` or ``land``
that finds its input gone rebuilds it from the step before (a rerun gives the same
rows). Only a task killed outright leaves its folder: ``cva lake check --repair``
removes it a day later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.days import as_day, parse_instant
from cva_tasks.quality.summary import recent_row_counts, write_summary
from cva_tasks.settings import Settings
from cva_tasks.sources.base import DROP_DAY, ORIGIN, Interval, SourceError
from cva_tasks.sources.canonical import (
    INVALID,
    REJECTED,
    convert,
    first_reason,
    from_table,
    rule_of,
    to_table,
)
from cva_tasks.sources.registry import get_source
from cva_tasks.sources.timestamps import local_zone
from cva_tasks.sources.window import earlier_days, settle

if TYPE_CHECKING:
    import pandas as pd

    from cva_tasks.quality import RuleFailure

log = logging.getLogger(__name__)

MAPPING_RULE_PREFIX = "mapping: "


def _interval(start: datetime | str, end: datetime | str) -> Interval:
    return Interval(parse_instant(start), parse_instant(end))


@contextmanager
def _work_removed_on_failure(
    run_id: str, source_name: str, entity: str, ds: date
) -> Iterator[None]:
    """Remove the entity-day's work folder when the step fails, whatever the error."""
    try:
        yield
    except BaseException:
        folder = Settings.from_env().lake.work(run_id, source_name, entity, ds)
        try:
            storage.remove(folder)
        except Exception:  # the step's own error is the one to report
            log.exception("could not remove the work folder %s", folder)
        raise


def extract(
    source_name: str, entity: str, start: datetime | str, end: datetime | str, run_id: str
) -> dict[str, Any]:
    """Extract one entity of one source for ``[start, end)`` into the work area.

    The source is read over its lookback window too (``CVA_EXTRACT_LOOKBACK_HOURS``);
    of those rows, the ones already landed or left to another day are skipped
    (:mod:`cva_tasks.sources.window`). Each row is converted to the canonical types on
    its own: a value that does not convert marks its row invalid, with the reason.

    Returns:
        ``{"uri", "rows", "rejected", "invalid", "already_landed", "not_yet_due",
        "left_for_next_day"}``: where the rows are, how many the run keeps, how many of
        those the mapping rejected on purpose or found invalid, and how many it skipped.

    Raises:
        SourceError: naming source, entity, day and the problem.
    """
    with _work_removed_on_failure(run_id, source_name, entity, _interval(start, end).ds):
        return _extract(source_name, entity, start, end, run_id)


def _extract(
    source_name: str, entity: str, start: datetime | str, end: datetime | str, run_id: str
) -> dict[str, Any]:
    settings = Settings.from_env()
    source = get_source(source_name, settings.source_modules)
    spec = source.entity(entity)
    bounds = _interval(start, end)
    interval = Interval(bounds.start, bounds.end, source.lookback(settings))
    where = f"{source_name}.{entity} ds={interval.ds}"
    log.info(
        "extracting %s over [%s, %s) with a lookback of %s",
        where,
        interval.start,
        interval.end,
        interval.lookback,
    )
    # Timestamps without an offset are the source's local times (its zone), read as such
    # by the extract's watermark filter, its mapping and the typing below.
    with local_zone(source.zone(settings)):
        try:
            mapped = spec.extract(source, interval, settings)
        except SourceError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise SourceError(f"{where}: mapping failed: {exc!r}") from exc
        frame = _typed(mapped, entity, where)
    lake = settings.lake
    settled = settle(
        frame,
        entity,
        interval,
        _earlier_versions(lake, source_name, entity, interval),
        {d for d in earlier_days(interval) if storage.exists(lake.raw(source_name, entity, d))},
        rereads=spec.rereads,
    )
    kept = settled.frame
    canonical = kept.drop(columns=[REJECTED, INVALID, DROP_DAY], errors="ignore")
    table = to_table(canonical, entity, where)
    for column in (REJECTED, INVALID):
        table = table.append_column(column, _text_array(kept[column]))
    uri = settings.lake.work_file(run_id, source_name, entity, interval.ds, "extracted.parquet")
    storage.write_table(table, uri)
    counts = {
        "rows": len(kept),
        "rejected": int(kept[REJECTED].notna().sum()),
        "invalid": int(kept[INVALID].notna().sum()),
        "already_landed": settled.already_landed,
        "not_yet_due": settled.not_yet_due,
        "left_for_next_day": settled.left_for_next_day,
    }
    storage.write_json(
        counts, settings.lake.work_file(run_id, source_name, entity, interval.ds, "extracted.json")
    )
    log.info(
        "extracted %s: %d rows (%d rejected by the mapping, %d invalid); skipped %d already "
        "landed, %d of days not landed yet, %d for the next day",
        where,
        *counts.values(),
    )
    return {"uri": uri, **counts}


def _typed(mapped: pd.DataFrame, entity: str, where: str) -> pd.DataFrame:
    """The mapped rows in canonical types, with their reasons and drop day.

    An invalid row's reason names the file and line it came from, when it came from a file.
    """
    import pandas as pd

    table, invalid = convert(mapped, entity, where)
    none = pd.Series(None, index=mapped.index, dtype=object)
    invalid = first_reason(mapped.get(INVALID, none), invalid)
    if ORIGIN in mapped.columns:
        located = invalid.notna() & mapped[ORIGIN].notna()
        invalid[located] = [
            f"{text} ({origin})"
            for text, origin in zip(invalid[located], mapped.loc[located, ORIGIN], strict=True)
        ]
    frame = from_table(table)
    frame[REJECTED] = mapped.get(REJECTED, none).to_numpy()
    frame[INVALID] = invalid.to_numpy()
    if DROP_DAY in mapped.columns:
        frame[DROP_DAY] = mapped[DROP_DAY].to_numpy()
    return frame


def _text_array(values: pd.Series):
    import pyarrow as pa

    return pa.array(values.astype("string"), type=pa.string(), from_pandas=True)


def _earlier_versions(lake, source: str, entity: str, interval: Interval) -> pd.DataFrame:
    """Key and version of every row landed or quarantined on the lookback's earlier days."""
    import pandas as pd

    from cva_tasks.entities import KEYS, VERSION_COLUMNS

    columns = [KEYS[entity], VERSION_COLUMNS[entity]]
    parts = [
        storage.read_table(partition).select(columns).to_pandas()
        for day in earlier_days(interval)
        for partition in (lake.raw(source, entity, day), lake.quarantine(source, entity, day))
        if storage.exists(partition)
    ]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns}).astype(
            {columns[1]: "datetime64[us, UTC]"}
        )
    return pd.concat(parts, ignore_index=True)


def _suite_path(settings: Settings, suite: str):
    path = settings.expectations_dir / f"{suite}.json"
    if not path.exists():
        raise FileNotFoundError(f"expectation suite {suite!r} not found at {path}")
    return path


def validate(
    source_name: str, entity: str, start: datetime | str, end: datetime | str, run_id: str
) -> dict[str, Any]:
    """Run the entity's suite on the extracted rows; quarantine, record, gate.

    Rows rejected by the mapping, rows with a value that did not convert and rows
    breaking a row-level rule go to ``quarantine/<source>/<entity>/ds=.../`` with the
    rule in ``dq_rules`` (``mapping: <reason>`` for the first two); the result is kept
    under ``dq/`` (one JSON per run plus the day's summary). Timestamps compared with
    the interval may lie in the run's lookback, since late rows are landed on purpose.

    Returns:
        The day's summary (rows checked, clean, quarantined, failed rules).

    Raises:
        DataQualityError: a critical rule failed, or the share of rows breaking
            row-level rules or holding a value that did not convert passed the source's
            failing share (:meth:`~cva_tasks.sources.base.Source.failing_share`).
    """
    with _work_removed_on_failure(run_id, source_name, entity, _interval(start, end).ds):
        return _validate(source_name, entity, start, end, run_id)


def _validate(
    source_name: str, entity: str, start: datetime | str, end: datetime | str, run_id: str
) -> dict[str, Any]:
    import pandas as pd

    from cva_tasks.quality import ValidationOutcome, enforce, validate_frame

    settings = Settings.from_env()
    lake = settings.lake
    source = get_source(source_name, settings.source_modules)
    spec = source.entity(entity)
    bounds = _interval(start, end)
    interval = Interval(bounds.start, bounds.end, source.lookback(settings))
    ds = interval.ds
    if not storage.exists(lake.work_file(run_id, source_name, entity, ds, "extracted.json")):
        log.info(
            "%s.%s ds=%s: the extracted rows are gone, extracting again", source_name, entity, ds
        )
        _extract(source_name, entity, start, end, run_id)
    max_failing_share = source.failing_share(settings)
    frame = from_table(
        storage.read_table(lake.work_file(run_id, source_name, entity, ds, "extracted.parquet"))
    )
    counts = storage.read_json(lake.work_file(run_id, source_name, entity, ds, "extracted.json"))
    invalid_mask = frame[INVALID].notna()
    rejected_mask = frame[REJECTED].notna() & ~invalid_mask
    reasons = frame[INVALID].where(invalid_mask, frame[REJECTED])
    mapped_out = frame.loc[invalid_mask | rejected_mask].assign(
        dq_rules=MAPPING_RULE_PREFIX + reasons[invalid_mask | rejected_mask].astype(str)
    )
    candidates = (
        frame.loc[~(invalid_mask | rejected_mask)]
        .drop(columns=[REJECTED, INVALID])
        .reset_index(drop=True)
    )

    history = recent_row_counts(lake, source_name, entity, ds, settings.row_count_history_days)
    outcome = validate_frame(
        candidates,
        _suite_path(settings, spec.suite),
        interval_start=interval.window_start,
        interval_end=interval.end,
        recent_row_counts=history,
    )
    invalid = mapped_out.loc[invalid_mask[invalid_mask | rejected_mask].to_numpy()]
    gated = ValidationOutcome(
        clean=outcome.clean,
        quarantined=pd.concat(
            [invalid.drop(columns=[REJECTED, INVALID]), outcome.quarantined], ignore_index=True
        ),
        failures=_mapping_failures(invalid[INVALID]) + outcome.failures,
        skipped=outcome.skipped,
        result=outcome.result,
    )
    quarantined = pd.concat(
        [mapped_out.drop(columns=[REJECTED, INVALID]), outcome.quarantined], ignore_index=True
    )
    quarantine_partition = lake.quarantine(source_name, entity, ds)
    if len(quarantined):
        storage.replace_partition(_quarantine_table(quarantined, entity), quarantine_partition)
    else:
        storage.remove(quarantine_partition)

    rejected = frame.loc[rejected_mask, REJECTED].astype(str)
    summary = {
        "source": source_name,
        "entity": entity,
        "suite": spec.suite,
        "ds": ds.isoformat(),
        "run_id": run_id,
        "lookback_hours": interval.lookback.total_seconds() / 3600,
        "rows_extracted": len(frame),
        "rows_rejected_by_mapping": int((invalid_mask | rejected_mask).sum()),
        "rows_invalid": int(invalid_mask.sum()),
        "rows_checked": len(candidates),
        "rows_clean": len(outcome.clean),
        "rows_quarantined": len(outcome.quarantined),
        "rows_already_landed": counts["already_landed"],
        "rows_not_yet_due": counts["not_yet_due"],
        "rows_left_for_next_day": counts["left_for_next_day"],
        "failing_share": gated.failing_share,
        "failed_rules": [f.__dict__ for f in gated.failures],
        "mapping_rejections": [
            {"rule": MAPPING_RULE_PREFIX + rule, "rows": int(n)}
            for rule, n in rejected.map(rule_of).value_counts(sort=False).sort_index().items()
        ],
        "skipped_rules": list(outcome.skipped),
        "recent_row_counts": history,
        "max_failing_share": max_failing_share,
        "passed": not gated.critical_failures and gated.failing_share <= max_failing_share,
    }
    storage.write_json(outcome.result, lake.dq_run_result(source_name, entity, ds, run_id))
    if summary["passed"]:
        write_summary(lake, summary)
    enforce(
        gated,
        source=source_name,
        entity=entity,
        ds=ds,
        max_failing_share=max_failing_share,
    )
    storage.write_table(
        to_table(outcome.clean, entity, f"{source_name}.{entity}"),
        lake.work_file(run_id, source_name, entity, ds, "clean.parquet"),
    )
    log.info(
        "validated %s.%s ds=%s: %d clean, %d quarantined, %d rejected by mapping, %d invalid",
        source_name,
        entity,
        ds,
        len(outcome.clean),
        len(outcome.quarantined),
        int(rejected_mask.sum()),
        int(invalid_mask.sum()),
    )
    return summary


def _mapping_failures(reasons: pd.Series) -> list[RuleFailure]:
    """Values that did not convert, one failed row-level rule per reason's rule."""
    from cva_tasks.quality import RuleFailure

    failures = []
    for rule, group in reasons.astype(str).groupby(reasons.astype(str).map(rule_of), sort=True):
        failures.append(
            RuleFailure(
                rule=MAPPING_RULE_PREFIX + rule,
                column=None,
                severity="row",
                unexpected_count=len(group),
                sample_values=[text.split(": ", 1)[-1] for text in group.head(5)],
            )
        )
    return failures


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
    clean = lake.work_file(run_id, source_name, entity, ds, "clean.parquet")
    with _work_removed_on_failure(run_id, source_name, entity, ds):
        if not storage.exists(clean):
            log.info(
                "%s.%s ds=%s: the validated rows are gone, validating again",
                source_name,
                entity,
                ds,
            )
            _validate(source_name, entity, start, end, run_id)
        table = storage.read_table(clean)
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

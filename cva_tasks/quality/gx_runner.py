"""Data-quality gate of the pipeline, run with Great Expectations 1.x.

:func:`validate_frame` validates one day's frame against the entity's expectation suite (see
:mod:`cva_tasks.quality.rules` for the suites and our ``meta`` conventions) with the process's
ephemeral GX context (:mod:`cva_tasks.quality.context`), reads the failed rules from the result
(:mod:`cva_tasks.quality.results`) and splits the frame into clean and quarantined rows
(:mod:`cva_tasks.quality.quarantine`); :func:`cva_tasks.quality.gate.enforce` turns the outcome
into a pass/fail decision for the run.

Great Expectations is imported lazily (importing it takes seconds), so importing this module is
cheap, e.g. while Airflow parses DAG files.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from cva_tasks.quality.context import _LOCK, _runtime
from cva_tasks.quality.masking import mask_result, pii_columns_of_suite
from cva_tasks.quality.quarantine import DQ_RULES_COLUMN, _split
from cva_tasks.quality.results import (
    ValidationOutcome,
    _collect,
    _finish_result,
    _take_row_hits,
)
from cva_tasks.quality.rules import _resolve_rules, load_suite

logger = logging.getLogger(__name__)

_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",  # unexpected_index_list for map expectations
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 20,
}


def validate_frame(
    frame: pd.DataFrame,
    suite_path: Path,
    *,
    interval_start: datetime,
    interval_end: datetime,
    recent_row_counts: Sequence[int] = (),
    pii_columns: Collection[str] | None = None,
) -> ValidationOutcome:
    """Validate a frame against a stored suite and split it into clean and quarantined rows.

    Args:
        frame: The data to validate (may be empty). It is not modified.
        suite_path: The suite JSON file (see :func:`load_suite`).
        interval_start: Start of the run's data interval (inclusive); naive means UTC.
        interval_end: End of the run's data interval (exclusive); naive means UTC.
        recent_row_counts: Row counts of recent days, for ``recent_row_counts`` rules.
        pii_columns: Columns whose values the result and the failures show masked;
            ``None``: the PII columns of the suite's entity (``entities.PII_COLUMNS``).

    Returns:
        The outcome; use :func:`enforce` to decide whether the run may go on.

    Raises:
        ValueError: If the suite is invalid or the interval is empty.
    """
    suite = load_suite(suite_path)
    start, end = _as_utc(interval_start), _as_utc(interval_end)
    if start >= end:
        raise ValueError(f"empty data interval [{start.isoformat()}, {end.isoformat()})")
    if DQ_RULES_COLUMN in frame.columns:
        raise ValueError(f"frame already has a {DQ_RULES_COLUMN!r} column")
    counts = [int(count) for count in recent_row_counts]

    rules, expectations, skipped, interval_columns = _resolve_rules(suite, start, end, counts)
    work = _frame_for_validation(frame, interval_columns)

    from great_expectations.core.expectation_suite import ExpectationSuite

    # Expectations passed to the constructor need no Data Context (add_expectation would look
    # the suite up in the current context's store).
    gx_suite = ExpectationSuite(name=suite["name"], expectations=expectations, meta=suite["meta"])
    if len(gx_suite.expectations) != len(expectations):
        raise ValueError(f"suite {suite['name']!r}: GX refused some expectations (see the log)")

    with _LOCK:
        runtime = _runtime()
        batch = runtime.batch_definition(suite["name"]).get_batch(
            batch_parameters={"dataframe": work}
        )
        try:
            validation = batch.validate(gx_suite, result_format=dict(_RESULT_FORMAT))
        finally:
            del batch
            runtime.release_batches()
    row_hits = _take_row_hits(validation, rules)  # before to_json_dict: it trims long lists
    result = validation.to_json_dict()
    # Before the failures are read from it: their sample values go into errors and logs.
    mask_result(result, pii_columns_of_suite(suite["name"]) if pii_columns is None else pii_columns)

    failures = _collect(result, rules)
    clean, quarantined = _split(frame, row_hits)
    _finish_result(result, suite["name"], start, end, counts, skipped, len(quarantined))
    outcome = ValidationOutcome(
        clean=clean, quarantined=quarantined, failures=failures, skipped=skipped, result=result
    )
    logger.info(
        "%s: %d rows validated, %d quarantined, %d rules failed (%d critical), %d skipped",
        suite["name"],
        outcome.total_rows,
        len(quarantined),
        len(failures),
        len(outcome.critical_failures),
        len(skipped),
    )
    return outcome


def _as_utc(value: datetime) -> datetime:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def _frame_for_validation(frame: pd.DataFrame, interval_columns: set[str]) -> pd.DataFrame:
    """Positional index (GX reports failing rows by index) and comparable interval columns.

    Interval bounds are tz-aware UTC datetimes. Tz-aware columns of any unit and zone compare
    with them directly (vectorised); naive datetime columns are taken as UTC.
    """
    work = frame.reset_index(drop=True)
    for column in interval_columns & set(work.columns):
        dtype = work[column].dtype
        if pd.api.types.is_datetime64_dtype(dtype) and not isinstance(dtype, pd.DatetimeTZDtype):
            work[column] = work[column].dt.tz_localize("UTC")
    return work

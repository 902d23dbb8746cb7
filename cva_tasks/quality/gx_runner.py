"""Data-quality gate of the pipeline, run with Great Expectations 1.x.

Every source entity has an expectation suite stored as GX 1.x ``ExpectationSuite`` JSON under
``expectations/<suite_name>.json``. :func:`validate_frame` validates one day's frame against it
with an in-process, ephemeral GX context and splits the frame into clean and quarantined rows;
:func:`enforce` turns the outcome into a pass/fail decision for the run.

Our extensions live in each expectation's ``meta``:

* ``severity``: ``"critical"`` (any failure fails the run) or ``"row"`` (rows that break the
  rule are quarantined, the others go on). Default: ``"row"`` for map expectations (the
  ``expect_column_values_*`` family and the other row-wise ones), ``"critical"`` for all
  others (table-level and column aggregate expectations). ``"row"`` is only allowed on map
  expectations, the only ones that can name failing rows. Rows breaking a row rule are
  quarantined even when the rule passes thanks to ``mostly``. A rule GX cannot evaluate (e.g.
  its column is missing) always counts as critical.
* ``"bounds": "interval"``: ``min_value``/``max_value`` are filled with the ``[start, end)``
  data interval of the run (``strict_max``).
* ``"recent_row_counts": {"min_ratio": .., "max_ratio": .., "min_history": ..}``:
  ``min_value``/``max_value`` are filled from the median of recent row counts; with fewer
  than ``min_history`` known counts the expectation is skipped.

Great Expectations is imported lazily (importing it takes seconds), so importing this module is
cheap, e.g. while Airflow parses DAG files. GX analytics are switched off and its progress bars
are silenced; nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from great_expectations.data_context.types.base import DataContextConfig

# GX must never send usage statistics. Set before GX is first imported (it is imported lazily
# below) and, in addition, ``analytics_enabled=False`` is part of every context config.
os.environ["GX_ANALYTICS_ENABLED"] = "false"

logger = logging.getLogger(__name__)

SEVERITY_CRITICAL = "critical"
SEVERITY_ROW = "row"
SEVERITIES = (SEVERITY_CRITICAL, SEVERITY_ROW)
DQ_RULES_COLUMN = "dq_rules"
MAX_SAMPLE_VALUES = 5
# The full per-row lists (unexpected_list, unexpected_index_list) of an expectation are kept in
# the stored (JSON) result only up to this length; longer ones are dropped, leaving GX's summary
# (counts, partial_unexpected_list/_counts/_index_list), which is also what Data Docs show then.
# Quarantine always uses the full lists.
MAX_STORED_UNEXPECTED = 200
# Keys our runner adds to each expectation's meta to map GX results back to suite entries.
_META_INDEX = "dq_index"
_META_RULE = "dq_rule"
_META_SEVERITY = "dq_severity"
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",  # unexpected_index_list for map expectations
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 20,
}
_DATASOURCE_NAME = "cva_pandas"
_BATCH_DEFINITION_NAME = "whole_dataframe"
# Passed on to GX untouched. ("id" is not: GX refuses expectations that carry one.)
_CONFIG_KEYS = ("notes", "description", "severity")


class DataQualityError(Exception):
    """A data-quality gate failed: a critical rule broke or too many rows were quarantined.

    Attributes:
        source: Source system name, e.g. ``"demo_shop"``.
        entity: Entity name, e.g. ``"transactions"``.
        ds: Logical date of the run.
        failures: The failed rules that caused the error.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        entity: str = "",
        ds: date | None = None,
        failures: Sequence[RuleFailure] = (),
    ) -> None:
        super().__init__(message)
        self.source = source
        self.entity = entity
        self.ds = ds
        self.failures = list(failures)


@dataclass
class RuleFailure:
    """One failed expectation.

    Attributes:
        rule: Readable rule name, e.g. ``"expect_column_values_to_be_between(unit_price)"``.
        column: The column the rule is about, ``None`` for table-level rules.
        severity: ``"critical"`` or ``"row"``.
        unexpected_count: Number of rows that broke the rule (0 for non-map rules).
        sample_values: Up to 5 JSON-able offending values (for non-map rules: what was
            observed, e.g. the row count, or the missing/unexpected columns).
        error: Set when GX could not evaluate the rule (e.g. its column is missing); such a
            failure always counts as critical.
    """

    rule: str
    column: str | None
    severity: str
    unexpected_count: int
    sample_values: list = field(default_factory=list)
    error: str | None = None

    @property
    def is_critical(self) -> bool:
        """Whether this failure fails the run on its own."""
        return self.severity == SEVERITY_CRITICAL or self.error is not None

    def describe(self) -> str:
        """One-line description used in log and error messages."""
        if self.error is not None:
            return f"{self.rule} could not be evaluated: {self.error}"
        if self.unexpected_count:
            noun = "row" if self.unexpected_count == 1 else "rows"
            return (
                f"{self.rule} failed on {self.unexpected_count} {noun}, e.g. {self.sample_values!r}"
            )
        if self.sample_values:
            return f"{self.rule} failed, observed {_short(self.sample_values)}"
        return f"{self.rule} failed"


@dataclass
class ValidationOutcome:
    """Result of validating one frame against one suite.

    Attributes:
        clean: Rows that broke no row-level rule; original columns and dtypes, index reset.
        quarantined: Rows that broke at least one row-level rule: original columns plus
            ``dq_rules`` (the names of the broken rules, ``"; "``-joined), index reset.
        failures: All failed expectations (critical and row-level), in suite order.
        skipped: Rules not evaluated (e.g. row-count rule without enough history).
        result: The GX ``ExpectationSuiteValidationResult`` as a JSON-able dict.
    """

    clean: pd.DataFrame
    quarantined: pd.DataFrame
    failures: list[RuleFailure]
    skipped: list[str]
    result: dict

    @property
    def critical_failures(self) -> list[RuleFailure]:
        """Failures that fail the run: critical rules and rules GX could not evaluate."""
        return [failure for failure in self.failures if failure.is_critical]

    @property
    def row_failures(self) -> list[RuleFailure]:
        """Failed row-level rules (their rows are quarantined)."""
        return [failure for failure in self.failures if not failure.is_critical]

    @property
    def total_rows(self) -> int:
        """Number of rows validated."""
        return len(self.clean) + len(self.quarantined)

    @property
    def failing_share(self) -> float:
        """Quarantined rows / all rows; 0.0 for an empty frame."""
        total = self.total_rows
        return len(self.quarantined) / total if total else 0.0


@dataclass(frozen=True)
class _Rule:
    """One suite entry after resolving our meta conventions."""

    index: int
    type: str
    name: str
    column: str | None
    severity: str
    is_map: bool


# --------------------------------------------------------------------------------------------
# Suite loading
# --------------------------------------------------------------------------------------------


def load_suite(path: Path) -> dict:
    """Load and check an expectation suite stored as GX 1.x ``ExpectationSuite`` JSON.

    Args:
        path: The suite file, e.g. ``expectations/demo_shop.transactions.json``.

    Returns:
        The suite as a dict with ``name``, ``expectations`` (each with ``type``, ``kwargs`` and
        ``meta``; missing ``kwargs``/``meta`` are filled with ``{}``) and ``meta``.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not valid JSON or breaks the suite conventions.
    """
    path = Path(path)
    try:
        suite = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"suite {path}: invalid JSON: {exc}") from exc
    if not isinstance(suite, dict):
        raise ValueError(f"suite {path}: top level must be a JSON object")
    name = suite.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"suite {path}: 'name' must be a non-empty string")
    expectations = suite.get("expectations")
    if not isinstance(expectations, list):
        raise ValueError(f"suite {path}: 'expectations' must be a list")
    checked = []
    for index, raw in enumerate(expectations):
        where = f"suite {path}, expectation #{index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
            raise ValueError(f"{where}: must be an object with a string 'type'")
        if not isinstance(raw.get("kwargs") or {}, dict) or not isinstance(
            raw.get("meta") or {}, dict
        ):
            raise ValueError(f"{where}: 'kwargs' and 'meta' must be objects")
        item = {**raw, "kwargs": dict(raw.get("kwargs") or {}), "meta": dict(raw.get("meta") or {})}
        _check_meta(item["meta"], where)
        checked.append(item)
    return {**suite, "meta": dict(suite.get("meta") or {}), "expectations": checked}


def _check_meta(meta: dict, where: str) -> None:
    severity = meta.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"{where}: meta.severity must be one of {SEVERITIES}, not {severity!r}")
    bounds = meta.get("bounds")
    if bounds is not None and bounds != "interval":
        raise ValueError(f"{where}: meta.bounds must be 'interval', not {bounds!r}")
    history = meta.get("recent_row_counts")
    if history is None:
        return
    if not isinstance(history, dict):
        raise ValueError(f"{where}: meta.recent_row_counts must be an object")
    unknown = set(history) - {"min_ratio", "max_ratio", "min_history"}
    if unknown:
        raise ValueError(f"{where}: unknown meta.recent_row_counts keys {sorted(unknown)}")
    if history.get("min_ratio") is None and history.get("max_ratio") is None:
        raise ValueError(f"{where}: meta.recent_row_counts needs min_ratio and/or max_ratio")
    for key in ("min_ratio", "max_ratio", "min_history"):
        value = history.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or value < 0
        ):
            raise ValueError(f"{where}: meta.recent_row_counts.{key} must be a number >= 0")


def _rule_name(expectation_type: str, kwargs: Mapping[str, Any]) -> tuple[str, str | None]:
    """Readable rule name and the column it is about, e.g. ``("expect_..(unit_price)", ..)``."""
    if "column" in kwargs:
        column = str(kwargs["column"])
        return f"{expectation_type}({column})", column
    if "column_A" in kwargs and "column_B" in kwargs:
        return f"{expectation_type}({kwargs['column_A']}, {kwargs['column_B']})", None
    if "column_list" in kwargs:
        return f"{expectation_type}({', '.join(map(str, kwargs['column_list']))})", None
    return expectation_type, None


# --------------------------------------------------------------------------------------------
# GX context (cached per process)
# --------------------------------------------------------------------------------------------


def _project_config(data_docs_sites: dict | None = None) -> DataContextConfig:
    """In-memory GX project config: no analytics, no progress bars, optional docs sites."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    return DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=data_docs_sites or {},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )


class _Runtime:
    """The process's ephemeral GX context with one pandas data source."""

    def __init__(self) -> None:
        import great_expectations as gx

        self.pid = os.getpid()
        self.context = gx.get_context(project_config=_project_config(), mode="ephemeral")
        self.datasource = self.context.data_sources.add_pandas(_DATASOURCE_NAME)
        self._batch_definitions: dict[str, Any] = {}

    def ensure_current(self) -> None:
        """Make this context the process's current one if there is none.

        Objects bound to this context use it in any case, but a few GX checks (e.g. whether
        GX Cloud is used) consult the current context and fail when there is none.
        """
        from great_expectations.data_context.data_context.context_factory import (
            project_manager,
        )
        from great_expectations.exceptions import DataContextRequiredError

        try:
            project_manager.get_current_project()
        except DataContextRequiredError:
            project_manager.set_project(self.context)

    def release_batches(self) -> None:
        """Let the execution engine drop the frames it loaded (it keeps the last one)."""
        batch_manager = self.datasource.get_execution_engine().batch_manager
        batch_manager.reset_batch_cache()
        batch_manager.batch_data_cache.clear()

    def batch_definition(self, asset_name: str) -> Any:
        """The whole-dataframe batch definition of the dataframe asset ``asset_name``."""
        if asset_name not in self._batch_definitions:
            asset = self.datasource.add_dataframe_asset(asset_name)
            self._batch_definitions[asset_name] = asset.add_batch_definition_whole_dataframe(
                _BATCH_DEFINITION_NAME
            )
        return self._batch_definitions[asset_name]


_RUNTIME: _Runtime | None = None
_LOCK = threading.RLock()


def _runtime() -> _Runtime:
    """Return the cached GX runtime, building it on first use (and after a fork)."""
    global _RUNTIME
    with _LOCK:
        if _RUNTIME is None or _RUNTIME.pid != os.getpid():
            _RUNTIME = _Runtime()
        _RUNTIME.ensure_current()
        return _RUNTIME


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def validate_frame(
    frame: pd.DataFrame,
    suite_path: Path,
    *,
    interval_start: datetime,
    interval_end: datetime,
    recent_row_counts: Sequence[int] = (),
) -> ValidationOutcome:
    """Validate a frame against a stored suite and split it into clean and quarantined rows.

    Args:
        frame: The data to validate (may be empty). It is not modified.
        suite_path: The suite JSON file (see :func:`load_suite`).
        interval_start: Start of the run's data interval (inclusive); naive means UTC.
        interval_end: End of the run's data interval (exclusive); naive means UTC.
        recent_row_counts: Row counts of recent days, for ``recent_row_counts`` rules.

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


def _resolve_rules(
    suite: dict, start: datetime, end: datetime, counts: list[int]
) -> tuple[list[_Rule], list[Any], list[str], set[str]]:
    """Apply our meta conventions; return rules, GX expectations, skipped rule names and the
    columns compared with the data interval."""
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    map_classes = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    rules: list[_Rule] = []
    expectations: list[Any] = []
    skipped: list[str] = []
    interval_columns: set[str] = set()
    for index, item in enumerate(suite["expectations"]):
        expectation_type = item["type"]
        kwargs = dict(item["kwargs"])
        meta = dict(item["meta"])
        name, column = _rule_name(expectation_type, kwargs)
        where = f"suite {suite['name']!r}, expectation #{index} {name}"
        try:
            is_map = issubclass(get_expectation_impl(expectation_type), map_classes)
        except ExpectationNotFoundError as exc:
            raise ValueError(f"{where}: unknown expectation type") from exc
        severity = meta.get("severity") or (SEVERITY_ROW if is_map else SEVERITY_CRITICAL)
        if severity == SEVERITY_ROW and not is_map:
            raise ValueError(f"{where}: severity 'row' needs a row-wise (map) expectation")

        if meta.get("bounds") == "interval":
            kwargs.update(min_value=start, max_value=end, strict_min=False, strict_max=True)
            if column is not None:
                interval_columns.add(column)
        history = meta.get("recent_row_counts")
        if history is not None:
            bounds = _row_count_bounds(history, counts)
            if bounds is None:
                logger.info(
                    "%s: %s skipped, %d recent row counts known, %s needed",
                    suite["name"],
                    name,
                    len(counts),
                    history.get("min_history", 1),
                )
                skipped.append(name)
                continue
            kwargs.update(min_value=bounds[0], max_value=bounds[1])

        meta.update({_META_INDEX: index, _META_RULE: name, _META_SEVERITY: severity})
        extra = {key: item[key] for key in _CONFIG_KEYS if item.get(key) is not None}
        config = ExpectationConfiguration(type=expectation_type, kwargs=kwargs, meta=meta, **extra)
        try:
            expectations.append(config.to_domain_obj())
        except Exception as exc:  # pydantic / GX configuration errors
            raise ValueError(f"{where}: invalid configuration: {exc}") from exc
        rules.append(_Rule(index, expectation_type, name, column, severity, is_map))
    return rules, expectations, skipped, interval_columns


def _row_count_bounds(history: Mapping[str, Any], counts: list[int]) -> tuple | None:
    """(min_value, max_value) from the median of recent counts, or None when too few."""
    min_history = max(int(history.get("min_history", 1)), 1)
    if len(counts) < min_history:
        return None
    median = statistics.median(counts)
    low, high = history.get("min_ratio"), history.get("max_ratio")
    return (
        None if low is None else math.floor(low * median + 0.5),  # rounded half up
        None if high is None else math.floor(high * median + 0.5),
    )


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


def _take_row_hits(validation: Any, rules: list[_Rule]) -> dict[int, tuple[str, np.ndarray]]:
    """Per row-level rule (by suite index): its name and the positions of its failing rows.

    Reads the GX result objects, then caps their long per-row lists, so that serialising the
    result stays cheap even when many rows fail.
    """
    by_index = {rule.index: rule for rule in rules}
    row_hits: dict[int, tuple[str, np.ndarray]] = {}
    for evr in validation.results:
        rule = by_index[evr.expectation_config.meta[_META_INDEX]]
        details = evr.result if isinstance(evr.result, dict) else {}
        if rule.severity == SEVERITY_ROW:
            positions = _positions(details.get("unexpected_index_list"))
            if positions.size:  # also with `mostly`: failing rows never go on as clean
                row_hits[rule.index] = (rule.name, positions)
        _trim(details)
    return row_hits


def _collect(result: dict, rules: list[_Rule]) -> list[RuleFailure]:
    """The failed (or not evaluable) rules of a JSON validation result, in suite order."""
    by_index = {rule.index: rule for rule in rules}
    failures: dict[int, RuleFailure] = {}
    for evr in result.get("results", []):
        rule = by_index[evr["expectation_config"]["meta"][_META_INDEX]]
        error = _exception_message(evr.get("exception_info"))
        if not evr.get("success") or error is not None:
            failures[rule.index] = _failure(rule, evr.get("result") or {}, error)
    return [failures[index] for index in sorted(failures)]


def _exception_message(info: Any) -> str | None:
    """The exception message of an EVR, for both GX layouts of ``exception_info``."""
    if not isinstance(info, dict) or not info:
        return None
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        str(entry.get("exception_message") or "exception raised")
        for entry in entries
        if isinstance(entry, dict) and entry.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _positions(index_list: Any) -> np.ndarray:
    if not index_list:
        return np.empty(0, dtype=np.int64)
    if isinstance(index_list[0], dict):  # only with unexpected_index_column_names, not used
        raise ValueError("unexpected_index_list holds dicts; row positions are needed")
    return np.unique(np.asarray(index_list, dtype=np.int64))


def _failure(rule: _Rule, details: dict, error: str | None) -> RuleFailure:
    unexpected_count = int(details.get("unexpected_count") or 0) if rule.is_map else 0
    if rule.is_map:
        values = details.get("unexpected_list")
        if values is None:
            values = details.get("partial_unexpected_list") or []
        samples = list(values[:MAX_SAMPLE_VALUES])
    else:
        mismatched = (details.get("details") or {}).get("mismatched")
        if isinstance(mismatched, dict):
            samples = [
                f"{kind}: {value}"
                for kind in ("missing", "unexpected")
                for value in mismatched.get(kind) or []
            ][:MAX_SAMPLE_VALUES]
        elif "observed_value" in details:
            samples = [details["observed_value"]]
        else:
            samples = []
    return RuleFailure(
        rule=rule.name,
        column=rule.column,
        severity=rule.severity,
        unexpected_count=unexpected_count,
        sample_values=samples,
        error=error,
    )


def _trim(details: dict) -> None:
    """Drop the full per-row lists from a result when they are longer than the cap."""
    keys = ("unexpected_list", "unexpected_index_list")
    if any(len(details.get(key) or ()) > MAX_STORED_UNEXPECTED for key in keys):
        for key in keys:
            details.pop(key, None)


def _split(
    frame: pd.DataFrame, row_hits: dict[int, tuple[str, np.ndarray]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean rows and quarantined rows (with ``dq_rules``) of the original frame."""
    if not row_hits:
        quarantined = frame.iloc[0:0].reset_index(drop=True)
        quarantined[DQ_RULES_COLUMN] = pd.Series(dtype="str")
        return frame.reset_index(drop=True), quarantined
    ordered = [row_hits[index] for index in sorted(row_hits)]  # suite order within dq_rules
    positions = np.unique(np.concatenate([hits for _, hits in ordered]))
    labels = np.full(positions.size, "", dtype=object)
    for name, hits in ordered:
        hit = np.isin(positions, hits, assume_unique=True)
        current = labels[hit]
        labels[hit] = np.where(current == "", name, current + "; " + name)
    keep = np.ones(len(frame), dtype=bool)
    keep[positions] = False
    clean = frame.iloc[np.flatnonzero(keep)].reset_index(drop=True)
    quarantined = frame.iloc[positions].reset_index(drop=True)
    quarantined[DQ_RULES_COLUMN] = pd.Series(labels, dtype="str")
    return clean, quarantined


def _finish_result(
    result: dict,
    suite_name: str,
    start: datetime,
    end: datetime,
    counts: list[int],
    skipped: list[str],
    quarantined_rows: int,
) -> None:
    """Add run identification (used by Data Docs) and our bookkeeping to the result meta."""
    now = datetime.now(UTC)
    meta = result.setdefault("meta", {})
    meta["run_id"] = {"run_name": start.strftime("%Y-%m-%dT%H%M%SZ"), "run_time": now.isoformat()}
    meta["validation_time"] = now.isoformat()
    batch_spec = meta.get("batch_spec")
    if isinstance(batch_spec, dict):
        batch_spec.setdefault("data_asset_name", suite_name)
    meta["cva_dq"] = {
        "interval_start": start.isoformat(),
        "interval_end": end.isoformat(),
        "recent_row_counts": counts,
        "skipped": list(skipped),
        "quarantined_rows": quarantined_rows,
    }


# --------------------------------------------------------------------------------------------
# Gate
# --------------------------------------------------------------------------------------------


def enforce(
    outcome: ValidationOutcome,
    *,
    source: str,
    entity: str,
    ds: date,
    max_failing_share: float,
) -> None:
    """Fail the run when a critical rule failed or too many rows were quarantined.

    Args:
        outcome: What :func:`validate_frame` returned.
        source: Source system name, for the message.
        entity: Entity name, for the message.
        ds: Logical date of the run, for the message.
        max_failing_share: Largest allowed share (0..1) of quarantined rows.

    Raises:
        DataQualityError: If any critical rule failed, or if ``outcome.failing_share``
            exceeds ``max_failing_share``.
        ValueError: If ``max_failing_share`` is not within 0..1.
    """
    if not 0.0 <= max_failing_share <= 1.0:
        raise ValueError(f"max_failing_share must be within 0..1, not {max_failing_share}")
    prefix = f"{source}.{entity} ds={ds.isoformat()}"
    for failure in outcome.row_failures:
        logger.warning("%s: row rule %s", prefix, failure.describe())

    problems: list[str] = []
    causes: list[RuleFailure] = []
    for failure in outcome.critical_failures:
        problems.append(f"critical rule {failure.describe()}")
        causes.append(failure)
    share = outcome.failing_share
    if share > max_failing_share:
        rows = ", ".join(failure.describe() for failure in outcome.row_failures)
        problems.append(
            f"{len(outcome.quarantined)} of {outcome.total_rows} rows ({share:.1%}) broke "
            f"row-level rules, more than the allowed {max_failing_share:.1%}: {rows}"
        )
        causes.extend(outcome.row_failures)
    if problems:
        raise DataQualityError(
            f"{prefix}: " + "; ".join(problems),
            source=source,
            entity=entity,
            ds=ds,
            failures=causes,
        )


def _short(values: list) -> str:
    text = repr(values[0] if len(values) == 1 else values)
    return text if len(text) <= 200 else text[:197] + "..."

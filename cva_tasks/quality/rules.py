"""Expectation suites: loading them, and resolving our meta conventions into GX expectations.

Every source entity has an expectation suite stored as GX 1.x ``ExpectationSuite`` JSON under
``expectations/<suite_name>.json``. Our extensions live in each expectation's ``meta``:

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

Great Expectations is imported inside the functions that need it (importing it takes seconds).
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SEVERITY_CRITICAL = "critical"
SEVERITY_ROW = "row"
SEVERITIES = (SEVERITY_CRITICAL, SEVERITY_ROW)
# Keys our runner adds to each expectation's meta to map GX results back to suite entries.
_META_INDEX = "dq_index"
_META_RULE = "dq_rule"
_META_SEVERITY = "dq_severity"
# Passed on to GX untouched. ("id" is not: GX refuses expectations that carry one.)
_CONFIG_KEYS = ("notes", "description", "severity")


@dataclass(frozen=True)
class _Rule:
    """One suite entry after resolving our meta conventions."""

    index: int
    type: str
    name: str
    column: str | None
    severity: str
    is_map: bool


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

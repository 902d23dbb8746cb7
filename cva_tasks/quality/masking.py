"""Masking values of PII columns in what the data-quality gate reports and stores.

A failed rule on ``email`` used to put the address itself into the DataQualityError,
the log, the stored GX result (``unexpected_list``, ``partial_unexpected_list``,
``partial_unexpected_counts``) and so into Data Docs. Those outlive the data and are
read by people who need the rule and the count, not the value. The masked form keeps
what helps to find the row's problem: the length, and for an email its first letter.

Only text is masked: counts, shares and other numbers an aggregate rule observed on a
PII column are not values of that column (the canonical PII columns are all text).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from cva_tasks.entities import PII_COLUMNS

# Where a GX result holds values of its column(s); the rest are counts and indexes.
_VALUE_KEYS = (
    "unexpected_list",
    "partial_unexpected_list",
    "partial_unexpected_counts",
    "observed_value",
    "details",
)
# Inside the value-holding parts, keys whose values are counts, not column values.
_COUNT_KEYS = frozenset({"count", "unexpected_count", "element_count"})


def mask_value(value: Any) -> Any:
    """``b***@***`` for an email-like text, ``<masked: 13 chars>`` for other text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return value
    local, at, _ = value.partition("@")
    if at:
        return f"{local[:1]}***@***"
    return f"<masked: {len(value)} chars>"


def _mask_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: item if key in _COUNT_KEYS else _mask_tree(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_tree(item) for item in value]
    return mask_value(value)


def columns_of(kwargs: dict[str, Any]) -> set[str]:
    """The columns an expectation's kwargs name."""
    named = {kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")}
    named.update(kwargs.get("column_list") or ())
    return {str(column) for column in named if column is not None}


def pii_columns_of_suite(suite_name: str) -> frozenset[str]:
    """The PII columns of the entity a suite checks (``demo_shop.customers`` -> customers)."""
    return PII_COLUMNS.get(suite_name.rsplit(".", 1)[-1], frozenset())


def mask_result(result: dict, pii_columns: Collection[str]) -> dict:
    """Mask, in place, the values a JSON validation result shows of ``pii_columns``.

    An expectation naming several columns (pairs, column lists) has all its shown values
    masked when any of them is a PII column: GX reports their values together.
    """
    masked = set(pii_columns)
    if not masked:
        return result
    for evr in result.get("results", []):
        kwargs = (evr.get("expectation_config") or {}).get("kwargs") or {}
        details = evr.get("result")
        if not isinstance(details, dict) or not columns_of(kwargs) & masked:
            continue
        for key in _VALUE_KEYS:
            if key in details:
                details[key] = _mask_tree(details[key])
    return result


def mask_samples(values: Iterable[Any]) -> list[Any]:
    """Sample values of a PII column, masked."""
    return [_mask_tree(value) for value in values]

"""Reading GX's validation results: the failed rules, the failing rows of row-level rules, and
the stored (JSON) result with our bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.quality.rules import _META_INDEX, SEVERITY_CRITICAL, SEVERITY_ROW, _Rule

MAX_SAMPLE_VALUES = 5
# The full per-row lists (unexpected_list, unexpected_index_list) of an expectation are kept in
# the stored (JSON) result only up to this length; longer ones are dropped, leaving GX's summary
# (counts, partial_unexpected_list/_counts/_index_list), which is also what Data Docs show then.
# Quarantine always uses the full lists.
MAX_STORED_UNEXPECTED = 200


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


def _short(values: list) -> str:
    text = repr(values[0] if len(values) == 1 else values)
    return text if len(text) <= 200 else text[:197] + "..."

"""The day's validation summary of a source entity: written by the gate, read back later.

``dq/<source>/<entity>/ds=.../summary.json`` is written only when the entity-day
passed its gate. Later days compare their row counts with it, and ``publish``
turns it into the warehouse table ``dq_results``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.lake import Lake

if TYPE_CHECKING:
    import pyarrow as pa

COUNT_COLUMNS = (
    "rows_extracted",
    "rows_rejected_by_mapping",
    "rows_checked",
    "rows_clean",
    "rows_quarantined",
)


def write_summary(lake: Lake, summary: dict[str, Any]) -> None:
    ds = date.fromisoformat(summary["ds"])
    storage.write_json(summary, lake.dq_summary(summary["source"], summary["entity"], ds))


def recent_row_counts(lake: Lake, source: str, entity: str, ds: date, days: int) -> list[int]:
    """Rows checked on the landed days before ``ds`` (at most ``days`` of them)."""
    earlier = [d for d in storage.list_partitions(lake.dq(source, entity)) if d < ds]
    counts = []
    for day in earlier[-days:]:
        summary_uri = lake.dq_summary(source, entity, day)
        if storage.exists(summary_uri):
            counts.append(int(storage.read_json(summary_uri)["rows_checked"]))
    return counts


def dq_result_rows(lake: Lake, ds: date, entities: Sequence[tuple[str, str]]) -> pa.Table:
    """The day's validation summaries of ``(source, entity)`` pairs, as ``dq_results`` rows.

    Grain: one row per source entity whose validation for ``ds`` passed (only a passed
    validation writes ``summary.json``; a failed one stops the day). Entities without a
    summary, e.g. landed in bulk without validation, have no row.

    Returns:
        A table with the input columns of the warehouse table ``dq_results``; failed
        rules read ``rule: N rows`` (``rule`` alone for a table-level rule) joined by
        ``; `` (null when none), followed by the source's own rejections
        (``mapping: guest line without CustomerID: 1140 rows``).
    """
    import pyarrow as pa

    from cva_tasks.warehouse.schema import TABLES

    rows = []
    for source, entity in entities:
        uri = lake.dq_summary(source, entity, ds)
        if not storage.exists(uri):
            continue
        summary = storage.read_json(uri)
        counted = [(f["rule"], f["unexpected_count"]) for f in summary["failed_rules"]]
        counted += [(m["rule"], m["rows"]) for m in summary.get("mapping_rejections", [])]
        failed = "; ".join(
            f"{rule}: {count} row{'s' * (count != 1)}" if count else rule for rule, count in counted
        )
        rows.append(
            {
                "as_of_date": ds,
                "source": source,
                "entity": entity,
                "suite": summary["suite"],
                "validated_by_run": summary["run_id"],
                **{name: int(summary[name]) for name in COUNT_COLUMNS},
                "failing_share": float(summary["failing_share"]),
                "failed_rules": failed or None,
                "skipped_rules": "; ".join(summary["skipped_rules"]) or None,
            }
        )
    return pa.Table.from_pylist(rows, schema=TABLES["dq_results"].arrow_schema())

"""Daily DAG step ``publish``: replace the day's rows of every warehouse table."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cva_tasks import shards as sharding
from cva_tasks import storage
from cva_tasks.days import as_day
from cva_tasks.lake import Lake
from cva_tasks.models import registry
from cva_tasks.settings import Settings
from cva_tasks.sources.registry import pipeline_sources

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

#: Lake partitions (under ``scores/``) that the steps write, by warehouse table.
SCORE_TABLES = (
    "customer_scores",
    "segment_profiles",
    "customer_recommendations",
    "feedback_sentiment",
    "feedback_topics",
)
#: Nullable columns that lake partitions written before they existed lack; such a
#: partition publishes them as null instead of failing (a publish-only rerun of an
#: old day). Any other missing column still fails the load.
ADDED_LATER = {"feedback_sentiment": ("unscored_reason",)}
#: The tables ``score`` and ``recommend`` write in parts (:mod:`cva_tasks.shards`), and
#: whether a day without rows has no partition (recommend's "no purchase lines yet").
SHARDED_TABLES = {"customer_scores": False, "customer_recommendations": True}


def publish(ds: date | datetime | str, run_id: str, shards: int = 1) -> dict[str, Any]:
    """Replace the day's rows of every warehouse table with the day's lake outputs.

    Tables: :data:`SCORE_TABLES` (from ``scores/<table>/ds=...``; a missing partition,
    e.g. before the first recommender is trained, publishes no rows), ``model_runs``
    (the runs trained on the day) and ``dq_results`` (the day's validation summary of
    each source entity). Each table's day is replaced in one transaction, so a rerun
    gives the same rows and a failure leaves the table's previous rows for that day.

    Args:
        shards: how many parts ``score`` and ``recommend`` wrote; all must be there,
            from this run (:func:`cva_tasks.shards.collect`), before anything loads.
    """
    from cva_tasks.quality.summary import dq_result_rows
    from cva_tasks.warehouse import get_warehouse

    ds = as_day(ds)
    settings = Settings.from_env()
    lake = settings.lake
    collected = {
        name: sharding.collect(name, ds, shards, run_id, lake, absent_when_empty=absent)
        for name, absent in SHARDED_TABLES.items()
    }
    warehouse = get_warehouse()
    loaded: dict[str, int] = {}
    for table_name in SCORE_TABLES:
        uri = lake.scores(table_name, ds)
        spec = warehouse.spec(table_name)
        rows = storage.read_table(uri) if storage.exists(uri) else spec.arrow_schema().empty_table()
        rows = with_added_columns(table_name, rows)
        loaded[table_name] = warehouse.replace_partition(table_name, rows, ds, run_id)
    loaded["model_runs"] = warehouse.replace_partition(
        "model_runs", model_run_rows(ds, lake), ds, run_id
    )
    entities = [
        (source.name, spec.entity)
        for source in pipeline_sources(ds, settings)
        for spec in source.entities
    ]
    loaded["dq_results"] = warehouse.replace_partition(
        "dq_results", dq_result_rows(lake, ds, entities), ds, run_id
    )
    log.info("published ds=%s to %s: %s", ds, warehouse.location, loaded)
    return {
        "rows": loaded,
        "warehouse": warehouse.location,
        "table": "customer_scores",
        "shards": shards,
        "stale_parts_removed": sum(len(c["removed"]) for c in collected.values()),
    }


def model_run_rows(ds: date, lake: Lake) -> pa.Table:
    """``model_runs`` rows of the runs trained on ``ds`` (an Arrow table)."""
    import pyarrow as pa

    from cva_tasks.warehouse.schema import TABLES

    def day(value: Any) -> date | None:
        return date.fromisoformat(str(value)[:10]) if value else None

    rows = [
        {
            "as_of_date": run.trained_as_of,
            "kind": run.kind,
            "version": run.version,
            "trained_at": run.trained_at,
            "algorithm": run.algorithm,
            "metric": run.metric,
            "metric_value": run.metric_value,
            "higher_is_better": run.higher_is_better,
            "champion_version": run.champion_version,
            "champion_metric_value": run.champion_metric_value,
            "promoted": run.promoted,
            "reason": run.reason,
            "training_start": day(run.training_window.get("start")),
            "training_end": day(run.training_window.get("end")),
            "validation_start": day(run.validation_window.get("start")),
            "validation_end": day(run.validation_window.get("end")),
            "params_json": json.dumps(run.params, sort_keys=True),
            "metrics_json": json.dumps(run.metrics, sort_keys=True),
            "library_versions_json": json.dumps(run.library_versions, sort_keys=True),
        }
        for run in registry.runs_trained_on(ds, lake)
    ]
    return pa.Table.from_pylist(rows, schema=TABLES["model_runs"].arrow_schema())


def with_added_columns(table_name: str, rows: pa.Table) -> pa.Table:
    """``rows`` with the :data:`ADDED_LATER` columns of ``table_name`` it lacks, all null."""
    import pyarrow as pa

    from cva_tasks.warehouse.schema import TABLES

    for name in ADDED_LATER.get(table_name, ()):
        if name not in rows.column_names:
            type_ = TABLES[table_name].column(name).arrow_type
            rows = rows.append_column(pa.field(name, type_), pa.nulls(rows.num_rows, type_))
    return rows

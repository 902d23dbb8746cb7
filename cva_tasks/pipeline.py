"""Boundary functions of the daily DAG ``cva_customer_value``.

For the day ``ds`` (data interval ``[ds, ds + 1)``): check the sources have
landed, stage, build point-in-time features as of the end of the interval,
score, validate and publish. Each function takes the day (and the run id) and
returns a small JSON-able summary; frames travel through the lake.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cva_tasks import storage
from cva_tasks.settings import Settings
from cva_tasks.sources.base import Source
from cva_tasks.sources.registry import all_sources

log = logging.getLogger(__name__)


def as_day(value: date | datetime | str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    return value


def as_of_instant(ds: date) -> datetime:
    """The end of day ``ds``'s interval: features use only what happened before it."""
    return datetime(ds.year, ds.month, ds.day, tzinfo=UTC) + timedelta(days=1)


def pipeline_sources(ds: date) -> list[Source]:
    """Sources that feed the pipeline on ``ds``.

    Every registered source whose active period holds ``ds``, narrowed by
    ``CVA_PIPELINE_SOURCES`` (comma-separated names) when set.
    """
    chosen = {n.strip() for n in os.environ.get("CVA_PIPELINE_SOURCES", "").split(",") if n.strip()}
    return [
        s
        for s in all_sources()
        if (not chosen or s.name in chosen)
        and s.start_date <= ds
        and (s.end_date is None or ds <= s.end_date)
    ]


def source_landed(source_name: str, ds: date | str) -> bool:
    """True when every entity of the source has its raw partition for ``ds``.

    A source that does not feed the pipeline on ``ds`` counts as landed.
    """
    ds = as_day(ds)
    settings = Settings.from_env()
    feeding = {s.name: s for s in pipeline_sources(ds)}
    if source_name not in feeding:
        return True
    missing = [
        spec.entity
        for spec in feeding[source_name].entities
        if not storage.exists(
            storage.partition_uri(settings.data_root, "raw", source_name, spec.entity, ds)
        )
    ]
    if missing:
        log.info("%s has not landed %s for ds=%s yet", source_name, missing, ds)
    return not missing


def stage(ds: date | str) -> dict[str, Any]:
    """Stage day ``ds`` and any earlier landed day that was never staged.

    Earlier days matter when the daily DAG starts on a lake whose sources were
    backfilled first: features need every day before the as-of instant.
    """
    from cva_tasks.staging import stage_day

    ds = as_day(ds)
    settings = Settings.from_env()
    staged_days = set(
        storage.list_partitions(storage.join(settings.data_root, "staged", "transactions"))
    )
    landed_days: set[date] = set()
    for source in all_sources():
        for spec in source.entities:
            landed_days.update(
                storage.list_partitions(
                    storage.join(settings.data_root, "raw", source.name, spec.entity)
                )
            )
    todo = [*sorted(d for d in landed_days if d < ds and d not in staged_days), ds]
    rows: dict[str, int] = {}
    for number, day in enumerate(todo, start=1):
        names = [s.name for s in pipeline_sources(day) if source_landed(s.name, day)]
        counts = stage_day(day, names, settings.data_root)
        if len(todo) > 1:
            log.info("staged %s (%d of %d days): %s", day, number, len(todo), counts)
        if day == ds:
            rows = counts
    return {"ds": ds.isoformat(), "days_staged": len(todo), "rows": rows}


def build_features(ds: date | str) -> dict[str, Any]:
    """Point-in-time customer features as of the end of ``ds``, validated and written."""
    from cva_tasks.features.customer import (
        build_customer_features,
        validate_features,
        write_customer_features,
    )

    ds = as_day(ds)
    settings = Settings.from_env()
    table = build_customer_features(as_of_instant(ds), settings.data_root)
    validate_features(table, ds)
    uri = write_customer_features(table, ds, settings.data_root)
    log.info("features for ds=%s: %d customers at %s", ds, table.num_rows, uri)
    return {"uri": uri, "rows": table.num_rows}


def score(ds: date | str) -> dict[str, Any]:
    """Score the day's customers -> ``scores/customer_scores/ds=...`` (and ``segment_profiles``).

    RFM scores and segments, then the outputs of the day's champion models
    (:func:`cva_tasks.modeling.customer_model_columns`): cluster, lifetime value,
    churn risk, feedback sentiment, each with its model version (null where a model
    has not been trained yet). Grain: one row per customer per as-of date; columns
    those of the warehouse table ``customer_scores``.
    """
    import pyarrow as pa

    from cva_tasks.modeling import customer_model_columns, partition
    from cva_tasks.quality import enforce, validate_frame
    from cva_tasks.segments.rfm import score_rfm
    from cva_tasks.warehouse.schema import TABLES

    ds = as_day(ds)
    settings = Settings.from_env()
    features = storage.read_table(
        storage.join(settings.data_root, "features", "customer", f"ds={ds.isoformat()}")
    ).to_pandas()
    rfm = score_rfm(features)
    frame = features.merge(rfm, on="customer_id", how="left", validate="one_to_one")
    models, profiles = customer_model_columns(features, ds)
    frame = frame.merge(models, on="customer_id", how="left", validate="one_to_one")
    spec = TABLES["customer_scores"]
    frame = frame[[c.name for c in spec.input_columns]]
    suite = settings.expectations_dir / "scores.customer_scores.json"
    start = as_of_instant(ds) - timedelta(days=1)
    outcome = validate_frame(frame, suite, interval_start=start, interval_end=as_of_instant(ds))
    enforce(outcome, source="scores", entity="customer_scores", ds=ds, max_failing_share=0.0)
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(spec.arrow_schema())
    uri = storage.replace_partition(table, scores_partition(settings, ds))
    profile_spec = TABLES["segment_profiles"]
    storage.replace_partition(
        profile_spec.table_from_frame(profiles),
        partition(settings, "scores", "segment_profiles", ds),
    )
    segments = frame["segment"].value_counts().sort_index().to_dict()
    log.info("scored %d customers for ds=%s: %s", len(frame), ds, segments)
    return {
        "uri": uri,
        "rows": len(frame),
        "segments": {str(k): int(v) for k, v in segments.items()},
        "models": {
            name: (None if frame[name].isna().all() else str(frame[name].dropna().iloc[0]))
            for name in frame.columns
            if name.endswith("_model_version")
        },
    }


def scores_partition(settings: Settings, ds: date) -> str:
    return storage.join(settings.data_root, "scores", "customer_scores", f"ds={ds.isoformat()}")


def publish(ds: date | str, run_id: str) -> dict[str, Any]:
    """Replace the day's rows of every warehouse table with the day's lake outputs.

    Tables: ``customer_scores``, ``segment_profiles``, ``customer_recommendations``,
    ``feedback_sentiment``, ``feedback_topics`` (from ``scores/<table>/ds=...``; a
    missing partition, e.g. before the first recommender is trained, publishes no
    rows), ``model_runs`` (the runs trained on the day) and ``dq_results`` (the day's
    validation summary of each source entity). Each table's day is
    replaced in one transaction, so a rerun gives the same rows and a failure leaves
    the table's previous rows for that day.
    """
    from cva_tasks.landing import quality_results
    from cva_tasks.modeling import SCORE_TABLES, model_run_rows, partition
    from cva_tasks.warehouse import get_warehouse

    ds = as_day(ds)
    settings = Settings.from_env()
    warehouse = get_warehouse()
    loaded: dict[str, int] = {}
    for table_name in SCORE_TABLES:
        uri = partition(settings, "scores", table_name, ds)
        spec = warehouse.spec(table_name)
        rows = storage.read_table(uri) if storage.exists(uri) else spec.arrow_schema().empty_table()
        loaded[table_name] = warehouse.replace_partition(table_name, rows, ds, run_id)
    loaded["model_runs"] = warehouse.replace_partition(
        "model_runs", model_run_rows(ds, settings.data_root), ds, run_id
    )
    sources = [source.name for source in pipeline_sources(ds)]
    loaded["dq_results"] = warehouse.replace_partition(
        "dq_results", quality_results(ds, sources), ds, run_id
    )
    log.info("published ds=%s to %s: %s", ds, warehouse.location, loaded)
    return {"rows": loaded, "warehouse": warehouse.location, "table": "customer_scores"}

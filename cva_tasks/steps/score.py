"""Daily DAG step ``score``: RFM segments and every champion model's columns per customer."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cva_tasks import shards as sharding
from cva_tasks import storage
from cva_tasks.days import as_day, as_of_instant
from cva_tasks.features.snapshots import SENTIMENT_FEATURES, DayData
from cva_tasks.models import registry
from cva_tasks.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CLV_COLUMNS = (
    "p_alive",
    "expected_orders_90d",
    "expected_orders_365d",
    "clv_365d",
    "expected_next_order_at",
)
CHURN_COLUMNS = ("churn_probability", "churn_tier", "churn_reasons")


def score(
    ds: date | datetime | str, shard: int = 0, shards: int = 1, run_id: str | None = None
) -> dict[str, Any]:
    """Score the day's customers -> ``scores/customer_scores/ds=...`` (and ``segment_profiles``).

    RFM scores and segments, then the outputs of the day's champion models
    (:func:`customer_model_columns`): cluster, lifetime value, churn risk, feedback
    sentiment, each with its model version (null where a model has not been trained
    yet). Grain: one row per customer per as-of date; columns those of the warehouse
    table ``customer_scores``.

    Args:
        shard, shards: score only the customers of part ``shard`` of ``shards``
            (:mod:`cva_tasks.shards`) and write that part; ``publish`` reads the parts
            as one. RFM scores are quintiles of the whole day's customers, and the
            cluster profiles describe them all, so both are computed on every customer
            (profiles by part 0 only); the models score the part's customers alone.
        run_id: the run writing the part (``publish`` checks all parts are its own).
    """
    import pyarrow as pa

    from cva_tasks.quality import enforce, validate_frame
    from cva_tasks.segments.rfm import load_rules, score_rfm
    from cva_tasks.warehouse.schema import TABLES

    ds = as_day(ds)
    settings = Settings.from_env()
    lake = settings.lake
    data = DayData(ds, lake)
    features = storage.read_table(lake.features("customer", ds)).to_pandas()
    rfm = score_rfm(features, rules=load_rules(settings.rfm_rules))
    frame = features.merge(rfm, on="customer_id", how="left", validate="one_to_one")
    mine = sharding.in_shard(features["customer_id"], shard, shards)
    part = features.loc[mine].reset_index(drop=True)
    frame = frame.loc[mine].reset_index(drop=True)
    # Part 0 writes the profiles of every customer; the other parts need none.
    models, profiles = customer_model_columns(
        part, data, settings, population=features, with_profiles=shard == 0
    )
    frame = frame.merge(models, on="customer_id", how="left", validate="one_to_one")
    spec = TABLES["customer_scores"]
    frame = frame[[c.name for c in spec.input_columns]]
    suite = settings.expectations_dir / "scores.customer_scores.json"
    start = as_of_instant(ds) - timedelta(days=1)
    outcome = validate_frame(frame, suite, interval_start=start, interval_end=as_of_instant(ds))
    enforce(outcome, source="scores", entity="customer_scores", ds=ds, max_failing_share=0.0)
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(spec.arrow_schema())
    uri = sharding.write_part(table, "customer_scores", ds, shard, shards, run_id, lake)
    if shard == 0:
        storage.replace_partition(
            TABLES["segment_profiles"].table_from_frame(profiles),
            lake.scores("segment_profiles", ds),
        )
    segments = frame["segment"].value_counts().sort_index().to_dict()
    log.info(
        "scored %d customers for ds=%s (part %d of %d): %s", len(frame), ds, shard, shards, segments
    )
    return {
        "uri": uri,
        "rows": len(frame),
        "shard": shard,
        "shards": shards,
        "segments": {str(k): int(v) for k, v in segments.items()},
        "models": {
            name: (None if frame[name].isna().all() else str(frame[name].dropna().iloc[0]))
            for name in frame.columns
            if name.endswith("_model_version")
        },
    }


def customer_model_columns(
    features: pd.DataFrame,
    data: DayData,
    settings: Settings,
    population: pd.DataFrame | None = None,
    with_profiles: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model columns of ``customer_scores`` for the day's customers, and the profiles.

    Args:
        features: The day's customer features (one row per customer).
        data: The day; each kind's champion as of ``data.ds`` scores it.
        settings: The run's settings (tier cut-offs, model cache).
        population: The whole day's customers when ``features`` is a part of them
            (default: ``features``): the cluster profiles describe them, and churn fits
            its BG/NBD features on them, so a part scores as the whole day would.
        with_profiles: Compute the cluster profiles (else they are empty).

    Returns:
        ``(columns, profiles)``: one row per customer with ``customer_id`` and the
        warehouse's v2 columns (:data:`cva_tasks.warehouse.schema.SCORE_COLUMNS_V2`),
        null for a kind without a champion yet; and the ``segment_profiles`` rows.
    """
    import pandas as pd

    from cva_tasks.models.churn.training import churn_inputs
    from cva_tasks.warehouse.schema import SCORE_COLUMNS_V2, TABLES

    ds, lake, cache = data.ds, data.lake, settings.model_cache_dir
    out = pd.DataFrame({"customer_id": features["customer_id"].to_numpy()})
    for name in SCORE_COLUMNS_V2:
        out[name] = None
    profile_columns = [c.name for c in TABLES["segment_profiles"].input_columns]
    profiles = pd.DataFrame(columns=profile_columns)

    champion = registry.champion_model("clusters", ds, lake, cache)
    population = features if population is None else population
    if champion is not None and len(features):
        clusters, run = champion.model, champion.run
        ids = clusters.assign(features)
        out["cluster_id"] = ids
        out["cluster_label"] = [clusters.labels[int(i)] for i in ids]
        out["cluster_model_version"] = run.version
    if champion is not None and with_profiles and len(population):
        clusters, run = champion.model, champion.run
        profiles = clusters.profiles(population, clusters.assign(population))
        profiles.insert(0, "as_of_date", ds)
        profiles["model_version"] = run.version
        profiles = profiles[profile_columns]

    champion = registry.champion_model("clv", ds, lake, cache)
    if champion is not None and len(features):
        predicted = champion.model.predict(features, as_of_instant(ds))
        _take(out, predicted, CLV_COLUMNS)
        out["clv_model_version"] = champion.run.version

    sentiment = data.customer_sentiment()
    if sentiment is not None:
        merged = out[["customer_id"]].merge(sentiment, on="customer_id", how="left")
        for name in SENTIMENT_FEATURES:
            out[name] = merged[name].to_numpy()
        out["sentiment_model_version"] = merged["sentiment_model_version"].to_numpy()

    champion = registry.champion_model("churn", ds, lake, cache)
    if champion is not None and len(features):
        predicted = champion.model.predict(
            churn_inputs(features, sentiment),
            tier_cutoffs=settings.churn_tier_cutoffs,
            population=churn_inputs(population, sentiment),
        )
        _take(out, predicted, CHURN_COLUMNS)
        out["churn_model_version"] = champion.run.version
    return out, profiles


def _take(out: pd.DataFrame, predicted: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """Copy ``columns`` of ``predicted`` (keyed by customer_id) into ``out``'s rows."""
    merged = out[["customer_id"]].merge(
        predicted[["customer_id", *columns]], on="customer_id", how="left", validate="one_to_one"
    )
    for name in columns:
        out[name] = merged[name].to_numpy()

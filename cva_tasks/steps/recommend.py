"""Daily DAG step ``recommend``: top-10 and buy-again lists for the active customers."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from typing import Any

from cva_tasks import storage
from cva_tasks.days import as_day
from cva_tasks.features.snapshots import DayData
from cva_tasks.models import registry
from cva_tasks.settings import Settings

log = logging.getLogger(__name__)


def recommend(ds: date | datetime | str) -> dict[str, Any]:
    """Top-10 next-best products and a buy-again list for the day's active customers.

    Active: an order in the last ``CVA_RECOMMEND_ACTIVE_DAYS`` days (default 365).
    Uses the recommender champion as of ``ds``; writes
    ``scores/customer_recommendations/ds=...`` (one row per customer, list and rank).
    Without a champion the day's partition is removed.
    """
    from cva_tasks.models.recommend.training import recommender_inputs
    from cva_tasks.segments.rfm import load_rules
    from cva_tasks.warehouse.schema import TABLES

    ds = as_day(ds)
    settings = Settings.from_env()
    lake = settings.lake
    target = lake.scores("customer_recommendations", ds)
    champion = registry.champion_model("recommender", ds, lake, settings.model_cache_dir)
    if champion is None:
        if storage.exists(target):
            storage.remove(target)
        return {"rows": 0, "reason": "no recommender trained yet"}
    model, run = champion.model, champion.run
    data = DayData(ds, lake)
    interactions, _items, customers = recommender_inputs(data, load_rules(settings.rfm_rules))
    features = data.features_at(ds)
    active = features.loc[features["recency_days"] <= settings.recommend_active_days, "customer_id"]
    started = time.perf_counter()
    rows = model.predict(
        active.to_numpy(),
        interactions,
        customers=customers,
        as_of=data.as_of,
    )
    rows = rows.assign(
        as_of_date=ds,
        model_version=run.version,
        **{name: rows[name].astype(str) for name in ("list", "reason", "model")},
    )
    table = TABLES["customer_recommendations"].table_from_frame(rows)
    storage.replace_partition(table, target)
    log.info(
        "recommended for %d active customers with %s in %.1f s (%d rows)",
        len(active),
        run.version,
        time.perf_counter() - started,
        table.num_rows,
    )
    return {
        "customers": len(active),
        "rows": table.num_rows,
        "model_version": run.version,
        "models": rows["model"].value_counts().to_dict(),
    }

"""Daily DAG step ``recommend``: top-10 and buy-again lists for the active customers."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime
from typing import Any

from cva_tasks import shards as sharding
from cva_tasks import storage
from cva_tasks.days import as_day
from cva_tasks.features.snapshots import DayData
from cva_tasks.models import registry
from cva_tasks.settings import Settings

log = logging.getLogger(__name__)


def recommend(
    ds: date | datetime | str, shard: int = 0, shards: int = 1, run_id: str | None = None
) -> dict[str, Any]:
    """Top-10 next-best products and a buy-again list for the day's active customers.

    Active: an order in the last ``CVA_RECOMMEND_ACTIVE_DAYS`` days (default 365).
    Uses the recommender champion as of ``ds``; writes
    ``scores/customer_recommendations/ds=...`` (one row per customer, list and rank).
    Without a champion (the recommender declined: not enough data yet), and for any
    active customer the champion gives no ``next_best`` list, the recent bestsellers
    the customer has not bought (model ``bestseller``,
    :mod:`cva_tasks.models.recommend.fallback`). Only a day without any purchase line
    has no rows (its partition is removed).

    Args:
        shard, shards: only the active customers of part ``shard`` of ``shards``
            (:mod:`cva_tasks.shards`); the part is written even when empty, so
            ``publish`` can tell a part without rows from a part not yet run.
        run_id: the run writing the part (``publish`` checks all parts are its own).
    """
    import pandas as pd

    from cva_tasks.models.recommend.fallback import MODEL_NAME, bestseller_lists
    from cva_tasks.models.recommend.training import recommender_inputs
    from cva_tasks.segments.rfm import load_rules
    from cva_tasks.warehouse.schema import TABLES

    ds = as_day(ds)
    settings = Settings.from_env()
    lake = settings.lake
    champion = registry.champion_model("recommender", ds, lake, settings.model_cache_dir)
    data = DayData(ds, lake)
    interactions, items, customers = recommender_inputs(data, load_rules(settings.rfm_rules))
    features = data.features_at(ds)
    active = features.loc[features["recency_days"] <= settings.recommend_active_days, "customer_id"]
    active = active[sharding.in_shard(active, shard, shards)]
    started = time.perf_counter()
    if champion is not None:
        version = champion.run.version
        rows = champion.model.predict(
            active.to_numpy(),
            interactions,
            customers=customers,
            as_of=data.as_of,
        )
        rows = rows.assign(**{name: rows[name].astype(str) for name in ("list", "reason", "model")})
    else:
        version = MODEL_NAME
        rows = pd.DataFrame(columns=["customer_id", "list", "rank", "item_id", "model"])
    with_list = set(rows.loc[rows["list"] == "next_best", "customer_id"].astype(str))
    without = [c for c in active.astype(str) if c not in with_list]
    fallback = bestseller_lists(without, interactions, items, data.as_of)
    if len(fallback):
        rows = pd.concat([rows, fallback], ignore_index=True) if len(rows) else fallback
    if rows.empty and shards == 1:
        target = lake.scores("customer_recommendations", ds)
        if storage.exists(target):
            storage.remove(target)
        return {"rows": 0, "reason": "no purchase lines yet", "model_version": None}
    spec = TABLES["customer_recommendations"]
    if rows.empty:  # a part without rows still says it ran
        table = spec.arrow_schema().empty_table()
    else:
        table = spec.table_from_frame(rows.assign(as_of_date=ds, model_version=version))
    sharding.write_part(table, "customer_recommendations", ds, shard, shards, run_id, lake)
    log.info(
        "recommended for %d active customers (part %d of %d) with %s in %.1f s (%d rows, "
        "%d customers given bestsellers)",
        len(active),
        shard,
        shards,
        version,
        time.perf_counter() - started,
        table.num_rows,
        fallback["customer_id"].nunique() if len(fallback) else 0,
    )
    return {
        "customers": len(active),
        "rows": table.num_rows,
        "model_version": version,
        "models": rows["model"].value_counts().to_dict(),
        "bestseller_customers": int(fallback["customer_id"].nunique()) if len(fallback) else 0,
    }

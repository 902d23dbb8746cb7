"""Out-of-time evaluation of the recommender: the truth and the ranking metrics.

Protocol (used by :func:`~cva_tasks.models.recommend.train_recommenders` and by
``cva evaluate recommendations`` on real data): train on purchases before a split
instant; the relevant items of a customer are the items they bought in the test window
that they had not bought before (:func:`new_items_after`); only customers with a
purchase in both periods and at least one such new item count. Metrics at ``k``
(:func:`ranking_metrics`): precision (hits / k), recall (hits / relevant), NDCG (binary
gains, ideal DCG over ``min(relevant, k)`` positions), MAP (average precision over
``min(relevant, k)``) and catalogue coverage (distinct recommended items / items in the
catalogue).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cva_tasks.models.recommend.lists import concat_recommendations
from cva_tasks.models.recommend.purchases import (
    CustomerGroups,
    PurchaseLog,
    aware_timestamp,
    check_interactions,
    epoch_us,
    purchase_log,
    stamp_us,
)
from cva_tasks.models.recommend.ranking import sorted_unique

if TYPE_CHECKING:
    from cva_tasks.models.recommend.model import Recommender


def new_items_after(
    interactions: pd.DataFrame,
    split_at: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The out-of-time truth: items customers bought in ``[split_at, end)`` for the first time.

    Only customers with a purchase before ``split_at`` count (a purchase in both
    periods); an item they had bought before ``split_at`` is not relevant.

    Returns:
        One row per (customer, new item): ``customer_id``, ``item_id``, sorted.
    """
    check_interactions(interactions)
    split_us = stamp_us(aware_timestamp(split_at, "split_at"))
    when = epoch_us(interactions["occurred_at"])
    before = when < split_us
    after = ~before
    if end is not None:
        after &= when < stamp_us(aware_timestamp(end, "end"))
    # Only the customers who buy after the split matter: encode against them, so the
    # big arrays are one int64 per line and the rest is small.
    returning = pd.Index(pd.unique(interactions["customer_id"][after]))
    customer = returning.get_indexer(interactions["customer_id"])
    lines = np.flatnonzero((before & (customer >= 0)) | after)
    customer = customer[lines]
    is_before = before[lines]
    del before, after
    item, item_ids = pd.factorize(interactions["item_id"].iloc[lines])
    n_items = max(len(item_ids), 1)
    pair = customer.astype(np.int64) * n_items + item
    seen = sorted_unique(pair[is_before])
    fresh = sorted_unique(pair[~is_before])
    bought_before = np.zeros(len(returning), dtype=bool)
    bought_before[customer[is_before]] = True
    fresh = fresh[~np.isin(fresh, seen, assume_unique=True)]
    fresh = fresh[bought_before[fresh // n_items]]
    out = pd.DataFrame(
        {
            "customer_id": returning[fresh // n_items],
            "item_id": pd.Index(item_ids)[fresh % n_items],
        }
    )
    return out.sort_values(["customer_id", "item_id"], kind="stable").reset_index(drop=True)


def ranking_metrics(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = 10,
    catalogue_size: int | None = None,
) -> dict[str, float]:
    """Precision, recall, NDCG, MAP and coverage at ``k`` over the customers in ``relevant``.

    Args:
        recommendations: ``customer_id, item_id, rank`` (ranks from 1), next-best list.
        relevant: ``customer_id, item_id`` of the test items; every customer in it counts,
            with or without recommendations.
        k: Cut-off.
        catalogue_size: Items that could be recommended (coverage's denominator).

    Returns:
        ``precision_at_k``, ``recall_at_k``, ``ndcg_at_k``, ``map_at_k`` (means over
        customers), ``coverage_at_k`` and ``customers`` (named with the actual ``k``).
    """
    if relevant.empty:
        raise ValueError("relevant is empty: no customer to evaluate")
    truth = relevant[["customer_id", "item_id"]].drop_duplicates()
    n_relevant = truth.groupby("customer_id", sort=True).size()
    customers = n_relevant.index
    recs = recommendations.loc[
        (recommendations["rank"] <= k) & recommendations["customer_id"].isin(customers),
        ["customer_id", "item_id", "rank"],
    ]
    hits = recs.merge(truth, on=["customer_id", "item_id"], how="inner")
    hits = hits.sort_values(["customer_id", "rank"], kind="stable")
    hits["hit_number"] = hits.groupby("customer_id").cumcount() + 1
    rank = hits["rank"].to_numpy(dtype=float)
    hits["gain"] = 1.0 / np.log2(rank + 1)
    hits["precision_at_hit"] = hits["hit_number"] / rank
    per = hits.groupby("customer_id").agg(
        hits=("rank", "size"), dcg=("gain", "sum"), ap=("precision_at_hit", "sum")
    )
    per = per.reindex(customers, fill_value=0)
    rel = n_relevant.to_numpy(dtype=float)
    ideal_len = np.minimum(rel, k).astype(int)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    idcg = discounts[ideal_len - 1]
    figures = {
        f"precision_at_{k}": float(np.mean(per["hits"].to_numpy() / k)),
        f"recall_at_{k}": float(np.mean(per["hits"].to_numpy() / rel)),
        f"ndcg_at_{k}": float(np.mean(per["dcg"].to_numpy() / idcg)),
        f"map_at_{k}": float(np.mean(per["ap"].to_numpy() / ideal_len)),
        "customers": len(customers),
    }
    if catalogue_size:
        figures[f"coverage_at_{k}"] = float(recs["item_id"].nunique() / catalogue_size)
    return figures


def evaluate_model(
    model: Recommender,
    interactions: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = 10,
    *,
    as_of: datetime | pd.Timestamp | None = None,
    customers: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Score the customers of ``relevant`` from their purchases before ``as_of``.

    Args:
        model: The fitted recommender.
        interactions: Purchase lines; only those before ``as_of`` are used.
        relevant: ``customer_id, item_id`` truth (e.g. :func:`new_items_after`).
        k: Cut-off.
        as_of: The split instant (default: the model's ``as_of``).
        customers: Current customer groups (default: the model's).

    Returns:
        :func:`ranking_metrics` of the ``next_best`` lists.
    """
    as_of = aware_timestamp(as_of or model.as_of, "as_of")
    check_interactions(interactions)
    ids = pd.Index(relevant["customer_id"].unique(), name="customer_id")
    purchases = purchase_log(interactions, model.item_ids, as_of, customer_ids=ids, check=False)
    groups = model.groups if customers is None else CustomerGroups.from_frame(customers)
    return evaluate_on_log(model, purchases, groups, relevant, k)


def evaluate_on_log(
    model: Recommender,
    purchases: PurchaseLog,
    groups: CustomerGroups,
    relevant: pd.DataFrame,
    k: int,
) -> dict[str, float]:
    """:func:`evaluate_model` for the customers of an encoded purchase log."""
    recs = concat_recommendations(model.predict_purchases(purchases, groups, k, True, 0, None))
    return ranking_metrics(recs, relevant, k, catalogue_size=len(model.item_ids))

"""Model selection: validate every candidate out of time, choose the best, refit it.

The chosen model has the best ``ndcg_at_10`` on a validation window that ends at the
as-of instant (protocol: :mod:`~cva_tasks.models.recommend.metrics`); it is then
refitted on all purchases, the validation window included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.recommend.candidates import CANDIDATES, DEFAULT_PARAMS
from cva_tasks.models.recommend.metrics import evaluate_on_log, new_items_after
from cva_tasks.models.recommend.model import Recommender
from cva_tasks.models.recommend.purchases import (
    aware_timestamp,
    check_interactions,
    purchase_log,
    training_data,
)

log = logging.getLogger(__name__)

COMPARISON_METRIC = "ndcg_at_10"


def train_recommenders(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    customers: pd.DataFrame | None,
    as_of: datetime | pd.Timestamp,
    *,
    validation_days: int = 30,
    seed: int = 0,
    candidates: Sequence[str] = CANDIDATES,
    k: int = 10,
    model_params: dict[str, dict[str, Any]] | None = None,
    **recommender_options: Any,
) -> tuple[Recommender, dict[str, Any]]:
    """Validate every candidate out of time, choose the best, refit it on all data.

    Protocol: each candidate is fitted on the purchases before
    ``as_of - validation_days`` and scored for the customers who bought, in the last
    ``validation_days`` before ``as_of``, at least one item they had not bought
    before (and had bought something before the window); metrics at ``k`` as in
    :func:`~cva_tasks.models.recommend.metrics.ranking_metrics`, on the ``next_best``
    list. The chosen model has the best
    ``ndcg_at_10`` (ties: the earlier candidate, the simpler one). It is then
    **refitted on all purchases before as_of** (validation window included) and
    returned with the report as its ``metrics``.

    Args:
        interactions: Purchase lines (lines at or after ``as_of`` are ignored).
        items: ``item_id, name``.
        customers: ``customer_id, country[, segment]`` or ``None``.
        as_of: End (exclusive) of the data.
        validation_days: Length of the validation window.
        seed: Seed of the stochastic models.
        candidates: Model names to compare (default
            :data:`~cva_tasks.models.recommend.candidates.CANDIDATES`).
        k: Cut-off of the metrics.
        model_params: Per candidate, overrides of
            :data:`~cva_tasks.models.recommend.candidates.DEFAULT_PARAMS`.
        **recommender_options: Passed to :class:`Recommender` (``min_items``,
            ``trend_weight``, ``recent_window_days``, ``min_group_customers``,
            ``buy_again``).

    Returns:
        ``(recommender, report)``; report: ``as_of``, ``validation`` (window,
        customers, protocol), ``models`` (per candidate: the metrics and
        ``fit_seconds``), ``chosen``, ``comparison_metric``, ``refit_seconds``.

    Raises:
        NotEnoughData: when the validation window holds no customer to evaluate.
    """
    if validation_days < 1:
        raise ValueError(f"validation_days must be positive, got {validation_days}")
    if not candidates:
        raise ValueError("candidates is empty")
    unknown = [name for name in candidates if name not in DEFAULT_PARAMS]
    if unknown:
        raise ValueError(f"unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    as_of = aware_timestamp(as_of, "as_of")
    check_interactions(interactions)
    split = as_of - timedelta(days=validation_days)
    relevant = new_items_after(interactions, split, as_of)
    if relevant.empty:
        raise NotEnoughData(
            f"no customer bought a new item in the validation window [{split}, {as_of}) "
            "after buying before it: cannot validate"
        )
    metric = f"ndcg_at_{k}"
    started = time.perf_counter()
    purchases, names, groups = training_data(interactions, items, customers, split, check=False)
    prepare_seconds = time.perf_counter() - started
    scoring = purchase_log(
        interactions,
        purchases.item_ids,
        split,
        customer_ids=pd.Index(relevant["customer_id"].unique(), name="customer_id"),
        check=False,
    )
    models: dict[str, dict[str, Any]] = {}
    for name in candidates:
        log.info("validating %s (train before %s, validate until %s)", name, split, as_of)
        fit_started = time.perf_counter() - prepare_seconds  # the shared log counts for each
        fitted = Recommender(
            name, seed=seed, model_params=(model_params or {}).get(name), **recommender_options
        ).fit_purchases(purchases, names, groups, prepared_seconds=prepare_seconds)
        fit_seconds = time.perf_counter() - fit_started
        figures = evaluate_on_log(fitted, scoring, groups, relevant, k)
        models[name] = {**figures, "fit_seconds": round(fit_seconds, 3)}
        log.info("%s: %s %.4f (fit %.1f s)", name, metric, figures[metric], fit_seconds)
        del fitted
    del purchases, scoring
    chosen = max(candidates, key=lambda n: (models[n][metric], -list(candidates).index(n)))
    started = time.perf_counter()
    final = Recommender(
        chosen, seed=seed, model_params=(model_params or {}).get(chosen), **recommender_options
    ).fit(interactions, items, customers, as_of)
    report = {
        "as_of": as_of.isoformat(),
        "validation": {
            "start": split.isoformat(),
            "end": as_of.isoformat(),
            "customers": int(relevant["customer_id"].nunique()),
            "relevant_items": len(relevant),
            "protocol": (
                f"fit before {split.date()}, score customers with a purchase before it and "
                f"a new item in [{split.date()}, {as_of.date()}); metrics at {k} on new items"
            ),
        },
        "models": models,
        "chosen": chosen,
        "comparison_metric": metric,
        "refit_seconds": round(time.perf_counter() - started, 3),
    }
    final.metrics = report
    return final, report

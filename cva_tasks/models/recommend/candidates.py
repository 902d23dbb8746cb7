"""The candidate models of the ``next_best`` list and their defaults.

:func:`make_model` builds a fresh, unfitted model by candidate name;
:data:`MODEL_CLASSES` names the class of each saved model. How the defaults were
chosen, with the figures: ``docs/models/recommend.md``.
"""

from __future__ import annotations

from typing import Any

from cva_tasks.models.recommend.als import ALSRecommender
from cva_tasks.models.recommend.item_knn import ItemKNNRecommender
from cva_tasks.models.recommend.popularity import PopularityRecommender
from cva_tasks.models.recommend.purchases import Weighting

#: The candidates compared by :func:`~cva_tasks.models.recommend.train_recommenders`,
#: simplest first (ties go to the earlier one).
CANDIDATES = ("bestsellers_all_time", "bestsellers_recent", "item_cf", "als")

#: A model of the ``next_best`` list, as :func:`make_model` returns it.
NextBestModel = PopularityRecommender | ItemKNNRecommender | ALSRecommender

#: The class of each kind of saved ``next_best`` model, by its ``class`` in the JSON.
MODEL_CLASSES: dict[str, type[NextBestModel]] = {
    "popularity": PopularityRecommender,
    "item_cf": ItemKNNRecommender,
    "als": ALSRecommender,
}

# Defaults chosen out of time on Online Retail, before the test period of ``cva
# evaluate recommendations`` (docs/models/recommend.md).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "bestsellers_all_time": {"window_days": None},
    "bestsellers_recent": {"window_days": 30},
    "item_cf": {
        "neighbours": 50,
        "alpha": 0.5,
        "shrink": 0.0,
        "bm25": True,
        "similarity_weighting": Weighting(transform="binary"),
        "profile_weighting": Weighting(transform="binary"),
    },
    "als": {
        "factors": 64,
        "regularization": 0.01,
        "alpha": 1.0,
        "iterations": 15,
        "weighting": Weighting(half_life_days=90, quantity="log1p"),
    },
}


def make_model(name: str, seed: int = 0, **overrides: Any) -> NextBestModel:
    """A fresh, unfitted model by candidate name with :data:`DEFAULT_PARAMS` and overrides.

    Args:
        name: One of :data:`CANDIDATES`.
        seed: Seed (used by ALS).
        **overrides: Constructor arguments replacing the defaults.
    """
    if name not in DEFAULT_PARAMS:
        raise ValueError(f"unknown recommender {name!r}; choose one of {list(CANDIDATES)}")
    params = {**DEFAULT_PARAMS[name], **overrides}
    for key, value in list(params.items()):
        if key.endswith("weighting") and isinstance(value, dict):
            params[key] = Weighting.from_dict(value)
    if name.startswith("bestsellers"):
        return PopularityRecommender(**params)
    if name == "item_cf":
        return ItemKNNRecommender(**params)
    return ALSRecommender(seed=seed, **params)

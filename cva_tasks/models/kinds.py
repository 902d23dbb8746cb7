"""The model kinds: one registry that every other place reads.

A kind names its model class, the function that trains it for a day and the kinds
whose outputs it reads (churn uses the lifetime-value and feedback figures, so it
trains after them). Classes and trainers are named as ``module:attribute`` and
imported only when used, so reading this registry (the DAG file does, at parse
time) costs nothing.

Adding a kind: a package under ``cva_tasks/models/`` whose model class follows
:class:`cva_tasks.models.base.Model`, a trainer with the signature of
:data:`cva_tasks.models.base.Trainer`, one :class:`ModelKind` line below, and a
case in ``tests/unit/models/test_model_contract.py``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelKind:
    """One kind of model.

    Attributes:
        name: short name, used in versions (``<name>-YYYYMMDD``), lake paths, task ids.
        model: ``module:Class`` of the model (:class:`cva_tasks.models.base.Model`).
        trainer: ``module:function`` training it for a day
            (:data:`cva_tasks.models.base.Trainer`).
        after: kinds (and ``score_feedback``) whose outputs it reads while training.
        description: one line, for logs and the README.
        retrain_check: ``module:function`` ``(day, settings) -> (due, why)`` that may
            retrain the kind before its schedule (churn: feature drift).
    """

    name: str
    model: str
    trainer: str
    after: tuple[str, ...] = ()
    description: str = ""
    retrain_check: str | None = None

    def model_class(self) -> Any:
        return _attribute(self.model)

    def train_function(self) -> Any:
        return _attribute(self.trainer)

    def retrain_function(self) -> Any | None:
        return _attribute(self.retrain_check) if self.retrain_check else None


def _attribute(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


_KINDS = (
    ModelKind(
        "clv",
        "cva_tasks.models.clv.model:LifetimeValueModel",
        "cva_tasks.models.clv.training:train_for_day",
        description="BG/NBD + Gamma-Gamma lifetime value",
    ),
    ModelKind(
        "clusters",
        "cva_tasks.models.clusters.model:ClusterModel",
        "cva_tasks.models.clusters.training:train_for_day",
        description="behavioural K-Means clusters",
    ),
    ModelKind(
        "churn",
        "cva_tasks.models.churn.model:ChurnModel",
        "cva_tasks.models.churn.training:train_for_day",
        after=("clv", "score_feedback"),
        description="calibrated churn risk with reasons",
        retrain_check="cva_tasks.models.churn.training:drift_due",
    ),
    ModelKind(
        "recommender",
        "cva_tasks.models.recommend.model:Recommender",
        "cva_tasks.models.recommend.training:train_for_day",
        description="next-best products and buy-again lists",
    ),
    ModelKind(
        "sentiment",
        "cva_tasks.models.sentiment.model:SentimentModel",
        "cva_tasks.models.sentiment.training:train_for_day",
        description="sentiment of customer feedback (Keras)",
    ),
)

#: Every kind by name, in the order model runs are reported.
KINDS: dict[str, ModelKind] = {kind.name: kind for kind in _KINDS}
KIND_NAMES: tuple[str, ...] = tuple(KINDS)


def get_kind(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown model kind {name!r}; expected one of {KIND_NAMES}") from None

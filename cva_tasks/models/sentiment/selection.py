"""Model selection for sentiment: train on rated feedback, validate out of sample.

:func:`train_sentiment` checks there is enough rated feedback, holds out the latest
rows (or a stratified share), fits a :class:`SentimentModel` on the rest and measures
it, the VADER baseline and the champion in force on the same held-out rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.sentiment.metrics import binary_metrics, vader_probabilities, vader_scores
from cva_tasks.models.sentiment.model import SentimentModel
from cva_tasks.models.sentiment.texts import (
    _order_values,
    _split_index,
    blank_texts,
    prepare_texts,
    ratings_to_labels,
    sample_rows,
)

log = logging.getLogger(__name__)


def train_sentiment(
    texts: Sequence[object],
    ratings: Sequence[object],
    *,
    seed: int = 0,
    validation_share: float = 0.2,
    order: Sequence[object] | None = None,
    neutral_band: Sequence[float] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    champion: SentimentModel | None = None,
    max_train_texts: int | None = None,
) -> tuple[SentimentModel, dict[str, Any]]:
    """Train on rated feedback and measure it out of sample.

    Rows rated 3 or without a rating are left out. The validation part is the
    latest ``validation_share`` of the rows by ``order`` (out of time) when
    ``order`` is given, else a stratified random share under ``seed``; the model
    is trained on the rest (which holds out its own calibration slice) and the
    returned model is that model, so the metrics describe exactly it.

    Args:
        texts: Feedback texts.
        ratings: Star ratings 1-5 or missing, one per text.
        seed: Seeds the split and the training.
        validation_share: Share of the rated rows held out for the metrics.
        order: Optional time per row (e.g. ``submitted_at``) for an out-of-time split.
        neutral_band: Stored with the model (see :class:`SentimentModel`).
        hyperparameters: Overrides of
            :data:`cva_tasks.models.sentiment.network.DEFAULT_HYPERPARAMETERS`.
        champion: The model in force, scored on the same validation rows
            (``champion_roc_auc`` etc. in the metrics) for champion/challenger.
        max_train_texts: At most this many training rows (the model's fit and
            calibration slice): a seeded random sample of the training part when it is
            larger (``None``: all). The validation part is never sampled.

    Returns:
        ``(model, metrics)``; metrics: ``roc_auc``, ``balanced_accuracy``,
        ``macro_f1`` (at the model's threshold) on the validation part, the same
        for the VADER baseline (``baseline_vader_*``), ``n_train``,
        ``n_validation``, ``n_validation_unscored``, ``train_seconds``,
        ``validation`` ("out of time" or "stratified random"), ``n_train_available``
        (the training part before sampling).
    """
    listed = texts.tolist() if isinstance(texts, (np.ndarray, pd.Series)) else list(texts)
    # fromiter keeps one element per text, whatever it holds (a list stays one object).
    values = np.fromiter(listed, dtype=object, count=len(listed))
    del listed
    # Blank rows are found on the raw texts; only the rows used are masked and cut
    # (prepare_texts), as the fit would: at a million texts that is most of the work.
    blank = blank_texts(values)
    y_all = ratings_to_labels(ratings)
    if len(y_all) != len(values):
        raise ValueError(f"{len(y_all)} ratings for {len(values)} texts")
    keys = _order_values(order, len(values))
    rated = np.flatnonzero(~np.isnan(y_all) & ~blank)
    y = y_all[rated]
    n_negative = int((y == 0).sum())
    if n_negative < 10 or len(y) - n_negative < 10:
        raise NotEnoughData(
            f"{n_negative} negative and {len(y) - n_negative} positive rated texts: sentiment "
            "training needs at least 10 of each (ratings 1-2 and 4-5)"
        )
    train_rows, valid_rows = _split_index(
        len(y),
        y,
        validation_share,
        seed=seed,
        order=None if keys is None else keys[rated],
        what="validation",
    )
    n_train_available = len(train_rows)
    # Training time and memory grow with the texts, the model's quality hardly past a
    # hundred thousand (held-out ROC AUC was flat from the first epoch on 117k demo
    # texts): train on a seeded sample, in time order, so a rerun gives the same model.
    train_rows = train_rows[sample_rows(len(train_rows), max_train_texts, seed)]
    if len(train_rows) < n_train_available:
        log.info(
            "sentiment: training on a seeded sample of %d of %d texts",
            len(train_rows),
            n_train_available,
        )
    rated_texts = values[rated]
    # Object arrays of strings, as the old all-texts prepare gave (typed Any for mypy:
    # the models take sequences of strings).
    train_texts: Any = prepare_texts(rated_texts[train_rows])[0]
    valid_texts: Any = prepare_texts(rated_texts[valid_rows])[0]
    model = SentimentModel(
        seed=seed, neutral_band=neutral_band, hyperparameters=hyperparameters
    ).fit(
        train_texts,
        y[train_rows],
        order=None if keys is None else keys[rated][train_rows],
    )
    y_valid = y[valid_rows]
    probabilities = model.predict_proba(valid_texts)
    vader = vader_scores(valid_texts)
    # VADER's compound is in -1..1 with its cut at 0.05: shift so 0.5 is that cut.
    vader_metrics = binary_metrics(y_valid, vader_probabilities(vader))
    champion_metrics = (
        binary_metrics(y_valid, champion.predict_proba(valid_texts)) if champion else {}
    )
    metrics = {
        **binary_metrics(y_valid, probabilities),
        **{f"baseline_vader_{k}": v for k, v in vader_metrics.items()},
        **{f"champion_{k}": v for k, v in champion_metrics.items()},
        "n_train": len(train_rows),
        "n_train_available": n_train_available,
        "n_validation": len(valid_rows),
        "n_validation_unscored": int(np.isnan(probabilities).sum()),
        "validation_negative_share": round(float((y_valid == 0).mean()), 4),
        "validation": "out of time" if keys is not None else "stratified random",
        "train_seconds": model.params["train_seconds"],
    }
    log.info(
        "sentiment: validation (%s, %d rows) ROC AUC %.3f, balanced accuracy %.3f "
        "(VADER %.3f / %.3f)",
        metrics["validation"],
        metrics["n_validation"],
        metrics["roc_auc"],
        metrics["balanced_accuracy"],
        metrics["baseline_vader_roc_auc"],
        metrics["baseline_vader_balanced_accuracy"],
    )
    return model, metrics

"""Metrics of a sentiment model and the VADER baseline it is compared with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cva_tasks.models.sentiment.texts import prepare_texts

#: VADER's usual cut for "positive" on the compound score.
VADER_THRESHOLD = 0.05


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """ROC AUC, balanced accuracy and macro-F1 at 0.5; unscored (NaN) rows count as 0.5.

    Counting unscored texts as undecided (0.5, i.e. predicted positive at the
    threshold) keeps every row in the denominator instead of flattering the
    model by dropping the texts it could not read.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    y = np.asarray(labels, dtype=int)
    p = np.nan_to_num(np.asarray(probabilities, dtype=float), nan=0.5)
    predicted = (p >= 0.5).astype(int)
    return {
        "roc_auc": round(float(roc_auc_score(y, p)), 4),
        "balanced_accuracy": round(float(balanced_accuracy_score(y, predicted)), 4),
        "macro_f1": round(float(f1_score(y, predicted, average="macro")), 4),
    }


def vader_scores(texts: Sequence[str]) -> np.ndarray:
    """VADER's compound score (-1..1) per text; 0 for blank texts."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    cleaned, blank = prepare_texts(texts)
    return np.array(
        [
            0.0 if b else analyzer.polarity_scores(t)["compound"]
            for t, b in zip(cleaned, blank, strict=True)
        ]
    )


def vader_probabilities(compound: np.ndarray) -> np.ndarray:
    """VADER's compound (-1..1, cut at :data:`VADER_THRESHOLD`) shifted so 0.5 is that cut."""
    return np.clip((compound - VADER_THRESHOLD + 1) / 2, 0, 1)

"""Scoring feedback with a sentiment model, and what the pipeline derives from it.

* :func:`score_feedback`: one row per canonical feedback row, rated or not.
* :func:`customer_sentiment_features`: per-customer features as of an instant (point in
  time: only feedback submitted strictly before it).
* :func:`complaint_topics`: the terms and two-word phrases that mark the recent
  negative feedback (weighted log-odds with an informative Dirichlet prior).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.days import utc_series, utc_timestamp
from cva_tasks.models.sentiment.model import NEGATIVE, POSITIVE, SentimentModel
from cva_tasks.models.sentiment.texts import NEGATIONS, prepare_texts

log = logging.getLogger(__name__)

#: Columns of :func:`complaint_topics`' output and their dtypes.
TOPIC_DTYPES: dict[str, Any] = {
    "term": object,
    "score": float,
    "negative_docs": "int64",
    "positive_docs": "int64",
    "share_of_negative": float,
}
#: Columns of :func:`customer_sentiment_features`' output.
FEATURE_COLUMNS = (
    "customer_id",
    "avg_sentiment_90d",
    "last_feedback_sentiment",
    "negative_feedback_90d",
)


def score_feedback(model: SentimentModel, feedback: pd.DataFrame) -> pd.DataFrame:
    """Score canonical feedback rows (rated or not).

    Args:
        model: A trained model.
        feedback: Columns ``feedback_id``, ``customer_id``, ``submitted_at``, ``text``.

    Returns:
        One row per feedback: ``feedback_id``, ``customer_id``, ``submitted_at``,
        ``probability`` (NaN when unscored), ``label``, ``unscored_reason`` (``None``
        when scored; e.g. ``language:de`` for a language the model was not trained on).
    """
    _require(feedback, ("feedback_id", "customer_id", "submitted_at", "text"), "feedback")
    predicted = model.predict(feedback["text"])
    return pd.DataFrame(
        {
            "feedback_id": feedback["feedback_id"].to_numpy(),
            "customer_id": feedback["customer_id"].to_numpy(),
            "submitted_at": feedback["submitted_at"].to_numpy(),
            "probability": predicted["probability"].to_numpy(),
            "label": predicted["label"].to_numpy(),
            "unscored_reason": predicted["unscored_reason"].to_numpy(),
        }
    )


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


def _utc(values: pd.Series, what: str) -> pd.Series:
    """:func:`cva_tasks.days.utc_series`, refusing a column that holds no datetimes."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise ValueError(f"{what} must be a datetime column, got {values.dtype}")
    return utc_series(values)


def _check_window(window_days: int) -> None:
    if not isinstance(window_days, (int, np.integer)) or window_days <= 0:
        raise ValueError(f"window_days={window_days!r}: must be a positive whole number of days")


def customer_sentiment_features(
    scored: pd.DataFrame, as_of: datetime | pd.Timestamp | str, window_days: int = 90
) -> pd.DataFrame:
    """Per-customer sentiment features as of an instant (point in time).

    Only feedback submitted strictly before ``as_of`` is used. Naive times are
    read as UTC.

    Args:
        scored: Columns ``customer_id``, ``submitted_at``, ``probability`` (NaN
            = unscored, e.g. a language the model was not trained on: such rows count
            nowhere), ``label``; one row per scored feedback.
        as_of: The instant the features describe.
        window_days: Length of the recent window ``[as_of - window_days, as_of)``.

    Returns:
        One row per customer with feedback before ``as_of``, sorted by
        ``customer_id``: ``avg_sentiment_90d`` (mean probability of the scored
        feedback in the window; NaN when none), ``last_feedback_sentiment``
        (probability of the latest scored feedback before ``as_of``, any age;
        unscored pieces are skipped; NaN when there is none),
        ``negative_feedback_90d`` (count of feedback labelled negative in the
        window). The column names keep "90d" whatever ``window_days`` is, so
        the feature table's schema does not change with the setting.
    """
    _require(scored, ("customer_id", "submitted_at", "probability", "label"), "scored")
    _check_window(window_days)
    stamp = utc_timestamp(as_of)
    frame = scored.assign(submitted_at=_utc(scored["submitted_at"], "submitted_at"))
    frame = frame[frame["submitted_at"] < stamp]
    if frame.empty:
        return _empty_features(scored)
    frame = frame.assign(
        probability=pd.to_numeric(frame["probability"]).astype(float),
        in_window=frame["submitted_at"] >= stamp - pd.Timedelta(days=window_days),
    )
    frame = frame.assign(
        window_probability=frame["probability"].where(frame["in_window"]),
        window_negative=(frame["label"] == NEGATIVE) & frame["in_window"],
    )
    grouped = frame.groupby("customer_id", sort=True)
    latest = (
        frame[frame["probability"].notna()]
        .sort_values(["customer_id", "submitted_at"], kind="stable")
        .groupby("customer_id", sort=True)["probability"]
        .last()
    )
    out = pd.DataFrame(
        {
            "avg_sentiment_90d": grouped["window_probability"].mean(),
            "negative_feedback_90d": grouped["window_negative"].sum().astype("int64"),
        }
    )
    out["last_feedback_sentiment"] = latest.reindex(out.index)
    out = out.reset_index()
    return out[list(FEATURE_COLUMNS)]


def _empty_features(scored: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series([], dtype=scored["customer_id"].dtype),
            "avg_sentiment_90d": pd.Series([], dtype=float),
            "last_feedback_sentiment": pd.Series([], dtype=float),
            "negative_feedback_90d": pd.Series([], dtype="int64"),
        }
    )


def _stop_words() -> list[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    # Negations carry the complaint ("not worth", "never arrived"): keep them.
    keep = {"no", "not", "nor", "never", "nothing", "none", "cannot", "without"}
    return sorted(ENGLISH_STOP_WORDS - keep)


def _informative_terms(
    terms: np.ndarray, negative_docs: np.ndarray, positive_docs: np.ndarray
) -> np.ndarray:
    """False for a bare negation word and for a word that only occurs inside one phrase.

    "not" alone names no complaint (its phrases do), and "refund" next to "want
    refund" with the same document counts repeats the phrase.
    """
    counts = {
        term: (neg, pos) for term, neg, pos in zip(terms, negative_docs, positive_docs, strict=True)
    }
    in_phrase: set[str] = set()
    for term, pair in counts.items():
        words = term.split(" ")
        if len(words) == 2:
            in_phrase.update(w for w in words if counts.get(w) == pair)
    return np.array(
        [not (" " not in t and (t.replace("'", "") in NEGATIONS or t in in_phrase)) for t in terms]
    )


def complaint_topics(
    scored: pd.DataFrame,
    as_of: datetime | pd.Timestamp | str,
    window_days: int = 30,
    top_n: int = 15,
    *,
    min_negative_docs: int = 5,
    min_term_docs: int = 2,
) -> pd.DataFrame:
    """Terms and two-word phrases that mark negative feedback in the recent window.

    Method: document frequencies of 1-2 grams (lower case, English stop words
    removed except negations) in the negative and in the positive feedback of
    ``[as_of - window_days, as_of)``; each term's weighted log-odds ratio of
    negative against positive with an informative Dirichlet prior (Monroe,
    Colaresi & Quinn 2008, "Fightin' Words"; the prior is the term's frequency
    in all feedback of the window), divided by its standard error. The z-score
    is ``score``; only terms with ``score > 0`` (more negative than the prior
    says) and at least ``min_term_docs`` negative documents are kept, without
    bare negation words and without single words that only occur inside one
    kept phrase (same document counts).

    Args:
        scored: Columns ``text``, ``submitted_at``, ``label`` (neutral and
            unscored rows are ignored).
        as_of: End of the window (exclusive).
        window_days: Window length in days.
        top_n: How many terms at most.
        min_negative_docs: Fewer negative texts than this in the window gives an
            empty frame (too little to say anything).
        min_term_docs: A term must occur in at least this many texts of the window.

    Returns:
        Columns ``term``, ``score``, ``negative_docs``, ``positive_docs``,
        ``share_of_negative`` (share of the window's negative texts containing
        the term), best first; empty (same columns) when there is too little
        negative or no positive feedback.
    """
    _require(scored, ("text", "submitted_at", "label"), "scored")
    _check_window(window_days)
    if top_n <= 0:
        raise ValueError(f"top_n={top_n!r}: must be positive")
    stamp = utc_timestamp(as_of)
    when = _utc(scored["submitted_at"], "submitted_at")
    recent = scored[(when < stamp) & (when >= stamp - pd.Timedelta(days=window_days))]
    recent = recent[recent["label"].isin([NEGATIVE, POSITIVE])]
    texts, _blank = prepare_texts(recent["text"])
    is_negative = (recent["label"] == NEGATIVE).to_numpy()
    n_negative, n_positive = int(is_negative.sum()), int((~is_negative).sum())
    empty = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in TOPIC_DTYPES.items()})
    if n_negative < min_negative_docs or n_positive == 0:
        log.info(
            "complaint topics: %d negative, %d positive texts in the window: too few",
            n_negative,
            n_positive,
        )
        return empty
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        ngram_range=(1, 2),
        stop_words=_stop_words(),
        token_pattern=r"(?u)\b[^\W\d_][\w']*\b",
        min_df=min_term_docs,
        binary=True,
    )
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no term left (all stop words, or too few documents)
        return empty
    terms = vectorizer.get_feature_names_out()
    negative_docs = np.asarray(counts[is_negative].sum(axis=0)).ravel().astype(float)
    positive_docs = np.asarray(counts[~is_negative].sum(axis=0)).ravel().astype(float)
    prior = negative_docs + positive_docs
    n_neg_terms, n_pos_terms, n_prior = negative_docs.sum(), positive_docs.sum(), prior.sum()
    log_odds_neg = np.log(negative_docs + prior) - np.log(
        n_neg_terms + n_prior - negative_docs - prior
    )
    log_odds_pos = np.log(positive_docs + prior) - np.log(
        n_pos_terms + n_prior - positive_docs - prior
    )
    z = (log_odds_neg - log_odds_pos) / np.sqrt(
        1.0 / (negative_docs + prior) + 1.0 / (positive_docs + prior)
    )
    keep = (
        (z > 0)
        & (negative_docs >= min_term_docs)
        & _informative_terms(terms, negative_docs, positive_docs)
    )
    candidates = np.flatnonzero(keep)
    best = candidates[np.lexsort((terms[candidates], -z[candidates]))][:top_n]
    return pd.DataFrame(
        {
            "term": terms[best].astype(object),
            "score": z[best],
            "negative_docs": negative_docs[best].astype("int64"),
            "positive_docs": positive_docs[best].astype("int64"),
            "share_of_negative": negative_docs[best] / n_negative,
        }
    )

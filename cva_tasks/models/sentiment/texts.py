"""Inputs of the sentiment model: texts, star ratings, negation words, held-out splits.

Texts are checked and cut to :data:`MAX_CHARS` characters (the model reads at most
``sequence_length`` words anyway; the cut bounds the tokenizer's work). ``None``/NaN,
empty and whitespace-only texts are *blank*: never passed to the model. Anything that
is not a string (or missing) is a ``TypeError`` naming its position.

Ratings 4-5 are positive (1.0), 1-2 negative (0.0); 3 and missing ratings are left
out of training (NaN).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.models.base import NotEnoughData

#: Texts are cut to this many characters before scoring (the model reads at most
#: ``sequence_length`` words anyway; this bounds the tokenizer's work).
MAX_CHARS = 5_000

_NEGATION_WORDS = (
    "not no never nothing nobody none nor neither without cannot cant dont doesnt didnt isnt "
    "wasnt arent werent wont wouldnt couldnt shouldnt hasnt havent hadnt aint"
)
#: Words that negate the next few words, as the vectoriser writes them: lower case,
#: ASCII apostrophes stripped ("wasn't" -> "wasnt"). The typographic apostrophe is
#: not punctuation to Keras' standardiser, so "wasn’t" stays one word: its
#: forms are listed too (they only count when the training data had them).
NEGATIONS = frozenset(_NEGATION_WORDS.split()) | frozenset(
    word[:-1] + "\u2019t" for word in _NEGATION_WORDS.split() if word.endswith("nt")
)


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


#: PII in feedback text, replaced by placeholder words before any vocabulary is built or
#: any text is scored: a model file (its vocabulary) or a topic list must not carry a
#: customer's email, phone number or link. Order matters: links may hold ``@``.
_PII_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(?:https?://|www\.)\S+"), " piiurl "),
    (re.compile(r"(?i)[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), " piiemail "),
)
#: A run of digits, spaces, dots, dashes and brackets, optionally after ``+``; it is a
#: phone number when it holds 7 or more digits (body measurements such as "34-28-36" or
#: "5'4 120 lbs" hold fewer).
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().-]{5,}\d(?!\w)")
_PHONE_MIN_DIGITS = 7


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group())
    return " piiphone " if digits >= _PHONE_MIN_DIGITS else match.group()


def mask_pii(text: str) -> str:
    """``text`` with emails, phone numbers and links replaced by ``piiemail``, ``piiphone``
    and ``piiurl``."""
    for pattern, token in _PII_PATTERNS:
        text = pattern.sub(token, text)
    return _PHONE_CANDIDATE.sub(_phone, text)


def prepare_texts(
    texts: Sequence[object] | np.ndarray | pd.Series,
) -> tuple[np.ndarray, np.ndarray]:
    """Check texts, mask PII in them (:func:`mask_pii`) and cut them to :data:`MAX_CHARS`.

    Args:
        texts: Strings; ``None``/NaN stand for a missing text.

    Returns:
        ``(cleaned, blank)``: an object array of strings (missing -> ``""``) and
        a boolean array, True where the text is missing, empty or whitespace.

    Raises:
        TypeError: An element is neither a string nor missing.
    """
    values = list(texts.tolist() if isinstance(texts, (np.ndarray, pd.Series)) else texts)
    cleaned = np.empty(len(values), dtype=object)
    blank = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if _is_missing(value):
            cleaned[i], blank[i] = "", True
        elif isinstance(value, str):
            cleaned[i] = mask_pii(value[:MAX_CHARS])
            blank[i] = not value.strip()
        else:
            raise TypeError(
                f"texts[{i}] is {type(value).__name__} ({value!r}); expected a string or None"
            )
    return cleaned, blank


def blank_texts(texts: Sequence[object] | np.ndarray | pd.Series) -> np.ndarray:
    """Which texts are blank (missing, empty or whitespace), as :func:`prepare_texts` says,
    without masking or cutting any text (a cheap first pass over a large corpus).

    Raises:
        TypeError: An element is neither a string nor missing.
    """
    values = texts.tolist() if isinstance(texts, (np.ndarray, pd.Series)) else list(texts)
    blank = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        if _is_missing(value):
            blank[i] = True
        elif isinstance(value, str):
            blank[i] = not value.strip()
        else:
            raise TypeError(
                f"texts[{i}] is {type(value).__name__} ({value!r}); expected a string or None"
            )
    return blank


def sample_rows(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Positions of a seeded uniform random sample of at most ``limit`` of ``n`` rows.

    Ascending, so rows keep their order (and an order key its meaning); all ``n`` rows
    when ``limit`` is None or not below ``n``. The same ``(n, limit, seed)`` always gives
    the same rows.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"sample limit {limit!r}: must be at least 1 (or None for no limit)")
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def ratings_to_labels(ratings: Sequence[object] | np.ndarray | pd.Series) -> np.ndarray:
    """Map star ratings to training labels: 4-5 -> 1.0, 1-2 -> 0.0, 3 or missing -> NaN.

    Raises:
        ValueError: A rating is not a whole number from 1 to 5.
    """
    values = pd.Series(
        ratings.to_numpy() if isinstance(ratings, pd.Series) else list(ratings), dtype=object
    )
    missing = values.isna().to_numpy()
    numbers = pd.to_numeric(values.where(~missing), errors="coerce").to_numpy(dtype=float)
    bad = ~missing & ~np.isin(numbers, [1, 2, 3, 4, 5])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"ratings[{i}] = {values[i]!r}: ratings must be whole numbers from 1 to 5 "
            f"(or missing); {int(bad.sum())} bad value(s)"
        )
    return np.where(numbers >= 4, 1.0, np.where(numbers <= 2, 0.0, np.nan))


def _order_values(order: Sequence[object] | np.ndarray | pd.Series | None, n: int) -> Any:
    if order is None:
        return None
    values = pd.Series(list(order) if not isinstance(order, pd.Series) else order)
    if len(values) != n:
        raise ValueError(f"order has {len(values)} values for {n} texts")
    if values.isna().any():
        raise ValueError(f"order has {int(values.isna().sum())} missing value(s)")
    # Ranks sort like the values (times, numbers, strings); ties keep the input order.
    return values.rank(method="first").to_numpy()


def _split_index(
    n: int,
    labels: np.ndarray,
    share: float,
    *,
    seed: int,
    order: np.ndarray | None,
    what: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions ``(keep, held_out)``: the latest ``share`` by ``order``, else stratified."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"{what} share {share!r}: must be between 0 and 1 (exclusive)")
    n_held = max(1, round(n * share))
    if order is not None:
        sort = np.argsort(order, kind="stable")
        keep, held = np.sort(sort[: n - n_held]), np.sort(sort[n - n_held :])
    else:
        from sklearn.model_selection import train_test_split

        keep, held = train_test_split(
            np.arange(n), test_size=n_held, stratify=labels, random_state=seed
        )
        keep, held = np.sort(keep), np.sort(held)
    for name, part in (("training", keep), (what, held)):
        classes = set(np.unique(labels[part]).tolist())
        if classes != {0.0, 1.0}:
            raise NotEnoughData(
                f"the {name} part ({len(part)} rows) has only class(es) {sorted(classes)}: "
                "sentiment training needs negative (rating 1-2) and positive (4-5) feedback "
                "in every part; provide more rated feedback"
            )
    return keep, held

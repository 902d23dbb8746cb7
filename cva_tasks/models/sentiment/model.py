"""Sentiment of customer feedback: a Keras text classifier that scores raw strings.

What it is
----------
A binary classifier (rating 4-5 = positive, 1-2 = negative, 3 left out of
training) whose output is the probability that a text is positive. The text
vectorisation (two ``TextVectorization`` layers, unigrams and bigrams) lives
inside the saved ``model.keras``, so ``keras.models.load_model(path)`` scores raw
strings with no tokenizer file::

    model = keras.models.load_model(directory / "model.keras")
    model.predict(np.asarray(["Love it!", "it broke after a week"], dtype=object))

(Keras' ``predict`` reads a Python ``list`` as several inputs: pass an array or
``tf.constant``; :meth:`SentimentModel.predict_proba` takes lists.)

Architecture: a fastText-style bag of n-grams (default ``ngram_bag``). Every
in-vocabulary unigram and bigram of the first ``sequence_length`` words has an
embedding; the unigram embeddings are averaged, the bigram embeddings are
averaged, the two means are added and a logistic unit reads the sum. Two
details carry most of the out-of-domain quality:

* The out-of-vocabulary id is masked out of both averages. With it in, the
  average of a text from another domain (many unknown bigrams) was dominated by
  the learned "unknown" vector and balanced accuracy on the Amazon reviews fell
  to 0.62.
* Negation scope: a unigram within ``negation_window`` (2) words after a
  negation (:data:`NEGATIONS`: not, no, never, wasnt, didnt, ...) goes through a
  learned linear map, initialised as a sign flip, before the average. The map
  is shared by all words, so "was not late" reads as positive although the
  demo shop only ever wrote "wasn't late". It is built from frozen built-in
  layers (a 0/1 lookup and a causal convolution), so the saved model needs no
  custom code.

Why this one (measured)
-----------------------
``cva evaluate sentiment --architecture NAME`` (seed 0): Women's clothing
reviews (title + text, 19,818 after dropping 3s and empty texts), stratified
80/20 split; the Keras models train on the 80% minus a 10% calibration slice
(early stopping on its ROC AUC, patience 1; the threshold), with balanced class
weights, Adam, batch 64; the Amazon musical-instrument reviews (9,489) are
scored unchanged. "Negations" is the unit test's rate on 20 hand-written
negated sentences after training on the demo shop's feedback. 2 CPU cores
shared with other jobs (load 4-7), so times are pessimistic.

=========================  =========  =======  =======  ==========  =========  =========
architecture               train (s)  in AUC   in BA    Amazon AUC  Amazon BA  negations
=========================  =========  =======  =======  ==========  =========  =========
ngram_bag (default)        36         0.972    0.923    0.890       0.817      18/20
ngram_bag, no negation     33         0.977    0.934    0.865       0.788      11/20
unigram_bag                29         0.965    0.910    0.881       0.806      17/20
conv1d (64 filters x 5)    72         0.953    0.889    0.812       0.734      11/20
bilstm (32 units, 100 w.)  103        0.970    0.909    0.872       0.786      12/20
TF-IDF 1-2g + LR           3.5        0.976    0.931    0.896       0.821      --
VADER                      --         0.869    0.659    0.807       0.711      --
=========================  =========  =======  =======  ==========  =========  =========

(BA = balanced accuracy at the model's threshold.) The bag of n-grams with the
negation scope is chosen: within 0.005 ROC AUC of the best Keras model in
domain and of TF-IDF + LR, the best Keras model out of domain, the only ones
that read negations they were not shown, and it trains in about half a minute.
Without the scope it is 0.005 better in domain but reads negations at chance
and generalises worse. The convolution and the LSTM cost 2-3x the time and score
less: on ~20k short reviews word order beyond two words adds little (the LSTM
peaked after one epoch and then overfit).

Class imbalance and the decision threshold
-------------------------------------------
Reviews are 88-95% positive. Training uses balanced class weights, and the
decision threshold is then chosen on the held-out calibration slice (the
latest share of the training rows when an order is given): the point where
sensitivity equals specificity. This was steadier than the argmax of balanced
accuracy on ~1,600 rows (in one run Amazon balanced accuracy 0.788 against
0.774 for the argmax, in domain the same). The
threshold is folded into the output unit's bias (``b - logit(t)``), so the
saved model's 0.5 *is* the chosen threshold: the output is a probability of
positive under balanced class priors, not the positive share of the training
data. The logit is also stretched by a Platt slope fitted on the same slice
(:func:`_logit_scale`): on a small shop early stopping leaves every output
within 0.4..0.6, so without it every piece of feedback would be "neutral". The
stretch keeps the threshold, so rankings and thresholded metrics do not change.
Labels: ``negative`` below the neutral band, ``positive`` at or above it,
``neutral`` inside; the band defaults to 0.4..0.6 and is set per call, per
model (``neutral_band``; the pipeline passes ``CVA_SENTIMENT_NEUTRAL_BAND``).

Edge cases (defined results, never a crash)
-------------------------------------------
* ``None``/NaN, empty or whitespace-only text: probability NaN, label
  ``unscored`` (the model is not called).
* No in-vocabulary word (pure emoji or punctuation, a language the training data
  did not contain, gibberish): the saved model itself outputs NaN (the unigram
  mean is 0/0 by construction), label ``unscored``. Non-English text that
  shares words with the vocabulary is scored on those words.
* Very long text: cut to :data:`MAX_CHARS` characters before the model and to
  the first ``sequence_length`` unigrams/bigrams inside it.
* Anything that is not a string (or None/NaN) is a ``TypeError`` naming its
  position.

TensorFlow runs with ``CVA_TF_THREADS`` intra-op threads (default: 2, or fewer
cores) and one inter-op thread; training seeds Python, NumPy and TensorFlow with
``keras.utils.set_random_seed``, so a seed gives the same model on the same
machine (TensorFlow's op determinism is not needed for that on CPU and cost 8x
in training time).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.models.base import NotEnoughData

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
PARAMS_FILE = "params.json"
DEFAULT_NEUTRAL_BAND = (0.4, 0.6)
#: Texts are cut to this many characters before scoring (the model reads at most
#: ``sequence_length`` words anyway; this bounds the tokenizer's work).
MAX_CHARS = 5_000
NEGATIVE, NEUTRAL, POSITIVE, UNSCORED = "negative", "neutral", "positive", "unscored"
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

#: Hyperparameters shared by all architectures (a ``hyperparameters`` dict overrides them).
DEFAULT_HYPERPARAMETERS: dict[str, Any] = {
    "architecture": "ngram_bag",
    "max_unigrams": 20_000,
    "max_bigrams": 30_000,
    "sequence_length": 200,
    "embedding_dim": 32,
    "dropout": 0.3,
    "negation_window": 2,
    "learning_rate": 3e-3,
    "batch_size": 64,
    "max_epochs": 6,
    "patience": 1,
    "calibration_share": 0.1,
}
#: Per-architecture changes to the defaults (an LSTM reads shorter sequences).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "ngram_bag": {},
    "unigram_bag": {},
    "conv1d": {"learning_rate": 1e-3},
    "bilstm": {"sequence_length": 100, "max_epochs": 4},
}

_UNKNOWN_ID = 1  # TextVectorization: 0 pads, 1 is the out-of-vocabulary token
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
_tf_configured = False


# --------------------------------------------------------------------------- #
# TensorFlow set-up
# --------------------------------------------------------------------------- #


def configure_tensorflow(threads: int | None = None) -> None:
    """Set TensorFlow's thread pools once per process (before its runtime starts).

    Args:
        threads: intra-op threads (``CVA_TF_THREADS`` through the settings); default
            ``min(2, CPUs)``. Only the first call of a process counts.
    """
    global _tf_configured
    if _tf_configured:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    threads = threads or min(2, os.cpu_count() or 1)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # the runtime already started (another model in this process)
        log.debug("TensorFlow already initialised; its thread settings stay as they are")
    _tf_configured = True


def _seed_everything(seed: int) -> None:
    import keras

    # Seeds Python, NumPy and TensorFlow. TensorFlow's op determinism is left off:
    # on CPU it made training 8x slower (60 s against 7.5 s on the demo shop) and
    # the seeded runs already gave identical losses and predictions (unit test).
    keras.utils.set_random_seed(seed)


# --------------------------------------------------------------------------- #
# Inputs
# --------------------------------------------------------------------------- #


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def prepare_texts(
    texts: Sequence[object] | np.ndarray | pd.Series,
) -> tuple[np.ndarray, np.ndarray]:
    """Check texts and cut them to :data:`MAX_CHARS`.

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
            cleaned[i] = value[:MAX_CHARS]
            blank[i] = not value.strip()
        else:
            raise TypeError(
                f"texts[{i}] is {type(value).__name__} ({value!r}); expected a string or None"
            )
    return cleaned, blank


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


def _check_band(band: Sequence[float]) -> tuple[float, float]:
    low, high = (float(b) for b in band)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"neutral band {band!r}: needs 0 <= low <= high <= 1")
    return low, high


# --------------------------------------------------------------------------- #
# The model
# --------------------------------------------------------------------------- #


class SentimentModel:
    """A trained sentiment model: the Keras model (raw strings in) and its params.

    Attributes:
        keras_model: ``keras.Model`` taking a batch of strings (shape ``(n,)``)
            and returning ``(n, 1)`` probabilities of positive (NaN where the
            text has no in-vocabulary word).
        params: JSON-able hyperparameters and training facts: architecture,
            vocabulary sizes, sequence length, embedding size, epochs run,
            ``threshold`` (on the raw output, folded into the model so the
            output's 0.5 is that threshold), ``neutral_band``, seed, sizes.
    """

    def __init__(self, keras_model: Any, params: dict[str, Any]) -> None:
        self.keras_model = keras_model
        self.params = params
        self._serve: Any = None

    def _serving_function(self) -> Any:
        """The model as one traced graph for any batch size.

        ``keras.Model.predict`` retraces for every new batch shape (a short last
        batch, a different list length); one ``tf.function`` with an unknown batch
        dimension is traced once per model.
        """
        if self._serve is None:
            configure_tensorflow()
            import tensorflow as tf

            model = self.keras_model
            self._serve = tf.function(
                lambda texts: model(texts, training=False),
                input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string)],
            )
        return self._serve

    @property
    def neutral_band(self) -> tuple[float, float]:
        """The band used by :meth:`label` when no band is passed."""
        return _check_band(self.params.get("neutral_band", DEFAULT_NEUTRAL_BAND))

    def predict_proba(self, texts: Sequence[object], batch_size: int = 512) -> np.ndarray:
        """Probability of positive per text (float64); NaN where the text is unscored.

        Args:
            texts: Raw strings (list, array or Series); ``None``/NaN allowed.
            batch_size: Texts per forward pass.

        Returns:
            Array of ``len(texts)`` probabilities; NaN for missing, blank or
            no-known-word texts.
        """
        cleaned, blank = prepare_texts(texts)
        out = np.full(len(cleaned), np.nan)
        todo = np.flatnonzero(~blank)
        if len(todo):
            serve = self._serving_function()
            for begin in range(0, len(todo), batch_size):
                rows = todo[begin : begin + batch_size]
                out[rows] = np.asarray(serve(cleaned[rows].astype(str))).reshape(-1)
        return out

    def label(
        self, probabilities: Sequence[float] | np.ndarray, band: Sequence[float] | None = None
    ) -> np.ndarray:
        """Labels for probabilities: negative / neutral / positive, ``unscored`` for NaN.

        Args:
            probabilities: Output of :meth:`predict_proba`.
            band: ``(low, high)``; ``p < low`` is negative, ``p >= high`` positive,
                in between neutral. Default: the model's ``neutral_band``.

        Returns:
            Object array of label strings.
        """
        low, high = _check_band(band) if band is not None else self.neutral_band
        p = np.asarray(probabilities, dtype=float)
        labels = np.where(p < low, NEGATIVE, np.where(p >= high, POSITIVE, NEUTRAL)).astype(object)
        labels[np.isnan(p)] = UNSCORED
        return labels

    def save(self, directory: Path) -> None:
        """Write ``model.keras`` and ``params.json`` into an existing folder.

        Raises:
            FileNotFoundError: The folder does not exist.
            FileExistsError: It already holds a saved model.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not an existing folder")
        for name in (MODEL_FILE, PARAMS_FILE):
            if (directory / name).exists():
                raise FileExistsError(f"{directory / name} exists; save into an empty folder")
        self.keras_model.save(directory / MODEL_FILE)
        (directory / PARAMS_FILE).write_text(json.dumps(self.params, indent=1, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> SentimentModel:
        """Load a model written by :meth:`save`."""
        directory = Path(directory)
        missing = [n for n in (MODEL_FILE, PARAMS_FILE) if not (directory / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory} has no {', '.join(missing)}: not a saved model")
        configure_tensorflow()
        import keras

        model = keras.models.load_model(directory / MODEL_FILE)
        params = json.loads((directory / PARAMS_FILE).read_text())
        return cls(model, params)


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #


def _masked_mean(ids: Any, vectors: Any, *, nan_when_empty: bool) -> Any:
    """Mean of the vectors at known ids (not padding, not unknown).

    With ``nan_when_empty`` a text without a known id gets NaN (0/0), which is how
    the saved model marks texts it cannot score; otherwise zeros.
    """
    from keras import ops

    known = ops.expand_dims(ops.cast(ops.greater(ids, _UNKNOWN_ID), "float32"), -1)
    count = ops.sum(known, axis=1)
    if not nan_when_empty:
        count = ops.maximum(count, 1.0)
    return ops.sum(vectors * known, axis=1) / count


def _negation_flags(vocabulary: Sequence[str]) -> np.ndarray:
    """1.0 for the vocabulary entries that negate what follows, else 0.0."""
    return np.array([[1.0 if word in NEGATIONS else 0.0] for word in vocabulary], dtype="float32")


def _negation_scope(ids: Any, flags: np.ndarray, window: int) -> Any:
    """``(batch, length, 1)``: 1.0 where one of the ``window`` words before is a negation.

    Built from two frozen layers (a 0/1 lookup of negation words and a causal sum
    over the window) so that the saved model needs no custom code.
    """
    from keras import layers, ops

    lookup = layers.Embedding(len(flags), 1, trainable=False, name="negation_words")
    is_negation = lookup(ids)
    lookup.set_weights([flags])
    # Causal kernel [1, ..., 1, 0]: the sum of the flags of the `window` previous words.
    kernel = np.ones((window + 1, 1, 1), dtype="float32")
    kernel[-1] = 0.0
    summed = layers.Conv1D(
        1, window + 1, padding="causal", use_bias=False, trainable=False, name="negation_scope"
    )
    before = summed(is_negation)
    summed.set_weights([kernel])
    return ops.cast(ops.greater(before, 0.5), "float32")


def _build_core(
    hp: dict[str, Any], n_unigrams: int, n_bigrams: int, negation_flags: np.ndarray
) -> Any:
    """The trainable part: integer ids in, probability of positive out."""
    import keras
    from keras import layers, ops

    dim, dropout = hp["embedding_dim"], hp["dropout"]
    unigrams = keras.Input(shape=(None,), dtype="int64", name="unigram_ids")
    inputs = [unigrams]
    arch = hp["architecture"]
    if arch in ("ngram_bag", "unigram_bag"):
        vectors = layers.Embedding(n_unigrams, dim, name="unigram_embedding")(unigrams)
        if hp["negation_window"] > 0:
            # A word in a negation's scope goes through a learned map that starts as
            # a sign flip, so "not disappointed" can read as positive even when the
            # training data never negated "disappointed".
            flipped = layers.Dense(
                dim,
                use_bias=False,
                kernel_initializer=keras.initializers.Identity(gain=-1.0),
                name="negation_flip",
            )(vectors)
            scope = _negation_scope(unigrams, negation_flags, hp["negation_window"])
            vectors = vectors * (1.0 - scope) + flipped * scope
        hidden = _masked_mean(unigrams, vectors, nan_when_empty=True)
        if arch == "ngram_bag":
            bigrams = keras.Input(shape=(None,), dtype="int64", name="bigram_ids")
            inputs.append(bigrams)
            bigram_vectors = layers.Embedding(n_bigrams, dim, name="bigram_embedding")(bigrams)
            hidden = layers.Add()(
                [hidden, _masked_mean(bigrams, bigram_vectors, nan_when_empty=False)]
            )
    else:
        # Unknown words become padding so the sequence models ignore them too.
        ids = ops.where(ops.equal(unigrams, _UNKNOWN_ID), 0, unigrams)
        embedded = layers.Embedding(
            n_unigrams, dim, mask_zero=arch == "bilstm", name="unigram_embedding"
        )(ids)
        if arch == "conv1d":
            hidden = layers.GlobalMaxPooling1D()(
                layers.Conv1D(64, 5, activation="relu", padding="same")(
                    layers.Dropout(0.2)(embedded)
                )
            )
        elif arch == "bilstm":
            hidden = layers.Bidirectional(layers.LSTM(32))(embedded)
        else:
            raise ValueError(f"architecture {arch!r}: expected one of {sorted(ARCHITECTURES)}")
        # Same contract as the bags: NaN when the text has no known word.
        known = ops.sum(ops.cast(ops.greater(unigrams, _UNKNOWN_ID), "float32"), axis=1)
        hidden = hidden * ops.expand_dims(known / known, -1)
    hidden = layers.Dropout(dropout)(hidden)
    output = layers.Dense(1, activation="sigmoid", name="positive")(hidden)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], output, name="sentiment_core")


def _logit_scale(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Platt slope of the held-out rows' logits around the threshold, at least 1.

    Early stopping on a small shop's feedback leaves the outputs bunched around 0.5
    (all of them inside a 0.4..0.6 neutral band, measured on the 300-customer demo
    shop), although they rank well. A logistic regression without intercept and with
    balanced class weights on ``logit(score) - logit(threshold)`` keeps the decision
    point (and so every ranking and thresholded metric) and only stretches the
    logit; it never compresses it (slope >= 1) and is capped at 50.
    """
    from sklearn.linear_model import LogisticRegression

    clipped = np.clip(scores.astype(float), 1e-6, 1 - 1e-6)
    z = np.log(clipped / (1 - clipped)) - math.log(threshold / (1.0 - threshold))
    fit = LogisticRegression(fit_intercept=False, class_weight="balanced", C=1e4)
    fit.fit(z.reshape(-1, 1), labels.astype(int))
    return float(np.clip(fit.coef_[0, 0], 1.0, 50.0))


def _equal_error_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold where sensitivity equals specificity (approximately) on held-out rows."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores)
    best = int(np.argmin(np.abs(tpr - (1.0 - fpr))))
    # roc_curve's first threshold is +inf: keep the threshold a usable probability.
    return float(np.clip(thresholds[best], 0.01, 0.99))


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


def fit_sentiment_model(
    texts: Sequence[object],
    labels: Sequence[float] | np.ndarray,
    *,
    seed: int = 0,
    order: Sequence[object] | None = None,
    neutral_band: Sequence[float] | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> SentimentModel:
    """Train on all given rows (minus a calibration slice for early stopping and threshold).

    Args:
        texts: Raw strings.
        labels: 1 = positive, 0 = negative per text (no missing values).
        seed: Seeds the split, the weights and the data order.
        order: Optional sort key (e.g. ``submitted_at``); the calibration slice
            is then the latest ``calibration_share`` of the rows.
        neutral_band: ``(low, high)`` stored with the model; default 0.4..0.6.
        hyperparameters: Overrides of :data:`DEFAULT_HYPERPARAMETERS` (e.g.
            ``{"architecture": "conv1d"}``).

    Returns:
        The fitted :class:`SentimentModel`.
    """
    hp = dict(DEFAULT_HYPERPARAMETERS)
    arch = (hyperparameters or {}).get("architecture", hp["architecture"])
    if arch not in ARCHITECTURES:
        raise ValueError(f"architecture {arch!r}: expected one of {sorted(ARCHITECTURES)}")
    hp.update(ARCHITECTURES[arch])
    unknown = set(hyperparameters or {}) - set(hp)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; known: {sorted(hp)}")
    hp.update(hyperparameters or {})
    band = _check_band(neutral_band if neutral_band is not None else DEFAULT_NEUTRAL_BAND)

    cleaned, blank = prepare_texts(texts)
    y = np.asarray(labels, dtype=float)
    if len(y) != len(cleaned):
        raise ValueError(f"{len(y)} labels for {len(cleaned)} texts")
    if np.isnan(y).any() or not np.isin(y, [0.0, 1.0]).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive), with no missing values")
    keys = _order_values(order, len(cleaned))
    rows = np.flatnonzero(~blank)
    cleaned, y = cleaned[rows], y[rows]
    keys = None if keys is None else keys[rows]

    started = time.perf_counter()
    configure_tensorflow()
    _seed_everything(seed)
    import keras
    import tensorflow as tf

    fit_rows, cal_rows = _split_index(
        len(y), y, hp["calibration_share"], seed=seed, order=keys, what="calibration"
    )
    log.info(
        "sentiment: training %s on %d texts (%d held out for early stopping and threshold)",
        arch,
        len(fit_rows),
        len(cal_rows),
    )
    length = hp["sequence_length"]
    unigram_layer = keras.layers.TextVectorization(
        max_tokens=hp["max_unigrams"], output_sequence_length=length, name="unigrams"
    )
    unigram_layer.adapt(
        tf.data.Dataset.from_tensor_slices(cleaned[fit_rows].astype(str)).batch(1024)
    )
    layers_used = [unigram_layer]
    if arch == "ngram_bag":
        bigram_layer = keras.layers.TextVectorization(
            max_tokens=hp["max_bigrams"],
            ngrams=(2,),
            output_sequence_length=length,
            name="bigrams",
        )
        bigram_layer.adapt(
            tf.data.Dataset.from_tensor_slices(cleaned[fit_rows].astype(str)).batch(1024)
        )
        layers_used.append(bigram_layer)

    def encode(part: np.ndarray) -> list[np.ndarray]:
        batch = tf.constant(cleaned[part].astype(str))
        return [layer(batch).numpy() for layer in layers_used]

    x_fit, x_cal = encode(fit_rows), encode(cal_rows)
    # A text whose words are all outside the vocabulary cannot be scored (NaN by design).
    fit_known = (x_fit[0] > _UNKNOWN_ID).any(axis=1)
    cal_known = (x_cal[0] > _UNKNOWN_ID).any(axis=1)
    x_fit = [x[fit_known] for x in x_fit]
    x_cal = [x[cal_known] for x in x_cal]
    y_fit, y_cal = y[fit_rows][fit_known], y[cal_rows][cal_known]
    for name, part in (("training", y_fit), ("calibration", y_cal)):
        if len(np.unique(part)) < 2:
            raise ValueError(f"the {name} part has one class only after dropping unscorable texts")

    core = _build_core(
        hp,
        unigram_layer.vocabulary_size(),
        layers_used[1].vocabulary_size() if len(layers_used) > 1 else 0,
        _negation_flags(unigram_layer.get_vocabulary()),
    )
    core.compile(
        optimizer=keras.optimizers.Adam(hp["learning_rate"]),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    negatives = float((y_fit == 0).sum())
    class_weight = {0: len(y_fit) / (2 * negatives), 1: len(y_fit) / (2 * (len(y_fit) - negatives))}
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=hp["patience"], restore_best_weights=True
    )
    progress = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: log.info(
            "sentiment: epoch %d/%d, loss %.4f, held-out ROC AUC %.4f",
            epoch + 1,
            hp["max_epochs"],
            logs["loss"],
            logs["val_auc"],
        )
    )
    history = core.fit(
        x_fit if len(x_fit) > 1 else x_fit[0],
        y_fit,
        validation_data=(x_cal if len(x_cal) > 1 else x_cal[0], y_cal),
        epochs=hp["max_epochs"],
        batch_size=hp["batch_size"],
        class_weight=class_weight,
        callbacks=[stopper, progress],
        shuffle=True,
        verbose=0,
    )
    raw_cal = core.predict(x_cal if len(x_cal) > 1 else x_cal[0], batch_size=1024, verbose=0)
    threshold = _equal_error_threshold(y_cal, raw_cal.reshape(-1))
    logit_scale = _logit_scale(y_cal, raw_cal.reshape(-1), threshold)
    # Fold the threshold into the bias so that the saved model's 0.5 is the threshold,
    # and scale the logit so the probabilities spread as the held-out rows warrant.
    output_layer = core.get_layer("positive")
    weights, bias = output_layer.get_weights()
    shifted = bias - math.log(threshold / (1.0 - threshold))
    output_layer.set_weights([weights * logit_scale, shifted * logit_scale])

    text_input = keras.Input(shape=(), dtype="string", name="text")
    ids = [layer(text_input) for layer in layers_used]
    model = keras.Model(text_input, core(ids if len(ids) > 1 else ids[0]), name="sentiment")
    seconds = time.perf_counter() - started
    params = {
        **hp,
        "unigram_vocabulary": int(unigram_layer.vocabulary_size()),
        "bigram_vocabulary": int(layers_used[1].vocabulary_size()) if len(layers_used) > 1 else 0,
        "epochs_run": len(history.history["loss"]),
        "best_epoch": int(stopper.best_epoch) + 1,
        "calibration_roc_auc": round(float(stopper.best), 4),
        "threshold": round(threshold, 4),
        "logit_scale": round(logit_scale, 4),
        "neutral_band": list(band),
        "class_weight": {str(k): round(v, 4) for k, v in class_weight.items()},
        "seed": seed,
        "n_fit": len(y_fit),
        "n_calibration": len(y_cal),
        "n_dropped_unscorable": int((~fit_known).sum() + (~cal_known).sum()),
        "n_dropped_blank": int(blank.sum()),
        "calibration": "latest" if keys is not None else "stratified random",
        "train_seconds": round(seconds, 1),
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
    }
    log.info(
        "sentiment: trained in %.1f s (%d epochs, best %d), threshold %.3f",
        seconds,
        params["epochs_run"],
        params["best_epoch"],
        threshold,
    )
    return SentimentModel(model, params)


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


#: VADER's usual cut for "positive" on the compound score.
VADER_THRESHOLD = 0.05


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
        neutral_band: Stored with the model (see :func:`fit_sentiment_model`).
        hyperparameters: Overrides of :data:`DEFAULT_HYPERPARAMETERS`.
        champion: The model in force, scored on the same validation rows
            (``champion_roc_auc`` etc. in the metrics) for champion/challenger.

    Returns:
        ``(model, metrics)``; metrics: ``roc_auc``, ``balanced_accuracy``,
        ``macro_f1`` (at the model's threshold) on the validation part, the same
        for the VADER baseline (``baseline_vader_*``), ``n_train``,
        ``n_validation``, ``n_validation_unscored``, ``train_seconds``,
        ``validation`` ("out of time" or "stratified random").
    """
    cleaned, blank = prepare_texts(texts)
    y_all = ratings_to_labels(ratings)
    if len(y_all) != len(cleaned):
        raise ValueError(f"{len(y_all)} ratings for {len(cleaned)} texts")
    keys = _order_values(order, len(cleaned))
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
    model = fit_sentiment_model(
        cleaned[rated][train_rows],
        y[train_rows],
        seed=seed,
        order=None if keys is None else keys[rated][train_rows],
        neutral_band=neutral_band,
        hyperparameters=hyperparameters,
    )
    valid_texts, y_valid = cleaned[rated][valid_rows], y[valid_rows]
    probabilities = model.predict_proba(valid_texts)
    vader = vader_scores(valid_texts)
    # VADER's compound is in -1..1 with its cut at 0.05: shift so 0.5 is that cut.
    vader_metrics = binary_metrics(y_valid, np.clip((vader - VADER_THRESHOLD + 1) / 2, 0, 1))
    champion_metrics = (
        binary_metrics(y_valid, champion.predict_proba(valid_texts)) if champion else {}
    )
    metrics = {
        **binary_metrics(y_valid, probabilities),
        **{f"baseline_vader_{k}": v for k, v in vader_metrics.items()},
        **{f"champion_{k}": v for k, v in champion_metrics.items()},
        "n_train": len(train_rows),
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


# --------------------------------------------------------------------------- #
# Scoring and roll-ups
# --------------------------------------------------------------------------- #


def score_feedback(model: SentimentModel, feedback: pd.DataFrame) -> pd.DataFrame:
    """Score canonical feedback rows (rated or not).

    Args:
        model: A trained model.
        feedback: Columns ``feedback_id``, ``customer_id``, ``submitted_at``, ``text``.

    Returns:
        One row per feedback: ``feedback_id``, ``customer_id``, ``submitted_at``,
        ``probability`` (NaN when unscored), ``label``.
    """
    _require(feedback, ("feedback_id", "customer_id", "submitted_at", "text"), "feedback")
    probabilities = model.predict_proba(feedback["text"])
    return pd.DataFrame(
        {
            "feedback_id": feedback["feedback_id"].to_numpy(),
            "customer_id": feedback["customer_id"].to_numpy(),
            "submitted_at": feedback["submitted_at"].to_numpy(),
            "probability": probabilities,
            "label": model.label(probabilities),
        }
    )


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")


def _utc(values: pd.Series, what: str) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise ValueError(f"{what} must be a datetime column, got {values.dtype}")
    return values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")


def _as_of(as_of: datetime | pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(as_of)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


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
            = unscored), ``label``; one row per scored feedback.
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
    stamp = _as_of(as_of)
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
    stamp = _as_of(as_of)
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

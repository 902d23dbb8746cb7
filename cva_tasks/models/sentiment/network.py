"""The Keras network of the sentiment model, its hyperparameters and TensorFlow's set-up.

Architecture: a fastText-style bag of n-grams (default ``ngram_bag``). Every
in-vocabulary unigram and bigram of the first ``sequence_length`` words has an
embedding; the unigram embeddings are averaged, the bigram embeddings are averaged,
the two means are added and a logistic unit reads the sum. Two details carry most of
the out-of-domain quality (figures in ``docs/models/sentiment.md``):

* The out-of-vocabulary id is masked out of both averages, so the average of a text
  from another domain (many unknown bigrams) is not dominated by a learned "unknown"
  vector.
* Negation scope: a unigram within ``negation_window`` (2) words after a negation
  (:data:`cva_tasks.models.sentiment.texts.NEGATIONS`: not, no, never, wasnt, didnt,
  ...) goes through a learned linear map, initialised as a sign flip, before the
  average. The map is shared by all words, so "was not late" reads as positive
  although the demo shop only ever wrote "wasn't late". It is built from frozen
  built-in layers (a 0/1 lookup and a causal convolution), so the saved model needs
  no custom code.

The other architectures (``unigram_bag``, ``conv1d``, ``bilstm``) are kept for
``cva evaluate sentiment --architecture NAME``.

The decision threshold and the logit's stretch are chosen on held-out rows
(:func:`_equal_error_threshold`, :func:`_logit_scale`) and folded into the output unit
by :meth:`cva_tasks.models.sentiment.model.SentimentModel.fit`.

TensorFlow runs with ``CVA_TF_THREADS`` intra-op threads (passed in; default 2, or
fewer cores) and one inter-op thread (:func:`configure_tensorflow`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cva_tasks.models.sentiment.texts import NEGATIONS

log = logging.getLogger(__name__)

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
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see the package's __init__
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

    # Seeds Python, NumPy and TensorFlow, so a seed gives the same model on the same
    # machine. TensorFlow's op determinism is left off: on CPU it made training much
    # slower (docs/models/sentiment.md) and the seeded runs already gave identical
    # losses and predictions (unit test).
    keras.utils.set_random_seed(seed)


def resolve_hyperparameters(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The defaults, the architecture's changes to them, then ``overrides``.

    Raises:
        ValueError: An unknown architecture or hyperparameter name.
    """
    hp = dict(DEFAULT_HYPERPARAMETERS)
    arch = (overrides or {}).get("architecture", hp["architecture"])
    if arch not in ARCHITECTURES:
        raise ValueError(f"architecture {arch!r}: expected one of {sorted(ARCHITECTURES)}")
    hp.update(ARCHITECTURES[arch])
    unknown = set(overrides or {}) - set(hp)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; known: {sorted(hp)}")
    hp.update(overrides or {})
    return hp


# --------------------------------------------------------------------------- #
# The network
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


# --------------------------------------------------------------------------- #
# Threshold and calibration of the output unit
# --------------------------------------------------------------------------- #


def _logit_scale(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Platt slope of the held-out rows' logits around the threshold, at least 1.

    Early stopping on a small shop's feedback leaves the outputs bunched around 0.5
    (all of them inside a 0.4..0.6 neutral band on the demo shop), although they rank
    well. A logistic regression without intercept and with balanced class weights on
    ``logit(score) - logit(threshold)`` keeps the decision point (and so every ranking
    and thresholded metric) and only stretches the logit; it never compresses it
    (slope >= 1) and is capped at 50.
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

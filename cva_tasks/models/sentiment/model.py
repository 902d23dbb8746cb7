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
``tf.constant``; :meth:`SentimentModel.predict_proba` takes lists.) The network is in
:mod:`cva_tasks.models.sentiment.network`; why this architecture, with the figures,
is in ``docs/models/sentiment.md``.

Class imbalance and the decision threshold
-------------------------------------------
Reviews are mostly positive. Training uses balanced class weights, and the
decision threshold is then chosen on a held-out calibration slice (the latest
share of the training rows when an order is given): the point where sensitivity
equals specificity, which was steadier than the argmax of balanced accuracy. The
threshold is folded into the output unit's bias (``b - logit(t)``), so the
saved model's 0.5 *is* the chosen threshold: the output is a probability of
positive under balanced class priors, not the positive share of the training
data. The logit is also stretched by a Platt slope fitted on the same slice
(:func:`cva_tasks.models.sentiment.network._logit_scale`): on a small shop early
stopping leaves every output near 0.5, so without it every piece of feedback would
be "neutral". The stretch keeps the threshold, so rankings and thresholded metrics
do not change. Labels: ``negative`` below the neutral band, ``positive`` at or above
it, ``neutral`` inside; the band defaults to 0.4..0.6 and is set per call, per model
(``neutral_band``; the pipeline passes ``CVA_SENTIMENT_NEUTRAL_BAND``).

Edge cases (defined results, never a crash)
-------------------------------------------
* ``None``/NaN, empty or whitespace-only text: probability NaN, label
  ``unscored`` (the model is not called).
* No in-vocabulary word (pure emoji or punctuation, a language the training data
  did not contain, gibberish): the saved model itself outputs NaN (the unigram
  mean is 0/0 by construction), label ``unscored``.
* A text confidently in a language the model was not trained on (the model's
  ``languages`` param, recorded at fit): probability NaN, label ``unscored``,
  reason ``language:<code>``, the model is not called; short texts are always left to
  the model (:mod:`cva_tasks.models.sentiment.language` has the thresholds and their
  measurement). A model saved without ``languages`` scores every text, as before.
* Very long text: cut to :data:`cva_tasks.models.sentiment.texts.MAX_CHARS`
  characters before the model and to the first ``sequence_length``
  unigrams/bigrams inside it.
* Anything that is not a string (or None/NaN) is a ``TypeError`` naming its
  position.

Training seeds Python, NumPy and TensorFlow with ``keras.utils.set_random_seed``, so
a seed gives the same model on the same machine.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.sentiment import language
from cva_tasks.models.sentiment.network import (
    _UNKNOWN_ID,
    DEFAULT_HYPERPARAMETERS,
    _build_core,
    _equal_error_threshold,
    _logit_scale,
    _negation_flags,
    _seed_everything,
    configure_tensorflow,
    resolve_hyperparameters,
)
from cva_tasks.models.sentiment.texts import _order_values, _split_index, prepare_texts
from cva_tasks.models.untrusted import refuse_unsafe_files

log = logging.getLogger(__name__)

MODEL_FILE = "model.keras"
PARAMS_FILE = "params.json"
DEFAULT_NEUTRAL_BAND = (0.4, 0.6)
#: Texts turned into ids at a time while fitting (bounds the string tensors' memory).
ENCODE_BATCH = 8192
NEGATIVE, NEUTRAL, POSITIVE, UNSCORED = "negative", "neutral", "positive", "unscored"
#: ``unscored_reason`` of :meth:`SentimentModel.predict` besides ``language:<code>``.
REASON_BLANK, REASON_NO_KNOWN_WORD = "blank", "no_known_word"
#: The figures of :attr:`SentimentModel.params` that describe the fit (not its settings).
FIT_METRICS = (
    "calibration_roc_auc",
    "best_epoch",
    "epochs_run",
    "threshold",
    "logit_scale",
    "n_fit",
    "n_calibration",
    "n_dropped_unscorable",
    "n_dropped_blank",
    "train_seconds",
)


def _check_band(band: Sequence[float]) -> tuple[float, float]:
    low, high = (float(b) for b in band)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"neutral band {band!r}: needs 0 <= low <= high <= 1")
    return low, high


class SentimentModel:
    """The sentiment model: the Keras model (raw strings in) and its params.

    The constructor stores the settings; :meth:`fit` or :meth:`load` sets the learned
    state.

    Args:
        seed: Seeds the calibration split, the weights and the data order.
        neutral_band: ``(low, high)`` stored with the model; default 0.4..0.6.
        hyperparameters: Overrides of
            :data:`cva_tasks.models.sentiment.network.DEFAULT_HYPERPARAMETERS` (e.g.
            ``{"architecture": "conv1d"}``); checked by :meth:`fit`.

    Attributes:
        keras_model: after fitting, a ``keras.Model`` taking a batch of strings (shape
            ``(n,)``) and returning ``(n, 1)`` probabilities of positive (NaN where
            the text has no in-vocabulary word).
    """

    kind: ClassVar[str] = "sentiment"

    def __init__(
        self,
        *,
        seed: int = 0,
        neutral_band: Sequence[float] | None = None,
        hyperparameters: dict[str, Any] | None = None,
    ) -> None:
        self.seed = seed
        self.hyperparameters = hyperparameters
        self._neutral_band = neutral_band
        self.keras_model: Any = None
        self._params: dict[str, Any] | None = None
        self._serve: Any = None

    @property
    def params(self) -> dict[str, Any]:
        """JSON-able hyperparameters and training facts (the settings before a fit).

        After a fit: architecture, vocabulary sizes, sequence length, embedding size,
        epochs run, ``threshold`` (on the raw output, folded into the model so the
        output's 0.5 is that threshold), ``neutral_band``, seed, sizes.
        """
        if self._params is not None:
            return self._params
        band = self._neutral_band if self._neutral_band is not None else DEFAULT_NEUTRAL_BAND
        return {**(self.hyperparameters or {}), "neutral_band": list(band), "seed": self.seed}

    @property
    def metrics(self) -> dict[str, Any]:
        """The fit's figures on its calibration slice (empty before a fit).

        The out-of-sample validation figures are those of
        :func:`cva_tasks.models.sentiment.selection.train_sentiment`.
        """
        if self._params is None:
            return {}
        return {name: self._params[name] for name in FIT_METRICS if name in self._params}

    def _serving_function(self) -> Any:
        """The model as one traced graph for any batch size.

        ``keras.Model.predict`` retraces for every new batch shape (a short last
        batch, a different list length); one ``tf.function`` with an unknown batch
        dimension is traced once per model.
        """
        if self._serve is None:
            if self.keras_model is None:
                raise ValueError("the sentiment model is not fitted: call fit() or load()")
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

    # ----------------------------------------------------------------------- #
    # Fitting
    # ----------------------------------------------------------------------- #

    def fit(
        self,
        texts: Sequence[object],
        labels: Sequence[float] | np.ndarray,
        *,
        order: Sequence[object] | None = None,
    ) -> Self:
        """Train on all given rows (minus a calibration slice for early stopping and threshold).

        Args:
            texts: Raw strings.
            labels: 1 = positive, 0 = negative per text (no missing values).
            order: Optional sort key (e.g. ``submitted_at``); the calibration slice
                is then the latest ``calibration_share`` of the rows.

        Returns:
            The model itself, fitted.
        """
        hp = resolve_hyperparameters(self.hyperparameters)
        arch = hp["architecture"]
        band = _check_band(
            self._neutral_band if self._neutral_band is not None else DEFAULT_NEUTRAL_BAND
        )
        seed = self.seed

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
        # What the model can read, so that scoring leaves texts in other languages alone.
        languages = language.trained_languages(cleaned)

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
            # Slice by slice: one string tensor of every text and the layers' temporaries
            # for all of them at once was most of the 15 GB at a million texts. The ids
            # do not depend on the slicing (each text is padded to ``length`` on its own).
            slices: list[list[np.ndarray]] = [[] for _ in layers_used]
            for begin in range(0, len(part), ENCODE_BATCH):
                batch = tf.constant(cleaned[part[begin : begin + ENCODE_BATCH]].astype(str))
                for out, layer in zip(slices, layers_used, strict=True):
                    out.append(layer(batch).numpy())
            return [
                np.concatenate(out) if out else np.zeros((0, length), dtype=np.int64)
                for out in slices
            ]

        x_fit, x_cal = encode(fit_rows), encode(cal_rows)
        # A text whose words are all outside the vocabulary cannot be scored (NaN by design).
        fit_known = (x_fit[0] > _UNKNOWN_ID).any(axis=1)
        cal_known = (x_cal[0] > _UNKNOWN_ID).any(axis=1)
        x_fit = [x[fit_known] for x in x_fit]
        x_cal = [x[cal_known] for x in x_cal]
        y_fit, y_cal = y[fit_rows][fit_known], y[cal_rows][cal_known]
        for name, part in (("training", y_fit), ("calibration", y_cal)):
            if len(np.unique(part)) < 2:
                raise NotEnoughData(
                    f"the {name} part has one class only after dropping unscorable texts"
                )

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
        class_weight = {
            0: len(y_fit) / (2 * negatives),
            1: len(y_fit) / (2 * (len(y_fit) - negatives)),
        }
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
            "bigram_vocabulary": (
                int(layers_used[1].vocabulary_size()) if len(layers_used) > 1 else 0
            ),
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
            **languages,
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
        self.keras_model, self._params, self._serve = model, params, None
        return self

    # ----------------------------------------------------------------------- #
    # Scoring
    # ----------------------------------------------------------------------- #

    def predict_proba(self, texts: Sequence[object], batch_size: int = 512) -> np.ndarray:
        """Probability of positive per text (float64); NaN where the text is unscored.

        Args:
            texts: Raw strings (list, array or Series); ``None``/NaN allowed.
            batch_size: Texts per forward pass.

        Returns:
            Array of ``len(texts)`` probabilities; NaN for missing, blank or
            no-known-word texts and for texts confidently in a language the model was
            not trained on (:meth:`predict` says which).
        """
        return self._score(texts, batch_size)[0]

    def _score(self, texts: Sequence[object], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and, where NaN, why (:data:`REASON_BLANK`, ``language:<code>``,
        :data:`REASON_NO_KNOWN_WORD`); ``None`` where scored."""
        cleaned, blank = prepare_texts(texts)
        out = np.full(len(cleaned), np.nan)
        reasons = np.full(len(cleaned), None, dtype=object)
        reasons[blank] = REASON_BLANK
        todo = np.flatnonzero(~blank)
        foreign = language.unscored_reasons(
            cleaned[todo], language.check_languages(self.params.get("languages"))
        )
        reasons[todo] = foreign
        todo = todo[np.array([reason is None for reason in foreign], dtype=bool)]
        if len(todo):
            serve = self._serving_function()
            for begin in range(0, len(todo), batch_size):
                rows = todo[begin : begin + batch_size]
                out[rows] = np.asarray(serve(cleaned[rows].astype(str))).reshape(-1)
            reasons[todo[np.isnan(out[todo])]] = REASON_NO_KNOWN_WORD
        return out, reasons

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

    def predict(
        self, texts: Sequence[object] | pd.Series, band: Sequence[float] | None = None
    ) -> pd.DataFrame:
        """``probability`` (:meth:`predict_proba`), ``label`` (:meth:`label`) and
        ``unscored_reason`` per text.

        Args:
            texts: Raw strings; a Series keeps its index (e.g. one row per feedback).
            band: As for :meth:`label`.

        Returns:
            One row per text, in input order; ``unscored_reason`` is ``None`` where the
            text was scored, else ``blank``, ``language:<code>`` or ``no_known_word``.
        """
        probabilities, reasons = self._score(texts, 512)
        index = texts.index if isinstance(texts, pd.Series) else None
        return pd.DataFrame(
            {
                "probability": probabilities,
                "label": self.label(probabilities, band),
                "unscored_reason": reasons,
            },
            index=index,
        )

    # ----------------------------------------------------------------------- #
    # Persistence
    # ----------------------------------------------------------------------- #

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
        if self.keras_model is None:
            raise ValueError("the sentiment model is not fitted: nothing to save")
        self.keras_model.save(directory / MODEL_FILE)
        (directory / PARAMS_FILE).write_text(json.dumps(self.params, indent=1, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Load a model written by :meth:`save`."""
        directory = Path(directory)
        refuse_unsafe_files(directory, cls.kind)
        missing = [n for n in (MODEL_FILE, PARAMS_FILE) if not (directory / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory} has no {', '.join(missing)}: not a saved model")
        configure_tensorflow()
        import keras

        params = json.loads((directory / PARAMS_FILE).read_text())
        language.check_languages(params.get("languages"))
        model = cls(
            seed=params.get("seed", 0),
            neutral_band=params.get("neutral_band"),
            hyperparameters={k: params[k] for k in DEFAULT_HYPERPARAMETERS if k in params},
        )
        # safe_mode refuses Lambda layers and other serialised Python code in the file.
        model.keras_model = keras.models.load_model(directory / MODEL_FILE, safe_mode=True)
        model._params = params
        return model

"""Sentiment of customer feedback (kind ``sentiment``): a Keras text classifier.

Modules, by concern:

* :mod:`~cva_tasks.models.sentiment.texts`: inputs (texts, ratings, negation words,
  held-out splits);
* :mod:`~cva_tasks.models.sentiment.network`: the Keras network, its hyperparameters,
  the threshold and calibration of its output, TensorFlow's set-up;
* :mod:`~cva_tasks.models.sentiment.model`: :class:`SentimentModel` (fit, predict,
  labels, save / load);
* :mod:`~cva_tasks.models.sentiment.metrics`: binary metrics and the VADER baseline;
* :mod:`~cva_tasks.models.sentiment.selection`: :func:`train_sentiment`, training with
  an out-of-sample validation against VADER and the champion;
* :mod:`~cva_tasks.models.sentiment.feedback`: scoring feedback, the per-customer
  roll-up and the complaint topics;
* :mod:`~cva_tasks.models.sentiment.training`: the pipeline's day trainer.
"""

import os

# TensorFlow's C++ notices (the CPU-instructions line, absl's "All log messages before
# absl::InitializeLog()") go to stderr, which an Airflow 3 task log shows as ERROR. Level 2
# keeps its errors only; set here, before anything of this package can import TensorFlow
# (configure_tensorflow sets it as well), and left alone when the deployment sets it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# On CPUs with AVX-512/AMX TensorFlow turns oneDNN on by itself and announces it through
# absl before any log level applies; oneDNN also reorders float sums, so figures would
# depend on the CPU. Off unless the deployment says otherwise: same numbers everywhere.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from cva_tasks.models.sentiment.feedback import (
    FEATURE_COLUMNS,
    TOPIC_DTYPES,
    complaint_topics,
    customer_sentiment_features,
    score_feedback,
)
from cva_tasks.models.sentiment.metrics import (
    VADER_THRESHOLD,
    binary_metrics,
    vader_probabilities,
    vader_scores,
)
from cva_tasks.models.sentiment.model import (
    DEFAULT_NEUTRAL_BAND,
    MODEL_FILE,
    NEGATIVE,
    NEUTRAL,
    PARAMS_FILE,
    POSITIVE,
    UNSCORED,
    SentimentModel,
)
from cva_tasks.models.sentiment.network import (
    ARCHITECTURES,
    DEFAULT_HYPERPARAMETERS,
    configure_tensorflow,
)
from cva_tasks.models.sentiment.selection import train_sentiment
from cva_tasks.models.sentiment.texts import (
    MAX_CHARS,
    NEGATIONS,
    prepare_texts,
    ratings_to_labels,
)

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_HYPERPARAMETERS",
    "DEFAULT_NEUTRAL_BAND",
    "FEATURE_COLUMNS",
    "MAX_CHARS",
    "MODEL_FILE",
    "NEGATIONS",
    "NEGATIVE",
    "NEUTRAL",
    "PARAMS_FILE",
    "POSITIVE",
    "TOPIC_DTYPES",
    "UNSCORED",
    "VADER_THRESHOLD",
    "SentimentModel",
    "binary_metrics",
    "complaint_topics",
    "configure_tensorflow",
    "customer_sentiment_features",
    "prepare_texts",
    "ratings_to_labels",
    "score_feedback",
    "train_sentiment",
    "vader_probabilities",
    "vader_scores",
]

"""``cva evaluate sentiment`` on the real review data: the figures the closing note quotes.

Protocol (see :mod:`cva_tasks.evaluation.sentiment`): Women's clothing reviews,
stratified 80/20 split with seed 0; Keras (bag of n-grams with negation scope),
VADER and TF-IDF + logistic regression fitted on the 80%, measured on the 20%;
then the Amazon musical-instrument reviews scored with the same models, unchanged.

Measured with seed 0 on 2 shared cores (balanced accuracy / macro-F1 / ROC AUC):

============  ======================  ======================
model         in domain (3,964)       Amazon (9,489)
============  ======================  ======================
Keras         0.923 / 0.861 / 0.972   0.817 / 0.612 / 0.890
VADER         0.659 / 0.704 / 0.869   0.711 / 0.671 / 0.807
TF-IDF + LR   0.931 / 0.885 / 0.976   0.821 / 0.624 / 0.896
============  ======================  ======================

Language detection (py3langid) leaves 3 of the 9,489 Amazon reviews unscored: they are
written in Spanish (``language:es``); none in domain. Before it they were scored, and
the table's figures were the same to 4 decimals. Detection is part of the scoring time
(it reads the first 300 characters of a text): on a loaded machine (load average 6 on
2 cores) 3,316 texts/s in domain and 2,937 on Amazon, against 6,979 and 4,865 without
it under similar load.

Keras trained in 36 s (33-73 s under other jobs' load), scored 7,000-17,000 texts/s;
the whole command took 54-110 s. Seeds 1 and 2 (other splits) kept every goal
(Keras 0.0034-0.0037 ROC AUC behind TF-IDF + LR in domain). VADER and TF-IDF + LR are
deterministic, so they are pinned tightly; the Keras thresholds leave ~0.01-0.02 for
floating-point differences between CPUs.
"""

from __future__ import annotations

import pytest

from cva_tasks.evaluation import sentiment as evaluation


@pytest.fixture(scope="module")
def result(evaluate) -> dict:
    """The evaluation, run once for the module."""
    return evaluate(evaluation)


def test_protocol_and_data(result: dict) -> None:
    assert result["seed"] == 0
    assert result["n"] == {
        "train": 15_854,
        "in_domain_test": 3_964,
        "in_domain_test_negative_share": pytest.approx(0.1196, abs=1e-4),
        "amazon": 9_489,
        "amazon_negative_share": pytest.approx(0.0492, abs=1e-4),
    }
    params = result["keras_params"]
    assert params["architecture"] == "ngram_bag"
    assert params["negation_window"] == 2
    assert params["n_calibration"] == pytest.approx(1_585, abs=5)


def test_goals_are_met(result: dict) -> None:
    assert result["ok"], result["goals"]
    assert all(result["goals"].values())
    assert len(result["goals"]) == 5


def test_keras_figures(result: dict) -> None:
    in_domain = result["results"]["in_domain"]["keras"]
    amazon = result["results"]["amazon"]["keras"]
    assert in_domain["roc_auc"] >= 0.962
    assert in_domain["balanced_accuracy"] >= 0.905
    assert in_domain["macro_f1"] >= 0.83
    assert amazon["roc_auc"] >= 0.87
    assert amazon["balanced_accuracy"] >= 0.785
    # Trained on English; the three Amazon reviews written in Spanish are left unscored
    # (they count as 0.5; the figures above moved by less than 0.0001).
    assert result["keras_params"]["languages"] == ["en"]
    assert in_domain["n_unscored"] == 0 and in_domain["unscored_reasons"] == {}
    assert amazon["n_unscored"] == 3 and amazon["unscored_reasons"] == {"language:es": 3}
    # Minutes, not hours, on 2 cores; scoring stays a traced graph (no retracing per batch).
    assert in_domain["train_seconds"] < 300
    assert min(result["throughput_texts_per_second"].values()) > 1_000


def test_baselines_are_pinned(result: dict) -> None:
    in_domain, amazon = result["results"]["in_domain"], result["results"]["amazon"]
    assert in_domain["vader"]["roc_auc"] == pytest.approx(0.869, abs=0.002)
    assert in_domain["vader"]["balanced_accuracy"] == pytest.approx(0.659, abs=0.002)
    assert amazon["vader"]["roc_auc"] == pytest.approx(0.807, abs=0.002)
    assert amazon["vader"]["balanced_accuracy"] == pytest.approx(0.711, abs=0.002)
    assert in_domain["tfidf_lr"]["roc_auc"] == pytest.approx(0.976, abs=0.003)
    assert in_domain["tfidf_lr"]["balanced_accuracy"] == pytest.approx(0.931, abs=0.005)
    assert amazon["tfidf_lr"]["roc_auc"] == pytest.approx(0.896, abs=0.003)
    assert amazon["tfidf_lr"]["balanced_accuracy"] == pytest.approx(0.821, abs=0.005)

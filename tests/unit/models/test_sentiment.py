"""Sentiment model: training on the demo shop's feedback, persistence, edge cases, roll-ups."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from cva_tasks.models import sentiment
from cva_tasks.models.sentiment import (
    SentimentModel,
    complaint_topics,
    customer_sentiment_features,
    ratings_to_labels,
    train_sentiment,
)
from cva_tasks.models.sentiment import texts as sentiment_texts
from cva_tasks.settings import Settings

# Hand-written, not taken from the demo shop's templates: each sentence turns on a
# negation, so a bag of single words would read many of them the wrong way round.
NEGATED_POSITIVE = (
    "The parcel was not late at all.",
    "It did not arrive damaged.",
    "No problems with the fit.",
    "The fabric did not shrink in the wash.",
    "I can't fault the delivery.",
    "It wasn't expensive for what you get.",
    "Not disappointed at all.",
    "Delivery was not slow.",
    "The box wasn't crushed.",
    "Nothing to complain about.",
)
NEGATED_NEGATIVE = (
    "The delivery was not fast.",
    "It is not well made.",
    "The fabric is not soft.",
    "Not worth the price.",
    "It did not fit.",
    "It doesn't look like the photos.",
    "Customer service was not helpful.",
    "The packaging wasn't sturdy.",
    "It never worked properly.",
    "I would not order again.",
)
# Measured with seed 0 on the shop below: 18 of 20 (seeds 1 and 2: 18 too). The
# bar leaves room for two more misses, not for a model that ignores negation:
# the same model without its negation scope read 11 of 20.
MIN_NEGATION_RATE = 0.8


@pytest.fixture(scope="module")
def shop_feedback() -> pd.DataFrame:
    from cva_tasks.demo.shop import generate_frames

    return generate_frames(n_customers=2000, seed=3).feedback


@pytest.fixture(scope="module")
def trained(shop_feedback) -> tuple[SentimentModel, dict]:
    fb = shop_feedback
    return train_sentiment(fb["comment"], fb["rating"], seed=0, order=fb["submitted_at"])


def test_training_is_measured_out_of_time_and_beats_vader(trained, shop_feedback) -> None:
    model, metrics = trained
    rated = ratings_to_labels(shop_feedback["rating"])
    assert metrics["validation"] == "out of time"
    assert metrics["n_train"] + metrics["n_validation"] == int((~np.isnan(rated)).sum())
    assert metrics["n_validation"] == round(0.2 * (~np.isnan(rated)).sum())
    # Measured: ROC AUC 0.976, balanced accuracy 0.941 (VADER 0.896 / 0.791).
    assert metrics["roc_auc"] >= 0.95
    assert metrics["balanced_accuracy"] >= 0.90
    assert metrics["roc_auc"] > metrics["baseline_vader_roc_auc"]
    assert metrics["balanced_accuracy"] > metrics["baseline_vader_balanced_accuracy"]
    assert metrics["train_seconds"] > 0
    assert model.params["architecture"] == "ngram_bag"
    assert 0.0 < model.params["threshold"] < 1.0
    json.dumps(model.params)  # the registry stores it as JSON


def test_out_of_time_split_holds_out_the_latest_rows() -> None:
    labels = np.array([0.0, 1.0] * 10)
    order = np.arange(20)[::-1]  # row 0 is the latest
    keep, held = sentiment_texts._split_index(
        20, labels, 0.2, seed=0, order=order, what="validation"
    )
    assert sorted(held.tolist()) == [0, 1, 2, 3]
    assert sorted(keep.tolist()) == list(range(4, 20))


def test_saved_model_loads_and_scores_raw_strings(trained, tmp_path) -> None:
    import keras

    model, _ = trained
    texts = ["Love it, would buy again!", "It broke after a week. Avoid.", "shipping was quick"]
    expected = model.predict_proba(texts)
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "params.json"]

    loaded = SentimentModel.load(tmp_path)
    np.testing.assert_allclose(loaded.predict_proba(texts), expected, rtol=1e-6)
    assert loaded.params == json.loads(json.dumps(model.params))
    assert list(loaded.label(expected)) == ["positive", "negative", "positive"]

    # The .keras file alone scores raw strings: no tokenizer file needed.
    raw = keras.models.load_model(tmp_path / "model.keras")
    scores = raw.predict(np.asarray(texts, dtype=object), verbose=0).reshape(-1)
    np.testing.assert_allclose(scores, expected, rtol=1e-6)

    with pytest.raises(FileExistsError, match="empty folder"):
        model.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a saved model"):
        SentimentModel.load(tmp_path / "nowhere")


def test_negations_are_read_at_a_measured_rate(trained) -> None:
    model, _ = trained
    p_positive = model.predict_proba(NEGATED_POSITIVE)
    p_negative = model.predict_proba(NEGATED_NEGATIVE)
    correct = np.concatenate([p_positive >= 0.5, p_negative < 0.5])  # NaN counts as wrong
    sentences = NEGATED_POSITIVE + NEGATED_NEGATIVE
    scores = dict(zip(sentences, np.r_[p_positive, p_negative].round(3), strict=True))
    assert correct.mean() >= MIN_NEGATION_RATE, f"{correct.sum()}/{len(correct)} right: {scores}"


def test_edge_cases_get_defined_results(trained) -> None:
    model, _ = trained
    long_positive = "Delivery was really fast and the fabric feels lovely. " * 4_000
    texts = [
        "",
        "   \n\t",
        None,
        float("nan"),
        "😀🎉👍",
        "?!... :-) ***",
        "Das Paket kam nie an und die Qualität ist schlecht",
        long_positive,
        "x" * 200_000,
        "Great value for money",
    ]
    p = model.predict_proba(texts)
    labels = model.label(p)
    assert p.shape == (len(texts),)
    assert np.isnan(p[:7]).all()
    assert list(labels[:7]) == ["unscored"] * 7
    assert p[7] >= 0.5 and labels[7] == "positive"  # long text: cut, still scored
    assert math.isnan(p[8])  # one long unknown "word"
    assert labels[9] == "positive"
    assert model.predict_proba([]).shape == (0,)
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        model.predict_proba(["fine", 42])


def test_score_feedback_scores_canonical_rows_rated_or_not(trained) -> None:
    model, _ = trained
    feedback = pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3"],
            "customer_id": ["c1", "c2", "c3"],
            "order_id": [None, "o2", None],
            "rating": pd.array([None, 1, None], dtype="Int64"),
            "text": ["Great value for money", "It broke after a week", pd.NA],
            "submitted_at": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"], utc=True),
        }
    )
    scored = sentiment.score_feedback(model, feedback)
    assert list(scored.columns) == [
        "feedback_id",
        "customer_id",
        "submitted_at",
        "probability",
        "label",
        "unscored_reason",
    ]
    assert list(scored["label"]) == ["positive", "negative", "unscored"]
    assert scored["unscored_reason"].iloc[2] == "blank"
    assert scored["probability"].iloc[0] > 0.6 and scored["probability"].iloc[1] < 0.4
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['text'\]"):
        sentiment.score_feedback(model, feedback.drop(columns="text"))


def test_labels_follow_the_neutral_band(trained, monkeypatch) -> None:
    model, _ = trained
    p = [0.1, 0.39, 0.4, 0.5, 0.6, 0.95, float("nan")]
    assert list(model.label(p)) == [
        "negative",
        "negative",
        "neutral",
        "neutral",
        "positive",
        "positive",
        "unscored",
    ]
    assert list(model.label(p, band=(0.5, 0.5))) == [
        "negative",
        "negative",
        "negative",
        "positive",
        "positive",
        "positive",
        "unscored",
    ]
    with pytest.raises(ValueError, match="low <= high"):
        model.label(p, band=(0.7, 0.3))
    monkeypatch.setenv("CVA_SENTIMENT_NEUTRAL_BAND", "0.3,0.7")
    assert Settings.from_env().sentiment_neutral_band == (0.3, 0.7)
    monkeypatch.setenv("CVA_SENTIMENT_NEUTRAL_BAND", "0.3")
    with pytest.raises(ValueError, match="CVA_SENTIMENT_NEUTRAL_BAND"):
        Settings.from_env()


def test_training_is_deterministic_under_a_seed(shop_feedback) -> None:
    fb = shop_feedback.iloc[:800]
    labels = ratings_to_labels(fb["rating"])
    rated = ~np.isnan(labels)
    texts, y = fb["comment"][rated].tolist(), labels[rated]
    hp = {"max_epochs": 1}
    probe = ["Delivery was late again", "Lovely fabric", "not worth the money"]
    first = SentimentModel(seed=5, hyperparameters=hp).fit(texts, y).predict_proba(probe)
    second = SentimentModel(seed=5, hyperparameters=hp).fit(texts, y).predict_proba(probe)
    np.testing.assert_array_equal(first, second)


def test_bad_training_input_is_named() -> None:
    assert np.array_equal(
        ratings_to_labels([5, 4, 3, 2, 1, None, 4.0]),
        [1.0, 1.0, np.nan, 0.0, 0.0, np.nan, 1.0],
        equal_nan=True,
    )
    with pytest.raises(ValueError, match=r"ratings\[1\] = 7"):
        ratings_to_labels([5, 7])
    with pytest.raises(ValueError, match="at least 10 of each"):
        train_sentiment(["good"] * 30 + ["bad"] * 3, [5] * 30 + [1] * 3)
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        SentimentModel(hyperparameters={"epochs": 3}).fit(["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="architecture 'gpt'"):
        SentimentModel(hyperparameters={"architecture": "gpt"}).fit(["a", "b"], [0, 1])


def _scored(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "submitted_at", "probability", "label"])
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True)
    return frame


def test_customer_features_are_point_in_time() -> None:
    as_of = pd.Timestamp("2025-06-01", tz="UTC")
    scored = _scored(
        [
            # c1: one piece before the window, two inside, one at as_of (the future).
            ("c1", "2025-01-01 10:00", 0.9, "positive"),
            ("c1", "2025-03-03 00:00", 0.2, "negative"),  # exactly as_of - 90 days: inside
            ("c1", "2025-05-20 12:00", 0.4, "neutral"),
            ("c1", "2025-06-01 00:00", 0.0, "negative"),  # at as_of: excluded
            # c2: only old feedback; its latest piece is unscored and is skipped.
            ("c2", "2024-12-01 00:00", 0.1, "negative"),
            ("c2", "2024-12-05 00:00", float("nan"), "unscored"),
            # c3: only after as_of: no row.
            ("c3", "2025-07-01 00:00", 0.8, "positive"),
            # c4: two negatives in the window, the later one is the last.
            ("c4", "2025-05-01 00:00", 0.1, "negative"),
            ("c4", "2025-05-02 00:00", 0.3, "negative"),
        ]
    )
    features = customer_sentiment_features(scored, as_of).set_index("customer_id")
    assert list(features.index) == ["c1", "c2", "c4"]
    assert features.loc["c1", "avg_sentiment_90d"] == pytest.approx(0.3)
    assert features.loc["c1", "last_feedback_sentiment"] == pytest.approx(0.4)
    assert features.loc["c1", "negative_feedback_90d"] == 1
    assert math.isnan(features.loc["c2", "avg_sentiment_90d"])
    assert features.loc["c2", "last_feedback_sentiment"] == pytest.approx(0.1)
    assert features.loc["c2", "negative_feedback_90d"] == 0
    assert features.loc["c4", "avg_sentiment_90d"] == pytest.approx(0.2)
    assert features.loc["c4", "last_feedback_sentiment"] == pytest.approx(0.3)
    assert features.loc["c4", "negative_feedback_90d"] == 2
    assert features["negative_feedback_90d"].dtype == "int64"

    # A shorter window and a naive as_of (read as UTC).
    short = customer_sentiment_features(scored, "2025-06-01", window_days=20)
    assert short.set_index("customer_id").loc["c1", "avg_sentiment_90d"] == pytest.approx(0.4)

    empty = customer_sentiment_features(scored, "2020-01-01")
    assert list(empty.columns) == list(sentiment.FEATURE_COLUMNS) and empty.empty
    with pytest.raises(ValueError, match="lacks column"):
        customer_sentiment_features(scored.drop(columns="label"), as_of)
    with pytest.raises(ValueError, match="window_days"):
        customer_sentiment_features(scored, as_of, window_days=0)


def test_complaint_topics_mark_negative_terms_of_the_window() -> None:
    as_of = pd.Timestamp("2025-06-01", tz="UTC")
    negative = [
        "Delivery was late and the box was crushed",
        "Late delivery again, very slow courier",
        "The box was crushed and the item broken",
        "Delivery late, customer service never replied",
        "Item broken, not happy, late delivery",
        "Slow courier, not happy, late delivery",
    ]
    positive = [
        "Lovely fabric and fast delivery",
        "Lovely colour, fits well",
        "Fast delivery, lovely fabric",
        "Great value, fits well",
        "Lovely fabric, great value",
        "Fits well and fast delivery",
    ]
    rows = [(t, "2025-05-20", "negative") for t in negative]
    rows += [(t, "2025-05-21", "positive") for t in positive]
    rows += [("Terrible zipper, terrible zipper", "2025-03-01", "negative")] * 5  # outside
    rows += [("Okay I guess", "2025-05-22", "neutral")]
    scored = pd.DataFrame(rows, columns=["text", "submitted_at", "label"])
    scored["submitted_at"] = pd.to_datetime(scored["submitted_at"], utc=True)

    topics = complaint_topics(scored, as_of, window_days=30, top_n=5)
    assert list(topics.columns) == list(sentiment.TOPIC_DTYPES)
    assert 0 < len(topics) <= 5
    terms = set(topics["term"])
    assert {"late", "late delivery"} & terms
    assert not terms & {"lovely", "fabric", "fits", "value", "zipper", "terrible"}
    late = topics.set_index("term").loc["late"]
    assert late["negative_docs"] == 5 and late["positive_docs"] == 0
    assert late["share_of_negative"] == pytest.approx(5 / 6)
    assert topics["score"].is_monotonic_decreasing and (topics["score"] > 0).all()

    # A bare negation and a word that only occurs inside one phrase are not topics.
    all_terms = set(complaint_topics(scored, as_of, window_days=30, top_n=50)["term"])
    assert "not happy" in all_terms
    assert not all_terms & {"not", "happy"}

    too_few = complaint_topics(scored, as_of, window_days=30, min_negative_docs=7)
    assert too_few.empty and list(too_few.columns) == list(sentiment.TOPIC_DTYPES)


def test_mask_pii_replaces_emails_phones_and_links_but_not_measurements() -> None:
    masked = sentiment_texts.mask_pii(
        "Write to jane.doe+x@example.co.uk, call +44 (0)20 7946 0958 or 555-123-4567, "
        "see https://shop.example.com/a?b=c@d. I am 5'4 120 lbs, 34-28-36, order 12345."
    )
    for secret in ("jane", "example", "7946", "555", "https"):
        assert secret not in masked
    assert masked.count("piiphone") == 2 and "piiemail" in masked and "piiurl" in masked
    assert "34-28-36" in masked and "120 lbs" in masked and "12345" in masked


def test_the_saved_vocabulary_holds_no_email_or_phone_of_the_training_texts(tmp_path) -> None:
    import keras

    rng = np.random.default_rng(0)
    good = ["love this dress", "great fit and soft", "perfect, buy it"]
    bad = ["terrible quality", "it ripped, awful", "cheap and ugly"]
    texts, labels = [], []
    for i in range(240):
        positive = i % 2 == 0
        base = str(rng.choice(good if positive else bad))
        texts.append(f"{base} mail ann.lee{i % 3}@mailhost.com or call 0612-345-{678 + i % 3}")
        labels.append(1.0 if positive else 0.0)
    model = SentimentModel(seed=0).fit(texts, labels)
    model.save(tmp_path)
    raw = keras.models.load_model(tmp_path / "model.keras")
    vocabulary = [
        str(token)
        for layer in raw.layers
        if isinstance(layer, keras.layers.TextVectorization)
        for token in layer.get_vocabulary()
    ]
    assert any("piiemail" in token for token in vocabulary)
    leaked = [t for t in vocabulary if any(s in t for s in ("ann", "mailhost", "0612", "345"))]
    assert not leaked, leaked


def test_importing_tensorflow_through_the_package_prints_no_notices():
    # Airflow 3 shows a task's stderr as ERROR lines: TensorFlow's C++ notices must not
    # reach it. A fresh process, as a task is.
    import os
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }
    script = (
        "import cva_tasks.models.sentiment\n"
        "import tensorflow as tf\n"
        "print(int(tf.constant(1) + 1))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip() == "2", result.stderr[-2000:]
    assert "cpu_feature_guard" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr
    assert "oneDNN" not in result.stderr


def test_sample_rows_are_bounded_seeded_and_in_order() -> None:
    sample = sentiment_texts.sample_rows(1_000, 100, seed=3)
    assert len(sample) == 100 and len(np.unique(sample)) == 100
    assert np.all(np.diff(sample) > 0), "rows keep their order"
    np.testing.assert_array_equal(sample, sentiment_texts.sample_rows(1_000, 100, seed=3))
    assert not np.array_equal(sample, sentiment_texts.sample_rows(1_000, 100, seed=4))
    np.testing.assert_array_equal(sentiment_texts.sample_rows(50, 100, seed=3), np.arange(50))
    np.testing.assert_array_equal(sentiment_texts.sample_rows(50, None, seed=3), np.arange(50))
    with pytest.raises(ValueError, match="at least 1"):
        sentiment_texts.sample_rows(50, 0, seed=3)


def test_training_on_a_bounded_sample_is_reproducible(shop_feedback) -> None:
    fb = shop_feedback.iloc[:1500]
    hp = {"max_epochs": 1}

    def train(limit: int | None) -> tuple[SentimentModel, dict]:
        return train_sentiment(
            fb["comment"],
            fb["rating"],
            seed=0,
            order=fb["submitted_at"],
            hyperparameters=hp,
            max_train_texts=limit,
        )

    full_model, full = train(None)
    model, metrics = train(300)
    again, _ = train(300)
    assert full["n_train"] == full["n_train_available"] == metrics["n_train_available"] > 300
    assert metrics["n_train"] == 300
    fitted = model.params
    assert fitted["n_fit"] + fitted["n_calibration"] + fitted["n_dropped_unscorable"] == 300
    assert full_model.params["n_fit"] > fitted["n_fit"]
    # The validation part is the same latest rows, never sampled.
    assert metrics["n_validation"] == full["n_validation"]
    probe = ["Delivery was late again", "Lovely fabric", "not worth the money"]
    np.testing.assert_array_equal(model.predict_proba(probe), again.predict_proba(probe))


def test_the_default_sample_bound_leaves_the_evaluation_corpora_whole() -> None:
    # cva evaluate sentiment trains on 80% of 19,818 reviews: the default bound must not
    # cut any real corpus we measure on, so its figures do not move.
    assert Settings.from_env().sentiment_max_train_texts == 100_000 > 19_818


def test_fitting_in_encoding_slices_gives_the_same_model(shop_feedback, monkeypatch) -> None:
    from cva_tasks.models.sentiment import model as model_module

    fb = shop_feedback.iloc[:800]
    labels = ratings_to_labels(fb["rating"])
    rated = ~np.isnan(labels)
    texts, y = fb["comment"][rated].tolist(), labels[rated]
    hp = {"max_epochs": 1}
    probe = ["Delivery was late again", "Lovely fabric", "not worth the money"]
    whole = SentimentModel(seed=5, hyperparameters=hp).fit(texts, y).predict_proba(probe)
    monkeypatch.setattr(model_module, "ENCODE_BATCH", 7)
    sliced = SentimentModel(seed=5, hyperparameters=hp).fit(texts, y).predict_proba(probe)
    np.testing.assert_array_equal(whole, sliced)


def test_a_text_that_is_not_a_string_is_named_before_any_work() -> None:
    texts = ["good"] * 20 + [3.5] + ["bad"] * 20
    with pytest.raises(TypeError, match=r"texts\[20\] is float"):
        train_sentiment(texts, [5] * 20 + [5] + [1] * 20)

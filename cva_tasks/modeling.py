"""Model steps of the daily DAG: train each model kind when due, score with the day's champion.

Kinds (:data:`cva_tasks.models.registry.KINDS`) and what they produce:

* ``clusters``: behavioural K-Means clusters (:mod:`cva_tasks.models.clusters`) ->
  ``cluster_id`` / ``cluster_label`` in ``customer_scores`` and ``segment_profiles``;
* ``clv``: BG/NBD + Gamma-Gamma lifetime value (:mod:`cva_tasks.models.clv`) ->
  ``p_alive``, expected orders, ``clv_365d``, ``expected_next_order_at``;
* ``sentiment``: the Keras feedback classifier (:mod:`cva_tasks.models.sentiment`) ->
  ``feedback_sentiment``, ``feedback_topics`` and the per-customer sentiment columns;
* ``churn``: calibrated churn risk with reasons (:mod:`cva_tasks.models.churn`);
* ``recommender``: next-best products and buy-again lists
  (:mod:`cva_tasks.models.recommend`) -> ``customer_recommendations``.

Training (:func:`train_model`) runs when :func:`cva_tasks.models.registry.training_due`
says so: every ``CVA_TRAIN_EVERY_DAYS`` days (default 7; per kind
``CVA_TRAIN_EVERY_DAYS_<KIND>``), at once when no model exists, and for churn also
when feature drift passes its threshold. A new model replaces the champion unless it is
worse on the same out-of-time validation by more than ``CVA_PROMOTION_TOLERANCE``
(absolute, in the kind's metric; default 0.005; per kind
``CVA_PROMOTION_TOLERANCE_<KIND>``). Scoring a day always uses :func:`registry.champion`
of that day.

Every output is a lake partition keyed by the day and replaced whole, so reruns and
backfills give the same rows; :func:`cva_tasks.pipeline.publish` loads them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.models import registry
from cva_tasks.pipeline import as_day, as_of_instant
from cva_tasks.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: Lake partitions (under ``scores/``) written by the model steps, by warehouse table.
SCORE_TABLES = (
    "customer_scores",
    "segment_profiles",
    "customer_recommendations",
    "feedback_sentiment",
    "feedback_topics",
)
SENTIMENT_FEATURES = ("avg_sentiment_90d", "last_feedback_sentiment", "negative_feedback_90d")
SENTIMENT_WINDOW_DAYS = 90
TOPICS_WINDOW_DAYS = 30


def enabled_kinds() -> tuple[str, ...]:
    """Model kinds the pipeline trains: ``CVA_MODELS`` (comma-separated), default all.

    A shop without feedback can leave out ``sentiment``; an empty value trains none
    (scoring then publishes the RFM columns and nulls).
    """
    value = os.environ.get("CVA_MODELS")
    if value is None:
        return registry.KINDS
    kinds = tuple(k.strip() for k in value.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(registry.KINDS))
    if unknown:
        raise ValueError(
            f"CVA_MODELS names unknown model kind(s) {unknown}; known: {registry.KINDS}"
        )
    return kinds


def train_every_days(kind: str) -> int:
    value = os.environ.get(f"CVA_TRAIN_EVERY_DAYS_{kind.upper()}") or os.environ.get(
        "CVA_TRAIN_EVERY_DAYS", "7"
    )
    return int(value)


def promotion_tolerance(kind: str) -> float:
    value = os.environ.get(f"CVA_PROMOTION_TOLERANCE_{kind.upper()}") or os.environ.get(
        "CVA_PROMOTION_TOLERANCE", "0.005"
    )
    return float(value)


def partition(settings: Settings, zone: str, name: str, ds: date) -> str:
    return storage.join(settings.data_root, zone, name, f"ds={ds.isoformat()}")


class DayData:
    """What the model steps of day ``ds`` read from the lake, loaded once each.

    Everything is as known at the end of ``ds`` (:func:`as_of_instant`); features of
    an earlier day are rebuilt point in time from the staged lake when that day's
    partition is absent (snapshots for churn training, holdouts for CLV).
    """

    def __init__(self, ds: date, settings: Settings | None = None) -> None:
        self.ds = ds
        self.settings = settings or Settings.from_env()
        self.root = self.settings.data_root
        self._features: dict[date, pd.DataFrame] = {}
        self._orders: dict[datetime, pd.DataFrame] = {}

    def features_at(self, day: date) -> pd.DataFrame:
        """Customer features as of the end of ``day`` (the feature partition of ``day``)."""
        if day > self.ds:
            raise ValueError(f"features of {day} requested while running {self.ds}: future data")
        if day not in self._features:
            uri = partition(self.settings, "features", "customer", day)
            if storage.exists(uri):
                frame = storage.read_table(uri).to_pandas()
            else:
                from cva_tasks.features.customer import build_customer_features

                frame = build_customer_features(as_of_instant(day), self.root).to_pandas()
            self._features[day] = frame
        return self._features[day]

    def features_before(self, day: date) -> pd.DataFrame:
        """Features using only events before ``day`` 00:00 UTC (the "as of ``day``" of the
        evaluation protocols): the features of ``day - 1``."""
        return self.features_at(day - timedelta(days=1))

    def orders_as_of(self, instant: datetime) -> pd.DataFrame:
        """Counted orders known at ``instant`` (never later than the end of ``ds``)."""
        from cva_tasks.features.history import counted_orders

        instant = min(instant, as_of_instant(self.ds))
        if instant not in self._orders:
            self._orders[instant] = counted_orders(instant, self.root)
        return self._orders[instant]


def _load(kind: str, run: registry.ModelRun, root: str):
    """The model object of a saved run."""
    folder = registry.local_copy(run, root)
    return _model_class(kind).load(folder)


def _model_class(kind: str):
    if kind == "clusters":
        from cva_tasks.models.clusters import ClusterModel

        return ClusterModel
    if kind == "clv":
        from cva_tasks.models.clv import LifetimeValueModel

        return LifetimeValueModel
    if kind == "churn":
        from cva_tasks.models.churn import ChurnModel

        return ChurnModel
    if kind == "recommender":
        from cva_tasks.models.recommend import Recommender

        return Recommender
    if kind == "sentiment":
        from cva_tasks.models.sentiment import SentimentModel

        return SentimentModel
    raise ValueError(f"unknown model kind {kind!r}")


def champion_model(kind: str, ds: date, root: str | None = None) -> tuple[Any, registry.ModelRun]:
    """The champion of ``kind`` for day ``ds`` and its run, or ``(None, None)``."""
    root = root or Settings.from_env().data_root
    run = registry.champion(kind, ds, root)
    if run is None:
        return None, None
    return _load(kind, run, root), run


# --- training ------------------------------------------------------------------------


def train_model(kind: str, ds: date | str, run_id: str) -> dict[str, Any]:
    """Train ``kind`` for day ``ds`` if due; save the run and decide its promotion.

    Returns:
        A summary: whether it trained and why, the version, the metric, promotion.
    """
    ds = as_day(ds)
    if kind not in enabled_kinds():
        return {"kind": kind, "trained": False, "reason": "not in CVA_MODELS"}
    settings = Settings.from_env()
    root = settings.data_root
    due, why = registry.training_due(kind, ds, train_every_days(kind), root)
    data = DayData(ds, settings)
    if not due and kind == "churn":
        due, why = _churn_drift(data)
    if not due:
        log.info("%s: not training on %s (%s)", kind, ds, why)
        return {"kind": kind, "trained": False, "reason": why}
    if data.features_at(ds).empty:
        log.warning("%s: no customers as of %s, nothing to train on", kind, ds)
        return {"kind": kind, "trained": False, "reason": "no customers yet"}

    # The champion to beat is the one in force before this day's training (a rerun of
    # the day must not compare a model with itself).
    current, current_run = champion_model(kind, ds - timedelta(days=1), root)
    started = time.perf_counter()
    log.info("%s: training for %s (%s)", kind, ds, why)
    try:
        model, report = TRAINERS[kind](data, current)
    except NotEnoughData as exc:
        log.warning("%s: not enough data to train on %s: %s", kind, ds, exc)
        return {"kind": kind, "trained": False, "reason": f"not enough data: {exc}"}
    report.setdefault("train_seconds", round(time.perf_counter() - started, 1))
    run = registry.new_run(
        kind, ds, run_id, report, current_run, tolerance=promotion_tolerance(kind), why=why
    )
    registry.save_run(run, model.save, root)
    return {
        "kind": kind,
        "trained": True,
        "version": run.version,
        "metric": run.metric,
        "metric_value": run.metric_value,
        "champion_metric_value": run.champion_metric_value,
        "promoted": run.promoted,
        "reason": run.reason,
        "seconds": report["train_seconds"],
    }


def _train_clusters(data: DayData, current) -> tuple[Any, dict[str, Any]]:
    from cva_tasks.models.clusters import fit_clusters

    features = data.features_at(data.ds)
    k_min, k_max = (int(v) for v in os.environ.get("CVA_CLUSTER_K_RANGE", "3,8").split(","))
    model = fit_clusters(features, k_range=(k_min, k_max), seed=0, previous=current)
    silhouette = model.metrics.get("silhouette")
    return model, {
        "algorithm": f"K-Means (k={model.metrics.get('k')}, chosen by silhouette)",
        # Clusters describe, they do not predict: the silhouette is an internal,
        # in-sample criterion, recorded but not used to refuse a retrain.
        "metric": "silhouette",
        "metric_value": silhouette,
        "higher_is_better": True,
        "champion_metric": None,
        "training_window": {"start": None, "end": data.ds},
        "params": model.params,
        "model_metrics": model.metrics,
        "matching": model.matching,
    }


def _train_clv(data: DayData, current) -> tuple[Any, dict[str, Any]]:
    from cva_tasks.models.clv import train_clv

    # train_clv's features_at(day) means "events before day 00:00 UTC".
    model, report = train_clv(data.features_before, data.orders_as_of, data.ds, champion=current)
    report.setdefault("algorithm", "BG/NBD + Gamma-Gamma")
    report.setdefault("higher_is_better", False)
    return model, report


def _train_churn(data: DayData, current) -> tuple[Any, dict[str, Any]]:
    from cva_tasks.models.churn import train_churn

    features_at = _with_sentiment(data)
    model, report = train_churn(
        data.ds,
        features_at,
        data.orders_as_of,
        horizon_days=int(os.environ.get("CVA_CHURN_HORIZON_DAYS", "90")),
        champion=current,
        tolerance=promotion_tolerance("churn"),
    )
    windows = report.get("windows", {})
    fit_window = windows.get("fit_label_window") or [None, None]
    validation_window = windows.get("validation_label_window") or [None, None]
    report.update(
        {
            "algorithm": f"{report.get('chosen')} + {model.params.get('calibration', 'platt')}"
            " calibration",
            "metric_value": report.get("value"),
            "training_window": {"start": fit_window[0], "end": fit_window[1]},
            "validation_window": {"start": validation_window[0], "end": validation_window[1]},
        }
    )
    return model, report


def _with_sentiment(data: DayData) -> Callable[[date], pd.DataFrame]:
    """``features_before`` plus the sentiment roll-up as of the same instant, when a
    sentiment model exists on ``ds``.

    The feedback is scored once by the day's sentiment champion; each snapshot only
    sees feedback submitted before its own instant. That model was trained on ratings
    up to ``ds``, which are not churn labels, so no label leaks into a snapshot.
    """
    model, _run = champion_model("sentiment", data.ds, data.root)
    if model is None:
        return data.features_before
    from cva_tasks.features.history import visible_rows
    from cva_tasks.models import sentiment

    feedback = visible_rows("feedback", as_of_instant(data.ds), data.root)
    scored = sentiment.score_feedback(model, feedback)

    def features_at(day: date) -> pd.DataFrame:
        from cva_tasks.features.customer import as_utc

        instant = as_of_instant(day - timedelta(days=1))
        rollup = sentiment.customer_sentiment_features(
            scored, as_utc(instant), SENTIMENT_WINDOW_DAYS
        )
        return data.features_before(day).merge(
            rollup[["customer_id", *SENTIMENT_FEATURES]], on="customer_id", how="left"
        )

    return features_at


class NotEnoughData(ValueError):
    """Too little data to train a kind yet: the day goes on without (or with the old) model."""


def _train_sentiment(data: DayData, current) -> tuple[Any, dict[str, Any]]:
    from cva_tasks.features.history import visible_rows
    from cva_tasks.models.sentiment import train_sentiment

    feedback = visible_rows("feedback", as_of_instant(data.ds), data.root)
    try:
        model, metrics = train_sentiment(
            feedback["text"],
            feedback["rating"],
            order=feedback["submitted_at"],
            champion=current,
        )
    except ValueError as exc:
        if "needs at least" in str(exc) or "has only class" in str(exc):
            raise NotEnoughData(str(exc)) from exc
        raise
    rated = feedback[feedback["rating"].notna()].sort_values("submitted_at")
    split = rated["submitted_at"].iloc[-metrics["n_validation"]] if len(rated) else None
    return model, {
        "algorithm": f"Keras {model.params.get('architecture', 'text classifier')}",
        "metric": "roc_auc",
        "metric_value": metrics["roc_auc"],
        "higher_is_better": True,
        "champion_metric": metrics.get("champion_roc_auc"),
        "training_window": {
            "start": rated["submitted_at"].min() if len(rated) else None,
            "end": split,
        },
        "validation_window": {"start": split, "end": data.ds},
        "params": model.params,
        **metrics,
    }


def recommender_inputs(data: DayData) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Purchase lines, items and customers (with their RFM segment) as of the end of ``ds``."""
    from cva_tasks.features.history import purchase_lines
    from cva_tasks.segments.rfm import score_rfm

    lines = purchase_lines(as_of_instant(data.ds), data.root)
    interactions = lines[["customer_id", "item_id", "quantity", "occurred_at"]]
    # Every line carries its item's latest known name; an item never landed keeps its id.
    items = lines[["item_id", "item_name"]].drop_duplicates("item_id", keep="last")
    items = items.assign(name=items["item_name"].fillna(items["item_id"]))[["item_id", "name"]]
    features = data.features_at(data.ds)
    customers = features[["customer_id", "country"]].merge(
        score_rfm(features)[["customer_id", "segment"]], on="customer_id", how="left"
    )
    return interactions, items, customers


def _train_recommender(data: DayData, current) -> tuple[Any, dict[str, Any]]:
    from cva_tasks.models.recommend import train_recommenders

    interactions, items, customers = recommender_inputs(data)
    if interactions.empty:
        raise NotEnoughData("no purchase lines yet")
    try:
        model, report = train_recommenders(
            interactions, items, customers, as_of_instant(data.ds), seed=0
        )
    except ValueError as exc:
        if "cannot validate" in str(exc):
            raise NotEnoughData(str(exc)) from exc
        raise
    metric = report["comparison_metric"]
    # The champion was fitted on data that overlaps this validation window, so scoring
    # it there would flatter it; its procedure (model and parameters) refitted at the
    # same split is what is compared, and every candidate was validated that way.
    champion_figures = report["models"].get(current.model_name) if current else None
    validation = report["validation"]
    return model, {
        **report,
        "algorithm": model.model_name,
        "metric": metric,
        "metric_value": report["models"][report["chosen"]][metric],
        "higher_is_better": True,
        "champion_metric": champion_figures[metric] if champion_figures else None,
        "training_window": {"start": None, "end": data.ds},
        "validation_window": {"start": validation["start"], "end": validation["end"]},
        "params": model.params,
    }


TRAINERS: dict[str, Callable[[DayData, Any], tuple[Any, dict[str, Any]]]] = {
    "clusters": _train_clusters,
    "clv": _train_clv,
    "churn": _train_churn,
    "sentiment": _train_sentiment,
    "recommender": _train_recommender,
}


def _churn_drift(data: DayData) -> tuple[bool, str]:
    """Retrain churn early when a key feature's population stability index passes
    ``CVA_CHURN_PSI_THRESHOLD`` (default 0.2) against the champion's training data."""
    from cva_tasks.models.churn import drifted_features, feature_drift

    model, run = champion_model("churn", data.ds, data.root)
    if model is None:
        return False, "no churn champion to compare the features with"
    threshold = float(os.environ.get("CVA_CHURN_PSI_THRESHOLD", "0.2"))
    drift = feature_drift(model, churn_inputs(data.features_at(data.ds), data.ds, data.settings))
    figures = ", ".join(f"{name} {psi:.3f}" for name, psi in sorted(drift.items()))
    log.info("churn feature drift against %s (PSI): %s", run.version, figures)
    over = drifted_features(drift, threshold)
    if over:
        return True, f"feature drift above PSI {threshold:g}: {', '.join(over)} ({figures})"
    return False, f"no feature drift above PSI {threshold:g} ({figures})"


# --- scoring customers ---------------------------------------------------------------


def customer_model_columns(features: pd.DataFrame, ds: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model columns of ``customer_scores`` for the day's customers, and the profiles.

    Args:
        features: The day's customer features (one row per customer).
        ds: The day; each kind's champion as of ``ds`` scores it.

    Returns:
        ``(columns, profiles)``: one row per customer with ``customer_id`` and the
        warehouse's v2 columns (:data:`cva_tasks.warehouse.schema.SCORE_COLUMNS_V2`),
        null for a kind without a champion yet; and the ``segment_profiles`` rows.
    """
    import pandas as pd

    from cva_tasks.warehouse.schema import SCORE_COLUMNS_V2, TABLES

    settings = Settings.from_env()
    out = pd.DataFrame({"customer_id": features["customer_id"].to_numpy()})
    for name in SCORE_COLUMNS_V2:
        out[name] = None
    profiles = pd.DataFrame(columns=[c.name for c in TABLES["segment_profiles"].input_columns])

    clusters, run = champion_model("clusters", ds, settings.data_root)
    if clusters is not None and len(features):
        ids = clusters.assign(features)
        out["cluster_id"] = ids
        out["cluster_label"] = [clusters.labels[int(i)] for i in ids]
        out["cluster_model_version"] = run.version
        profiles = clusters.profiles(features, ids)
        profiles.insert(0, "as_of_date", ds)
        profiles["model_version"] = run.version
        profiles = profiles[[c.name for c in TABLES["segment_profiles"].input_columns]]

    clv, run = champion_model("clv", ds, settings.data_root)
    if clv is not None and len(features):
        predicted = clv.predict(features, as_of_instant(ds))
        _take(out, predicted, CLV_COLUMNS)
        out["clv_model_version"] = run.version

    sentiment = _customer_sentiment(settings, ds)
    if sentiment is not None:
        merged = out[["customer_id"]].merge(sentiment, on="customer_id", how="left")
        for name in SENTIMENT_FEATURES:
            out[name] = merged[name].to_numpy()
        out["sentiment_model_version"] = merged["sentiment_model_version"].to_numpy()

    churn, run = champion_model("churn", ds, settings.data_root)
    if churn is not None and len(features):
        predicted = churn.predict(churn_inputs(features, ds, settings))
        _take(out, predicted, CHURN_COLUMNS)
        out["churn_model_version"] = run.version
    return out, profiles


CLV_COLUMNS = (
    "p_alive",
    "expected_orders_90d",
    "expected_orders_365d",
    "clv_365d",
    "expected_next_order_at",
)
CHURN_COLUMNS = ("churn_probability", "churn_tier", "churn_reasons")


def _take(out: pd.DataFrame, predicted: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """Copy ``columns`` of ``predicted`` (keyed by customer_id) into ``out``'s rows."""
    merged = out[["customer_id"]].merge(
        predicted[["customer_id", *columns]], on="customer_id", how="left", validate="one_to_one"
    )
    for name in columns:
        out[name] = merged[name].to_numpy()


def churn_inputs(features: pd.DataFrame, ds: date, settings: Settings) -> pd.DataFrame:
    """Features the churn model reads: the day's features plus the sentiment roll-up."""
    sentiment = _customer_sentiment(settings, ds)
    if sentiment is None:
        return features
    return features.merge(
        sentiment[["customer_id", *SENTIMENT_FEATURES]], on="customer_id", how="left"
    )


def _customer_sentiment(settings: Settings, ds: date) -> pd.DataFrame | None:
    uri = partition(settings, "features", "customer_sentiment", ds)
    return storage.read_table(uri).to_pandas() if storage.exists(uri) else None


# --- model runs ----------------------------------------------------------------------


def model_run_rows(ds: date, root: str | None = None):
    """``model_runs`` rows of the runs trained on ``ds`` (an Arrow table)."""
    import json

    import pyarrow as pa

    from cva_tasks.warehouse.schema import TABLES

    def day(value: Any) -> date | None:
        return date.fromisoformat(str(value)[:10]) if value else None

    rows = [
        {
            "as_of_date": run.trained_as_of,
            "kind": run.kind,
            "version": run.version,
            "trained_at": run.trained_at,
            "algorithm": run.algorithm,
            "metric": run.metric,
            "metric_value": run.metric_value,
            "higher_is_better": run.higher_is_better,
            "champion_version": run.champion_version,
            "champion_metric_value": run.champion_metric_value,
            "promoted": run.promoted,
            "reason": run.reason,
            "training_start": day(run.training_window.get("start")),
            "training_end": day(run.training_window.get("end")),
            "validation_start": day(run.validation_window.get("start")),
            "validation_end": day(run.validation_window.get("end")),
            "params_json": json.dumps(run.params, sort_keys=True),
            "metrics_json": json.dumps(run.metrics, sort_keys=True),
            "library_versions_json": json.dumps(run.library_versions, sort_keys=True),
        }
        for run in registry.runs_trained_on(ds, root)
    ]
    return pa.Table.from_pylist(rows, schema=TABLES["model_runs"].arrow_schema())


# --- feedback ------------------------------------------------------------------------

#: Feedback older than this is not rescored daily; ``last_feedback_sentiment`` looks
#: back this far at most.
FEEDBACK_LOOKBACK_DAYS = 365


def score_feedback(ds: date | str) -> dict[str, Any]:
    """Score feedback with the day's sentiment champion; roll it up per customer; topics.

    Writes, for day ``ds``:

    * ``scores/feedback_sentiment``: the feedback submitted on ``ds`` (one row per piece);
    * ``features/customer_sentiment``: per customer, the sentiment features as of the end
      of ``ds`` over the feedback of the last :data:`FEEDBACK_LOOKBACK_DAYS` days, all
      scored by today's champion so one day's figures come from one model;
    * ``scores/feedback_topics``: the terms that mark the last
      :data:`TOPICS_WINDOW_DAYS` days' negative feedback.

    Without a champion (no rated feedback yet) the three partitions of the day are
    removed, so a rerun after the first training is not mixed with stale rows.
    """
    import pandas as pd
    import pyarrow as pa

    from cva_tasks.features.history import visible_rows
    from cva_tasks.warehouse.schema import TABLES

    ds = as_day(ds)
    settings = Settings.from_env()
    targets = {
        "feedback_sentiment": partition(settings, "scores", "feedback_sentiment", ds),
        "feedback_topics": partition(settings, "scores", "feedback_topics", ds),
        "customer_sentiment": partition(settings, "features", "customer_sentiment", ds),
    }
    model, run = champion_model("sentiment", ds, settings.data_root)
    if model is None:
        for uri in targets.values():
            if storage.exists(uri):
                storage.remove(uri)
        return {"scored": 0, "reason": "no sentiment model trained yet"}

    from cva_tasks.models import sentiment

    as_of = as_of_instant(ds)
    feedback = visible_rows("feedback", as_of, settings.data_root)
    since = pd.Timestamp(as_of - timedelta(days=FEEDBACK_LOOKBACK_DAYS))
    feedback = feedback[feedback["submitted_at"] >= since].reset_index(drop=True)
    started = time.perf_counter()
    scored = sentiment.score_feedback(model, feedback)
    scored["source"] = feedback["source"].to_numpy()
    scored["rating"] = feedback["rating"].to_numpy()
    scored["text"] = feedback["text"].to_numpy()
    log.info(
        "scored %d pieces of feedback since %s with %s in %.1f s",
        len(scored),
        since.date(),
        run.version,
        time.perf_counter() - started,
    )

    day_start = pd.Timestamp(as_of - timedelta(days=1))
    today = scored[scored["submitted_at"] >= day_start].copy()
    today.insert(0, "as_of_date", ds)
    today["model_version"] = run.version
    spec = TABLES["feedback_sentiment"]
    storage.replace_partition(
        spec.table_from_frame(today),
        targets["feedback_sentiment"],
    )

    rollup = sentiment.customer_sentiment_features(scored, as_of, SENTIMENT_WINDOW_DAYS)
    rollup["sentiment_model_version"] = run.version
    storage.replace_partition(
        pa.Table.from_pandas(rollup, preserve_index=False), targets["customer_sentiment"]
    )

    topics = sentiment.complaint_topics(scored, as_of, window_days=TOPICS_WINDOW_DAYS)
    topics = topics.reset_index(drop=True)
    topics.insert(0, "rank", range(1, len(topics) + 1))
    topics.insert(0, "as_of_date", ds)
    topics["window_days"] = TOPICS_WINDOW_DAYS
    topics["model_version"] = run.version
    spec = TABLES["feedback_topics"]
    storage.replace_partition(
        spec.table_from_frame(topics),
        targets["feedback_topics"],
    )
    negative = int((today["label"] == "negative").sum())
    return {
        "scored": len(scored),
        "today": len(today),
        "negative_today": negative,
        "customers": len(rollup),
        "topics": topics["term"].head(5).tolist(),
        "model_version": run.version,
    }


# --- recommendations -----------------------------------------------------------------

#: Customers with an order in this many days before the as-of get recommendations.
ACTIVE_DAYS = int(os.environ.get("CVA_RECOMMEND_ACTIVE_DAYS", "365"))


def recommend(ds: date | str) -> dict[str, Any]:
    """Top-10 next-best products and a buy-again list for the day's active customers.

    Active: an order in the last ``CVA_RECOMMEND_ACTIVE_DAYS`` days (default 365).
    Uses the recommender champion as of ``ds``; writes
    ``scores/customer_recommendations/ds=...`` (one row per customer, list and rank).
    Without a champion the day's partition is removed.
    """

    from cva_tasks.models.recommend import recommend as recommend_for
    from cva_tasks.warehouse.schema import TABLES

    ds = as_day(ds)
    settings = Settings.from_env()
    target = partition(settings, "scores", "customer_recommendations", ds)
    model, run = champion_model("recommender", ds, settings.data_root)
    if model is None:
        if storage.exists(target):
            storage.remove(target)
        return {"rows": 0, "reason": "no recommender trained yet"}
    data = DayData(ds, settings)
    interactions, _items, customers = recommender_inputs(data)
    features = data.features_at(ds)
    active = features.loc[features["recency_days"] <= ACTIVE_DAYS, "customer_id"]
    started = time.perf_counter()
    rows = recommend_for(
        model,
        active.to_numpy(),
        interactions,
        customers=customers,
        as_of=as_of_instant(ds),
    )
    rows = rows.assign(
        as_of_date=ds,
        model_version=run.version,
        **{name: rows[name].astype(str) for name in ("list", "reason", "model")},
    )
    spec = TABLES["customer_recommendations"]
    table = spec.table_from_frame(rows)
    storage.replace_partition(table, target)
    log.info(
        "recommended for %d active customers with %s in %.1f s (%d rows)",
        len(active),
        run.version,
        time.perf_counter() - started,
        table.num_rows,
    )
    return {
        "customers": len(active),
        "rows": table.num_rows,
        "model_version": run.version,
        "models": rows["model"].value_counts().to_dict(),
    }

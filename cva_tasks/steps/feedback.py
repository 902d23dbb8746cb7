"""Daily DAG step ``score_feedback``: sentiment of feedback, its per-customer roll-up, topics."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from typing import Any

from cva_tasks import storage
from cva_tasks.days import as_day, as_of_instant
from cva_tasks.models import registry
from cva_tasks.settings import Settings

log = logging.getLogger(__name__)

#: Feedback older than this is not rescored daily; ``last_feedback_sentiment`` looks
#: back this far at most.
FEEDBACK_LOOKBACK_DAYS = 365
SENTIMENT_WINDOW_DAYS = 90
TOPICS_WINDOW_DAYS = 30


def score_feedback(ds: date | datetime | str) -> dict[str, Any]:
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
    lake = settings.lake
    targets = {
        "feedback_sentiment": lake.scores("feedback_sentiment", ds),
        "feedback_topics": lake.scores("feedback_topics", ds),
        "customer_sentiment": lake.features("customer_sentiment", ds),
    }
    champion = registry.champion_model("sentiment", ds, lake, settings.model_cache_dir)
    if champion is None:
        for uri in targets.values():
            if storage.exists(uri):
                storage.remove(uri)
        return {"scored": 0, "reason": "no sentiment model trained yet"}

    from cva_tasks.models import sentiment

    model, run = champion.model, champion.run
    sentiment.configure_tensorflow(settings.tf_threads)
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
    storage.replace_partition(
        TABLES["feedback_sentiment"].table_from_frame(today), targets["feedback_sentiment"]
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
    storage.replace_partition(
        TABLES["feedback_topics"].table_from_frame(topics), targets["feedback_topics"]
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

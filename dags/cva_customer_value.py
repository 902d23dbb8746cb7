"""The daily customer value pipeline: wait for sources, stage, features, models, publish.

One run per day (data interval ``[ds, ds + 1)``, UTC). Backfill-ready: every
step is keyed by the interval, reads only data landed for days up to ``ds`` and
replaces its own outputs whole. Scheduled runs go one at a time
(``max_active_runs=1``) and ``stage`` depends on the previous day's ``stage``,
because a day's features build on every earlier staged day.

Models: each ``train_<kind>`` task trains its model when it is due (weekly by
default, ``CVA_TRAIN_EVERY_DAYS``; at once when none exists; churn also on feature
drift) and otherwise returns quickly. Scoring always uses the champion as of the
run's day, so a backfilled day never sees a model trained on later data.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, task

from cva_tasks.sources.registry import all_sources

FEATURES = Asset(name="cva.features.customer")
SCORES = Asset(name="cva.scores.customer_scores")
WAREHOUSE_SCORES = Asset(name="cva.warehouse.customer_scores")
RECOMMENDATIONS = Asset(name="cva.scores.customer_recommendations")
FEEDBACK_SCORES = Asset(name="cva.scores.feedback_sentiment")
# Reschedule mode frees the worker slot between pokes; tests poke every second.
POKE_SECONDS = int(os.environ.get("CVA_SENSOR_POKE_SECONDS", "600"))

with DAG(
    dag_id="cva_customer_value",
    description="Daily customer features, RFM segments and warehouse scores",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["cva", "pipeline"],
) as dag:
    waits = []
    for source in all_sources():

        @task.sensor(
            task_id=f"wait_for_{source.name}",
            mode="reschedule",
            poke_interval=POKE_SECONDS,
            timeout=timedelta(hours=24).total_seconds(),
        )
        def wait_for(source_name: str, **context) -> bool:
            from cva_tasks.pipeline import source_landed

            return source_landed(source_name, context["data_interval_start"])

        waits.append(wait_for(source.name))

    # Staging is cumulative (a day's features read every earlier staged day), so
    # backfill runs that overlap still stage in date order.
    @task(depends_on_past=True)
    def stage(**context) -> dict:
        from cva_tasks.pipeline import stage

        return stage(context["data_interval_start"])

    @task(outlets=[FEATURES])
    def build_features(**context) -> dict:
        from cva_tasks.pipeline import build_features

        return build_features(context["data_interval_start"])

    def train(kind: str):
        @task(task_id=f"train_{kind}")
        def train_model(**context) -> dict:
            from cva_tasks.modeling import train_model

            return train_model(kind, context["data_interval_start"], context["run_id"])

        return train_model()

    @task(outlets=[FEEDBACK_SCORES])
    def score_feedback(**context) -> dict:
        from cva_tasks.modeling import score_feedback

        return score_feedback(context["data_interval_start"])

    @task(outlets=[RECOMMENDATIONS])
    def recommend(**context) -> dict:
        from cva_tasks.modeling import recommend

        return recommend(context["data_interval_start"])

    @task(outlets=[SCORES])
    def score(**context) -> dict:
        from cva_tasks.pipeline import score

        return score(context["data_interval_start"])

    @task(outlets=[WAREHOUSE_SCORES])
    def publish(**context) -> dict:
        from cva_tasks.pipeline import publish

        return publish(context["data_interval_start"], context["run_id"])

    staged = stage()
    waits >> staged
    features = build_features()
    staged >> features
    trained = {kind: train(kind) for kind in ("clusters", "clv", "sentiment", "recommender")}
    for task_ in trained.values():
        features >> task_
    feedback = score_feedback()
    trained["sentiment"] >> feedback
    # Churn may use the lifetime-value and feedback features, so it trains after them.
    trained["churn"] = train("churn")
    [trained["clv"], feedback] >> trained["churn"]
    scores = score()
    [trained["clusters"], trained["clv"], trained["churn"], feedback] >> scores
    recommendations = recommend()
    trained["recommender"] >> recommendations
    [scores, recommendations] >> publish()

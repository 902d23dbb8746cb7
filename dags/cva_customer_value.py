"""The daily customer value pipeline: wait for sources, stage, features, models, publish.

One run per day (data interval ``[ds, ds + 1)``, UTC), from the earliest
``start_date`` of the registered sources (Airflow runs nothing for a day before a
DAG's start date, and reports that empty run as a success). Backfill-ready: every
step is keyed by the interval, reads only data landed for days up to ``ds`` and
replaces its own outputs whole. Scheduled runs go one at a time
(``max_active_runs=1``) and ``stage`` depends on the previous day's ``stage``,
because a day's features build on every earlier staged day.

Failures a retry cannot fix (a quality gate: the features or the scores suite; a
warehouse whose tables were altered by hand) fail their task at once
(:func:`cva_tasks.steps.failures.fail_fast`); the rest are retried twice. A task that
ends failed, a sensor that timed out and a run past its ``dagrun_timeout`` alert
(:mod:`cva_tasks.alerts`: ``CVA_ALERT_WEBHOOK_URL``, ``CVA_ALERT_NOTIFIER``).

Scoring: ``score`` and ``recommend`` are mapped, one task per part of the customers
(``CVA_SCORE_SHARDS``, default 1; :mod:`cva_tasks.shards`), so N workers share a day;
``publish`` reads the parts as one and so writes the day's lake scores (the assets).

Models: each ``train_<kind>`` task trains its model when it is due (weekly by
default, ``CVA_TRAIN_EVERY_DAYS``; at once when none exists; churn also on feature
drift) and otherwise returns quickly. Training is not retried and runs day after day
(``depends_on_past``), also in a backfill that runs several days at once. Scoring
always uses the champion as of the run's day, so a backfilled day never sees a model
trained on later data.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, task

from cva_tasks.models.kinds import KINDS
from cva_tasks.settings import Settings
from cva_tasks.sources.registry import all_sources
from cva_tasks.steps.failures import dag_defaults, dag_run_timeout, fail_fast, on_dag_run_failure

FEATURES = Asset(name="cva.features.customer")
SCORES = Asset(name="cva.scores.customer_scores")
WAREHOUSE_SCORES = Asset(name="cva.warehouse.customer_scores")
RECOMMENDATIONS = Asset(name="cva.scores.customer_recommendations")
FEEDBACK_SCORES = Asset(name="cva.scores.feedback_sentiment")
AUDIENCES = Asset(name="cva.warehouse.audiences")
SETTINGS = Settings.from_env()
SOURCES = all_sources(SETTINGS.source_modules)
# The earliest day any registered source has data for: a day of an older source
# (online_retail starts on 2010-12-01) must run, not end as an empty success.
FIRST_DAY = min((s.start_date for s in SOURCES), default=None)
SHARDS = SETTINGS.score_shards

with DAG(
    dag_id="cva_customer_value",
    description="Daily customer features, RFM segments and warehouse scores",
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=(
        pendulum.datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tz="UTC")
        if FIRST_DAY
        else pendulum.datetime(2024, 1, 1, tz="UTC")
    ),
    catchup=False,
    max_active_runs=1,
    default_args=dag_defaults(SETTINGS),
    dagrun_timeout=dag_run_timeout(SETTINGS),
    on_failure_callback=on_dag_run_failure,
    tags=["cva", "pipeline"],
) as dag:
    waits = []
    for source in SOURCES:
        # Reschedule mode frees the worker slot between pokes; tests poke every second.
        @task.sensor(
            task_id=f"wait_for_{source.name}",
            mode="reschedule",
            poke_interval=SETTINGS.sensor_poke_seconds,
            timeout=timedelta(hours=SETTINGS.sensor_timeout_hours).total_seconds(),
        )
        def wait_for(source_name: str, **context) -> bool:
            from cva_tasks.steps.stage import source_landed

            # A source whose own run for the day failed fails the sensor at once.
            return fail_fast(source_landed, source_name, context["data_interval_start"])

        waits.append(wait_for(source.name))

    # Staging is cumulative (a day's features read every earlier staged day), so
    # backfill runs that overlap still stage in date order.
    @task(depends_on_past=True)
    def stage(**context) -> dict:
        from cva_tasks.steps.stage import stage

        return fail_fast(stage, context["data_interval_start"])

    @task(outlets=[FEATURES])
    def build_features(**context) -> dict:
        from cva_tasks.steps.features import build_features

        return fail_fast(build_features, context["data_interval_start"])

    def train(kind: str):
        # A model trained on day D is the champion of the days after it: days train one
        # after the other (a backfill's concurrent days would train the same model
        # again), and a training that fails needs a look, not two reruns of minutes.
        @task(task_id=f"train_{kind}", depends_on_past=True, retries=0)
        def train_model(**context) -> dict:
            from cva_tasks.steps.train import train_model

            return train_model(kind, context["data_interval_start"], context["run_id"])

        return train_model()

    @task(outlets=[FEEDBACK_SCORES])
    def score_feedback(**context) -> dict:
        from cva_tasks.steps.feedback import score_feedback

        return fail_fast(score_feedback, context["data_interval_start"])

    # One mapped task per part of the customers; each writes only its own part.
    @task
    def recommend(shard: int, shards: int, **context) -> dict:
        from cva_tasks.steps.recommend import recommend

        day, run_id = context["data_interval_start"], context["run_id"]
        return fail_fast(recommend, day, shard, shards, run_id)

    @task
    def score(shard: int, shards: int, **context) -> dict:
        from cva_tasks.steps.score import score

        return fail_fast(score, context["data_interval_start"], shard, shards, context["run_id"])

    # Publish reads the parts as one into the day's lake scores, then the warehouse.
    @task(outlets=[SCORES, RECOMMENDATIONS, WAREHOUSE_SCORES])
    def publish(shards: int, **context) -> dict:
        from cva_tasks.steps.publish import publish

        day, run_id = context["data_interval_start"], context["run_id"]
        return fail_fast(publish, day, run_id, shards)

    @task(outlets=[AUDIENCES])
    def audiences(**context) -> dict:
        from cva_tasks.steps.audiences import publish_audiences

        return fail_fast(publish_audiences, context["data_interval_start"], context["run_id"])

    staged = stage()
    waits >> staged
    features = build_features()
    staged >> features
    # Tasks in the registry's order; a kind that reads other kinds' outputs (churn reads
    # lifetime value and feedback sentiment) trains after them.
    steps = {name: train(name) for name in KINDS}
    steps["score_feedback"] = score_feedback()
    steps["sentiment"] >> steps["score_feedback"]
    for name, kind in KINDS.items():
        upstream = [steps[after] for after in kind.after]
        (upstream or [features]) >> steps[name]
    scores = score.partial(shards=SHARDS).expand(shard=list(range(SHARDS)))
    [steps["clusters"], steps["clv"], steps["churn"], steps["score_feedback"]] >> scores
    recommendations = recommend.partial(shards=SHARDS).expand(shard=list(range(SHARDS)))
    steps["recommender"] >> recommendations
    [scores, recommendations] >> publish(SHARDS) >> audiences()

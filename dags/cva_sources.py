"""One DAG per registered source: extract -> validate -> land, per entity.

Generated from the source registry (``cva_tasks.sources``): adding a source
adds a DAG here without touching this file. Task bodies only read their
context and call ``cva_tasks.steps.land``; heavy imports happen inside them. Bad
data fails a task at once, a source that is down is retried
(:func:`cva_tasks.steps.failures.fail_fast`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, TaskGroup, task

from cva_tasks.settings import Settings
from cva_tasks.sources.registry import all_sources
from cva_tasks.steps.failures import (
    dag_defaults,
    dag_run_timeout,
    fail_fast,
    on_dag_run_failure,
    runbook,
    source_task_callbacks,
)

SETTINGS = Settings.from_env()


def _bounds(context) -> tuple[str, str, str]:
    return (
        context["data_interval_start"].isoformat(),
        context["data_interval_end"].isoformat(),
        context["run_id"],
    )


def raw_asset(source: str, entity: str) -> Asset:
    return Asset(name=f"cva.raw.{source}.{entity}")


def build_source_dag(source) -> DAG:
    with DAG(
        dag_id=f"cva_source_{source.name}",
        description=source.description,
        doc_md=runbook(source),
        schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
        start_date=pendulum.datetime(
            source.start_date.year, source.start_date.month, source.start_date.day, tz="UTC"
        ),
        end_date=(
            pendulum.datetime(
                source.end_date.year, source.end_date.month, source.end_date.day, tz="UTC"
            )
            if source.end_date
            else None
        ),
        catchup=False,
        max_active_runs=4,
        default_args=dag_defaults(SETTINGS),
        dagrun_timeout=dag_run_timeout(SETTINGS),
        on_failure_callback=on_dag_run_failure,
        tags=["cva", "source", *source.tags],
    ) as dag:
        validated = []
        for spec in source.entities:
            with TaskGroup(group_id=spec.entity):

                @task(task_id="extract", **source_task_callbacks(source.name))
                def extract(entity: str, **context) -> dict:
                    from cva_tasks.steps import land as landing

                    return fail_fast(landing.extract, source.name, entity, *_bounds(context))

                @task(task_id="validate", **source_task_callbacks(source.name))
                def validate(entity: str, extracted: dict, **context) -> dict:
                    from cva_tasks.steps import land as landing

                    return fail_fast(landing.validate, source.name, entity, *_bounds(context))

                @task(
                    task_id="land",
                    outlets=[raw_asset(source.name, spec.entity)],
                    **source_task_callbacks(source.name),
                )
                def land(entity: str, summary: dict, **context) -> dict:
                    from cva_tasks.steps import land as landing

                    return landing.land(source.name, entity, *_bounds(context))

                summary = validate(spec.entity, extract(spec.entity))
                land(spec.entity, summary)
                validated.append(summary)

        @task(trigger_rule="all_done", retries=0)
        def data_docs(**context) -> str:
            from cva_tasks.steps import land as landing

            return landing.build_docs(source.name, context["data_interval_start"].date())

        validated >> data_docs()
    return dag


for _source in all_sources(SETTINGS.source_modules):
    globals()[f"cva_source_{_source.name}"] = build_source_dag(_source)

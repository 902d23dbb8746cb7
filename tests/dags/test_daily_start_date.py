"""The daily DAG is scheduled from the earliest day a registered source has data for.

Airflow runs no task for a logical date before a DAG's ``start_date`` and marks that
empty run a success: with a fixed 2024-01-01, ``online_retail`` (2010-12-01 to
2011-12-09) could never be run through the pipeline, and nothing said so.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_the_daily_dag_starts_on_the_earliest_source_day(dagbag):
    from cva_tasks.sources.registry import all_sources

    earliest = min(s.start_date for s in all_sources())
    dag = dagbag.dags["cva_customer_value"]
    assert dag.start_date.date() == earliest
    assert dag.catchup is False, "an earlier start must not schedule years of catch-up runs"
    for source in all_sources():
        assert dagbag.dags[f"cva_source_{source.name}"].start_date.date() >= earliest

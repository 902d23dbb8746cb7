"""How a step's failure reaches Airflow: at once when a retry cannot help, else retried.

Every DAG task runs its step through :func:`fail_fast`. Bad data stays bad on a retry,
so these end the task at once (``AirflowFailException``, which Airflow never retries)
instead of failing the same way two more times, five minutes apart:

* :class:`~cva_tasks.quality.DataQualityError`: a quality gate failed (a source
  entity's suite, the features suite, the scores suite);
* an error whose class says ``retryable = False``: a
  :class:`~cva_tasks.sources.base.SourceError` (malformed input, a query that cannot
  work: syntax, a missing table or column) or a warehouse that is misconfigured or
  whose tables differ from their specs (:mod:`cva_tasks.warehouse.checks`).

Everything else (a source that is down, a drop not arrived yet, a warehouse that went
away, an unexpected error) is raised as it is, and the task's ``retries`` apply.

A task that ends failed (either way, or a sensor that timed out) alerts through
:mod:`cva_tasks.alerts`, whose DAG arguments the DAG files take from here (they import
only the task-facing layer): :func:`dag_defaults` (owner, retries, the failure
callback), :func:`dag_run_timeout` and :func:`on_dag_run_failure`.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cva_tasks.alerts import dag_defaults, dag_run_timeout, on_dag_run_failure, on_task_failure
from cva_tasks.source_failures import runbook

__all__ = [
    "dag_defaults",
    "dag_run_timeout",
    "fail_fast",
    "on_dag_run_failure",
    "on_task_failure",
    "retry_cannot_help",
    "runbook",
    "source_task_callbacks",
]

T = TypeVar("T")
log = logging.getLogger(__name__)


def retry_cannot_help(exc: BaseException) -> bool:
    """Whether ``exc`` would come back unchanged on a retry of the same task."""
    # Importing the quality package costs seconds (Great Expectations); an error of its
    # gate can only exist once the gate module is loaded.
    gate = sys.modules.get("cva_tasks.quality.gate")
    if gate is not None and isinstance(exc, gate.DataQualityError):
        return True
    return getattr(exc, "retryable", None) is False


def fail_fast(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``call``; a failure a retry cannot fix fails the task at once.

    Raises:
        AirflowFailException: carrying the original message, for
            :func:`retry_cannot_help` errors.
    """
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        if not retry_cannot_help(exc):
            raise
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc


def _source_day(context: Mapping[str, Any]) -> Any:
    from cva_tasks.days import as_day

    return as_day(context["data_interval_start"])


def record_source_failure(source_name: str, context: Mapping[str, Any]) -> None:
    """Failure callback of a source task: mark the source's day as failed in the lake."""
    from cva_tasks.alerts import safe_exception_text
    from cva_tasks.settings import Settings
    from cva_tasks.source_failures import record_failure

    ti = context["task_instance"]
    uri = record_failure(
        Settings.from_env().lake,
        source_name,
        _source_day(context),
        ti.task_id,
        getattr(ti, "run_id", None),
        safe_exception_text(context.get("exception")),
    )
    log.info("marked %s failed for the daily pipeline's sensor: %s", source_name, uri)


def clear_source_failure(source_name: str, context: Mapping[str, Any]) -> None:
    """Success callback of a source task: its day's failure marker, if any, goes."""
    from cva_tasks.settings import Settings
    from cva_tasks.source_failures import clear_failure

    ti = context["task_instance"]
    if clear_failure(Settings.from_env().lake, source_name, _source_day(context), ti.task_id):
        log.info("%s %s succeeded: its failure marker is removed", source_name, ti.task_id)


def source_task_callbacks(source_name: str) -> dict[str, Any]:
    """Callbacks of a source task that lands data: alert and mark on failure, unmark on
    success (the daily DAG's sensor for the source reads the marks)."""
    return {
        "on_failure_callback": [
            on_task_failure,
            functools.partial(record_source_failure, source_name),
        ],
        "on_success_callback": functools.partial(clear_source_failure, source_name),
    }

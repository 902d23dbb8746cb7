"""Tell someone when a cva DAG breaks: a JSON webhook and/or any Airflow notifier.

Every task of the cva DAGs gets :func:`on_task_failure` as its ``on_failure_callback``
(through ``default_args``, :func:`dag_defaults`); a source sensor that times out fails
its task, so it alerts the same way (``"kind": "sensor_timeout"``). A run that passes
``dagrun_timeout`` has its unfinished tasks skipped, not failed, so the DAGs also
carry :func:`on_dag_run_failure`, which alerts for a timed-out run only (a failed task
has alerted already).

Where the alert goes (``cva_tasks.settings``):

* ``CVA_ALERT_WEBHOOK_URL``: the :func:`alert_message` document is POSTed as JSON;
* ``CVA_ALERT_NOTIFIER``: the dotted path of a ``BaseNotifier`` class (Slack, SMTP,
  ... from Airflow's providers), built with ``CVA_ALERT_NOTIFIER_ARGS`` (a JSON
  object) and called with the task's context, as Airflow calls a notifier. The
  context carries ``cva_alert`` (the same document) for templated notifier fields,
  e.g. ``{{ cva_alert.exception }}``.

An alert that cannot be delivered is logged and dropped: it must never replace the
task's own error in the log or change the task's state.

The exception text is cut to :data:`MAX_EXCEPTION_CHARS` after e-mail addresses and
long digit runs (phone and card numbers) are masked: a quality error may quote a
customer's row, and an alert leaves the company's systems (Slack, e-mail).

Importing this module imports nothing heavy: the DAG files import it when parsed.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from cva_tasks.settings import Settings

log = logging.getLogger(__name__)

MAX_EXCEPTION_CHARS = 500
WEBHOOK_TIMEOUT_SECONDS = 10
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Customer and order ids are shorter; seven or more digits (spaces and dashes allowed
# inside) are phone or card numbers.
_LONG_NUMBER = re.compile(r"\+?\d(?:[\s-]?\d){6,}")


def safe_exception_text(error: BaseException | str | None, limit: int = MAX_EXCEPTION_CHARS) -> str:
    """The error as ``Type: message`` with PII masked, at most ``limit`` characters."""
    if error is None:
        return ""
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    text = _EMAIL.sub("<email>", text)
    text = _LONG_NUMBER.sub("<number>", text)
    if len(text) > limit:
        cut = len(text) - limit
        text = f"{text[:limit]} [... {cut} more characters in the task log]"
    return text


def _day(context: Mapping[str, Any]) -> str | None:
    start = context.get("data_interval_start")
    if isinstance(start, datetime | date):
        return start.date().isoformat() if isinstance(start, datetime) else start.isoformat()
    ds = context.get("ds")
    return str(ds) if ds else None


def _is_sensor_timeout(error: object) -> bool:
    # By class name: importing Airflow's exceptions here would tie this module to a
    # task process; the class has kept its name across Airflow 2 and 3.
    return any(cls.__name__ == "AirflowSensorTimeout" for cls in type(error).__mro__)


def alert_message(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert document of a failed task (or a timed-out run) from its Airflow context.

    Returns:
        ``kind`` (``task_failed``, ``sensor_timeout`` or ``dag_run_timed_out``),
        ``dag``, ``task`` (None for a run), ``ds`` (the day of the data interval, as
        logs and ``airflow tasks clear`` name it), ``run_id``, ``try``, ``exception``
        (masked and cut, see :func:`safe_exception_text`) and ``log_url``.
    """
    ti = context.get("task_instance") or context.get("ti")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    error = context.get("exception")
    reason = context.get("reason")
    if ti is None:
        kind = "dag_run_timed_out" if reason == "timed_out" else "dag_run_failed"
    elif _is_sensor_timeout(error):
        kind = "sensor_timeout"
    else:
        kind = "task_failed"
    log_url = None
    if ti is not None:
        try:
            log_url = ti.log_url
        except Exception:  # a URL is a convenience; the alert goes out without it
            log_url = None
    return {
        "kind": kind,
        "dag": getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None),
        "task": getattr(ti, "task_id", None),
        "ds": _day(context),
        "run_id": getattr(ti, "run_id", None) or getattr(dag_run, "run_id", None),
        "try": getattr(ti, "try_number", None),
        "exception": safe_exception_text(error if error is not None else reason),
        "log_url": log_url,
    }


def post_webhook(url: str, message: Mapping[str, Any]) -> None:
    """POST ``message`` as JSON to ``url``.

    Raises:
        OSError: the endpoint cannot be reached or answers with an error status.
    """
    body = json.dumps(message).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
        response.read()


def build_notifier(path: str, kwargs: Mapping[str, Any]) -> Any:
    """An instance of the notifier class at ``path`` (``package.module.Class``).

    Raises:
        ValueError: the path names no class, or the class is not an Airflow notifier.
    """
    from airflow.sdk import BaseNotifier
    from airflow.sdk.module_loading import import_string

    try:
        cls = import_string(path.replace(":", "."))
    except ImportError as exc:
        raise ValueError(f"CVA_ALERT_NOTIFIER={path!r}: cannot import it ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise ValueError(f"CVA_ALERT_NOTIFIER={path!r} is not a BaseNotifier class")
    return cls(**dict(kwargs))


def send_alert(context: Mapping[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Send the alert of ``context`` to every configured channel; never raise.

    Returns:
        The alert document with ``delivered``: the channels that took it.
    """
    message = alert_message(context)
    delivered: list[str] = []
    try:
        settings = settings or Settings.from_env()
    except Exception:
        log.exception("alert not sent: the CVA_* settings cannot be read; alert was %s", message)
        return {**message, "delivered": delivered}
    if not settings.alert_webhook_url and not settings.alert_notifier:
        log.info("no alert channel configured (CVA_ALERT_WEBHOOK_URL, CVA_ALERT_NOTIFIER)")
    if settings.alert_webhook_url:
        try:
            post_webhook(settings.alert_webhook_url, message)
            delivered.append("webhook")
        except Exception as exc:
            log.error("alert webhook failed (%s); the alert was %s", exc, message)
    if settings.alert_notifier:
        try:
            notifier = build_notifier(settings.alert_notifier, settings.alert_notifier_args)
            notifier({**context, "cva_alert": message})
            delivered.append("notifier")
        except Exception as exc:
            log.error(
                "alert notifier %s failed (%s); the alert was %s",
                settings.alert_notifier,
                exc,
                message,
            )
    return {**message, "delivered": delivered}


def on_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every cva task (and a source sensor's timeout)."""
    send_alert(context)


def on_dag_run_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of the cva DAGs: alerts a run that passed its timeout.

    A run that failed because a task failed is not alerted again.
    """
    if context.get("reason") == "timed_out":
        send_alert(context)


def dag_defaults(settings: Settings) -> dict[str, Any]:
    """The ``default_args`` every cva DAG shares: owner, retries, the failure alert."""
    return {
        "owner": settings.owner,
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": on_task_failure,
    }


def dag_run_timeout(settings: Settings) -> timedelta:
    return timedelta(hours=settings.dagrun_timeout_hours)

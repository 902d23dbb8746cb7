"""Failure alerts: the JSON document, the webhook, a pluggable notifier, never raising."""

from __future__ import annotations

import logging
import sys
import types
from datetime import UTC, datetime

import pytest

from cva_tasks import alerts
from cva_tasks.settings import Settings, SettingsError

DS = datetime(2025, 11, 30, tzinfo=UTC)


class FakeTaskInstance:
    dag_id = "cva_customer_value"
    task_id = "stage"
    run_id = "scheduled__2025-12-01T00:00:00+00:00"
    try_number = 3
    log_url = "http://localhost:8080/dags/cva_customer_value/runs/x/tasks/stage?try_number=3"


def context(error: BaseException | None) -> dict:
    return {"task_instance": FakeTaskInstance(), "data_interval_start": DS, "exception": error}


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


def test_the_alert_names_dag_task_day_try_and_log_and_masks_pii():
    error = ValueError(
        "transactions row 12: email jane.doe+shop@example.co.uk phone +44 20 7946 0958 " + "x" * 900
    )
    message = alerts.alert_message(context(error))
    assert message["kind"] == "task_failed"
    assert (message["dag"], message["task"], message["ds"], message["try"]) == (
        "cva_customer_value",
        "stage",
        "2025-11-30",
        3,
    )
    assert message["log_url"] == FakeTaskInstance.log_url
    text = message["exception"]
    assert text.startswith("ValueError: transactions row 12: email <email> phone <number> ")
    assert "jane" not in text and "7946" not in text
    assert len(text) < alerts.MAX_EXCEPTION_CHARS + 60
    assert "more characters in the task log" in text


def test_a_sensor_timeout_is_its_own_kind():
    from airflow.sdk.exceptions import AirflowSensorTimeout

    message = alerts.alert_message(context(AirflowSensorTimeout("Sensor has timed out")))
    assert message["kind"] == "sensor_timeout"


def test_the_webhook_receives_the_alert(webhook):
    url, bodies, _ = webhook
    sent = alerts.send_alert(context(RuntimeError("db down")), settings(CVA_ALERT_WEBHOOK_URL=url))
    assert sent["delivered"] == ["webhook"]
    assert len(bodies) == 1
    assert bodies[0]["task"] == "stage"
    assert bodies[0]["exception"] == "RuntimeError: db down"


@pytest.mark.parametrize("status", [500, None])
def test_a_webhook_that_fails_is_logged_and_does_not_raise(webhook, caplog, status):
    url, _, handler = webhook
    if status is None:
        url = "http://127.0.0.1:9/nothing-listens-here"  # the discard port: refused
    else:
        handler.status = status
    with caplog.at_level(logging.ERROR, logger="cva_tasks.alerts"):
        sent = alerts.send_alert(
            context(RuntimeError("db down")), settings(CVA_ALERT_WEBHOOK_URL=url)
        )
    assert sent["delivered"] == []
    assert "alert webhook failed" in caplog.text
    assert "db down" in caplog.text  # the alert itself is kept in the task log


class PlainClass:
    """A class that is not an Airflow notifier."""


@pytest.fixture
def notifier_module(monkeypatch):
    from airflow.sdk import BaseNotifier

    calls: list[tuple[dict, dict]] = []

    class Recording(BaseNotifier):
        template_fields = ("text",)

        def __init__(self, channel: str, text: str = "{{ cva_alert.task }} failed"):
            super().__init__()
            self.channel = channel
            self.text = text

        def notify(self, context):
            calls.append(({"channel": self.channel, "text": self.text}, dict(context)))

    class Broken(Recording):
        def notify(self, context):
            raise ConnectionError("slack is down")

    module = types.ModuleType("cva_test_notifiers")
    module.Recording = Recording  # type: ignore[attr-defined]
    module.Broken = Broken  # type: ignore[attr-defined]
    module.NotANotifier = PlainClass  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cva_test_notifiers", module)
    return calls


def test_the_notifier_class_is_built_with_its_args_and_called_with_the_context(notifier_module):
    sent = alerts.send_alert(
        context(RuntimeError("db down")),
        settings(
            CVA_ALERT_NOTIFIER="cva_test_notifiers.Recording",
            CVA_ALERT_NOTIFIER_ARGS='{"channel": "#data-alerts"}',
        ),
    )
    assert sent["delivered"] == ["notifier"]
    assert len(notifier_module) == 1
    args, seen = notifier_module[0]
    # Templated fields render against the task's context plus the alert document.
    assert args == {"channel": "#data-alerts", "text": "stage failed"}
    assert seen["cva_alert"]["exception"] == "RuntimeError: db down"
    assert seen["task_instance"].task_id == "stage"


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("cva_test_notifiers.Broken", "slack is down"),
        ("cva_test_notifiers.NotANotifier", "is not a BaseNotifier class"),
        ("cva_test_notifiers.Missing", "cannot import it"),
    ],
)
def test_a_notifier_that_fails_is_logged_and_does_not_raise(
    notifier_module, webhook, caplog, path, logged
):
    url, bodies, _ = webhook
    env = {
        "CVA_ALERT_NOTIFIER": path,
        "CVA_ALERT_NOTIFIER_ARGS": '{"channel": "#x"}',
        "CVA_ALERT_WEBHOOK_URL": url,
    }
    with caplog.at_level(logging.ERROR, logger="cva_tasks.alerts"):
        sent = alerts.send_alert(context(RuntimeError("db down")), settings(**env))
    assert sent["delivered"] == ["webhook"]  # the other channel still gets it
    assert len(bodies) == 1
    assert logged in caplog.text


def test_notifier_args_must_be_a_json_object():
    with pytest.raises(SettingsError, match="CVA_ALERT_NOTIFIER_ARGS"):
        settings(CVA_ALERT_NOTIFIER_ARGS='["#x"]')
    with pytest.raises(SettingsError, match=r"CVA_ALERT_NOTIFIER_ARGS: .* is not JSON"):
        settings(CVA_ALERT_NOTIFIER_ARGS="channel=#x")


def test_a_run_alerts_only_when_it_timed_out(webhook, monkeypatch):
    url, bodies, _ = webhook
    monkeypatch.setenv("CVA_ALERT_WEBHOOK_URL", url)
    run = types.SimpleNamespace(run_id="scheduled__2025-12-01T00:00:00+00:00")
    dag = types.SimpleNamespace(dag_id="cva_customer_value")
    base = {"dag": dag, "dag_run": run, "data_interval_start": DS}
    alerts.on_dag_run_failure({**base, "reason": "task_failure"})
    assert bodies == []
    alerts.on_dag_run_failure({**base, "reason": "timed_out"})
    assert len(bodies) == 1
    assert bodies[0]["kind"] == "dag_run_timed_out"
    assert (bodies[0]["dag"], bodies[0]["ds"], bodies[0]["task"]) == (
        "cva_customer_value",
        "2025-11-30",
        None,
    )

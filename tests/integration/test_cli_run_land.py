"""``cva run DAG --ds DAY`` and ``cva land SOURCE --from --to`` on the demo sources."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from cva_tasks import storage
from cva_tasks.cli import main
from cva_tasks.lake import Lake

DAY = date(2025, 11, 28)


@pytest.fixture(scope="module")
def airflow_home():
    from cva_tasks.airflow_runner import prepare_airflow_home

    return prepare_airflow_home()


@pytest.fixture
def feedback_drops(tmp_path, demo_frames, lake, monkeypatch):
    from cva_tasks.demo.shop import write_feedback_drops

    write_feedback_drops(demo_frames, tmp_path / "drops")
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(tmp_path / "drops"))
    return tmp_path / "drops"


def run_cva(monkeypatch, *argv: str) -> tuple[int, dict]:
    from cva_tasks import cli

    out = io.StringIO()
    monkeypatch.setattr(cli, "_RESULT_STREAM", out)
    code = main([*argv, "--json"])
    return code, json.loads(out.getvalue())


def drop_lines(drops, day: date) -> int:
    text = (drops / f"feedback_{day}.jsonl").read_text()
    return sum(1 for line in text.splitlines() if line.strip())


def test_run_lands_the_data_day_not_the_day_before(airflow_home, feedback_drops, lake, monkeypatch):
    code, result = run_cva(monkeypatch, "run", "cva_source_demo_feedback", "--ds", DAY.isoformat())
    assert code == 0, result
    assert result["state"] == "success" and result["ds"] == DAY.isoformat()
    landed = Lake(str(lake))
    assert storage.exists(landed.raw("demo_feedback", "feedback", DAY))
    assert not storage.exists(landed.raw("demo_feedback", "feedback", date(2025, 11, 27)))
    rows = storage.read_table(landed.raw("demo_feedback", "feedback", DAY)).num_rows
    quarantined = landed.quarantine("demo_feedback", "feedback", DAY)
    rows += storage.read_table(quarantined).num_rows if storage.exists(quarantined) else 0
    assert rows == drop_lines(feedback_drops, DAY) > 0


def test_run_refuses_a_day_outside_the_dag_and_an_unknown_dag(airflow_home, lake, monkeypatch):
    code, result = run_cva(monkeypatch, "run", "cva_source_demo_feedback", "--ds", "2020-01-01")
    assert code == 1 and result["state"] is None
    assert "starts on 2024-01-01" in result["error"]
    code, result = run_cva(monkeypatch, "run", "cva_source_nothing", "--ds", DAY.isoformat())
    assert code == 1 and "no DAG 'cva_source_nothing'" in result["error"]


def test_run_help_explains_the_day(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "lands the previous day" in text and "airflow dags test DAG DAY+1" in text

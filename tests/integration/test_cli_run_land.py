"""``cva run DAG --ds DAY`` and ``cva land SOURCE --from --to`` on the demo sources."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

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


LAND_DAYS = [date(2025, 11, 26), date(2025, 11, 27), date(2025, 11, 28)]


def landed_feedback(lake, day: date):
    partition = Lake(str(lake)).raw("demo_feedback", "feedback", day)
    return storage.read_table(partition) if storage.exists(partition) else None


def test_land_three_days_day_by_day_and_a_rerun_gives_the_same_rows(
    feedback_drops, lake, monkeypatch, caplog
):
    caplog.set_level("INFO", logger="cva_tasks.commands_land")
    first, last = LAND_DAYS[0].isoformat(), LAND_DAYS[-1].isoformat()
    code, result = run_cva(monkeypatch, "land", "demo_feedback", "--from", first, "--to", last)
    assert code == 0, result
    assert [d["ds"] for d in result["days"]] == [d.isoformat() for d in LAND_DAYS]
    for k, day in enumerate(LAND_DAYS, start=1):
        assert f"day {k} of 3 (ds={day})" in caplog.text
        counts = result["days"][k - 1]["entities"]["feedback"]
        table = landed_feedback(lake, day)
        assert table is not None and table.num_rows == counts["rows_landed"] > 0
        assert counts["rows_landed"] + counts["rows_quarantined"] == drop_lines(feedback_drops, day)
    before = landed_feedback(lake, LAND_DAYS[1])
    day = LAND_DAYS[1].isoformat()
    code, _ = run_cva(monkeypatch, "land", "demo_feedback", "--from", day, "--to", day)
    assert code == 0
    assert landed_feedback(lake, LAND_DAYS[1]).equals(before)
    assert not [p for p in Path(lake).glob("work/**/*") if p.is_file()], "work files left"


def test_land_stops_at_a_bad_day_and_keeps_what_was_landed(feedback_drops, lake, monkeypatch):
    day2 = LAND_DAYS[1].isoformat()
    code, _ = run_cva(monkeypatch, "land", "demo_feedback", "--from", day2, "--to", day2)
    assert code == 0
    before = landed_feedback(lake, LAND_DAYS[1])
    (feedback_drops / f"feedback_{day2}.jsonl").write_text('{"feedback_id": "F1"}\nnot json\n')
    first, last = LAND_DAYS[0].isoformat(), LAND_DAYS[-1].isoformat()
    code, result = run_cva(monkeypatch, "land", "demo_feedback", "--from", first, "--to", last)
    assert code == 1 and result["failed_day"] == day2
    assert f"feedback_{day2}.jsonl line 2" in result["error"]
    assert [d["ds"] for d in result["days"]] == [first]
    assert landed_feedback(lake, LAND_DAYS[0]) is not None
    assert landed_feedback(lake, LAND_DAYS[1]).equals(before), "the bad day kept its rows"
    assert landed_feedback(lake, LAND_DAYS[2]) is None, "nothing after the bad day"


def test_land_refuses_days_outside_the_source_and_unknown_sources(lake, monkeypatch):
    code, result = run_cva(
        monkeypatch, "land", "online_retail", "--from", "2011-12-01", "--to", "2011-12-20"
    )
    assert code == 1 and "online_retail ends on 2011-12-09" in result["error"]
    code, result = run_cva(
        monkeypatch, "land", "nope", "--from", "2025-01-01", "--to", "2025-01-02"
    )
    assert code == 1 and "no source named 'nope'" in result["error"]
    code, result = run_cva(
        monkeypatch, "land", "demo_feedback", "--from", "2025-01-03", "--to", "2025-01-02"
    )
    assert code == 1 and "after --to" in result["error"]

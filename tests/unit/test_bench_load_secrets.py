"""``cva bench load``: the PostgreSQL password is never on a command line or in an error."""

from __future__ import annotations

import argparse
import subprocess
import traceback

import pytest
from sqlalchemy.engine import make_url

from benchmarks import bench_load

PASSWORD = "s3cr3t-Pw"
# Port 1: nothing listens there, so every connection fails at once.
REFUSED = f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:1/test"


def test_psql_gets_the_password_through_its_environment_not_argv(monkeypatch):
    seen: dict = {}

    def fake_run(argv, **kwargs):
        seen["argv"], seen["env"] = argv, kwargs.get("env")
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(bench_load.subprocess, "run", fake_run)
    bench_load.run_psql(make_url(REFUSED), "-c", "select 1")
    assert seen["argv"][0] == "psql"
    assert not any(PASSWORD in part for part in seen["argv"]), seen["argv"]
    assert "127.0.0.1:1/test" in seen["argv"][1]
    assert seen["env"]["PGPASSWORD"] == PASSWORD


def test_a_failing_psql_error_holds_no_password():
    with pytest.raises(RuntimeError, match="psql failed") as failed:
        bench_load.run_psql(make_url(REFUSED), "-X", "-c", "select 1")
    text = "".join(traceback.format_exception(failed.value))
    assert "127.0.0.1" in text and PASSWORD not in text


def test_a_failing_connection_error_holds_no_password():
    args = argparse.Namespace(
        dsn=REFUSED, rows=10, to_sql_rows=0, repeats=1, to_sql_repeats=0, seed=0
    )
    with pytest.raises(RuntimeError, match="cannot connect") as failed:
        bench_load.command(args)
    text = "".join(traceback.format_exception(failed.value))
    assert "127.0.0.1" in text and PASSWORD not in text


def test_masked_hides_the_url_quoted_password_too():
    assert bench_load.masked("x p%40ss y p@ss", "p@ss") == "x *** y ***"

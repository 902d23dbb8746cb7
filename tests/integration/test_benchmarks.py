"""The benchmarks run end to end at a small size (the figures come from full runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CVA = str(Path(sys.executable).with_name("cva"))
PG_DSN = os.environ.get("CVA_TEST_PG_DSN", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def run_bench(work_dir: Path, *args: str) -> dict:
    """The report of ``cva bench <args> --json`` run in ``work_dir`` (its temp files too)."""
    result = subprocess.run(
        [CVA, "bench", *args, "--json"],
        capture_output=True,
        text=True,
        cwd=work_dir,
        env={**os.environ, "TMPDIR": str(work_dir)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_bench_features_small(tmp_path):
    report = run_bench(tmp_path, "features", "--customers", "1500", "--repeats", "1")
    size = report["sizes"][0]
    assert size["customers"] == 1500 and size["feature_rows"] > 500
    for engine in ("pandas", "duckdb"):
        assert size["engines"][engine]["median"]["seconds"] > 0
        assert size["engines"][engine]["median"]["peak_rss_mb"] > 0
    assert size["speedup"] > 0 and size["memory_ratio"] > 0


@pytest.mark.postgres
def test_bench_load_small(tmp_path, pg_schema):
    report = run_bench(
        tmp_path,
        "load",
        "--rows",
        "20000",
        "--to-sql-rows",
        "2000",
        "--repeats",
        "1",
        "--dsn",
        PG_DSN,
    )
    assert report["final_row_counts"] == {
        "bench_copy": 20000,
        "bench_to_sql": 2000,
        "customer_scores": 20000,
    }
    for method in ("loader", "psql_copy", "to_sql"):
        assert report["methods"][method]["rows_per_s"] > 0
    assert report["ratios"]["loader_vs_to_sql_rows_per_s"] > 1


def test_bench_recommendations_small(tmp_path):
    report = run_bench(tmp_path, "recommendations", "--customers", "1500")
    size = report["sizes"][0]
    assert size["customers"] == 1500 and size["interactions"] > 10_000
    for mode in ("baseline", "pipeline"):
        figures = size["modes"][mode]
        # Every customer gets a next-best list; buy-again only where items repeat.
        assert figures["customers_with_next_best"] == 1500
        assert figures["rows_per_list"]["next_best"] == 15_000
        assert 0 < figures["rows_per_list"]["buy_again"] < 15_000
        assert figures["peak_rss_mb"] > 0 and figures["phases"]["train"] > 0
    assert size["modes"]["baseline"]["model"] == "bestsellers_recent"
    assert set(size["modes"]["pipeline"]["validation_ndcg_at_10"]) == {
        "bestsellers_all_time",
        "bestsellers_recent",
        "item_cf",
        "als",
    }


def test_bench_daily_small(tmp_path):
    """Every task of the daily DAG runs in its own process; the first run trains all five."""
    report = run_bench(tmp_path, "daily", "--customers", "600")
    [size] = report["sizes"]
    first, steady = size["runs"]["first_run"], size["runs"]["steady_day"]
    assert sorted(first["trained"]) == sorted(
        ["train_clv", "train_clusters", "train_sentiment", "train_recommender", "train_churn"]
    )
    assert steady["trained"] == [], "nothing is due the day after the first training"
    for run in (first, steady):
        assert set(run["tasks"]) == {
            "stage",
            "build_features",
            "train_clv",
            "train_clusters",
            "train_sentiment",
            "train_recommender",
            "score_feedback",
            "train_churn",
            "score",
            "recommend",
            "publish",
        }
        assert all(t["peak_rss_mb"] > 50 and t["seconds"] > 0 for t in run["tasks"].values())
    assert steady["tasks"]["score"]["summary"]["rows"] > 300
    assert steady["tasks"]["publish"]["summary"]["rows"]["customer_recommendations"] > 0
    # One size below the goal's scale: nothing to judge, and the report says so.
    assert report["verdict"]["ok"] is None and report["ok"] is None

"""The ``cva`` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cva_tasks.sources.registry import all_sources

CVA = str(Path(sys.executable).with_name("cva"))


def run_cva(*args: str, cwd: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CVA_", "AIRFLOW"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.update(extra_env or {})
    return subprocess.run([CVA, *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_help_lists_the_commands(tmp_path):
    result = run_cva("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("demo", "generate", "sources", "bench", "evaluate"):
        assert command in result.stdout
    evaluations = run_cva("evaluate", "--help", cwd=tmp_path)
    for name in ("clusters", "clv", "churn", "recommendations", "sentiment"):
        assert name in evaluations.stdout


def test_sources_json(tmp_path):
    result = run_cva("sources", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [s["name"] for s in json.loads(result.stdout)["sources"]]
    assert names == sorted(s.name for s in all_sources())
    assert {"demo_feedback", "demo_shop", "online_retail"} <= set(names)


def test_demo_runs_end_to_end_in_a_fresh_folder(tmp_path):
    result = run_cva("demo", "--customers", "300", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    assert {r["state"] for r in summary["runs"]} == {"success"}
    rows = {(p["source"], p["entity"], p["zone"]): p["rows"] for p in summary["partitions"]}
    assert rows[("demo_shop", "transactions", "raw")] > 0
    assert Path(summary["partitions"][0]["uri"]).exists()
    for docs in summary["data_docs"]:
        assert Path(docs).exists()
    assert (tmp_path / ".cva" / "lake" / "raw" / "demo_feedback" / "feedback").exists()
    assert (tmp_path / ".airflow" / "airflow.db").exists()
    kinds = {m["kind"] for m in summary["models"]}
    assert kinds == {"clusters", "clv", "churn", "recommender", "sentiment"}
    assert sum(summary["clusters"].values()) == sum(summary["segments"].values())
    assert set(summary["churn_tiers"]) <= {"Low", "Medium", "High"}
    assert summary["recommendation_rows"] > 0
    # The day's validation of every demo source entity reached the warehouse.
    quality = {(q["source"], q["entity"]): q for q in summary["quality"]}
    assert set(quality) == {(source, entity) for source, entity, _zone in rows}
    for (source, entity), q in quality.items():
        assert q["rows_clean"] == rows[(source, entity, "raw")], (source, entity)
        assert q["rows_clean"] + q["rows_quarantined"] == q["rows_checked"]
    assert quality[("demo_shop", "transactions")]["rows_checked"] > 0
    assert "models in force" not in result.stdout, "--json prints JSON only"


def test_evaluate_prints_json_and_exits_by_its_goal(tmp_path, shared_data):
    """The command path of every evaluation: options, ``--json`` and the exit code.

    Clusters have no goal to miss (exit 0); the figures themselves are held by
    ``test_evaluate_clusters.py``.
    """
    result = run_cva(
        "evaluate",
        "clusters",
        "--retrain-days",
        "7",
        "--other-seeds",
        "1",
        "--json",
        cwd=tmp_path,
        extra_env={"CVA_CACHE_DIR": os.environ.get("CVA_CACHE_DIR", "")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["k"] >= 3 and sum(c["customers"] for c in figures["clusters"]) == 4338
    assert list(figures["retrains"]) == ["7"] and list(figures["seeds"]) == ["1"]
    assert "text" not in figures, "--json prints the figures, not the table"
    bad = run_cva("evaluate", "clusters", "--retrain-days", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "argument --retrain-days: '0': days must be" in bad.stderr

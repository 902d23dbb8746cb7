"""``cva lake check [--repair]`` on a lake with a killed swap, a deleted staged day and a
source day never landed."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pyarrow as pa
import pytest
from test_partition_swap import leave_a_killed_swap
from test_restaging import D1, D2, customer, feedback, land_feedback, land_shop, staged

from cva_tasks import cli, storage
from cva_tasks.lake import Lake
from cva_tasks.steps.stage import stage


@pytest.fixture
def printed(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the command prints as its result."""
    out = io.StringIO()
    monkeypatch.setattr(cli, "_RESULT_STREAM", out)
    return out


def lake_check(printed: io.StringIO, *extra: str) -> tuple[int, dict]:
    printed.seek(0)
    printed.truncate()
    code = cli.main(["lake", "check", "--json", *extra])
    return code, json.loads(printed.getvalue())


def test_check_lists_and_repair_fixes_what_it_can(lake, printed):
    paths = Lake(str(lake))
    land_shop(lake, D1, [customer("7", D1)])
    land_feedback(lake, D1, [feedback("F1", D1)])
    land_shop(lake, D2)
    land_feedback(lake, D2)
    stage(D2)
    features = paths.features("customer", D2)
    storage.replace_partition(pa.table({"customer_id": ["7"]}), features)
    leave_a_killed_swap(features)
    storage.remove(paths.staged("customers", D1))
    storage.remove(paths.raw("demo_feedback", "feedback", D2))

    code, found = lake_check(printed)

    assert code == 1 and not found["ok"]
    # One killed swap: the old version kept aside, the new one unfinished, the lock.
    assert {x["state"] for x in found["leftovers"]} == {"taken_away", "new", "lock"}
    assert {x["folder"] for x in found["leftovers"]} == {features}
    assert {"ds": D1.isoformat(), "entity": "customers", "why": "not staged"} in found["stale"]
    assert found["missing"] == [
        {"source": "demo_feedback", "entity": "feedback", "ds": D2.isoformat()}
    ]
    assert any("--dag-id cva_source_demo_feedback" in line for line in found["missing_help"])

    code, repaired = lake_check(printed, "--repair")

    assert code == 1, "a missing source day needs its source DAG, not a repair"
    assert repaired["leftovers"] == [] and repaired["stale"] == []
    assert repaired["missing"] == found["missing"]
    assert any("put back" in line for line in repaired["repaired"])
    assert storage.read_table(features).column("customer_id").to_pylist() == ["7"]
    assert staged(lake, "customers", D1).column("customer_id").to_pylist() == ["7"]

    land_feedback(lake, D2, [feedback("F2", D2)])
    code, landed = lake_check(printed)
    assert code == 1
    assert landed["stale"] == [
        {
            "ds": D2.isoformat(),
            "entity": "feedback",
            "why": "demo_feedback.feedback was landed again",
        }
    ]
    assert lake_check(printed, "--repair")[0] == 0
    assert staged(lake, "feedback", D2).column("feedback_id").to_pylist() == ["F2"]


def test_check_text_says_what_to_do(lake, printed):
    land_shop(lake, D1)
    land_feedback(lake, D1)
    land_shop(lake, D1 + timedelta(days=2))

    code = cli.main(["lake", "check"])
    text = printed.getvalue()

    assert code == 1
    assert "demo_feedback.feedback (raw/demo_feedback/feedback): 2025-06-11..2025-06-12" in text
    assert "demo_shop.transactions (raw/demo_shop/transactions): 2025-06-11" in text
    assert "cva lake check --repair" in text  # D1 was never staged


def test_the_cva_command_prints_one_json_document(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    land_shop(tmp_path / "lake", D1)
    land_feedback(tmp_path / "lake", D1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CVA_")}
    env.update(CVA_DATA_ROOT=str(tmp_path / "lake"), CVA_HOME=str(tmp_path / "home"))
    cva = str(Path(sys.executable).with_name("cva"))

    result = subprocess.run(
        [cva, "lake", "check", "--json"], env=env, capture_output=True, text=True
    )

    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["stale"] == [
        {"ds": D1.isoformat(), "entity": entity, "why": "not staged"}
        for entity in ("customers", "feedback", "items", "transactions")
    ]

"""Pseudonymised ids and `cva forget` on the demo lake and the embedded DuckDB warehouse."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pyarrow.compute as pc
import pytest

from cva_tasks import cli, storage
from cva_tasks.privacy.forget import CUSTOMER_ENTITIES, forget
from cva_tasks.privacy.pseudonyms import pseudonym
from cva_tasks.privacy.register import id_hash
from cva_tasks.settings import Settings
from cva_tasks.warehouse import get_warehouse
from cva_tasks.warehouse.erasure import customer_tables

KEY = "integration-test-key-0123456789abcdef"
RUN = "manual__privacy"


@pytest.fixture
def keyed_lake(lake, demo_frames, monkeypatch):
    """14 days of the demo shop landed, staged with the key, features, scores, published."""
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_START
    from cva_tasks.steps.features import build_features
    from cva_tasks.steps.publish import publish
    from cva_tasks.steps.score import score
    from cva_tasks.steps.stage import stage

    monkeypatch.setenv("CVA_PSEUDONYMISE_KEY", KEY)
    monkeypatch.setenv("CVA_MODELS", "")
    monkeypatch.setattr(cli, "_RESULT_STREAM", None)  # print(file=None): captured stdout
    days = [DEFAULT_START + timedelta(days=n) for n in range(14)]
    write_raw_from_frames(demo_frames, str(lake), days=days, stage=False)
    day = days[-1]
    stage(day)
    build_features(day)
    score(day)
    publish(day, RUN)
    return lake, days


def lake_ids(settings: Settings) -> dict[str, set[str]]:
    """Every customer id in each zone of the lake past raw: zone/name -> ids."""
    lake = settings.lake
    found: dict[str, set[str]] = {}
    folders = [(f"staged/{e}", lake.staged(e)) for e in CUSTOMER_ENTITIES]
    folders += [
        (f"features/{n}", lake.features(n)) for n in storage.list_folders(lake.features_root())
    ]
    folders += [(f"scores/{n}", lake.scores(n)) for n in storage.list_folders(lake.scores_root())]
    for name, folder in folders:
        for day in storage.list_partitions(folder):
            table = storage.read_table(f"{folder}/ds={day.isoformat()}")
            if "customer_id" in table.column_names:
                values = table["customer_id"].drop_null().to_pylist()
                found.setdefault(name, set()).update(values)
    return found


def raw_ids(settings: Settings, days: list[date]) -> set[str]:
    lake = settings.lake
    ids: set[str] = set()
    for source, entity in [
        ("demo_shop", "customers"),
        ("demo_shop", "transactions"),
        ("demo_feedback", "feedback"),
    ]:
        for day in days:
            table = storage.read_table(lake.raw(source, entity, day))
            ids.update(table["customer_id"].drop_null().to_pylist())
    return ids


def warehouse_ids() -> dict[str, set[str]]:
    warehouse = get_warehouse(auto_migrate=False, verify_schema=False)
    return {
        table: set(warehouse.read_table(table)["customer_id"].drop_null().to_pylist())
        for table in customer_tables(warehouse)
    }


def test_with_a_key_no_source_id_passes_raw_and_forget_removes_a_customer(
    keyed_lake, demo_frames, capsys
):
    """One test, one demo lake: building it is most of the time."""
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.steps.stage import stage

    lake, days = keyed_lake
    settings = Settings.from_env()
    sources_ids = raw_ids(settings, days)
    assert len(sources_ids) > 50

    # Pseudonymised: staged, features, scores and the warehouse hold pseudonyms only.
    zones = lake_ids(settings)
    assert {
        "staged/customers",
        "staged/transactions",
        "features/customer",
        "scores/customer_scores",
    } <= set(zones)
    tables = warehouse_ids()
    assert tables["customer_scores"]
    for where, ids in [*zones.items(), *(("warehouse/" + t, i) for t, i in tables.items())]:
        assert not ids & sources_ids, f"{where} holds source ids"
        assert all(i.startswith("p_") for i in ids), where
    expected = {pseudonym(i, KEY) for i in sources_ids}
    assert zones["features/customer"] <= expected

    # Pick a customer who bought: in every zone.
    scored = sorted(tables["customer_scores"])
    victim = next(i for i in sorted(sources_ids) if pseudonym(i, KEY) in scored)
    alias = pseudonym(victim, KEY)
    other = next(i for i in sorted(sources_ids) if pseudonym(i, KEY) in scored and i != victim)

    assert cli.main(["forget", victim, "--json"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{") :])
    removed = result["removed"]
    assert removed["raw/demo_shop/transactions"] > 0 and removed["raw/demo_shop/customers"] > 0
    assert removed["staged/transactions"] > 0 and removed["features/customer"] == 1
    assert removed["scores/customer_scores"] == 1 and removed["warehouse/customer_scores"] == 1

    assert victim not in raw_ids(settings, days)
    for where, ids in lake_ids(settings).items():
        assert alias not in ids and victim not in ids, where
    for table, ids in warehouse_ids().items():
        assert alias not in ids, table
    assert pseudonym(other, KEY) in warehouse_ids()["customer_scores"]  # only the one customer
    register = json.loads((lake / "privacy" / "erased.json").read_text())
    assert [e["id_sha256"] for e in register["erased"]] == [id_hash(victim)]
    assert f'"{victim}"' not in json.dumps(register)

    # The staging check finds the rewritten days up to date (nothing to restage).
    from cva_tasks.restaging import check_staging

    assert check_staging(settings, up_to=days[-1]).stale == []
    # A second forget finds nothing left.
    assert sum(forget([victim], settings)["removed"].values()) == 0

    # The source delivers the customer's rows again (a re-export): raw has them, and
    # the stage step restages the days whose raw changed, without the customer.
    write_raw_from_frames(demo_frames, str(lake), days=days, stage=False)
    assert victim in raw_ids(settings, days)
    stage(days[-1])
    for entity in CUSTOMER_ENTITIES:
        for day in days:
            ids = storage.read_table(settings.lake.staged(entity, day))["customer_id"]
            assert not pc.any(pc.equal(ids, alias)).as_py(), (entity, day)

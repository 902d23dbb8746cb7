"""CVA_PSEUDONYMISE_KEY: customer ids from staging on are a keyed hash; the key is never shown."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest

from cva_tasks import cli, storage
from cva_tasks.entities import SCHEMAS
from cva_tasks.lake import Lake
from cva_tasks.privacy.pseudonyms import pseudonym
from cva_tasks.settings import Settings, SettingsError
from cva_tasks.staging import stage_day

KEY = "a-test-key-of-some-length-0123456789"
DAY = date(2025, 6, 10)
STAMP = datetime(2025, 6, 10, 9, tzinfo=UTC)


def land(lake, source: str, entity: str, rows: list[dict]) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMAS[entity])
    storage.replace_partition(table, Lake(str(lake)).raw(source, entity, DAY))


def tx(line: str, customer: str | None) -> dict:
    return {
        "transaction_id": line,
        "order_id": f"O{line}",
        "customer_id": customer,
        "item_id": "I1",
        "quantity": 1,
        "unit_price": 2.5,
        "kind": "purchase",
        "is_product": True,
        "occurred_at": STAMP,
        "updated_at": STAMP,
    }


def land_shop_day(lake) -> None:
    land(lake, "demo_shop", "transactions", [tx("L1", "42"), tx("L2", "7"), tx("L3", None)])
    customer = {
        "customer_id": "42",
        "email": "x@example.org",
        "full_name": "X Y",
        "country": "France",
        "signup_at": STAMP,
        "updated_at": STAMP,
    }
    land(lake, "demo_shop", "customers", [customer])
    land(lake, "demo_shop", "items", [])
    feedback = {
        "feedback_id": "F1",
        "customer_id": "42",
        "order_id": "OL1",
        "rating": 5,
        "text": "fine",
        "submitted_at": STAMP,
    }
    land(lake, "demo_feedback", "feedback", [feedback])


def staged_ids(lake, entity: str) -> list:
    return storage.read_table(Lake(str(lake)).staged(entity, DAY)).column("customer_id").to_pylist()


def test_pseudonym_is_keyed_stable_and_not_the_id() -> None:
    assert pseudonym("42", KEY) == pseudonym("42", KEY)
    assert pseudonym("42", KEY) != pseudonym("43", KEY)
    assert pseudonym("42", KEY) != pseudonym("42", KEY + "x")
    assert len(pseudonym("42", KEY)) == 34


def test_staging_with_a_key_pseudonymises_every_customer_id_and_raw_keeps_them(lake) -> None:
    land_shop_day(lake)
    stage_day(DAY, ["demo_shop", "demo_feedback"], str(lake), pseudonymise_key=KEY)
    assert staged_ids(lake, "transactions") == [pseudonym("42", KEY), pseudonym("7", KEY), None]
    assert staged_ids(lake, "customers") == [pseudonym("42", KEY)]
    assert staged_ids(lake, "feedback") == [pseudonym("42", KEY)]
    raw = storage.read_table(Lake(str(lake)).raw("demo_shop", "transactions", DAY))
    assert raw.column("customer_id").to_pylist() == ["42", "7", None]

    first = storage.read_table(Lake(str(lake)).staged("transactions", DAY))
    stage_day(DAY, ["demo_shop", "demo_feedback"], str(lake), pseudonymise_key=KEY)
    assert storage.read_table(Lake(str(lake)).staged("transactions", DAY)).equals(first)


def test_without_a_key_ids_stay_as_landed(lake) -> None:
    land_shop_day(lake)
    stage_day(DAY, ["demo_shop", "demo_feedback"], str(lake))
    assert staged_ids(lake, "transactions") == ["42", "7", None]


def test_the_stage_step_reads_the_key_from_the_settings(lake, monkeypatch) -> None:
    from cva_tasks.steps.stage import stage

    monkeypatch.setenv("CVA_PIPELINE_SOURCES", "demo_shop,demo_feedback")
    monkeypatch.setenv("CVA_PSEUDONYMISE_KEY", KEY)
    land_shop_day(lake)
    stage(DAY)
    assert staged_ids(lake, "customers") == [pseudonym("42", KEY)]


def test_the_key_is_never_printed(monkeypatch, capsys) -> None:
    monkeypatch.setenv("CVA_PSEUDONYMISE_KEY", KEY)
    settings = Settings.from_env()
    assert settings.pseudonymise_key == KEY
    assert KEY not in repr(settings)
    monkeypatch.setattr(cli, "_RESULT_STREAM", None)  # print(file=None) goes to stdout
    assert cli.main(["config"]) == 0
    table = capsys.readouterr()
    assert "CVA_PSEUDONYMISE_KEY" in table.out
    assert KEY not in table.out + table.err
    assert cli.main(["config", "--json"]) == 0
    out = capsys.readouterr()
    assert KEY not in out.out + out.err
    rows = json.loads(out.out)["settings"]
    [row] = [r for r in rows if r["variable"] == "CVA_PSEUDONYMISE_KEY"]
    assert row["value"] == "(hidden)" and row["set"]


def test_a_short_key_is_refused_without_echoing_it(monkeypatch) -> None:
    monkeypatch.setenv("CVA_PSEUDONYMISE_KEY", "hunter2")
    with pytest.raises(SettingsError, match="CVA_PSEUDONYMISE_KEY") as raised:
        Settings.from_env()
    assert "hunter2" not in str(raised.value)


def test_a_corrupt_erasure_register_stops_staging_naming_the_file(lake) -> None:
    land_shop_day(lake)
    register = Lake(str(lake)).erasure_register()
    storage.write_json_atomic({"version": 1, "erased": []}, register)
    with open(register, "w") as handle:
        handle.write('{"version": 1, "erased": [')  # cut short
    with pytest.raises(ValueError, match=r"privacy/erased\.json"):
        stage_day(DAY, ["demo_shop", "demo_feedback"], str(lake))


@pytest.mark.parametrize("ids", [[], [None, None]])
def test_a_day_without_customer_ids_stages_with_a_register_and_a_key(ids) -> None:
    from cva_tasks.privacy.policy import StagingPrivacy
    from cva_tasks.privacy.register import id_hash

    table = pa.table({"customer_id": pa.array(ids, pa.string())})
    privacy = StagingPrivacy(key=KEY, erased=frozenset({id_hash("42")}))
    assert privacy.apply(table).to_pylist() == table.to_pylist()

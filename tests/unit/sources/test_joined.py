"""A file source joining orders, order lines and customers declaratively."""

from __future__ import annotations

from datetime import date

import pytest

from cva_tasks.settings import Settings
from cva_tasks.sources.base import DropNotArrived, Interval, Source, SourceError
from cva_tasks.sources.canonical import INVALID
from cva_tasks.sources.joined import FilePart, JoinedFileEntity, JoinOn
from cva_tasks.sources.readers import read_csv_text

DAY = date(2025, 6, 10)


def lines_entity(**overrides) -> JoinedFileEntity:
    spec = {
        "entity": "transactions",
        "suite": "shop.transactions",
        "parts": (
            FilePart("lines", "lines_{ds}.csv", read_csv_text, ("line_id", "order_id", "qty")),
            FilePart("orders", "orders_{ds}.csv", read_csv_text, ("order_id", "client", "at")),
            FilePart("customers", "customers_{ds}.csv", read_csv_text, ("client", "at")),
        ),
        "joins": (JoinOn("orders", "order_id"), JoinOn("customers", "client")),
        "to_canonical": lambda frame, interval: frame,
    }
    return JoinedFileEntity(**{**spec, **overrides})


def source(entity: JoinedFileEntity) -> Source:
    return Source(
        name="shop",
        description="a shop export in three files",
        entities=(entity,),
        start_date=date(2025, 1, 1),
        default_location="exports",
    )


@pytest.fixture
def exports(tmp_path, monkeypatch):
    monkeypatch.setenv("CVA_HOME", str(tmp_path))
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / f"lines_{DAY}.csv").write_text(
        "line_id,order_id,qty\nL1,O1,2\nL2,O1,1\nL3,O2,5\nL4,O9,1\n"
    )
    (folder / f"orders_{DAY}.csv").write_text(
        "order_id,client,at\nO1,C1,2025-06-10 09:00\nO2,C2,2025-06-10 10:00\n"
    )
    (folder / f"customers_{DAY}.csv").write_text("client,at\nC1,2025-01-01\nC2,2025-02-01\n")
    return folder


def extract(entity: JoinedFileEntity):
    return entity.extract(source(entity), Interval.for_day(DAY), Settings.from_env())


def test_the_rows_of_the_first_file_get_the_columns_of_the_others(exports):
    rows = extract(lines_entity())
    assert rows["line_id"].tolist() == ["L1", "L2", "L3", "L4"]
    assert rows["client"].tolist()[:3] == ["C1", "C1", "C2"]
    # `at` of customers clashes with `at` of orders: it is named after its part.
    assert rows["at"].tolist()[:3] == ["2025-06-10 09:00", "2025-06-10 09:00", "2025-06-10 10:00"]
    assert rows["customers.at"].tolist()[:3] == ["2025-01-01", "2025-01-01", "2025-02-01"]
    assert rows["_origin"].tolist()[0] == f"lines_{DAY}.csv line 2"
    # The line of an order not in the orders file is kept, invalid, with the reason.
    assert rows[INVALID].tolist()[:3] == [None, None, None]
    assert rows[INVALID].tolist()[3] == f"order_id not found in orders (orders_{DAY}.csv): 'O9'"


def test_a_missing_file_names_the_part_and_the_file(exports):
    (exports / f"customers_{DAY}.csv").unlink()
    with pytest.raises(
        DropNotArrived, match=rf"customers part: .*customers_{DAY}.csv does not exist"
    ):
        extract(lines_entity())


def test_a_missing_key_column_names_the_file(exports):
    (exports / f"orders_{DAY}.csv").write_text("order,client,at\nO1,C1,2025-06-10 09:00\n")
    with pytest.raises(SourceError, match=rf"orders part: .*orders_{DAY}.csv lacks .*'order_id'"):
        extract(lines_entity())


def test_a_key_repeated_in_a_joined_file_is_refused(exports):
    (exports / f"customers_{DAY}.csv").write_text("client,at\nC1,2025-01-01\nC1,2025-03-01\n")
    with pytest.raises(
        SourceError,
        match=rf"customers part \(customers_{DAY}.csv\): key client "
        r"repeats .*\['C1', 'C1'\].*line 2",
    ):
        extract(lines_entity())


def test_a_join_on_an_unknown_part_or_key_is_refused_at_declaration():
    with pytest.raises(ValueError, match="unknown part 'shops'"):
        lines_entity(joins=(JoinOn("shops", "shop_id"),))
    with pytest.raises(ValueError, match="key 'customer' is not a required column of customers"):
        lines_entity(joins=(JoinOn("customers", "client", "customer"),))

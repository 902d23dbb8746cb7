"""A tiny demo-shop database and daily feedback drops, run through extract -> validate -> land."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake
from cva_tasks.sources.base import Interval
from cva_tasks.steps import land as landing

SHOP_SCHEMA = """
CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, email TEXT, first_name TEXT,
    last_name TEXT, country TEXT, signup_at TEXT, updated_at TEXT);
CREATE TABLE products (product_id INTEGER PRIMARY KEY, name TEXT, category TEXT,
    unit_price REAL, updated_at TEXT);
CREATE TABLE orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, ordered_at TEXT,
    status TEXT, updated_at TEXT);
CREATE TABLE order_lines (order_line_id INTEGER PRIMARY KEY, order_id INTEGER,
    product_id INTEGER, quantity INTEGER, unit_price REAL);
CREATE TABLE returns (return_id INTEGER PRIMARY KEY, order_line_id INTEGER, quantity INTEGER,
    returned_at TEXT, updated_at TEXT);
"""


def run_entity(source: str, entity: str, day: date, run_id: str | None = None) -> dict:
    """Extract, validate and land one entity-day as the source DAG does; the day's summary."""
    interval = Interval.for_day(day)
    args = (source, entity, interval.start.isoformat(), interval.end.isoformat())
    run_id = run_id or f"manual__{day}"
    landing.extract(*args, run_id)
    summary = landing.validate(*args, run_id)
    landing.land(*args, run_id)
    return summary


class Lakeview:
    """Read what a test landed."""

    def __init__(self, root: Path) -> None:
        self.lake = Lake(str(root))

    def raw(self, source: str, entity: str, day: date) -> pa.Table:
        return storage.read_table(self.lake.raw(source, entity, day))

    def quarantine(self, source: str, entity: str, day: date) -> list[dict]:
        uri = self.lake.quarantine(source, entity, day)
        return storage.read_table(uri).to_pylist() if storage.exists(uri) else []

    def ids(self, source: str, entity: str, day: date, key: str) -> list[str]:
        return sorted(self.raw(source, entity, day).column(key).to_pylist())


class TinyShop:
    """The demo shop's tables with a handful of rows, in a SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as conn:
            conn.executescript(SHOP_SCHEMA)
            conn.execute(
                "INSERT INTO products VALUES (100, 'Mug', 'Kitchen', 9.5, '2024-01-01 00:00:00')"
            )

    def execute(self, sql: str, *params) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute(sql, params)

    def order(self, order_id: int, updated_at: str, *, lines, ordered_at=None, customer=7):
        """An order placed (``ordered_at``, default ``updated_at``) with ``(line, qty, price)``."""
        self.execute(
            "INSERT INTO orders VALUES (?, ?, ?, 'placed', ?)",
            order_id,
            customer,
            ordered_at or updated_at,
            updated_at,
        )
        for line_id, quantity, price in lines:
            self.execute(
                "INSERT INTO order_lines VALUES (?, ?, 100, ?, ?)",
                line_id,
                order_id,
                quantity,
                price,
            )

    def run(self, entity: str, day: date, run_id: str | None = None) -> dict:
        return run_entity("demo_shop", entity, day, run_id)


@pytest.fixture
def view(lake) -> Lakeview:
    return Lakeview(lake)


@pytest.fixture
def tiny_shop(tmp_path, lake, monkeypatch) -> TinyShop:
    shop = TinyShop(tmp_path / "shop.db")
    monkeypatch.setenv("AIRFLOW_CONN_CVA_DEMO_SHOP", f"sqlite:///{shop.path}")
    return shop


@pytest.fixture
def feedback_drops(tmp_path, lake, monkeypatch):
    """``write(day, rows)`` writes the day's feedback drop (JSON lines, or raw text)."""
    folder = tmp_path / "drops"
    folder.mkdir()
    monkeypatch.setenv("CVA_DEMO_FEEDBACK_DROPS", str(folder))

    def write(day: date, rows: list[dict] | str) -> Path:
        path = folder / f"feedback_{day.isoformat()}.jsonl"
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        path.write_text(text)
        return path

    return write


def feedback_row(fid: str, submitted_at: str, **extra) -> dict:
    row = {
        "feedback_id": fid,
        "customer_id": 7,
        "order_id": 1,
        "rating": 4,
        "comment": "arrived quickly",
        "submitted_at": submitted_at,
    }
    row.update(extra)
    return row

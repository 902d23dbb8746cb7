"""Read-only SQL on the warehouse, for the "Customer value" page.

The page reads the warehouse :func:`cva_tasks.warehouse.get_warehouse` picks
(PostgreSQL when ``AIRFLOW_CONN_CVA_WAREHOUSE`` is set, the embedded DuckDB file
otherwise) but never writes to it: no migration, no file created. The embedded file
is opened read-only for each query (DuckDB lets a writer hold the file alone, so a
read that meets a load in progress retries for ``lock_timeout`` seconds, then reports
the warehouse busy); a PostgreSQL session is set read-only.

Queries are written once with ``?`` placeholders and the SQL both backends share.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from cva_tasks.warehouse import (
    DEFAULT_CONN_ID,
    EmbeddedWarehouse,
    PostgresWarehouse,
    Warehouse,
    WarehouseUnavailable,
    get_warehouse,
)

Row = dict[str, Any]


def _plain(value: Any) -> Any:
    """A value as JSON and the page want it: Decimal -> float, dates stay dates."""
    if isinstance(value, Decimal):
        return float(value)
    return value


class WarehouseReader:
    """Runs read-only queries on one warehouse.

    Args:
        warehouse: an :class:`EmbeddedWarehouse` or a :class:`PostgresWarehouse`.
        lock_timeout: seconds an embedded read waits for a load holding the file.
    """

    def __init__(self, warehouse: Warehouse, lock_timeout: float = 5.0) -> None:
        if not isinstance(warehouse, EmbeddedWarehouse | PostgresWarehouse):
            raise TypeError(f"no read-only access for {warehouse!r}")
        self.warehouse = warehouse
        self.lock_timeout = lock_timeout

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID) -> WarehouseReader:
        """The reader of the warehouse that connection ``conn_id`` names (or the default)."""
        return cls(get_warehouse(conn_id, auto_migrate=False))

    @property
    def location(self) -> str:
        return self.warehouse.location

    def existing_tables(self, names: Sequence[str]) -> set[str]:
        """Which of ``names`` exist in the warehouse (an absent embedded file has none)."""
        if isinstance(self.warehouse, EmbeddedWarehouse) and not self.warehouse.path.exists():
            return set()
        marks = ", ".join("?" for _ in names)
        rows = self.query(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = current_schema() AND table_name IN ({marks})",
            list(names),
        )
        return {row["table_name"] for row in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one SELECT as dicts (column name -> value).

        Raises:
            WarehouseUnavailable: the warehouse cannot be reached, or stays locked by a load.
        """
        if isinstance(self.warehouse, EmbeddedWarehouse):
            return self._query_duckdb(sql, params)
        return self._query_postgres(sql, params)

    def _query_duckdb(self, sql: str, params: Sequence[Any]) -> list[Row]:
        import duckdb

        assert isinstance(self.warehouse, EmbeddedWarehouse)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                con = duckdb.connect(str(self.warehouse.path), read_only=True)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise WarehouseUnavailable(
                        f"warehouse {self.location} is busy or unreadable: {exc}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        try:
            # Through Arrow: DuckDB's own row fetch needs pytz for TIMESTAMPTZ columns.
            table = con.sql(sql, params=list(params) or None).to_arrow_table()
            return [{n: _plain(v) for n, v in row.items()} for row in table.to_pylist()]
        finally:
            con.close()

    def _query_postgres(self, sql: str, params: Sequence[Any]) -> list[Row]:
        assert isinstance(self.warehouse, PostgresWarehouse)
        if "%" in sql:
            raise ValueError("write '?' placeholders; '%' is reserved by psycopg2")
        conn = self.warehouse.connect()
        try:
            conn.set_session(readonly=True)
            with conn.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), list(params))
                names = [d.name for d in cur.description]
                rows = [
                    {n: _plain(v) for n, v in zip(names, row, strict=True)}
                    for row in cur.fetchall()
                ]
            conn.rollback()
            return rows
        finally:
            conn.close()


def iso(value: date | datetime | None) -> str | None:
    """A date or an instant as ISO text (what the JSON endpoints return)."""
    return value.isoformat() if value is not None else None

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

import contextlib
import time
from collections.abc import Iterator, Sequence
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

    Each query opens and closes its own connection, unless it runs inside
    :meth:`session`, which keeps one connection for all of them (a page makes about
    twenty queries; opening a DuckDB file costs a tenth of a second on a busy machine).

    Args:
        warehouse: an :class:`EmbeddedWarehouse` or a :class:`PostgresWarehouse`.
        lock_timeout: seconds an embedded read waits for a load holding the file.
    """

    def __init__(self, warehouse: Warehouse, lock_timeout: float = 5.0) -> None:
        if not isinstance(warehouse, EmbeddedWarehouse | PostgresWarehouse):
            raise TypeError(f"no read-only access for {warehouse!r}")
        self.warehouse = warehouse
        self.lock_timeout = lock_timeout
        self._connection: Any = None
        self._tables: set[str] | None = None

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID) -> WarehouseReader:
        """The reader of the warehouse that connection ``conn_id`` names (or the default)."""
        return cls(get_warehouse(conn_id, auto_migrate=False))

    @property
    def location(self) -> str:
        return self.warehouse.location

    @contextlib.contextmanager
    def session(self) -> Iterator[WarehouseReader]:
        """One read-only connection for every query inside the block (nested: reused).

        An embedded warehouse whose file does not exist opens nothing (and creates
        nothing): :meth:`existing_tables` then says no table exists.
        """
        if self._connection is not None or not self._exists():
            yield self
            return
        self._connection = self._connect()
        try:
            yield self
        finally:
            connection, self._connection = self._connection, None
            self._tables = None
            connection.close()

    def existing_tables(self, names: Sequence[str]) -> set[str]:
        """Which of ``names`` exist in the warehouse (an absent embedded file has none)."""
        if not self._exists():
            return set()
        if self._tables is None or self._connection is None:
            rows = self.query(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
            found = {row["table_name"] for row in rows}
            if self._connection is None:
                return found & set(names)
            self._tables = found
        return self._tables & set(names)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one SELECT as dicts (column name -> value).

        Raises:
            WarehouseUnavailable: the warehouse cannot be reached, or stays locked by a load.
        """
        if self._connection is not None:
            return self._run(self._connection, sql, params)
        connection = self._connect()
        try:
            return self._run(connection, sql, params)
        finally:
            connection.close()

    def _exists(self) -> bool:
        return not isinstance(self.warehouse, EmbeddedWarehouse) or self.warehouse.path.exists()

    def _connect(self) -> Any:
        if isinstance(self.warehouse, PostgresWarehouse):
            connection = self.warehouse.connect()
            connection.set_session(readonly=True)
            return connection
        import duckdb

        assert isinstance(self.warehouse, EmbeddedWarehouse)
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.warehouse.path), read_only=True)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise WarehouseUnavailable(
                        f"warehouse {self.location} is busy or unreadable: {exc}"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _run(self, connection: Any, sql: str, params: Sequence[Any]) -> list[Row]:
        if isinstance(self.warehouse, EmbeddedWarehouse):
            # Through Arrow: DuckDB's own row fetch needs pytz for TIMESTAMPTZ columns.
            table = connection.sql(sql, params=list(params) or None).to_arrow_table()
            return [{n: _plain(v) for n, v in row.items()} for row in table.to_pylist()]
        if "%" in sql:
            raise ValueError("write '?' placeholders; '%' is reserved by psycopg2")
        try:
            with connection.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), list(params))
                names = [d.name for d in cur.description]
                return [
                    {n: _plain(v) for n, v in zip(names, row, strict=True)}
                    for row in cur.fetchall()
                ]
        finally:
            connection.rollback()


def iso(value: date | datetime | None) -> str | None:
    """A date or an instant as ISO text (what the JSON endpoints return)."""
    return value.isoformat() if value is not None else None

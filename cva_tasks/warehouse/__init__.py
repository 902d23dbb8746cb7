"""The warehouse marketing reads: versioned tables, loaded one day at a time.

``get_warehouse()`` picks the backend from connection ``cva_warehouse``
(PostgreSQL, or the embedded DuckDB file when it is not defined);
``replace_partition`` swaps one day of a table atomically; ``migrate`` brings the
schema forward. Tables and migrations are declared in ``schema.py``.
"""

from cva_tasks.warehouse.backends import (
    DEFAULT_CONN_ID,
    EmbeddedWarehouse,
    PostgresWarehouse,
    Warehouse,
    WarehouseError,
    WarehouseUnavailable,
    get_warehouse,
)
from cva_tasks.warehouse.load import RowsError
from cva_tasks.warehouse.schema import MIGRATIONS, TABLES, Column, Migration, TableSpec, migrate

__all__ = [
    "DEFAULT_CONN_ID",
    "MIGRATIONS",
    "TABLES",
    "Column",
    "EmbeddedWarehouse",
    "Migration",
    "PostgresWarehouse",
    "RowsError",
    "TableSpec",
    "Warehouse",
    "WarehouseError",
    "WarehouseUnavailable",
    "get_warehouse",
    "migrate",
]

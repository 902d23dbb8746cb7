"""The warehouse marketing reads: versioned tables, loaded one day at a time.

``get_warehouse()`` picks the backend from connection ``cva_warehouse``
(PostgreSQL, or the embedded DuckDB file when it is not defined);
``replace_partition`` swaps one day of a table atomically; ``migrate`` brings the
schema forward. Tables are declared in ``schema.py``, migrations in ``migrations.py``;
``checks.py`` compares the live tables with them before every load (``cva warehouse
check``).
"""

from cva_tasks.warehouse.backends import (
    DEFAULT_CONN_ID,
    EmbeddedWarehouse,
    PostgresWarehouse,
    Warehouse,
    WarehouseConfigError,
    WarehouseError,
    WarehouseUnavailable,
    get_warehouse,
)
from cva_tasks.warehouse.errors import WarehouseSchemaError
from cva_tasks.warehouse.load import RowsError
from cva_tasks.warehouse.migrations import MIGRATIONS, Migration, migrate
from cva_tasks.warehouse.schema import TABLES, Column, TableSpec

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
    "WarehouseConfigError",
    "WarehouseError",
    "WarehouseSchemaError",
    "WarehouseUnavailable",
    "get_warehouse",
    "migrate",
]

"""Erasure in the warehouse: delete a customer's rows from every table that has them.

Every table whose spec has a ``customer_id`` column is cleared of the given ids in one
transaction (all tables or none). Nothing else changes: no migration, no schema check,
and an embedded warehouse that does not exist yet is not created.
"""

from __future__ import annotations

from collections.abc import Collection

from cva_tasks.warehouse.backends import EmbeddedWarehouse, PostgresWarehouse, Warehouse

CUSTOMER_ID = "customer_id"


def customer_tables(warehouse: Warehouse) -> list[str]:
    """Tables of the warehouse's specs that hold a customer id, and exist there."""
    live = warehouse.live_tables()
    return sorted(
        name
        for name, spec in warehouse.tables.items()
        if CUSTOMER_ID in spec.column_names and name in live
    )


def erase_customers(warehouse: Warehouse, customer_ids: Collection[str]) -> dict[str, int]:
    """Delete the rows of ``customer_ids`` from every customer table, in one transaction.

    Returns:
        Rows deleted per table (an empty dict when the embedded warehouse does not
        exist yet).
    """
    ids = sorted(set(customer_ids))
    if isinstance(warehouse, EmbeddedWarehouse) and not warehouse.path.exists():
        return {}
    tables = customer_tables(warehouse)
    if not ids or not tables:
        return dict.fromkeys(tables, 0)
    if isinstance(warehouse, PostgresWarehouse):
        return warehouse._run("erasure", lambda conn: _erase_postgres(conn, tables, ids))
    if isinstance(warehouse, EmbeddedWarehouse):
        return warehouse._run(lambda con: _erase_duckdb(con, tables, ids))
    raise TypeError(f"no erasure for {type(warehouse).__name__}")


def _erase_postgres(conn, tables: list[str], ids: list[str]) -> dict[str, int]:
    deleted = {}
    try:
        with conn.cursor() as cur:
            for table in tables:
                cur.execute(f"DELETE FROM {table} WHERE {CUSTOMER_ID} = ANY(%s)", (ids,))
                deleted[table] = cur.rowcount
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return deleted


def _erase_duckdb(con, tables: list[str], ids: list[str]) -> dict[str, int]:
    deleted = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table in tables:
            row = con.execute(
                f"DELETE FROM {table} WHERE {CUSTOMER_ID} IN (SELECT unnest(?::VARCHAR[]))",
                [ids],
            ).fetchone()
            deleted[table] = int(row[0]) if row else 0
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return deleted

"""The demo shop written to a database: SQLite, PostgreSQL, or any SQLAlchemy URL."""

from __future__ import annotations

import io
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from cva_tasks.demo.shop.columns import _secs, _ts_text
from cva_tasks.demo.shop.frames import TABLES, ShopFrames

logger = logging.getLogger(__name__)

# Column kinds: id (integer primary key), int, real, text, ts (timestamp).
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "customers": (
        ("customer_id", "id"),
        ("email", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("country", "text"),
        ("signup_at", "ts"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "products": (
        ("product_id", "id"),
        ("sku", "text"),
        ("name", "text"),
        ("category", "text"),
        ("unit_price", "real"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "orders": (
        ("order_id", "id"),
        ("customer_id", "int"),
        ("ordered_at", "ts"),
        ("status", "text"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "order_lines": (
        ("order_line_id", "id"),
        ("order_id", "int"),
        ("product_id", "int"),
        ("quantity", "int"),
        ("unit_price", "real"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "returns": (
        ("return_id", "id"),
        ("order_line_id", "int"),
        ("quantity", "int"),
        ("reason", "text"),
        ("returned_at", "ts"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
}

_SQL_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {
        "id": "INTEGER PRIMARY KEY",
        "int": "INTEGER NOT NULL",
        "real": "REAL NOT NULL",
        "text": "TEXT NOT NULL",
        "ts": "TEXT NOT NULL",
    },
    "postgresql": {
        "id": "INTEGER PRIMARY KEY",
        "int": "INTEGER NOT NULL",
        "real": "DOUBLE PRECISION NOT NULL",
        "text": "TEXT NOT NULL",
        "ts": "TIMESTAMP NOT NULL",
    },
}

_SQLITE_CHUNK = 250_000
_PG_CHUNK = 1_000_000


def _ddl(table: str, dialect: str, qualified: str) -> str:
    types = _SQL_TYPES[dialect]
    cols = ", ".join(f"{c} {types[k]}" for c, k in _COLUMNS[table])
    return f"CREATE TABLE {qualified} ({cols})"


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for s in range(0, n, size):
        yield s, min(s + size, n)


def _log_progress(table: str, done: int, total: int, t0: float) -> None:
    logger.info(
        "  %s: %d/%d rows (%.0f%%, %.1f s)",
        table,
        done,
        total,
        100.0 * done / max(total, 1),
        time.perf_counter() - t0,
    )


def write_database(frames: ShopFrames, db_url: str, *, schema: str | None = None) -> None:
    """Write the five shop tables to a database, replacing them if present.

    Tables (grain / columns as in :class:`ShopFrames`): ``customers``,
    ``products``, ``orders``, ``order_lines``, ``returns``, each with an
    integer primary key and an index on ``updated_at``. Timestamps are UTC:
    ``TEXT`` ``YYYY-MM-DD HH:MM:SS`` in SQLite, ``TIMESTAMP`` (without time
    zone) in PostgreSQL; prices are ``REAL`` (SQLite) / ``DOUBLE PRECISION``.

    SQLite is written with ``sqlite3`` ``executemany`` in one transaction,
    PostgreSQL (``postgresql+psycopg2``) with ``COPY`` from in-memory CSV
    chunks; any other SQLAlchemy URL falls back to chunked Core inserts.

    Args:
        frames: The generated shop.
        db_url: SQLAlchemy URL, e.g. ``sqlite:////tmp/shop.db`` or
            ``postgresql+psycopg2://user@host:5432/db``.
        schema: Database schema (PostgreSQL: created if missing). SQLite only
            supports ``None``/``"main"``.
    """
    url = sa.engine.make_url(db_url)
    backend = url.get_backend_name()
    t0 = time.perf_counter()
    if backend == "sqlite":
        if schema not in (None, "main"):
            raise ValueError("SQLite supports no schema other than 'main'")
        if not url.database or url.database == ":memory:":
            raise ValueError(f"need a SQLite file, got {db_url!r}")
        _write_sqlite(frames, Path(url.database))
    elif backend == "postgresql" and url.get_driver_name() == "psycopg2":
        _write_postgres(frames, url, schema)
    else:
        _write_generic(frames, url, schema)
    logger.info("wrote the database in %.1f s", time.perf_counter() - t0)


def _sqlite_values(
    df: pd.DataFrame, cols: tuple[tuple[str, str], ...], s: int, e: int
) -> list[list]:
    """Python values of rows ``s:e`` per column; timestamps as ``YYYY-MM-DD HH:MM:SS``."""
    out: list[list] = []
    seen: list[tuple[np.ndarray, list]] = []  # timestamp columns already formatted
    for col, kind in cols:
        part = df[col].iloc[s:e]
        if kind != "ts":
            out.append(part.tolist())
            continue
        secs = _secs(part)
        for other, text in seen:  # created_at and updated_at are often the same
            if np.array_equal(other, secs):
                out.append(text)
                break
        else:
            text = _ts_text(secs).tolist()
            seen.append((secs, text))
            out.append(text)
    return out


def _write_sqlite(frames: ShopFrames, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=MEMORY")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-200000")
        con.execute("BEGIN")
        for table in TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        for table in TABLES:
            df: pd.DataFrame = getattr(frames, table)
            cols = _COLUMNS[table]
            con.execute(_ddl(table, "sqlite", table))
            sql = (
                f"INSERT INTO {table} ({', '.join(c for c, _ in cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})"
            )
            t0 = time.perf_counter()
            for i, (s, e) in enumerate(_chunks(len(df), _SQLITE_CHUNK), start=1):
                con.executemany(sql, zip(*_sqlite_values(df, cols, s, e), strict=True))
                if i % 20 == 0:
                    _log_progress(table, e, len(df), t0)
            con.execute(f"CREATE INDEX ix_{table}_updated_at ON {table} (updated_at)")
            logger.info("wrote %s: %d rows", table, len(df))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _arrow_chunk(df: pd.DataFrame, cols: tuple[tuple[str, str], ...], s: int, e: int) -> pa.Table:
    arrays = []
    for c, k in cols:
        part = df[c].iloc[s:e]
        if k == "ts":
            arrays.append(pa.array(_secs(part).astype("datetime64[s]")))
        elif k == "text":
            arrays.append(pa.array(part.to_numpy(dtype=object), type=pa.string()))
        else:
            arrays.append(pa.array(part.to_numpy()))
    return pa.Table.from_arrays(arrays, names=[c for c, _ in cols])


def _write_postgres(frames: ShopFrames, url: sa.URL, schema: str | None) -> None:
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            conn = raw.driver_connection
            if conn is None:  # only a closed or invalidated connection has none
                raise RuntimeError("no psycopg2 connection behind the SQLAlchemy connection")
            with conn.cursor() as cur:
                if schema:
                    cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                prefix = f'"{schema}".' if schema else ""
                for table in TABLES:
                    cur.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
                for table in TABLES:
                    df: pd.DataFrame = getattr(frames, table)
                    cols = _COLUMNS[table]
                    cur.execute(_ddl(table, "postgresql", prefix + table))
                    copy = (
                        f"COPY {prefix}{table} ({', '.join(c for c, _ in cols)}) "
                        "FROM STDIN WITH (FORMAT csv)"
                    )
                    t0 = time.perf_counter()
                    for s, e in _chunks(len(df), _PG_CHUNK):
                        buf = io.BytesIO()
                        pa_csv.write_csv(
                            _arrow_chunk(df, cols, s, e),
                            buf,
                            write_options=pa_csv.WriteOptions(include_header=False),
                        )
                        buf.seek(0)
                        cur.copy_expert(copy, buf)
                        if len(df) > _PG_CHUNK:
                            _log_progress(table, e, len(df), t0)
                    cur.execute(
                        f"CREATE INDEX ix_{table}_updated_at ON {prefix}{table} (updated_at)"
                    )
                    logger.info("wrote %s%s: %d rows", prefix, table, len(df))
            conn.commit()
        except BaseException:
            if raw.driver_connection is not None:
                raw.driver_connection.rollback()
            raise
        finally:
            raw.close()
    finally:
        engine.dispose()


def _write_generic(frames: ShopFrames, url: sa.URL, schema: str | None) -> None:
    kinds = {
        "id": sa.Integer,
        "int": sa.Integer,
        "real": sa.Float,
        "text": sa.Text,
        "ts": sa.DateTime,
    }
    meta = sa.MetaData(schema=schema)
    tables = {
        name: sa.Table(
            name,
            meta,
            *(
                sa.Column(
                    c, kinds[k](), primary_key=k == "id", nullable=False, index=c == "updated_at"
                )
                for c, k in cols
            ),
        )
        for name, cols in _COLUMNS.items()
    }
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            meta.drop_all(conn)
            meta.create_all(conn)
            for name in TABLES:
                df: pd.DataFrame = getattr(frames, name)
                cols = _COLUMNS[name]
                for s, e in _chunks(len(df), 50_000):
                    data: dict[str, list] = {}
                    for c, k in cols:
                        part = df[c].iloc[s:e]
                        if k == "ts":
                            data[c] = part.dt.tz_localize(None).dt.to_pydatetime().tolist()
                        else:
                            data[c] = part.tolist()
                    rows = [
                        dict(zip(data, r, strict=True)) for r in zip(*data.values(), strict=True)
                    ]
                    conn.execute(tables[name].insert(), rows)
                logger.info("wrote %s: %d rows", name, len(df))
    finally:
        engine.dispose()

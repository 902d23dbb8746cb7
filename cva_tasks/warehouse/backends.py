"""Warehouse backends: PostgreSQL when configured, an embedded DuckDB file otherwise.

The connection id (default ``cva_warehouse``) decides, through
``AIRFLOW_CONN_CVA_WAREHOUSE`` or Airflow's own connections:

* a ``postgres://`` / ``postgresql://`` connection -> :class:`PostgresWarehouse`;
  its schema is whatever the connection's ``search_path`` says (e.g.
  ``postgres://user@host:5432/db?options=-csearch_path%3Dmarketing``);
* ``duckdb:///relative.duckdb`` or ``duckdb:////abs/path.duckdb`` (the SQLAlchemy
  convention: the path follows the third slash) -> :class:`EmbeddedWarehouse`;
* no such connection -> the embedded default, ``$CVA_HOME/warehouse.duckdb``.

Only a connection that is defined nowhere falls back to the embedded file. One that is
defined but cannot be used (an empty variable, a type we do not run on) raises
:class:`WarehouseConfigError`; one Airflow failed to look up, or a configured DuckDB
file whose folder does not exist, raises :class:`WarehouseUnavailable`: publishing
into a file nobody reads would lose the day silently.

Before the first load, the live tables are compared with their specs
(:mod:`cva_tasks.warehouse.checks`): a table altered by hand stops the load with
:class:`WarehouseSchemaError`.

Both give the same semantics: :meth:`Warehouse.replace_partition` swaps one day
of a table atomically, and :meth:`Warehouse.migrate` brings the schema forward
(see ``migrations.py``).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cva_tasks import connections
from cva_tasks.settings import Settings
from cva_tasks.warehouse import load, schema
from cva_tasks.warehouse.checks import LiveTable, live_tables_from_catalog
from cva_tasks.warehouse.errors import WarehouseConfigError, WarehouseUnavailable
from cva_tasks.warehouse.errors import WarehouseError as WarehouseError
from cva_tasks.warehouse.errors import WarehouseSchemaError as WarehouseSchemaError
from cva_tasks.warehouse.migrations import MIGRATIONS, MIGRATIONS_TABLE_SQL, Migration, migrate
from cva_tasks.warehouse.schema import TableSpec

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "cva_warehouse"
EMBEDDED_FILE = "warehouse.duckdb"


class Warehouse(ABC):
    """One warehouse: its tables (specs), migrations and day-partition loads.

    Attributes:
        dialect: ``"postgres"`` or ``"duckdb"`` (selects migration SQL).
        conn_id: the connection id it came from, or None (embedded default).
        tables: table specs by name; default ``schema.TABLES`` (the same dict, so a
            spec changed there is seen here).
    """

    dialect: str

    def __init__(
        self,
        conn_id: str | None = None,
        tables: Mapping[str, TableSpec] | None = None,
        auto_migrate: bool = True,
        *,
        verify_schema: bool = True,
        read_only: bool = False,
    ) -> None:
        self.conn_id = conn_id
        self.tables = schema.TABLES if tables is None else tables
        self.auto_migrate = auto_migrate
        self.verify_schema = verify_schema
        self.read_only = read_only
        #: The migration history this warehouse follows (what the schema check expects).
        self.migrations: Sequence[Migration] = MIGRATIONS
        self._migrated = False
        self._verified = False

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the warehouse is, safe to log (no password)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location})"

    def spec(self, table_name: str) -> TableSpec:
        try:
            return self.tables[table_name]
        except KeyError:
            raise KeyError(
                f"no warehouse table {table_name!r}; known: {sorted(self.tables)}"
            ) from None

    def migrate(self, migrations: Sequence[Migration] | None = None) -> list[int]:
        """Apply pending migrations (:func:`migrations.migrate`); returns the versions applied."""
        applied = migrate(self, migrations)
        if migrations is not None:
            self.migrations = migrations
        self._migrated = True
        return applied

    def _ensure_schema(self) -> None:
        if self.auto_migrate and not self._migrated:
            self.migrate()
        if self.verify_schema and not self._verified:
            from cva_tasks.warehouse.checks import verify

            verify(self)
            self._verified = True

    def replace_partition(
        self, table_name: str, rows: pa.Table, as_of_date: date, run_id: str
    ) -> int:
        """Replace the rows of ``as_of_date`` in ``table_name`` with ``rows``, atomically.

        The table's grain and key are its spec's (customer_scores: one row per
        customer per as-of date, key (as_of_date, customer_id)). Other days are not
        touched; a rerun with the same rows leaves the same rows; a failure at any
        point leaves the day as it was before the call.

        Args:
            table_name: a table of ``self.tables``.
            rows: the spec's input columns (the loader adds run_id and loaded_at).
            as_of_date: the day replaced; every row must carry it.
            run_id: the pipeline run writing the rows.

        Returns:
            Rows loaded.

        Raises:
            load.RowsError: rows that do not fit the spec or the day (a ValueError).
            WarehouseUnavailable: the warehouse is unreachable or went away.
        """
        self._ensure_schema()
        return self._replace_partition(self.spec(table_name), rows, as_of_date, run_id)

    @abstractmethod
    def _replace_partition(
        self, spec: TableSpec, rows: pa.Table, as_of_date: date, run_id: str
    ) -> int: ...

    @abstractmethod
    def read_table(self, table_name: str, as_of_date: date | None = None) -> pa.Table:
        """Rows of a table (all columns the table has), one day or all, in key order."""

    @abstractmethod
    def live_tables(self) -> dict[str, LiveTable]:
        """Every table of the warehouse's schema as its catalog describes it."""

    # What migrations.migrate needs.
    @abstractmethod
    def ensure_migrations_table(self) -> None: ...

    @abstractmethod
    def applied_versions(self) -> list[int]: ...

    @abstractmethod
    def apply_migration(self, version: int, description: str, statements: list[str]) -> bool:
        """Apply one migration in one transaction; False if it was already applied."""


# --- PostgreSQL ----------------------------------------------------------------------


class PostgresWarehouse(Warehouse):
    """A PostgreSQL warehouse reached with psycopg2; one connection per operation.

    Args:
        url: SQLAlchemy URL (``postgresql+psycopg2://user:pw@host:port/db?options=...``).
        conn_id: the connection id, named in errors.
        connect_timeout: seconds, unless the URL sets ``connect_timeout``.
        batch_rows: see :func:`load.replace_partition_postgres`.
    """

    dialect = "postgres"

    def __init__(
        self,
        url: str,
        conn_id: str | None = None,
        tables: Mapping[str, TableSpec] | None = None,
        *,
        connect_timeout: int = 10,
        batch_rows: int = load.DEFAULT_BATCH_ROWS,
        auto_migrate: bool = True,
        verify_schema: bool = True,
        read_only: bool = False,
    ) -> None:
        from sqlalchemy.engine import make_url

        super().__init__(
            conn_id, tables, auto_migrate, verify_schema=verify_schema, read_only=read_only
        )
        self._url = make_url(url)
        self.batch_rows = batch_rows
        params: dict[str, Any] = self._url.translate_connect_args(
            username="user", database="dbname"
        )
        params.update({k: v if isinstance(v, str) else v[-1] for k, v in self._url.query.items()})
        params.setdefault("connect_timeout", connect_timeout)
        params.setdefault("application_name", "cva_warehouse")
        self._params = params

    @property
    def location(self) -> str:
        url = self._url.render_as_string(hide_password=True)
        return f"connection {self.conn_id!r} ({url})" if self.conn_id else url

    def connect(self):
        """A new psycopg2 connection (caller closes it).

        Raises:
            WarehouseUnavailable: naming the connection id and address, never the password.
        """
        import psycopg2

        try:
            conn = psycopg2.connect(**self._params)
        except psycopg2.OperationalError as exc:
            raise WarehouseUnavailable(
                f"warehouse {self.location} is unreachable: {self._redact(str(exc).strip())}"
            ) from None
        with conn.cursor() as cur:
            # If this client dies mid-transaction without the socket closing (a lost
            # network), the server ends the session instead of holding its locks.
            cur.execute("SET idle_in_transaction_session_timeout = '10min'")
            if self.read_only:
                cur.execute("SET default_transaction_read_only = on")
        conn.commit()
        return conn

    def _redact(self, text: str) -> str:
        password = self._url.password
        return text.replace(password, "***") if password else text

    def _run(self, what: str, action):
        import psycopg2

        conn = self.connect()
        try:
            return action(conn)
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
            if not conn.closed:
                raise  # e.g. a statement timeout: the server is there and said why
            raise WarehouseUnavailable(
                f"warehouse {self.location} went away during {what}: "
                f"{self._redact(str(exc).strip())}; nothing was committed unless the COMMIT "
                "itself was cut, and a rerun replaces the day whole"
            ) from exc
        finally:
            conn.close()

    def _replace_partition(self, spec, rows, as_of_date, run_id) -> int:
        return self._run(
            f"the load of {spec.name} as_of_date={as_of_date}",
            lambda conn: load.replace_partition_postgres(
                conn,
                spec,
                rows,
                as_of_date,
                run_id,
                batch_rows=self.batch_rows,
            ),
        )

    def read_table(self, table_name: str, as_of_date: date | None = None) -> pa.Table:
        import pyarrow as pa

        spec = self.spec(table_name)

        def read(conn):
            with conn.cursor() as cur:
                where = f" WHERE {spec.partition} = %s" if as_of_date else ""
                cur.execute(
                    f"SELECT * FROM {spec.name}{where} ORDER BY {', '.join(spec.key)}",
                    (as_of_date,) if as_of_date else None,
                )
                names = [d.name for d in cur.description]
                values: list[Sequence[Any]] = list(zip(*cur.fetchall(), strict=True)) or [
                    [] for _ in names
                ]
            arrays = []
            for name, column in zip(names, values, strict=True):
                if name in spec.column_names:
                    arrays.append(pa.array(column, spec.column(name).arrow_type))
                else:
                    arrays.append(pa.array(column))
            return pa.Table.from_arrays(arrays, names=names)

        return self._run(f"reading {table_name}", read)

    def live_tables(self) -> dict[str, LiveTable]:
        def read(conn):
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT table_name, column_name, data_type, is_nullable = 'YES', "
                    "column_default FROM information_schema.columns "
                    "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
                )
                columns = cur.fetchall()
                cur.execute(
                    "SELECT c.relname, a.attname FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indrelid "
                    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace "
                    "ORDER BY c.relname, array_position(i.indkey, a.attnum)"
                )
                keys = cur.fetchall()
            conn.rollback()
            return live_tables_from_catalog(columns, keys)

        return self._run("reading the catalog", read)

    def ensure_migrations_table(self) -> None:
        def create(conn):
            with conn.cursor() as cur:
                # Two first runs at once would race on CREATE TABLE IF NOT EXISTS.
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('cva_migrate:' || current_schema()))"
                )
                cur.execute(MIGRATIONS_TABLE_SQL)
            conn.commit()

        self._run("creating schema_migrations", create)

    def applied_versions(self) -> list[int]:
        def read(conn):
            with conn.cursor() as cur:
                cur.execute("SELECT version FROM schema_migrations ORDER BY version")
                return [r[0] for r in cur.fetchall()]

        return self._run("reading schema_migrations", read)

    def apply_migration(self, version: int, description: str, statements: list[str]) -> bool:
        def apply(conn):
            try:
                with conn.cursor() as cur:
                    cur.execute(
                        "SELECT pg_advisory_xact_lock(hashtext('cva_migrate:' || current_schema()))"
                    )
                    cur.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (version,))
                    if cur.fetchone():
                        conn.rollback()
                        return False
                    for statement in statements:
                        cur.execute(statement)
                    cur.execute(
                        "INSERT INTO schema_migrations (version, description, applied_at) "
                        "VALUES (%s, %s, now())",
                        (version, description),
                    )
                conn.commit()
                return True
            except BaseException:
                load.rollback_quietly(conn)
                raise

        return self._run(f"migration {version}", apply)


# --- DuckDB ---------------------------------------------------------------------------


class EmbeddedWarehouse(Warehouse):
    """The embedded default: one DuckDB file, opened per operation.

    DuckDB lets one process at a time open a file for writing, so an operation
    that finds the file locked (another task loading, a reader open) retries for
    ``lock_timeout`` seconds before giving up.
    """

    dialect = "duckdb"

    def __init__(
        self,
        path: str | Path,
        conn_id: str | None = None,
        tables: Mapping[str, TableSpec] | None = None,
        *,
        lock_timeout: float = 60.0,
        auto_migrate: bool = True,
        verify_schema: bool = True,
        read_only: bool = False,
    ) -> None:
        super().__init__(
            conn_id, tables, auto_migrate, verify_schema=verify_schema, read_only=read_only
        )
        self.path = Path(path)
        self.lock_timeout = lock_timeout

    @property
    def location(self) -> str:
        where = f"DuckDB file {self.path}"
        return f"connection {self.conn_id!r} ({where})" if self.conn_id else where

    def connect(self):
        """A new DuckDB connection (caller closes it).

        The embedded default (no connection) creates its folder; a configured file
        must be in an existing folder, so a typo cannot start a new, empty warehouse.

        Raises:
            WarehouseUnavailable: the folder or (read-only) the file is missing, or
                the file stays locked for ``lock_timeout`` seconds.
        """
        import duckdb

        if self.conn_id is None and not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.parent.is_dir():
            raise WarehouseUnavailable(
                f"warehouse {self.location}: the folder {self.path.parent} does not exist; "
                "create it or correct the connection (no new warehouse is started elsewhere)"
            )
        if self.read_only and not self.path.exists():
            raise WarehouseUnavailable(
                f"warehouse {self.location}: the file does not exist yet (the first "
                "publish creates it)"
            )
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise WarehouseUnavailable(f"warehouse {self.location}: {exc}") from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _run(self, action):
        con = self.connect()
        try:
            return action(con)
        finally:
            con.close()

    def _replace_partition(self, spec, rows, as_of_date, run_id) -> int:
        return self._run(
            lambda con: load.replace_partition_duckdb(con, spec, rows, as_of_date, run_id)
        )

    def read_table(self, table_name: str, as_of_date: date | None = None) -> pa.Table:
        spec = self.spec(table_name)
        where = f" WHERE {spec.partition} = ?" if as_of_date else ""

        def read(con):
            query = f"SELECT * FROM {spec.name}{where} ORDER BY {', '.join(spec.key)}"
            table = con.sql(query, params=[as_of_date] if as_of_date else None).to_arrow_table()
            # DuckDB names the zone Etc/UTC; give both backends the spec's types.
            for i, name in enumerate(table.column_names):
                if name in spec.column_names:
                    table = table.set_column(
                        i, name, table[name].cast(spec.column(name).arrow_type)
                    )
            return table

        return self._run(read)

    def live_tables(self) -> dict[str, LiveTable]:
        def read(con):
            columns = con.execute(
                "SELECT table_name, column_name, data_type, is_nullable = 'YES', column_default "
                "FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND table_catalog = current_database() ORDER BY table_name, ordinal_position"
            ).fetchall()
            keys = [
                (table, column)
                for table, names in con.execute(
                    "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
                    "WHERE constraint_type = 'PRIMARY KEY' AND schema_name = current_schema() "
                    "AND database_name = current_database()"
                ).fetchall()
                for column in names
            ]
            return live_tables_from_catalog(columns, keys)

        return self._run(read)

    def ensure_migrations_table(self) -> None:
        self._run(lambda con: con.execute(MIGRATIONS_TABLE_SQL))

    def applied_versions(self) -> list[int]:
        return self._run(
            lambda con: [
                r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()
            ]
        )

    def apply_migration(self, version: int, description: str, statements: list[str]) -> bool:
        def apply(con):
            con.execute("BEGIN TRANSACTION")
            try:
                done = con.execute(
                    "SELECT count(*) FROM schema_migrations WHERE version = ?", [version]
                ).fetchone()[0]
                if done:
                    con.execute("ROLLBACK")
                    return False
                for statement in statements:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, current_timestamp)",
                    [version, description],
                )
                con.execute("COMMIT")
                return True
            except BaseException:
                load.rollback_duckdb(con)
                raise

        return self._run(apply)


# --- selection ------------------------------------------------------------------------


def duckdb_path(uri: str) -> Path:
    """The file of a ``duckdb:///relative`` or ``duckdb:////absolute`` URI."""
    from urllib.parse import unquote

    if not uri.startswith("duckdb:///"):
        raise ValueError(f"a DuckDB warehouse URI is duckdb:///path, not {uri!r}")
    path = unquote(uri[len("duckdb:///") :].split("?", 1)[0])
    if not path or path == ":memory:":
        raise ValueError(f"{uri!r}: the embedded warehouse needs a file path")
    return Path(path)


def get_warehouse(conn_id: str = DEFAULT_CONN_ID, **options: Any) -> Warehouse:
    """The warehouse the connection ``conn_id`` names, or the embedded default.

    The embedded default is used only when the connection is defined nowhere.

    Args:
        conn_id: Airflow connection id; ``AIRFLOW_CONN_<ID>`` is read first.
        options: passed to the backend (``tables``, ``auto_migrate``, ``read_only``, ...).

    Raises:
        WarehouseConfigError: the connection is defined but cannot be used (empty,
            malformed, a type other than PostgreSQL or DuckDB); a ``ValueError``.
        WarehouseUnavailable: Airflow failed to look the connection up.
    """
    try:
        url = connections.sqlalchemy_url(conn_id)
    except connections.ConnectionNotFound:
        path = Settings.from_env().home / EMBEDDED_FILE
        log.info("connection %r is not defined: using the embedded warehouse %s", conn_id, path)
        return EmbeddedWarehouse(path, None, **options)
    except connections.ConnectionInvalid as exc:
        raise WarehouseConfigError(
            f"connection {conn_id!r} is defined but cannot be used as the warehouse: {exc}"
        ) from None
    except connections.ConnectionUnreadable as exc:
        raise WarehouseUnavailable(
            f"{exc}; the embedded warehouse is not used in its place (unset the connection "
            "to use it)"
        ) from exc
    if url.startswith("duckdb:"):
        try:
            path = duckdb_path(url)
        except ValueError as exc:
            raise WarehouseConfigError(f"connection {conn_id!r}: {exc}") from None
        return EmbeddedWarehouse(path, conn_id, **options)
    if url.startswith("postgresql"):
        return PostgresWarehouse(url, conn_id, **options)
    scheme = url.split(":", 1)[0]
    raise WarehouseConfigError(
        f"connection {conn_id!r} is {scheme}: the warehouse runs on PostgreSQL "
        f"(postgres://...) or DuckDB (duckdb:///path), or leave it undefined for "
        f"{EMBEDDED_FILE} in CVA_HOME"
    )

"""Do the warehouse's live tables still match their specs? Checked before every publish.

A table altered by hand (a column's type changed, the key dropped, a column dropped
or renamed, a NOT NULL removed or added) would otherwise be loaded into silently (a
number stored as text, duplicate keys let in) or fail deep inside a COPY with the
database's own words, and be retried. :func:`verify` compares the catalog with the
specs once per warehouse object, before its first load, and raises
:class:`WarehouseSchemaError` naming each table, column and difference; ``cva
warehouse check`` prints the same comparison (:func:`check`).

What is expected comes from the migrations recorded in ``schema_migrations``: a
table exists once the migration that creates it is applied, and has the spec's
columns added up to the highest applied migration (``TableSpec.at_version``). A
pending migration is not a difference (the next publish applies it). An extra
nullable column is reported but does not stop a load (the loader names its
columns, so it stays null); an extra NOT NULL column without a default does, since
every load would fail on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cva_tasks.warehouse.errors import WarehouseSchemaError
from cva_tasks.warehouse.migrations import CreateTable, Migration
from cva_tasks.warehouse.schema import TableSpec

#: Catalog type names (``information_schema.columns.data_type``) of each spec type.
CATALOG_TYPES: dict[str, dict[str, str]] = {
    "postgres": {
        "DATE": "date",
        "TEXT": "text",
        "DOUBLE PRECISION": "double precision",
        "INTEGER": "integer",
        "BIGINT": "bigint",
        "SMALLINT": "smallint",
        "BOOLEAN": "boolean",
        "TIMESTAMPTZ": "timestamp with time zone",
    },
    "duckdb": {
        "DATE": "DATE",
        "TEXT": "VARCHAR",
        "DOUBLE PRECISION": "DOUBLE",
        "INTEGER": "INTEGER",
        "BIGINT": "BIGINT",
        "SMALLINT": "SMALLINT",
        "BOOLEAN": "BOOLEAN",
        "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
    },
}


@dataclass(frozen=True)
class LiveColumn:
    """One column as the catalog describes it."""

    name: str
    data_type: str
    nullable: bool
    default: Any = None


@dataclass(frozen=True)
class LiveTable:
    """One table as the catalog describes it: columns in order, primary key columns."""

    name: str
    columns: tuple[LiveColumn, ...]
    key: tuple[str, ...]


def live_tables_from_catalog(
    columns: Iterable[Sequence[Any]], keys: Iterable[Sequence[str]]
) -> dict[str, LiveTable]:
    """Tables from catalog rows ``(table, column, type, nullable, default)``, in column
    order, and ``(table, key column)``, in key order."""
    found: dict[str, list[LiveColumn]] = {}
    for table, column, data_type, nullable, default in columns:
        found.setdefault(table, []).append(
            LiveColumn(column, str(data_type), bool(nullable), default)
        )
    key: dict[str, list[str]] = {}
    for table, column in keys:
        key.setdefault(table, []).append(column)
    return {
        name: LiveTable(name, tuple(cols), tuple(key.get(name, ()))) for name, cols in found.items()
    }


@dataclass(frozen=True)
class Difference:
    """One way a live table differs from its spec.

    Attributes:
        table: the table.
        column: the column, or None for the table as a whole (missing, its key).
        problem: what differs, in words.
        blocking: False for differences a load can live with (an extra nullable column).
    """

    table: str
    column: str | None
    problem: str
    blocking: bool = True

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.problem}"


def expected_tables(
    tables: Mapping[str, TableSpec], migrations: Sequence[Migration], applied: Iterable[int]
) -> dict[str, TableSpec]:
    """The specs as the applied migrations built them (tables not created yet left out).

    A table no migration of ``migrations`` creates is not expected (it is not managed
    by this history).
    """
    applied = set(applied)
    known = [m for m in migrations if m.version in applied]
    if not known:
        return {}
    version = max(m.version for m in known)
    created = {m.sql.table for m in known if isinstance(m.sql, CreateTable)}
    return {name: spec.at_version(version) for name, spec in tables.items() if name in created}


def compare(
    expected: Mapping[str, TableSpec], live: Mapping[str, LiveTable], dialect: str
) -> list[Difference]:
    """Every difference between the expected specs and the live tables, table by table."""
    types = CATALOG_TYPES[dialect]
    found: list[Difference] = []
    for name, spec in expected.items():
        table = live.get(name)
        if table is None:
            found.append(Difference(name, None, "the table is missing (dropped or renamed?)"))
            continue
        columns = {c.name: c for c in table.columns}
        missing = [c for c in spec.columns if c.name not in columns]
        extra = [c for c in table.columns if c.name not in spec.column_names]
        for column in missing:
            renamed = [e.name for e in extra if e.data_type.lower() == types[column.type].lower()]
            hint = f" (renamed to {renamed[0]}?)" if len(missing) == 1 and renamed else ""
            found.append(
                Difference(
                    name,
                    column.name,
                    f"the column is missing{hint}; the spec says {column.type}"
                    + ("" if column.nullable else " NOT NULL"),
                )
            )
        for column in spec.columns:
            got = columns.get(column.name)
            if got is None:
                continue
            want = types[column.type]
            if got.data_type.lower() != want.lower():
                found.append(
                    Difference(name, column.name, f"type is {got.data_type}, the spec says {want}")
                )
            if got.nullable != column.nullable:
                found.append(
                    Difference(
                        name,
                        column.name,
                        ("nullable" if got.nullable else "NOT NULL")
                        + f", the spec says {'nullable' if column.nullable else 'NOT NULL'}",
                    )
                )
        for unknown in extra:
            fails_loads = not unknown.nullable and unknown.default is None
            found.append(
                Difference(
                    name,
                    unknown.name,
                    f"not in the spec ({unknown.data_type}"
                    + (
                        ", NOT NULL without a default: every load would fail)"
                        if fails_loads
                        else "; loads leave it null)"
                    ),
                    blocking=fails_loads,
                )
            )
        key = spec.declared_key(dialect)
        if tuple(table.key) != key:
            got_key = f"({', '.join(table.key)})" if table.key else "none"
            want_key = f"({', '.join(key)})" if key else "none"
            found.append(
                Difference(name, None, f"primary key is {got_key}, the spec says {want_key}")
            )
    return found


@dataclass(frozen=True)
class SchemaReport:
    """What :func:`check` found."""

    location: str
    applied: tuple[int, ...]
    pending: tuple[int, ...]
    differences: tuple[Difference, ...]

    @property
    def blocking(self) -> list[Difference]:
        return [d for d in self.differences if d.blocking]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def as_dict(self) -> dict[str, Any]:
        return {
            "warehouse": self.location,
            "ok": self.ok,
            "applied_migrations": list(self.applied),
            "pending_migrations": list(self.pending),
            "differences": [
                {"table": d.table, "column": d.column, "problem": d.problem, "blocking": d.blocking}
                for d in self.differences
            ],
        }

    def text(self) -> str:
        lines = [f"warehouse: {self.location}"]
        lines.append(f"migrations applied: {', '.join(map(str, self.applied)) or 'none'}")
        if self.pending:
            lines.append(
                f"migrations pending (the next publish applies them): "
                f"{', '.join(map(str, self.pending))}"
            )
        if not self.differences:
            lines.append("every table matches its spec")
        for difference in self.differences:
            lines.append(f"{'DIFFERS' if difference.blocking else 'note'}: {difference}")
        return "\n".join(lines)


class CheckedWarehouse(Protocol):
    """What :func:`check` needs of a warehouse backend (``backends.Warehouse``)."""

    dialect: str
    tables: Mapping[str, TableSpec]
    migrations: Sequence[Migration]

    @property
    def location(self) -> str: ...

    def live_tables(self) -> dict[str, LiveTable]: ...

    def applied_versions(self) -> list[int]: ...


def check(warehouse: CheckedWarehouse) -> SchemaReport:
    """Compare the warehouse's live tables with the specs its applied migrations built."""
    live = warehouse.live_tables()
    applied = warehouse.applied_versions() if "schema_migrations" in live else []
    migrations = warehouse.migrations
    expected = expected_tables(warehouse.tables, migrations, applied)
    return SchemaReport(
        location=warehouse.location,
        applied=tuple(sorted(applied)),
        pending=tuple(m.version for m in migrations if m.version not in set(applied)),
        differences=tuple(compare(expected, live, warehouse.dialect)),
    )


def verify(warehouse: CheckedWarehouse) -> SchemaReport:
    """:func:`check`, raising when a difference would corrupt or fail a load.

    Raises:
        WarehouseSchemaError: naming every blocking difference (table, column, what
            differs) and how to recover.
    """
    report = check(warehouse)
    if report.blocking:
        listed = "; ".join(str(d) for d in report.blocking)
        raise WarehouseSchemaError(
            f"warehouse {report.location}: tables differ from their specs, nothing was "
            f"loaded: {listed}. Restore the table (see `cva warehouse check`), or add a "
            "migration and change the spec if the change is wanted"
        )
    return report

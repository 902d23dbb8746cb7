"""The migrations that build the warehouse's tables (declared in :mod:`.schema`).

Migrations are an ordered list of :class:`Migration` (version, description, SQL).
:func:`migrate` records each applied version in ``schema_migrations`` and applies
only the pending ones, in order, each in its own transaction: an existing
warehouse is brought forward, never dropped and recreated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from cva_tasks.warehouse.schema import SCORE_COLUMNS_V2, TABLES

log = logging.getLogger(__name__)

SqlSource = str | Mapping[str, str | Sequence[str]] | Callable[[str], str | Sequence[str]]


@dataclass(frozen=True)
class Migration:
    """One step of the warehouse schema.

    Attributes:
        version: position in the history; versions are applied in increasing order.
        description: what the step does, stored in ``schema_migrations``.
        sql: portable SQL (a string or list of statements), or a mapping
            ``dialect -> SQL`` (key ``"*"`` for the rest), or a callable taking the
            dialect name and returning SQL. Several statements are given as a list
            (SQL text is never split on ``;``).
    """

    version: int
    description: str
    sql: SqlSource

    def statements(self, dialect: str) -> list[str]:
        sql: str | Sequence[str]
        if callable(self.sql):
            sql = self.sql(dialect)
        elif isinstance(self.sql, Mapping):
            if dialect in self.sql:
                sql = self.sql[dialect]
            elif "*" in self.sql:
                sql = self.sql["*"]
            else:
                raise ValueError(f"migration {self.version} has no SQL for {dialect}")
        else:
            sql = self.sql
        return [sql] if isinstance(sql, str) else list(sql)


@dataclass(frozen=True)
class CreateTable:
    """SQL of a migration creating ``table`` with the columns it has at ``version``.

    Resolved when the migration runs (not at import), so the spec can still gain
    columns with a later ``since`` without changing what this step creates. A value
    rather than a bare function so the schema check can tell which migration
    created which table.
    """

    table: str
    version: int = 1

    def __call__(self, dialect: str) -> list[str]:
        return [TABLES[self.table].create_sql(self.version, dialect)]


@dataclass(frozen=True)
class AddColumns:
    """SQL of a migration adding spec columns ``columns`` to ``table``."""

    table: str
    columns: tuple[str, ...]

    def __call__(self, dialect: str) -> list[str]:
        spec = TABLES[self.table]
        out = []
        for name in self.columns:
            col = spec.column(name)
            # NOT NULL without a default cannot be added to a table with rows; a later
            # issue that needs it adds a default in its own migration SQL instead.
            out.append(f"ALTER TABLE {self.table} ADD COLUMN {col.name} {col.type}")
        return out


def create_table(table: str, version: int = 1) -> CreateTable:
    """SQL of a migration creating ``table`` with the columns it has at ``version``."""
    return CreateTable(table, version)


def add_columns(table: str, *columns: str) -> AddColumns:
    """SQL of a migration adding spec columns ``columns`` to ``table``."""
    return AddColumns(table, columns)


#: The latest published day's audience members (marketing tools read this, not a day).
CURRENT_AUDIENCES_SQL = (
    "CREATE OR REPLACE VIEW current_audiences AS SELECT as_of_date, audience, customer_id, "
    "reason, segment, country, recency_days, churn_tier, churn_probability, clv_365d, "
    "negative_feedback_90d, recommended_items, run_id, loaded_at FROM audience_members "
    "WHERE as_of_date = (SELECT max(as_of_date) FROM audience_members)"
)

MIGRATIONS: list[Migration] = [
    Migration(1, "customer_scores v1: RFM scores and segment", create_table("customer_scores")),
    Migration(
        2,
        "customer_scores v2: cluster, lifetime value, churn risk, feedback sentiment",
        add_columns("customer_scores", *SCORE_COLUMNS_V2),
    ),
    Migration(3, "segment_profiles", create_table("segment_profiles")),
    Migration(4, "model_runs", create_table("model_runs")),
    Migration(5, "customer_recommendations", create_table("customer_recommendations")),
    Migration(6, "feedback_sentiment", create_table("feedback_sentiment")),
    Migration(7, "feedback_topics", create_table("feedback_topics")),
    Migration(8, "dq_results", create_table("dq_results")),
    Migration(9, "audience_members", create_table("audience_members")),
    Migration(10, "audience_sizes", create_table("audience_sizes")),
    Migration(11, "current_audiences: audience members of the latest day", CURRENT_AUDIENCES_SQL),
    Migration(
        12,
        "feedback_sentiment.unscored_reason: why a piece of feedback was not scored",
        add_columns("feedback_sentiment", "unscored_reason"),
    ),
]

MIGRATIONS_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "    version INTEGER PRIMARY KEY,\n"
    "    description TEXT NOT NULL,\n"
    "    applied_at TIMESTAMPTZ NOT NULL\n"
    ")"
)


class MigratingBackend(Protocol):
    """What :func:`migrate` needs from a backend (see ``backends.py``)."""

    dialect: str

    def ensure_migrations_table(self) -> None: ...

    def applied_versions(self) -> list[int]: ...

    def apply_migration(self, version: int, description: str, statements: list[str]) -> bool: ...


def check_migrations(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"migration versions must be unique and increasing: {versions}")


def migrate(backend: MigratingBackend, migrations: Sequence[Migration] | None = None) -> list[int]:
    """Apply the pending migrations in order, each in its own transaction.

    Idempotent: a version already in ``schema_migrations`` is skipped, so running
    it twice (or from two processes at once) applies every step exactly once.

    Args:
        backend: a warehouse backend.
        migrations: the history to apply; default :data:`MIGRATIONS`.

    Returns:
        The versions this call applied (empty when the warehouse was current).

    Raises:
        ValueError: when a pending version is lower than one already applied (the
            history was edited instead of appended to).
    """
    migrations = MIGRATIONS if migrations is None else migrations
    check_migrations(migrations)
    backend.ensure_migrations_table()
    applied = set(backend.applied_versions())
    pending = [m for m in migrations if m.version not in applied]
    if pending and applied and pending[0].version < max(applied):
        raise ValueError(
            f"migration {pending[0].version} is pending but {max(applied)} is already applied: "
            "append new migrations with higher versions instead of inserting them"
        )
    unknown = applied - {m.version for m in migrations}
    if unknown:
        log.warning("warehouse has migrations this code does not know: %s", sorted(unknown))
    done = []
    for migration in pending:
        statements = migration.statements(backend.dialect)
        if backend.apply_migration(migration.version, migration.description, statements):
            log.info("applied migration %d: %s", migration.version, migration.description)
            done.append(migration.version)
    return done

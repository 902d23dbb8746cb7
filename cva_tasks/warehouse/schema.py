"""The warehouse's tables, declared once, and the migrations that build them.

A table is a :class:`TableSpec`: its columns (with the migration that added each
one), its key and the column that partitions it by day. The same spec gives the
DDL, the staging table and the Arrow schema the loader checks rows against, so
the two can never drift apart.

Migrations are an ordered list of :class:`Migration` (version, description, SQL).
:func:`migrate` records each applied version in ``schema_migrations`` and applies
only the pending ones, in order, each in its own transaction: an existing
warehouse is brought forward, never dropped and recreated.

Adding a column in a later issue is two lines::

    # at the end of customer_scores' columns (ALTER TABLE ADD COLUMN appends)
    Column("cluster", "SMALLINT", since=2),
    # at the end of MIGRATIONS
    Migration(2, "customer_scores.cluster", add_columns("customer_scores", "cluster")),

A fresh warehouse then runs migration 1 (which creates only the columns with
``since=1``) and migration 2 (which adds ``cluster``), and an existing one runs
migration 2 alone, so both end with the same table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

DIALECTS = ("postgres", "duckdb")

# Types both PostgreSQL and DuckDB understand with the same meaning; keeping specs
# to these is what lets one DDL text serve both backends.
_ARROW_TYPES: dict[str, Callable[[], pa.DataType]] = {
    "DATE": lambda: _pa().date32(),
    "TEXT": lambda: _pa().string(),
    "DOUBLE PRECISION": lambda: _pa().float64(),
    "INTEGER": lambda: _pa().int32(),
    "BIGINT": lambda: _pa().int64(),
    "SMALLINT": lambda: _pa().int16(),
    "BOOLEAN": lambda: _pa().bool_(),
    "TIMESTAMPTZ": lambda: _pa().timestamp("us", tz="UTC"),
}

# Columns the loader fills itself: which run wrote a row and when.
LOADER_COLUMNS = ("run_id", "loaded_at")


def _pa():
    import pyarrow as pa

    return pa


@dataclass(frozen=True)
class Column:
    """One column of a warehouse table.

    Attributes:
        name: column name (lower case, no quoting needed).
        type: one of the portable SQL types in ``_ARROW_TYPES``.
        nullable: False adds ``NOT NULL``.
        since: version of the migration that adds the column (1 = in the CREATE).
    """

    name: str
    type: str
    nullable: bool = True
    since: int = 1

    def __post_init__(self) -> None:
        if self.type not in _ARROW_TYPES:
            raise ValueError(f"column {self.name}: type {self.type!r} is not portable")

    @property
    def ddl(self) -> str:
        return f"{self.name} {self.type}" + ("" if self.nullable else " NOT NULL")

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.type]()


@dataclass(frozen=True)
class TableSpec:
    """Columns, key and day partition of one warehouse table.

    Attributes:
        name: table name.
        grain: what one row is, in words.
        columns: all columns, in table order.
        key: the primary key; unique per load and in the table.
        partition: the DATE column a load replaces (one day per load).
    """

    name: str
    grain: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition: str = "as_of_date"
    _by_name: dict[str, Column] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name = {c.name: c for c in self.columns}
        if len(by_name) != len(self.columns):
            raise ValueError(f"table {self.name}: duplicate column names")
        for name in (*self.key, self.partition):
            if name not in by_name:
                raise ValueError(f"table {self.name}: key/partition column {name} not declared")
        object.__setattr__(self, "_by_name", by_name)

    def column(self, name: str) -> Column:
        return self._by_name[name]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def input_columns(self) -> list[Column]:
        """The columns a caller supplies; the loader adds ``LOADER_COLUMNS``."""
        return [c for c in self.columns if c.name not in LOADER_COLUMNS]

    def arrow_schema(self, *, input_only: bool = True) -> pa.Schema:
        """Arrow types of the columns; all nullable (the loader checks the key itself)."""
        pa = _pa()
        columns = self.input_columns if input_only else self.columns
        return pa.schema([pa.field(c.name, c.arrow_type) for c in columns])

    def table_from_frame(self, frame: pd.DataFrame) -> pa.Table:
        """The input columns of ``frame`` (others ignored) as an Arrow table of this spec."""
        return _pa().Table.from_pandas(
            frame[[c.name for c in self.input_columns]],
            preserve_index=False,
            schema=self.arrow_schema(),
        )

    def at_version(self, version: int) -> TableSpec:
        """The table as it is after migration ``version`` (columns added later dropped)."""
        return replace(self, columns=tuple(c for c in self.columns if c.since <= version))

    def with_columns(self, *columns: Column) -> TableSpec:
        return replace(self, columns=(*self.columns, *columns))

    def create_sql(self, version: int = 1, dialect: str = "postgres") -> str:
        """``CREATE TABLE IF NOT EXISTS`` with the columns the table has at ``version``.

        On DuckDB a key that contains the partition column is not declared: its ART
        index made replacing a day of 1M rows take 21 s instead of 0.6 s (and it
        must fit in memory), while the loader already guarantees the key there (it
        replaces whole days and checks each day's rows are unique).
        """
        defs = [c.ddl for c in self.at_version(version).columns]
        if dialect != "duckdb" or self.partition not in self.key:
            defs.append(f"PRIMARY KEY ({', '.join(self.key)})")
        body = ",\n    ".join(defs)
        return f"CREATE TABLE IF NOT EXISTS {self.name} (\n    {body}\n)"


CUSTOMER_SCORES = TableSpec(
    name="customer_scores",
    grain="one row per customer per as-of date; key (as_of_date, customer_id)",
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("customer_id", "TEXT", nullable=False),
        Column("country", "TEXT"),
        Column("recency_days", "DOUBLE PRECISION"),
        Column("frequency", "INTEGER"),
        Column("monetary_value", "DOUBLE PRECISION"),
        Column("avg_order_value", "DOUBLE PRECISION"),
        Column("tenure_days", "DOUBLE PRECISION"),
        Column("spend_90d", "DOUBLE PRECISION"),
        Column("last_order_at", "TIMESTAMPTZ"),
        Column("r_score", "SMALLINT"),
        Column("f_score", "SMALLINT"),
        Column("m_score", "SMALLINT"),
        Column("rfm_cell", "TEXT"),
        Column("segment", "TEXT"),
        Column("run_id", "TEXT", nullable=False),
        Column("loaded_at", "TIMESTAMPTZ", nullable=False),
        # v2: behavioural cluster, lifetime value, churn risk, feedback sentiment. Each
        # model's version sits beside its outputs; a null version means the model had
        # not been trained yet on that day (or its outputs did not hold).
        *(
            Column(name, type_, since=2)
            for name, type_ in (
                ("cluster_id", "INTEGER"),
                ("cluster_label", "TEXT"),
                ("cluster_model_version", "TEXT"),
                ("p_alive", "DOUBLE PRECISION"),
                ("expected_orders_90d", "DOUBLE PRECISION"),
                ("expected_orders_365d", "DOUBLE PRECISION"),
                ("clv_365d", "DOUBLE PRECISION"),
                ("expected_next_order_at", "TIMESTAMPTZ"),
                ("clv_model_version", "TEXT"),
                ("churn_probability", "DOUBLE PRECISION"),
                ("churn_tier", "TEXT"),
                ("churn_reasons", "TEXT"),
                ("churn_model_version", "TEXT"),
                ("avg_sentiment_90d", "DOUBLE PRECISION"),
                ("last_feedback_sentiment", "DOUBLE PRECISION"),
                ("negative_feedback_90d", "INTEGER"),
                ("sentiment_model_version", "TEXT"),
            )
        ),
    ),
    key=("as_of_date", "customer_id"),
)

SCORE_COLUMNS_V2 = tuple(c.name for c in CUSTOMER_SCORES.columns if c.since == 2)

_LOADED = (
    Column("run_id", "TEXT", nullable=False),
    Column("loaded_at", "TIMESTAMPTZ", nullable=False),
)

SEGMENT_PROFILES = TableSpec(
    name="segment_profiles",
    grain="one row per behavioural cluster per as-of date; key (as_of_date, cluster_id)",
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("cluster_id", "INTEGER", nullable=False),
        Column("label", "TEXT", nullable=False),
        Column("customers", "INTEGER", nullable=False),
        Column("share_of_customers", "DOUBLE PRECISION"),
        Column("share_of_revenue", "DOUBLE PRECISION"),
        Column("median_recency_days", "DOUBLE PRECISION"),
        Column("median_frequency", "DOUBLE PRECISION"),
        Column("median_avg_order_value", "DOUBLE PRECISION"),
        Column("median_monetary_value", "DOUBLE PRECISION"),
        Column("median_tenure_days", "DOUBLE PRECISION"),
        Column("median_return_rate", "DOUBLE PRECISION"),
        Column("model_version", "TEXT", nullable=False),
        *_LOADED,
    ),
    key=("as_of_date", "cluster_id"),
)

MODEL_RUNS = TableSpec(
    name="model_runs",
    grain="one row per model kind trained on a day; key (as_of_date, kind)",
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("kind", "TEXT", nullable=False),
        Column("version", "TEXT", nullable=False),
        Column("trained_at", "TIMESTAMPTZ", nullable=False),
        Column("algorithm", "TEXT"),
        Column("metric", "TEXT"),
        Column("metric_value", "DOUBLE PRECISION"),
        Column("higher_is_better", "BOOLEAN"),
        Column("champion_version", "TEXT"),
        Column("champion_metric_value", "DOUBLE PRECISION"),
        Column("promoted", "BOOLEAN", nullable=False),
        Column("reason", "TEXT"),
        Column("training_start", "DATE"),
        Column("training_end", "DATE"),
        Column("validation_start", "DATE"),
        Column("validation_end", "DATE"),
        Column("params_json", "TEXT"),
        Column("metrics_json", "TEXT"),
        Column("library_versions_json", "TEXT"),
        *_LOADED,
    ),
    key=("as_of_date", "kind"),
)

CUSTOMER_RECOMMENDATIONS = TableSpec(
    name="customer_recommendations",
    grain=(
        "one row per customer, list and rank per as-of date; "
        "key (as_of_date, customer_id, list, rank)"
    ),
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("customer_id", "TEXT", nullable=False),
        Column("list", "TEXT", nullable=False),
        Column("rank", "SMALLINT", nullable=False),
        Column("item_id", "TEXT", nullable=False),
        Column("item_name", "TEXT"),
        Column("score", "DOUBLE PRECISION"),
        Column("reason", "TEXT"),
        Column("model", "TEXT", nullable=False),
        Column("model_version", "TEXT", nullable=False),
        *_LOADED,
    ),
    key=("as_of_date", "customer_id", "list", "rank"),
)

FEEDBACK_SENTIMENT = TableSpec(
    name="feedback_sentiment",
    grain=(
        "one row per piece of feedback, on the day it was submitted; "
        "key (as_of_date, source, feedback_id)"
    ),
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("source", "TEXT", nullable=False),
        Column("feedback_id", "TEXT", nullable=False),
        Column("customer_id", "TEXT"),
        Column("submitted_at", "TIMESTAMPTZ", nullable=False),
        Column("rating", "SMALLINT"),
        Column("probability", "DOUBLE PRECISION"),
        Column("label", "TEXT", nullable=False),
        Column("model_version", "TEXT", nullable=False),
        *_LOADED,
    ),
    key=("as_of_date", "source", "feedback_id"),
)

FEEDBACK_TOPICS = TableSpec(
    name="feedback_topics",
    grain="one row per complaint term per as-of date; key (as_of_date, rank)",
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("rank", "SMALLINT", nullable=False),
        Column("term", "TEXT", nullable=False),
        Column("score", "DOUBLE PRECISION"),
        Column("negative_docs", "INTEGER"),
        Column("positive_docs", "INTEGER"),
        Column("share_of_negative", "DOUBLE PRECISION"),
        Column("window_days", "SMALLINT", nullable=False),
        Column("model_version", "TEXT", nullable=False),
        *_LOADED,
    ),
    key=("as_of_date", "rank"),
)

DQ_RESULTS = TableSpec(
    name="dq_results",
    grain=(
        "one row per source entity that passed validation for the as-of date (a failed "
        "validation stops the day); key (as_of_date, source, entity)"
    ),
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("source", "TEXT", nullable=False),
        Column("entity", "TEXT", nullable=False),
        Column("suite", "TEXT", nullable=False),
        Column("validated_by_run", "TEXT", nullable=False),
        Column("rows_extracted", "BIGINT", nullable=False),
        Column("rows_rejected_by_mapping", "BIGINT", nullable=False),
        Column("rows_checked", "BIGINT", nullable=False),
        Column("rows_clean", "BIGINT", nullable=False),
        Column("rows_quarantined", "BIGINT", nullable=False),
        Column("failing_share", "DOUBLE PRECISION", nullable=False),
        Column("failed_rules", "TEXT"),
        Column("skipped_rules", "TEXT"),
        *_LOADED,
    ),
    key=("as_of_date", "source", "entity"),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        CUSTOMER_SCORES,
        SEGMENT_PROFILES,
        MODEL_RUNS,
        CUSTOMER_RECOMMENDATIONS,
        FEEDBACK_SENTIMENT,
        FEEDBACK_TOPICS,
        DQ_RESULTS,
    )
}


# --- migrations ------------------------------------------------------------------

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
        source = self.sql
        sql: str | Sequence[str]
        if callable(source):
            sql = source(dialect)
        elif isinstance(source, Mapping):
            if dialect in source:
                sql = source[dialect]
            elif "*" in source:
                sql = source["*"]
            else:
                raise ValueError(f"migration {self.version} has no SQL for {dialect}")
        else:
            sql = source
        return [sql] if isinstance(sql, str) else list(sql)


def create_table(table: str, version: int = 1) -> Callable[[str], list[str]]:
    """SQL of a migration creating ``table`` with the columns it has at ``version``.

    Resolved when the migration runs (not at import), so the spec can still gain
    columns with a later ``since`` without changing what this step creates.
    """
    return lambda dialect: [TABLES[table].create_sql(version, dialect)]


def add_columns(table: str, *columns: str) -> Callable[[str], list[str]]:
    """SQL of a migration adding spec columns ``columns`` to ``table``."""

    def statements(dialect: str) -> list[str]:
        spec = TABLES[table]
        out = []
        for name in columns:
            col = spec.column(name)
            # NOT NULL without a default cannot be added to a table with rows; a later
            # issue that needs it adds a default in its own migration SQL instead.
            out.append(f"ALTER TABLE {table} ADD COLUMN {col.name} {col.type}")
        return out

    return statements


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


# --- sample rows -----------------------------------------------------------------

_COUNTRIES = (
    ("United Kingdom", 0.55),
    ("Germany", 0.1),
    ("France", 0.09),
    ("Netherlands", 0.05),
    ("Spain", 0.05),
    ("Italy", 0.04),
    ("Belgium", 0.03),
    ("Switzerland", 0.03),
    ("Portugal", 0.02),
    ("Sweden", 0.02),
    ("Ireland", 0.02),
)


def _segment(r, f, m):
    import numpy as np

    conditions = [
        (r >= 4) & (f >= 4) & (m >= 4),
        (r >= 3) & (f >= 3),
        (r >= 4) & (f <= 2),
        (r <= 2) & (f >= 3),
        (r <= 2) & (f <= 2),
    ]
    names = ["Champions", "Loyal", "New", "At risk", "Hibernating"]
    return np.select(conditions, names, default="Needs attention")


def sample_rows(spec: TableSpec, as_of_date: date, n: int, seed: int = 0) -> pa.Table:
    """Deterministic, realistic rows of ``spec`` for one day (tests, benchmarks).

    customer_scores columns get consistent RFM values (recency, frequency and
    spend drawn from skewed distributions, scores as quintiles, segment from the
    scores, about 1% unknown countries); any other column gets a plain value of
    its type, so a spec extended by a later migration still gets rows.

    Returns:
        An Arrow table with ``spec``'s input columns (no run_id/loaded_at); grain
        and key as the spec, ``customer_id`` values ``C0000000``, ``C0000001``, ...
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    recency = np.round(rng.exponential(60.0, n), 3)
    frequency = np.maximum(1, rng.geometric(0.25, n)).astype(np.int32)
    avg = np.round(rng.lognormal(3.5, 0.6, n), 2)
    monetary = np.round(avg * frequency, 2)
    tenure = np.round(recency + rng.exponential(300.0, n), 3)
    spend_90d = np.round(np.where(recency < 90, monetary * rng.uniform(0.1, 0.6, n), 0.0), 2)

    def quintile(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
        ranks = values.argsort(kind="stable").argsort(kind="stable")
        score = 1 + (ranks * 5) // max(n, 1)
        return (score if higher_is_better else 6 - score).astype(np.int16)

    r, f, m = quintile(recency, False), quintile(frequency, True), quintile(monetary, True)
    names, weights = zip(*_COUNTRIES, strict=True)
    countries = rng.choice(np.array(names, dtype=object), n, p=np.array(weights) / sum(weights))
    midnight = datetime.combine(as_of_date, time(), tzinfo=UTC)
    last_order = (
        np.datetime64(midnight.replace(tzinfo=None), "us")
        - (recency * 86400e6).astype("timedelta64[us]")
    ).astype("datetime64[us]")
    known = {
        "as_of_date": pa.array(np.full(n, np.datetime64(as_of_date, "D"))),
        "customer_id": pc.binary_join_element_wise(
            "C", pc.utf8_lpad(pa.array(idx).cast(pa.string()), 7, "0"), ""
        ),
        "country": pa.array(countries, pa.string(), mask=rng.random(n) < 0.01),
        "recency_days": pa.array(recency),
        "frequency": pa.array(frequency),
        "monetary_value": pa.array(monetary),
        "avg_order_value": pa.array(avg),
        "tenure_days": pa.array(tenure),
        "spend_90d": pa.array(spend_90d),
        "last_order_at": pa.array(last_order, pa.timestamp("us", tz="UTC")),
        "r_score": pa.array(r),
        "f_score": pa.array(f),
        "m_score": pa.array(m),
        "rfm_cell": pa.array(r * 100 + f * 10 + m).cast(pa.string()),
        "segment": pa.array(_segment(r, f, m).astype(object), pa.string()),
    }
    plain = {
        "DATE": lambda: pa.array(np.full(n, np.datetime64(as_of_date, "D"))),
        "TEXT": lambda: pc.binary_join_element_wise("v", pa.array(idx).cast(pa.string()), ""),
        "DOUBLE PRECISION": lambda: pa.array(rng.random(n)),
        "INTEGER": lambda: pa.array(idx.astype(np.int32)),
        "BIGINT": lambda: pa.array(idx.astype(np.int64)),
        "SMALLINT": lambda: pa.array((idx % 5 + 1).astype(np.int16)),
        "BOOLEAN": lambda: pa.array(idx % 2 == 0),
        "TIMESTAMPTZ": lambda: pa.array(
            np.full(n, np.datetime64(midnight.replace(tzinfo=None) - timedelta(hours=1), "us")),
            pa.timestamp("us", tz="UTC"),
        ),
    }
    arrays = [known[c.name] if c.name in known else plain[c.type]() for c in spec.input_columns]
    table = pa.Table.from_arrays(arrays, names=[c.name for c in spec.input_columns])
    return table.cast(spec.arrow_schema())

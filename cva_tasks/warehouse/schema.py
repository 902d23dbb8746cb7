"""The warehouse's tables, declared once.

A table is a :class:`TableSpec`: its columns (with the migration that added each
one), its key and the column that partitions it by day. The same spec gives the
DDL, the staging table and the Arrow schema the loader checks rows against, so
the two can never drift apart. The migrations that build the tables are in
:mod:`cva_tasks.warehouse.migrations`.

Adding a column in a later issue is two lines::

    # at the end of customer_scores' columns here (ALTER TABLE ADD COLUMN appends)
    Column("cluster", "SMALLINT", since=2),
    # at the end of MIGRATIONS in migrations.py
    Migration(2, "customer_scores.cluster", add_columns("customer_scores", "cluster")),

A fresh warehouse then runs migration 1 (which creates only the columns with
``since=1``) and migration 2 (which adds ``cluster``), and an existing one runs
migration 2 alone, so both end with the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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

    def declared_key(self, dialect: str) -> tuple[str, ...]:
        """The PRIMARY KEY the DDL declares on ``dialect`` (see :meth:`create_sql`)."""
        if dialect == "duckdb" and self.partition in self.key:
            return ()
        return self.key

    def create_sql(self, version: int = 1, dialect: str = "postgres") -> str:
        """``CREATE TABLE IF NOT EXISTS`` with the columns the table has at ``version``.

        On DuckDB a key that contains the partition column is not declared: its ART
        index made replacing a day of 1M rows take 21 s instead of 0.6 s (and it
        must fit in memory), while the loader already guarantees the key there (it
        replaces whole days and checks each day's rows are unique).
        """
        defs = [c.ddl for c in self.at_version(version).columns]
        if self.declared_key(dialect):
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
        # v12: why a piece of feedback has no probability (null when scored): blank,
        # no_known_word, or language:<code> for a language the model was not trained on.
        Column("unscored_reason", "TEXT", since=12),
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

AUDIENCE_MEMBERS = TableSpec(
    name="audience_members",
    grain=(
        "one row per customer in a named audience per as-of date; "
        "key (as_of_date, audience, customer_id)"
    ),
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("audience", "TEXT", nullable=False),
        Column("customer_id", "TEXT", nullable=False),
        Column("reason", "TEXT", nullable=False),
        Column("segment", "TEXT"),
        Column("country", "TEXT"),
        Column("recency_days", "DOUBLE PRECISION"),
        Column("churn_tier", "TEXT"),
        Column("churn_probability", "DOUBLE PRECISION"),
        Column("clv_365d", "DOUBLE PRECISION"),
        Column("negative_feedback_90d", "INTEGER"),
        # JSON list of {rank, item_id, item_name}; null unless the audience attaches items.
        Column("recommended_items", "TEXT"),
        *_LOADED,
    ),
    key=("as_of_date", "audience", "customer_id"),
)

AUDIENCE_SIZES = TableSpec(
    name="audience_sizes",
    grain="one row per defined audience per as-of date; key (as_of_date, audience)",
    columns=(
        Column("as_of_date", "DATE", nullable=False),
        Column("audience", "TEXT", nullable=False),
        Column("description", "TEXT"),
        Column("customers", "INTEGER", nullable=False),
        *_LOADED,
    ),
    key=("as_of_date", "audience"),
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
        AUDIENCE_MEMBERS,
        AUDIENCE_SIZES,
    )
}

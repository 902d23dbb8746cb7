"""Point-in-time customer features, built with DuckDB over the staged Parquet.

Grain: one row per customer (``customer_id``) with at least one purchase line that
occurred before ``as_of``; sorted by ``customer_id``.

Point in time, strictly. ``as_of`` is the end of the run's data interval (``2025-12-31
00:00 UTC`` means "as of the end of 2025-12-30"). A row counts only if

1. it was staged for a day before the as-of instant (partition ``ds < as_of.date()``),
2. its version was updated before ``as_of`` (``updated_at < as_of``; feedback, which is
   never updated, by ``submitted_at``): of the versions of a key that pass 1 and 2 the
   latest wins (ties: the later staged day, then the source that sorts first), and
3. the event happened before ``as_of`` (``occurred_at`` / ``submitted_at < as_of``).

So nothing landed, changed or happened at or after ``as_of`` can change a feature.
Keys are ``(source, transaction_id)``, ``(source, item_id)``, ``(source, feedback_id)``
and ``customer_id`` alone: the sources of a pipeline share one customer id space
(:mod:`cva_tasks.staging`). An order is ``(customer_id, source, order_id)``.

Definitions used below: a *purchase line* is a transaction of kind ``purchase``; an order
is *cancelled* when it has a visible ``cancellation`` line (the demo shop lands a
cancelled order with its purchase lines and matching negative cancellation lines); a
*counted order* has purchase lines and is not cancelled; its timestamp is the earliest
``occurred_at`` of its purchase lines. Amounts are ``quantity * unit_price`` (negative
for cancellations and returns).

Columns:

* ``as_of_date`` (date): ``as_of - 1 day``, the ds of the run's interval.
* ``customer_id`` (string): the key.
* ``country`` (string), ``signup_at`` (timestamp UTC): from the customer's latest version;
  null when no version is known.
* ``first_order_at``, ``last_order_at`` (timestamp UTC): earliest / latest purchase line
  (orders cancelled later included: placing an order is activity).
* ``recency_days`` (float): days from ``last_order_at`` to ``as_of``.
* ``tenure_days`` (float): days from ``first_order_at``, or ``signup_at`` if earlier, to
  ``as_of``.
* ``frequency`` (int): counted orders (may be 0 when every order was cancelled).
* ``monetary_value`` (float): net revenue, the sum of all amounts: purchases, minus
  cancellations and returns, non-product lines (postage, fees) included.
* ``gross_revenue`` (float): amounts of the purchase lines of counted orders.
* ``avg_order_value`` (float): ``gross_revenue / frequency``; null when frequency is 0.
* ``mean_days_between_orders`` / ``std_days_between_orders`` (float): mean / sample
  standard deviation of the gaps between consecutive counted-order timestamps; null
  with fewer than 2 / 3 counted orders.
* ``n_cancelled_orders`` (int): orders with a cancellation line.
* ``n_returned_lines`` (int), ``returned_units`` (int, positive): return lines and
  their units.
* ``return_rate`` (float): ``returned_units`` / units of the purchase lines of counted
  orders; null when there are none (it can pass 1 when returns refer to purchases
  before the data starts).
* ``spend_30d``, ``spend_90d``, ``spend_365d`` (float): net amounts (all kinds) that
  occurred in ``[as_of - N days, as_of)``.
* ``orders_90d`` (int): counted orders with their timestamp in ``[as_of - 90 days, as_of)``.
* ``n_categories`` (int), ``top_category`` (string), ``top_category_share`` (float): the
  category mix of the product purchase lines (``is_product``) of counted orders,
  weighted by gross amount; the category is the item's latest known version
  (``'unknown'`` when the item or its category is unknown). The top category has the
  largest amount (ties: the name that sorts first); its share is of the customer's gross
  product revenue. 0 / null / null without product lines.
* ``feedback_count`` (int): pieces of feedback; ``avg_rating`` (float): mean of the
  non-null ratings, null when none is rated.
* ``n_distinct_items`` (int): distinct items among the product purchase lines of counted
  orders.

Money is summed in exact integer micro-units (each line amount rounded to 1e-6), gaps
in integer microseconds: DuckDB aggregates in parallel, and float sums in a varying
order would change the last bits between runs; exact sums make a rebuild byte-identical.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.days import as_of_date, as_of_instant, as_utc, utc_midnight
from cva_tasks.lake import Lake
from cva_tasks.staging import staged_schema

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

log = logging.getLogger(__name__)

FEATURE_SET = "customer"
SUITE = "features.customer"


def feature_schema() -> pa.Schema:
    """Schema of the customer feature table (see the module docstring)."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("as_of_date", pa.date32()),
            ("customer_id", pa.string()),
            ("country", pa.string()),
            ("signup_at", ts),
            ("first_order_at", ts),
            ("last_order_at", ts),
            ("recency_days", pa.float64()),
            ("tenure_days", pa.float64()),
            ("frequency", pa.int64()),
            ("monetary_value", pa.float64()),
            ("gross_revenue", pa.float64()),
            ("avg_order_value", pa.float64()),
            ("mean_days_between_orders", pa.float64()),
            ("std_days_between_orders", pa.float64()),
            ("n_cancelled_orders", pa.int64()),
            ("n_returned_lines", pa.int64()),
            ("returned_units", pa.int64()),
            ("return_rate", pa.float64()),
            ("spend_30d", pa.float64()),
            ("spend_90d", pa.float64()),
            ("spend_365d", pa.float64()),
            ("orders_90d", pa.int64()),
            ("n_categories", pa.int64()),
            ("top_category", pa.string()),
            ("top_category_share", pa.float64()),
            ("feedback_count", pa.int64()),
            ("avg_rating", pa.float64()),
            ("n_distinct_items", pa.int64()),
        ]
    )


def staged_days(root: str, entity: str, as_of: datetime) -> list[date]:
    """Staged days of ``entity`` visible at ``as_of`` (``ds < as_of``'s date)."""
    cutoff = as_utc(as_of).date()
    return [d for d in storage.list_partitions(Lake(root).staged(entity)) if d < cutoff]


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ts_literal(value: datetime) -> str:
    return f"TIMESTAMPTZ '{value.strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"


def _connect(
    root: str, threads: int | None, memory_limit: str | None, spill_dir: str
) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect(config={"threads": threads} if threads else {})
    # Timestamps leave DuckDB in the session time zone: keep it UTC.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET temp_directory = {_sql_text(spill_dir)}")
    if memory_limit:
        con.execute(f"SET memory_limit = {_sql_text(memory_limit)}")
    fs, _ = storage.filesystem(root)
    if "file" not in fs.protocol and "local" not in fs.protocol:
        con.register_filesystem(fs)
    return con


#: Per entity: the key of a row (its versions share it) and the column ordering versions.
#: Customers are keyed across sources: the sources of a pipeline share one id space.
VERSIONING: dict[str, tuple[tuple[str, ...], str]] = {
    "transactions": (("source", "transaction_id"), "updated_at"),
    "customers": (("customer_id",), "updated_at"),
    "items": (("source", "item_id"), "updated_at"),
    "feedback": (("source", "feedback_id"), "submitted_at"),
}


def _scan(con: Any, root: str, entity: str, as_of: datetime) -> str:
    """SQL of the staged rows of ``entity`` with their ``ds`` (empty when none is staged)."""
    import pyarrow as pa

    if staged_days(root, entity, as_of):
        pattern = Lake(root).staged_files(entity)
        if pattern.startswith("file://"):
            pattern = pattern[len("file://") :]
        return (
            f"read_parquet({_sql_text(pattern)}, hive_partitioning = true, "
            "hive_types = {'ds': DATE})"
        )
    schema = staged_schema(entity).append(pa.field("ds", pa.date32()))
    name = f"empty_{entity}"
    con.register(name, schema.empty_table())
    return name


def _latest_versions(con: Any, root: str, entity: str, as_of: datetime) -> str:
    """SQL (a subquery) of the latest version per key of ``entity`` visible at ``as_of``.

    Visible: staged for a day before ``as_of``'s date and updated before ``as_of``.
    Ordering tens of millions of rows by key to find the latest version would cost
    more than all the features together, while versions are rare. So the keys are
    hashed first and only rows whose hash occurs twice (true repeats plus the odd
    hash collision) are ranked exactly; the versions they supersede are anti-joined.
    """
    keys, version = VERSIONING[entity]
    as_of = as_utc(as_of)
    visible = (
        f"(SELECT * FROM {_scan(con, root, entity, as_of)} "
        f"WHERE ds < DATE '{as_of.date().isoformat()}' AND {version} < {_ts_literal(as_of)})"
    )
    key_list = ", ".join(keys)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE repeated_{entity} AS
        SELECT DISTINCT h FROM (
            SELECT h, lag(h) OVER (ORDER BY h) AS previous
            FROM (SELECT hash({key_list}) AS h FROM {visible}))
        WHERE h = previous"""
    )
    if not con.sql(f"SELECT count(*) FROM repeated_{entity}").fetchall()[0][0]:
        return visible
    row_id = list(dict.fromkeys([*keys, "source", "ds"]))
    tie = "" if "source" in keys else ", source"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE superseded_{entity} AS
        SELECT {", ".join(row_id)} FROM {visible}
        WHERE hash({key_list}) IN (SELECT h FROM repeated_{entity})
        QUALIFY row_number() OVER (
            PARTITION BY {key_list} ORDER BY {version} DESC, ds DESC{tie}) > 1"""
    )
    return f"(SELECT * FROM {visible} ANTI JOIN superseded_{entity} USING ({', '.join(row_id)}))"


def customer_features_sql(versions: dict[str, str], as_of: datetime) -> str:
    """The DuckDB query of the feature table (columns and rules: module docstring).

    Args:
        versions: Per entity, SQL of its latest visible versions (:func:`_latest_versions`).
        as_of: End of the run's data interval.
    """
    as_of = as_utc(as_of)
    t = _ts_literal(as_of)
    since = {n: _ts_literal(as_of - timedelta(days=n)) for n in (30, 90, 365)}
    us_per_day = "86400000000.0"
    spend = ",\n".join(
        f"        coalesce(sum(amount) FILTER (WHERE occurred_at >= {since[n]}), 0) AS spend_{n}d"
        for n in (30, 90, 365)
    )
    # Each consumer of `tx` scans the Parquet again: a scan streams, while a shared
    # (materialised) result would hold every line in memory.
    return f"""
WITH
tx AS NOT MATERIALIZED (
    SELECT customer_id, source, order_id, item_id, kind, is_product, quantity, occurred_at,
           CAST(round(quantity * unit_price * 1000000) AS BIGINT) AS amount
    FROM {versions["transactions"]}
    WHERE occurred_at < {t}
),
orders AS (
    SELECT customer_id, source, order_id,
        count(*) FILTER (WHERE kind = 'purchase') AS n_purchase_lines,
        count(*) FILTER (WHERE kind = 'cancellation') AS n_cancellation_lines,
        min(occurred_at) FILTER (WHERE kind = 'purchase') AS first_purchase,
        max(occurred_at) FILTER (WHERE kind = 'purchase') AS last_purchase,
        coalesce(sum(amount) FILTER (WHERE kind = 'purchase'), 0) AS gross,
        coalesce(sum(quantity) FILTER (WHERE kind = 'purchase'), 0) AS units,
        sum(amount) AS net,
        count(*) FILTER (WHERE kind = 'return') AS n_returned_lines,
        coalesce(-sum(quantity) FILTER (WHERE kind = 'return'), 0) AS returned_units,
{spend}
    FROM tx
    GROUP BY customer_id, source, order_id
),
order_gaps AS (
    SELECT customer_id, ts - lag(ts) OVER (PARTITION BY customer_id ORDER BY ts) AS gap
    FROM (
        SELECT customer_id, epoch_us(first_purchase) AS ts FROM orders
        WHERE n_purchase_lines > 0 AND n_cancellation_lines = 0)
),
gap_stats AS (
    SELECT customer_id,
        count(gap) AS n_gaps,
        sum(gap::HUGEINT) AS gap_sum,
        sum(gap::HUGEINT * gap::HUGEINT) AS gap_sq
    FROM order_gaps GROUP BY customer_id
),
customer_orders AS (
    SELECT customer_id,
        min(first_purchase) AS first_order_at,
        max(last_purchase) AS last_order_at,
        sum(net) AS net,
        sum(n_returned_lines) AS n_returned_lines,
        sum(returned_units) AS returned_units,
        sum(spend_30d) AS spend_30d,
        sum(spend_90d) AS spend_90d,
        sum(spend_365d) AS spend_365d,
        count(*) FILTER (WHERE n_cancellation_lines > 0) AS n_cancelled_orders,
        count(*) FILTER (WHERE counted) AS frequency,
        sum(gross) FILTER (WHERE counted) AS gross,
        sum(units) FILTER (WHERE counted) AS units,
        count(*) FILTER (WHERE counted AND first_purchase >= {since[90]}) AS orders_90d
    FROM (
        SELECT *, n_purchase_lines > 0 AND n_cancellation_lines = 0 AS counted FROM orders)
    GROUP BY customer_id
    HAVING sum(n_purchase_lines) > 0
),
cancelled AS (
    SELECT customer_id, source, order_id FROM orders WHERE n_cancellation_lines > 0
),
customer_items AS (
    SELECT t.customer_id, t.source, t.item_id, sum(t.amount) AS revenue
    FROM tx AS t ANTI JOIN cancelled USING (customer_id, source, order_id)
    WHERE t.kind = 'purchase' AND t.is_product
    GROUP BY ALL
),
items AS (
    SELECT source, item_id, category FROM {versions["items"]}
),
category_revenue AS (
    SELECT ci.customer_id, coalesce(i.category, 'unknown') AS category,
           sum(ci.revenue) AS revenue, count(*) AS n_items
    FROM customer_items AS ci LEFT JOIN items AS i USING (source, item_id)
    GROUP BY ALL
),
category_stats AS (
    SELECT customer_id,
           count(*) AS n_categories,
           sum(n_items) AS n_distinct_items,
           first(category ORDER BY revenue DESC, category) AS top_category,
           max(revenue) / sum(revenue) AS top_category_share
    FROM category_revenue GROUP BY customer_id
),
customers AS (
    SELECT customer_id, country, signup_at FROM {versions["customers"]}
),
feedback_stats AS (
    SELECT customer_id, count(*) AS feedback_count,
           sum(rating) / nullif(count(rating), 0) AS avg_rating
    FROM {versions["feedback"]}
    GROUP BY customer_id
)
SELECT
    DATE '{as_of_date(as_of).isoformat()}' AS as_of_date,
    o.customer_id,
    c.country,
    c.signup_at,
    o.first_order_at,
    o.last_order_at,
    (epoch_us({t}) - epoch_us(o.last_order_at)) / {us_per_day} AS recency_days,
    (epoch_us({t}) - epoch_us(least(o.first_order_at, coalesce(c.signup_at, o.first_order_at))))
        / {us_per_day} AS tenure_days,
    o.frequency,
    o.net / 1000000.0 AS monetary_value,
    coalesce(o.gross, 0) / 1000000.0 AS gross_revenue,
    o.gross / 1000000.0 / nullif(o.frequency, 0) AS avg_order_value,
    CASE WHEN g.n_gaps >= 1 THEN g.gap_sum / g.n_gaps / {us_per_day} END
        AS mean_days_between_orders,
    CASE WHEN g.n_gaps >= 2 THEN sqrt(
        ((g.n_gaps * g.gap_sq - g.gap_sum * g.gap_sum) / (g.n_gaps * (g.n_gaps - 1)))::DOUBLE
    ) / {us_per_day} END AS std_days_between_orders,
    o.n_cancelled_orders,
    o.n_returned_lines,
    o.returned_units,
    o.returned_units / nullif(o.units, 0) AS return_rate,
    o.spend_30d / 1000000.0 AS spend_30d,
    o.spend_90d / 1000000.0 AS spend_90d,
    o.spend_365d / 1000000.0 AS spend_365d,
    o.orders_90d,
    coalesce(k.n_categories, 0) AS n_categories,
    k.top_category,
    k.top_category_share,
    coalesce(f.feedback_count, 0) AS feedback_count,
    f.avg_rating,
    coalesce(k.n_distinct_items, 0) AS n_distinct_items
FROM customer_orders AS o
LEFT JOIN gap_stats AS g USING (customer_id)
LEFT JOIN customers AS c USING (customer_id)
LEFT JOIN category_stats AS k USING (customer_id)
LEFT JOIN feedback_stats AS f USING (customer_id)
ORDER BY o.customer_id
"""


def build_customer_features(
    as_of: datetime,
    data_root: str,
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> pa.Table:
    """Build the point-in-time customer features as of ``as_of`` with DuckDB.

    Reads ``staged/<entity>/ds=*/*.parquet`` under the data root (a local folder or any
    fsspec URI, whose filesystem is registered with DuckDB).

    Args:
        as_of: End of the run's data interval (naive means UTC).
        data_root: Lake root.
        threads: DuckDB threads (default: one per core).
        memory_limit: DuckDB memory limit, e.g. ``"4GB"`` (default: DuckDB's, 80% of RAM).

    Returns:
        The feature table: one row per customer with a purchase line before ``as_of``,
        sorted by ``customer_id``, with the columns of :func:`feature_schema` (defined in
        the module docstring).
    """
    started = time.perf_counter()
    root = data_root.rstrip("/")
    as_of = as_utc(as_of)
    schema = feature_schema()
    if not staged_days(root, "transactions", as_of):
        return schema.empty_table()
    import duckdb

    spill_dir = tempfile.mkdtemp(prefix="cva-duckdb-")  # only used past the memory limit
    con = _connect(root, threads, memory_limit, spill_dir)
    try:
        versions = {entity: _latest_versions(con, root, entity, as_of) for entity in VERSIONING}
        try:
            table = con.sql(customer_features_sql(versions, as_of)).to_arrow_table()
        except duckdb.ConversionException as exc:
            raise _amount_out_of_range(con, versions["transactions"], as_of) from exc
    finally:
        con.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
    table = table.cast(schema).combine_chunks()
    log.info(
        "built customer features as of %s: %d customers in %.1f s",
        as_of.isoformat(),
        table.num_rows,
        time.perf_counter() - started,
    )
    return table


#: The largest line amount, in currency units, that fits the BIGINT micro-units.
_MAX_LINE_AMOUNT = (2**63 - 1) / 1_000_000


def _amount_out_of_range(con: Any, transactions: str, as_of: datetime) -> Exception:
    """The error naming the staged lines whose amount the feature sums cannot hold.

    They were landed before the source suites bounded ``unit_price`` (or by a suite
    without bounds): the gate now quarantines such rows.
    """
    from cva_tasks.quality import DataQualityError

    lines = con.sql(
        f"""SELECT source, ds, transaction_id, quantity, unit_price FROM {transactions}
        WHERE occurred_at < {_ts_literal(as_of)}
          AND (NOT isfinite(unit_price) OR abs(quantity * unit_price) > {_MAX_LINE_AMOUNT})
        ORDER BY ds, source, transaction_id LIMIT 5"""
    ).fetchall()
    named = "; ".join(
        f"{src} ds={ds} transaction_id={tid}: quantity {qty} x unit_price {price!r}"
        for src, ds, tid, qty, price in lines
    )
    return DataQualityError(
        f"features as of {as_of.isoformat()}: staged transaction line(s) with an amount "
        f"out of range ({named or 'not found; see the cause'}). Rerun the source DAG for "
        "those days (its suite quarantines them now), then restage them."
    )


def write_customer_features(table: pa.Table, ds: date, data_root: str) -> str:
    """Replace ``features/customer/ds=YYYY-MM-DD/`` by one file holding ``table``.

    Args:
        table: The feature table (:func:`build_customer_features`).
        ds: The day of the run's data interval (the table's ``as_of_date``).
        data_root: Lake root.

    Returns:
        The URI of the written Parquet file.
    """
    return storage.replace_partition(table, Lake(data_root).features(FEATURE_SET, ds))


def validate_features(table: pa.Table, ds: date, expectations_dir: Path) -> dict[str, Any]:
    """Check the feature table with the suite ``expectations/features.customer.json``.

    Every rule is critical: a failure here is a bug in the feature code, not bad input.

    Args:
        table: The feature table.
        ds: The day of the run's data interval, for messages.
        expectations_dir: Folder of the suites (``CVA_EXPECTATIONS_DIR``).

    Returns:
        ``{"suite", "ds", "rows", "rules_evaluated", "passed"}``.

    Raises:
        DataQualityError: naming the rule(s) that failed and a few offending values.
    """
    from cva_tasks.quality import enforce, validate_frame

    suite_path = expectations_dir / f"{SUITE}.json"
    start = utc_midnight(ds)
    outcome = validate_frame(
        table.to_pandas(), suite_path, interval_start=start, interval_end=as_of_instant(ds)
    )
    enforce(outcome, source="features", entity=FEATURE_SET, ds=ds, max_failing_share=0.0)
    return {
        "suite": SUITE,
        "ds": ds.isoformat(),
        "rows": table.num_rows,
        "rules_evaluated": len(outcome.result.get("results", [])),
        "passed": True,
    }

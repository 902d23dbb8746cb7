"""Point-in-time event history from the staged lake: orders, purchase lines, entity versions.

The models need more than one feature row per customer: churn and CLV labels count
the orders placed in a window, recommenders need the items bought, sentiment needs
the feedback texts. These functions read the same staged Parquet as
:mod:`cva_tasks.features.customer`, with the same visibility rules (a row counts only
if it was staged for a day before ``as_of``, its latest version before ``as_of`` is
taken, and its event happened before ``as_of``), so a label or a training row built
"as of" a day can never see what was known only later.

Definitions match the feature table: a *counted order* has purchase lines and no
cancellation line; its timestamp is its earliest purchase line; ``gross`` is the sum
of its purchase lines' ``quantity * unit_price``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from cva_tasks.days import as_utc
from cva_tasks.features.customer import (
    _connect,
    _latest_versions,
    _ts_literal,
    staged_days,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

#: Rows per Arrow batch when a query's result is streamed (about 50 MB of purchase lines).
BATCH_ROWS = 1_000_000
#: DuckDB's memory for a streamed query: its joins and the ORDER BY spill to disk past it
#: (DuckDB's own default is 80% of the machine, which a 1M-customer history filled).
STREAM_MEMORY_LIMIT = "2GB"
#: The columns of :func:`purchase_lines`, in order.
LINE_COLUMNS = (
    "customer_id",
    "source",
    "order_id",
    "item_id",
    "item_name",
    "quantity",
    "amount",
    "occurred_at",
)


def _versions(con, root: str, as_of: datetime) -> dict[str, str]:
    return {
        entity: _latest_versions(con, root, entity, as_of)
        for entity in ("transactions", "customers", "items", "feedback")
    }


def _query(as_of: datetime, data_root: str, sql_for) -> pd.DataFrame:
    """Run ``sql_for(versions, as_of_literal)`` over the versions visible at ``as_of``."""
    root = data_root.rstrip("/")
    as_of = as_utc(as_of)
    spill_dir = tempfile.mkdtemp(prefix="cva-duckdb-")
    con = _connect(root, None, None, spill_dir)
    try:
        frame = con.sql(sql_for(_versions(con, root, as_of), _ts_literal(as_of))).df()
    finally:
        con.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
    return _utc_columns(frame)


def _stream(
    as_of: datetime, data_root: str, sql_for, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Like :func:`_query`, but the result comes as Arrow record batches, in order.

    Neither DuckDB nor the caller holds the whole result: DuckDB works within
    :data:`STREAM_MEMORY_LIMIT` (spilling past it) and hands out ``batch_rows`` at a
    time, so the caller can keep a compact form of each batch and drop the rest.
    """
    root = data_root.rstrip("/")
    as_of = as_utc(as_of)
    spill_dir = tempfile.mkdtemp(prefix="cva-duckdb-")
    con = _connect(root, None, STREAM_MEMORY_LIMIT, spill_dir)
    try:
        sql = sql_for(_versions(con, root, as_of), _ts_literal(as_of))
        yield from con.sql(sql).to_arrow_reader(batch_rows)
    finally:
        con.close()
        shutil.rmtree(spill_dir, ignore_errors=True)


def _utc_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamp columns of ``frame`` in UTC (in place; returns ``frame``)."""
    for column in frame.columns:
        if str(frame[column].dtype).startswith("datetime64"):
            # A column of nulls comes back naive; the lake's timestamps are all UTC.
            values = frame[column].dt
            frame[column] = (
                values.tz_localize("UTC") if values.tz is None else values.tz_convert("UTC")
            )
    return frame


_ORDERS_CTE = """
tx AS (
    SELECT customer_id, source, order_id, item_id, kind, is_product, quantity, occurred_at,
           quantity * unit_price AS amount
    FROM {transactions} WHERE occurred_at < {as_of}
),
orders AS (
    SELECT customer_id, source, order_id,
        count(*) FILTER (WHERE kind = 'purchase') AS n_purchase_lines,
        count(*) FILTER (WHERE kind = 'cancellation') AS n_cancellation_lines,
        min(occurred_at) FILTER (WHERE kind = 'purchase') AS ordered_at,
        coalesce(sum(amount) FILTER (WHERE kind = 'purchase'), 0) AS gross
    FROM tx GROUP BY customer_id, source, order_id
)"""


def counted_orders(as_of: datetime, data_root: str) -> pd.DataFrame:
    """Counted orders placed before ``as_of``, as known at ``as_of``.

    Args:
        as_of: Instant of knowledge (naive means UTC); for a label window
            ``[T, T + h)`` pass ``T + h``.
        data_root: Lake root.

    Returns:
        One row per counted order: ``customer_id, source, order_id, ordered_at``
        (UTC), ``gross``; sorted by customer and time. Empty when nothing is staged.
    """
    import pandas as pd

    root = data_root.rstrip("/")
    if not staged_days(root, "transactions", as_utc(as_of)):
        return pd.DataFrame(
            {
                "customer_id": pd.Series(dtype="string"),
                "source": pd.Series(dtype="string"),
                "order_id": pd.Series(dtype="string"),
                "ordered_at": pd.Series(dtype="datetime64[us, UTC]"),
                "gross": pd.Series(dtype="float64"),
            }
        )

    def sql(versions: dict[str, str], as_of_literal: str) -> str:
        cte = _ORDERS_CTE.format(transactions=versions["transactions"], as_of=as_of_literal)
        return f"""WITH {cte}
        SELECT customer_id, source, order_id, ordered_at, gross FROM orders
        WHERE n_purchase_lines > 0 AND n_cancellation_lines = 0
        ORDER BY customer_id, ordered_at, source, order_id"""

    return _query(as_of, root, sql)


def _lines_sql(columns: Sequence[str]):
    """SQL of the product purchase lines of counted orders, only ``columns``, sorted.

    A line counts when its order has no cancellation line (the order exists: the line
    is in it). That is an anti-join on the few cancelled orders rather than a join on
    the per-order aggregate of every order, which DuckDB would have to hold whole; the
    key columns must be set, as the equality join of the feature table's definition
    requires.
    """
    unknown = sorted(set(columns) - set(LINE_COLUMNS))
    if unknown or not columns:
        raise ValueError(f"purchase line columns {unknown or '(none)'}: choose from {LINE_COLUMNS}")
    select = ", ".join("i.name AS item_name" if c == "item_name" else f"t.{c}" for c in columns)
    join_items = "item_name" in columns

    def sql(versions: dict[str, str], as_of_literal: str) -> str:
        items = f"""LEFT JOIN (SELECT source, item_id, name FROM {versions["items"]}) AS i
            USING (source, item_id)"""
        return f"""WITH tx AS (
            SELECT customer_id, source, order_id, item_id, kind, is_product, quantity,
                   occurred_at, quantity * unit_price AS amount
            FROM {versions["transactions"]} WHERE occurred_at < {as_of_literal}
        ),
        cancelled AS (
            SELECT DISTINCT customer_id, source, order_id FROM tx WHERE kind = 'cancellation'
        )
        SELECT {select}
        FROM tx AS t {items if join_items else ""}
        WHERE t.kind = 'purchase' AND t.is_product
          AND t.customer_id IS NOT NULL AND t.source IS NOT NULL AND t.order_id IS NOT NULL
          AND NOT EXISTS (
            SELECT 1 FROM cancelled AS c
            WHERE c.customer_id = t.customer_id AND c.source = t.source
              AND c.order_id = t.order_id
          )
        ORDER BY t.customer_id, t.occurred_at, t.item_id, t.order_id"""

    return sql


def _empty_lines(columns: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns=list(columns))


def purchase_lines(
    as_of: datetime,
    data_root: str,
    columns: Sequence[str] = LINE_COLUMNS,
    *,
    batch_rows: int = BATCH_ROWS,
) -> pd.DataFrame:
    """Product purchase lines of counted orders before ``as_of``, with the item's name.

    The lines are streamed from DuckDB in Arrow batches and kept as Arrow columns (no
    Python string objects) until the one conversion at the end, so memory holds the
    requested columns once. Ask only for the columns you need: at a million customers
    the eight columns of tens of millions of lines are several gigabytes.

    Args:
        as_of: Instant of knowledge (naive means UTC).
        data_root: Lake root.
        columns: A subset of :data:`LINE_COLUMNS` (default: all), in the order wanted.
        batch_rows: Lines per streamed batch.

    Returns:
        One row per line: ``customer_id, source, order_id, item_id, item_name``
        (the item's latest name known at ``as_of``, null when unknown),
        ``quantity, amount, occurred_at`` (or the requested ones); sorted by customer,
        time, item and order.
    """
    import pyarrow as pa

    sql = _lines_sql(columns)
    root = data_root.rstrip("/")
    if not staged_days(root, "transactions", as_utc(as_of)):
        return _empty_lines(columns)
    batches = list(_stream(as_of, root, sql, batch_rows))
    if not batches:
        return _empty_lines(columns)
    table = pa.Table.from_batches(batches)
    del batches
    # self_destruct frees each Arrow column as soon as it is converted.
    return _utc_columns(table.to_pandas(self_destruct=True, split_blocks=True))


def purchase_interactions(
    as_of: datetime, data_root: str, *, batch_rows: int = BATCH_ROWS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommenders' inputs from the purchase lines before ``as_of``, streamed.

    Same lines as :func:`purchase_lines`, but each Arrow batch is cut to what the
    recommenders read (the item names reduced to one per item as the batch arrives),
    so the lines' order ids, sources, amounts and per-line names never sit in memory.

    Returns:
        ``(interactions, items)``: ``customer_id, item_id, quantity, occurred_at`` per
        line, sorted as :func:`purchase_lines`; ``item_id, item_name`` per item sold,
        the name of its last line (null when the item never landed).
    """
    import pandas as pd
    import pyarrow as pa

    wanted = ("customer_id", "item_id", "quantity", "occurred_at")
    sql = _lines_sql((*wanted, "item_name"))
    root = data_root.rstrip("/")
    if not staged_days(root, "transactions", as_utc(as_of)):
        return _empty_lines(wanted), _empty_lines(("item_id", "item_name"))
    kept: list[pa.RecordBatch] = []
    names: list[pd.DataFrame] = []
    for batch in _stream(as_of, root, sql, batch_rows):
        kept.append(batch.select(list(wanted)))
        last = batch.select(["item_id", "item_name"]).to_pandas()
        # Each batch's last line per item; over all batches, the last of those is the
        # last line per item of the whole sorted stream (as drop_duplicates on the frame).
        names.append(last.drop_duplicates("item_id", keep="last"))
        del batch, last
    if not kept:
        return _empty_lines(wanted), _empty_lines(("item_id", "item_name"))
    table = pa.Table.from_batches(kept)
    del kept
    interactions = _utc_columns(table.to_pandas(self_destruct=True, split_blocks=True))
    items = pd.concat(names, ignore_index=True).drop_duplicates("item_id", keep="last")
    return interactions, items.reset_index(drop=True)


def visible_rows(entity: str, as_of: datetime, data_root: str) -> pd.DataFrame:
    """The latest version of every row of ``entity`` visible at ``as_of``.

    Feedback is further limited to ``submitted_at < as_of`` by its visibility rule
    (its version column is ``submitted_at``).

    Args:
        entity: ``transactions``, ``customers``, ``items`` or ``feedback``.
        as_of: Instant of knowledge (naive means UTC).
        data_root: Lake root.

    Returns:
        The staged columns (``source`` plus the canonical ones, and ``ds``).
    """
    if entity not in ("transactions", "customers", "items", "feedback"):
        raise ValueError(f"unknown entity {entity!r}")
    return _query(as_of, data_root, lambda versions, _t: f"SELECT * FROM {versions[entity]}")

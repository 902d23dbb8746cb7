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


def _query(as_of: datetime, data_root: str, sql_for) -> pd.DataFrame:
    """Run ``sql_for(versions, as_of_literal)`` over the versions visible at ``as_of``."""
    root = data_root.rstrip("/")
    as_of = as_utc(as_of)
    spill_dir = tempfile.mkdtemp(prefix="cva-duckdb-")
    con = _connect(root, None, None, spill_dir)
    try:
        versions = {
            entity: _latest_versions(con, root, entity, as_of)
            for entity in ("transactions", "customers", "items", "feedback")
        }
        frame = con.sql(sql_for(versions, _ts_literal(as_of))).df()
    finally:
        con.close()
        shutil.rmtree(spill_dir, ignore_errors=True)
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


def purchase_lines(as_of: datetime, data_root: str) -> pd.DataFrame:
    """Product purchase lines of counted orders before ``as_of``, with the item's name.

    Args:
        as_of: Instant of knowledge (naive means UTC).
        data_root: Lake root.

    Returns:
        One row per line: ``customer_id, source, order_id, item_id, item_name``
        (the item's latest name known at ``as_of``, null when unknown),
        ``quantity, amount, occurred_at``; sorted by customer, time and item.
    """
    root = data_root.rstrip("/")
    if not staged_days(root, "transactions", as_utc(as_of)):
        import pandas as pd

        return pd.DataFrame(
            columns=[
                "customer_id",
                "source",
                "order_id",
                "item_id",
                "item_name",
                "quantity",
                "amount",
                "occurred_at",
            ]
        )

    def sql(versions: dict[str, str], as_of_literal: str) -> str:
        cte = _ORDERS_CTE.format(transactions=versions["transactions"], as_of=as_of_literal)
        return f"""WITH {cte},
        items AS (SELECT source, item_id, name FROM {versions["items"]})
        SELECT t.customer_id, t.source, t.order_id, t.item_id, i.name AS item_name,
               t.quantity, t.amount, t.occurred_at
        FROM tx AS t
        JOIN orders AS o USING (customer_id, source, order_id)
        LEFT JOIN items AS i USING (source, item_id)
        WHERE t.kind = 'purchase' AND t.is_product AND o.n_cancellation_lines = 0
        ORDER BY t.customer_id, t.occurred_at, t.item_id, t.order_id"""

    return _query(as_of, root, sql)


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

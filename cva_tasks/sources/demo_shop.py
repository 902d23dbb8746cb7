"""The demo shop's database: customers, products, orders, lines and returns.

Extracted by watermark (``updated_at``) through the connection ``cva_demo_shop``
(SQLite by default, PostgreSQL works the same). A cancelled order arrives once,
on the day it was cancelled, as its purchase lines plus matching cancellation
lines with negative quantities, so that summing quantities gives net units
exactly as in invoice-line exports. A return arrives on the day it was booked
as a line with the negative returned quantity.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from cva_tasks.sources.base import Interval, Source, SqlEntity
from cva_tasks.sources.canonical import id_text

if TYPE_CHECKING:
    import pandas as pd

TRANSACTIONS_SQL = """
SELECT 'L' || l.order_line_id AS transaction_id, o.order_id, o.customer_id,
       l.product_id, l.quantity, l.unit_price, 'purchase' AS kind,
       o.ordered_at AS occurred_at, o.updated_at
FROM orders o JOIN order_lines l ON l.order_id = o.order_id
WHERE o.updated_at >= :start AND o.updated_at < :end
UNION ALL
SELECT 'C' || l.order_line_id, o.order_id, o.customer_id,
       l.product_id, -l.quantity, l.unit_price, 'cancellation',
       o.updated_at, o.updated_at
FROM orders o JOIN order_lines l ON l.order_id = o.order_id
WHERE o.status = 'cancelled' AND o.updated_at >= :start AND o.updated_at < :end
UNION ALL
SELECT 'R' || r.return_id, o.order_id, o.customer_id,
       l.product_id, -r.quantity, l.unit_price, 'return',
       r.returned_at, r.updated_at
FROM returns r JOIN order_lines l ON l.order_line_id = r.order_line_id
JOIN orders o ON o.order_id = l.order_id
WHERE r.updated_at >= :start AND r.updated_at < :end
"""

CUSTOMERS_SQL = """
SELECT customer_id, email, first_name, last_name, country, signup_at, updated_at
FROM customers WHERE updated_at >= :start AND updated_at < :end
"""

PRODUCTS_SQL = """
SELECT product_id, name, category, unit_price, updated_at
FROM products WHERE updated_at >= :start AND updated_at < :end
"""


def transactions(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Order lines, cancellations and returns -> canonical transactions.

    Grain: one row per line event; ``transaction_id`` is ``L``/``C``/``R`` plus
    the line or return id. The query already names ``quantity``, ``unit_price``,
    ``occurred_at`` and ``updated_at``; :func:`~cva_tasks.sources.canonical.convert`
    types them row by row (a quantity ``"abc"`` quarantines its row, not the day).
    """
    return frame.assign(
        transaction_id=frame["transaction_id"].astype("string"),
        order_id=id_text(frame["order_id"]),
        customer_id=id_text(frame["customer_id"]),
        item_id=id_text(frame["product_id"]),
        is_product=True,
    )


def customers(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Customer rows changed in the interval -> canonical customers."""
    full_name = (
        frame["first_name"].astype("string").fillna("")
        + " "
        + frame["last_name"].astype("string").fillna("")
    ).str.strip()
    return frame.assign(
        customer_id=id_text(frame["customer_id"]),
        full_name=full_name.where(full_name != "", None),
    )


def items(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Product rows changed in the interval -> canonical items."""
    return frame.assign(item_id=id_text(frame["product_id"]))


SOURCE = Source(
    name="demo_shop",
    description="Demo shop database (orders, customers, products) by updated_at watermark",
    conn_id="cva_demo_shop",
    start_date=date(2024, 1, 1),
    entities=(
        SqlEntity("transactions", "demo_shop.transactions", TRANSACTIONS_SQL, transactions),
        SqlEntity("customers", "demo_shop.customers", CUSTOMERS_SQL, customers),
        SqlEntity("items", "demo_shop.items", PRODUCTS_SQL, items),
    ),
    tags=("demo",),
)

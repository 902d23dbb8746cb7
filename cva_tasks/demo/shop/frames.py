"""The generated demo shop as DataFrames (:class:`ShopFrames`) and its table names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from cva_tasks.demo.shop.seasonality import DEFAULT_END, DEFAULT_START

#: Names of the database tables, in load order.
TABLES: tuple[str, ...] = ("customers", "products", "orders", "order_lines", "returns")


@dataclass(frozen=True, eq=False)
class ShopFrames:
    """All generated data of one demo shop, as DataFrames.

    Timestamps are ``datetime64[us, UTC]``, ids are ``int64``, texts are
    pandas strings.

    Attributes:
        customers: One row per customer: ``customer_id``, ``email``,
            ``first_name``, ``last_name``, ``country``, ``signup_at``,
            ``created_at`` (= signup), ``updated_at`` (later for profile edits).
        products: One row per product: ``product_id``, ``sku``, ``name``,
            ``category``, ``unit_price``, ``created_at``, ``updated_at``.
        orders: One row per order: ``order_id``, ``customer_id``,
            ``ordered_at``, ``status`` (``placed``/``cancelled``),
            ``created_at`` (= ordered_at), ``updated_at`` (cancellation time for
            cancelled orders, else created_at). Ids increase with time.
        order_lines: One row per order line: ``order_line_id``, ``order_id``,
            ``product_id``, ``quantity``, ``unit_price`` (price paid per unit),
            ``created_at`` = ``updated_at`` = order time.
        returns: One row per returned line: ``return_id``, ``order_line_id``,
            ``quantity`` (<= line quantity), ``reason``, ``returned_at``,
            ``created_at`` = ``updated_at`` = returned_at.
        feedback: One row per piece of feedback, sorted by time:
            ``feedback_id`` (``F0000001``), ``customer_id``, ``order_id``
            (nullable ``Int64``; null for general feedback), ``rating``
            (nullable ``Int64``, 1-5), ``comment``, ``submitted_at``.
        truth_customers: Ground truth, one row per customer:
            ``customer_id``, ``latent_segment``, ``churn_at`` (null when the
            customer is still alive at the end of the period), ``order_rate``
            (expected orders per 30 days at average seasonal intensity while
            alive).
        truth_affinities: Ground truth, one row per (customer, favourite
            product): ``customer_id``, ``product_id``, ``affinity`` (expected
            share of the customer's order lines that are this product through
            the favourite channel).
        start: First day of the period.
        end: Last day of the period (inclusive).
    """

    customers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    order_lines: pd.DataFrame
    returns: pd.DataFrame
    feedback: pd.DataFrame
    truth_customers: pd.DataFrame
    truth_affinities: pd.DataFrame
    start: date = field(default=DEFAULT_START)
    end: date = field(default=DEFAULT_END)

    def counts(self) -> dict[str, int]:
        """Row counts of the tables and the feedback."""
        return {name: len(getattr(self, name)) for name in (*TABLES, "feedback")}

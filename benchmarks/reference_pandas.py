"""The customer features in plain pandas: the reference the DuckDB build is checked against.

This is the implementation a data scientist would write in a notebook: read the staged
Parquet with ``pandas.read_parquet``, filter, ``drop_duplicates`` for the latest version,
``groupby``/``merge`` for the aggregates. It follows the same point-in-time rules and
feature definitions as :mod:`cva_tasks.features.customer` (documented there; grain: one
row per customer with a purchase line before ``as_of``, key ``customer_id``) and returns
the same table, up to float rounding (it sums floats, the DuckDB build sums exact
integer micro-units). Tests and ``cva bench features`` compare the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cva_tasks import storage
from cva_tasks.days import as_of_date, as_utc
from cva_tasks.features.customer import feature_schema, staged_days
from cva_tasks.lake import Lake
from cva_tasks.staging import staged_schema

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def _read_staged(root: str, entity: str, as_of: datetime, columns: list[str]) -> pd.DataFrame:
    """Staged rows of ``entity`` from the days before ``as_of``, with ``ds`` as a Timestamp."""
    import pandas as pd

    if not staged_days(root, entity, as_of):
        empty = staged_schema(entity).empty_table().to_pandas()
        return empty[[c for c in columns if c != "ds"]].assign(ds=pd.Series(dtype="datetime64[s]"))
    fs, path = storage.filesystem(Lake(root).staged(entity))
    frame = pd.read_parquet(
        path,
        filesystem=fs,
        columns=columns,
        filters=[("ds", "<", as_utc(as_of).date().isoformat())],
    )
    frame["ds"] = pd.to_datetime(frame["ds"].astype("string"))
    return frame


def _latest(frame: pd.DataFrame, key: list[str], version: str, as_of: pd.Timestamp):
    """Latest version per key among the versions before ``as_of``."""
    frame = frame[frame[version] < as_of]
    return frame.sort_values([version, "ds"]).drop_duplicates(key, keep="last")


def build_customer_features_pandas(as_of: datetime, data_root: str) -> pa.Table:
    """Build the customer features as of ``as_of`` with pandas.

    Args:
        as_of: End of the run's data interval (naive means UTC).
        data_root: Lake root.

    Returns:
        The same table as :func:`cva_tasks.features.customer.build_customer_features`:
        one row per customer with a purchase line before ``as_of``, sorted by
        ``customer_id``, columns of :func:`~cva_tasks.features.customer.feature_schema`.
    """
    import pandas as pd
    import pyarrow as pa

    root = data_root.rstrip("/")
    as_of = as_utc(as_of)
    schema = feature_schema()
    if not staged_days(root, "transactions", as_of):
        return schema.empty_table()
    now = pd.Timestamp(as_of)
    day = pd.Timedelta(days=1)

    # Transactions: latest version per (source, transaction_id), then events before as_of.
    tx = _read_staged(
        root,
        "transactions",
        as_of,
        [
            "source",
            "transaction_id",
            "order_id",
            "customer_id",
            "item_id",
            "quantity",
            "unit_price",
            "kind",
            "is_product",
            "occurred_at",
            "updated_at",
            "ds",
        ],
    )
    tx = _latest(tx, ["source", "transaction_id"], "updated_at", now)
    tx = tx[tx["occurred_at"] < now].copy()
    tx["amount"] = tx["quantity"] * tx["unit_price"]

    purchases = tx[tx["kind"] == "purchase"]
    returns = tx[tx["kind"] == "return"]
    cancelled = tx.loc[tx["kind"] == "cancellation", ["customer_id", "source", "order_id"]]
    cancelled = cancelled.drop_duplicates()
    kept = purchases.merge(
        cancelled, on=["customer_id", "source", "order_id"], how="left", indicator=True
    )
    kept = kept[kept["_merge"] == "left_only"].drop(columns="_merge")

    # Orders that count: purchase lines, no cancellation.
    orders = (
        kept.groupby(["customer_id", "source", "order_id"])
        .agg(ordered_at=("occurred_at", "min"), gross=("amount", "sum"), units=("quantity", "sum"))
        .reset_index()
        .sort_values(["customer_id", "ordered_at"])
    )
    orders["gap_days"] = orders.groupby("customer_id")["ordered_at"].diff() / day
    orders["recent"] = orders["ordered_at"] >= now - 90 * day
    order_stats = orders.groupby("customer_id").agg(
        frequency=("order_id", "size"),
        gross_revenue=("gross", "sum"),
        purchased_units=("units", "sum"),
        mean_days_between_orders=("gap_days", "mean"),
        std_days_between_orders=("gap_days", "std"),
        orders_90d=("recent", "sum"),
    )

    # Every line: net amounts, spend windows, returns.
    by_customer = tx.groupby("customer_id")
    features = pd.DataFrame(
        {
            "first_order_at": purchases.groupby("customer_id")["occurred_at"].min(),
            "last_order_at": purchases.groupby("customer_id")["occurred_at"].max(),
        }
    )
    features["monetary_value"] = by_customer["amount"].sum()
    for n in (30, 90, 365):
        recent = tx["amount"].where(tx["occurred_at"] >= now - n * day, 0.0)
        features[f"spend_{n}d"] = recent.groupby(tx["customer_id"]).sum()
    features["n_returned_lines"] = returns.groupby("customer_id").size()
    features["returned_units"] = -returns.groupby("customer_id")["quantity"].sum()
    features["n_cancelled_orders"] = cancelled.groupby("customer_id").size()
    features = features.join(order_stats)

    # Category mix of the product lines of counted orders (latest item version).
    items = _read_staged(
        root, "items", as_of, ["source", "item_id", "category", "updated_at", "ds"]
    )
    items = _latest(items, ["source", "item_id"], "updated_at", now)
    product_lines = kept[kept["is_product"]].merge(
        items[["source", "item_id", "category"]], on=["source", "item_id"], how="left"
    )
    product_lines["category"] = product_lines["category"].fillna("unknown")
    mix = product_lines.groupby(["customer_id", "category"])["amount"].sum().reset_index()
    # Money to the micro-unit, so that categories with equal revenue tie (float sums of
    # the same amounts in another order differ in the last bits).
    mix["amount"] = mix["amount"].round(6)
    mix = mix.sort_values(["customer_id", "amount", "category"], ascending=[True, False, True])
    top = mix.drop_duplicates("customer_id").set_index("customer_id")
    features["n_categories"] = mix.groupby("customer_id").size()
    features["top_category"] = top["category"]
    features["top_category_share"] = top["amount"] / mix.groupby("customer_id")["amount"].sum()
    features["n_distinct_items"] = (
        product_lines[["customer_id", "source", "item_id"]]
        .drop_duplicates()
        .groupby("customer_id")
        .size()
    )

    # Customers: latest version per customer_id across sources.
    customers = _read_staged(
        root,
        "customers",
        as_of,
        ["source", "customer_id", "country", "signup_at", "updated_at", "ds"],
    )
    customers = customers[customers["updated_at"] < now]
    customers = customers.sort_values(
        ["updated_at", "ds", "source"], ascending=[True, True, False]
    ).drop_duplicates("customer_id", keep="last")
    features = features.join(customers.set_index("customer_id")[["country", "signup_at"]])

    # Feedback: latest per (source, feedback_id), submitted before as_of.
    feedback = _read_staged(
        root,
        "feedback",
        as_of,
        ["source", "feedback_id", "customer_id", "rating", "submitted_at", "ds"],
    )
    feedback = _latest(feedback, ["source", "feedback_id"], "submitted_at", now)
    features["feedback_count"] = feedback.groupby("customer_id").size()
    features["avg_rating"] = feedback.groupby("customer_id")["rating"].mean()

    # One row per customer with a purchase line; the rest are derived.
    features = features[features["first_order_at"].notna()].copy()
    counts = [
        "frequency",
        "n_cancelled_orders",
        "n_returned_lines",
        "returned_units",
        "orders_90d",
        "n_categories",
        "feedback_count",
        "n_distinct_items",
    ]
    features[counts] = features[counts].fillna(0).astype("int64")
    features["gross_revenue"] = features["gross_revenue"].fillna(0.0)
    features["recency_days"] = (now - features["last_order_at"]) / day
    start = features["signup_at"].where(
        features["signup_at"] < features["first_order_at"], features["first_order_at"]
    )
    features["tenure_days"] = (now - start) / day
    frequency = features["frequency"].where(features["frequency"] > 0)
    features["avg_order_value"] = features["gross_revenue"] / frequency
    units = features["purchased_units"].where(features["purchased_units"] > 0)
    features["return_rate"] = features["returned_units"] / units
    features["as_of_date"] = as_of_date(as_of)
    features = features.rename_axis("customer_id").reset_index().sort_values("customer_id")
    return pa.Table.from_pandas(features[schema.names], schema=schema, preserve_index=False)

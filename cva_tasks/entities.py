"""Canonical entities: the one schema each source maps onto.

Every source's extract step returns frames in these shapes, whatever the
source system calls its columns. Identifiers are strings (a float
``CustomerID`` from a spreadsheet export and an integer key from a database
end up the same), timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

# Grain: one row per order line event (a purchase line, a cancelled line or a
# returned quantity). ``quantity`` is negative for cancellations and returns so
# that a plain sum gives net units.
TRANSACTIONS = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("order_id", pa.string()),
        ("customer_id", pa.string()),
        ("item_id", pa.string()),
        ("quantity", pa.int64()),
        ("unit_price", pa.float64()),
        ("kind", pa.string()),  # purchase | cancellation | return
        ("is_product", pa.bool_()),  # False for postage, fees, manual adjustments
        ("occurred_at", TS),
        ("updated_at", TS),
    ]
)

# Grain: one row per customer version (latest version wins when staged).
CUSTOMERS = pa.schema(
    [
        ("customer_id", pa.string()),
        ("email", pa.string()),
        ("full_name", pa.string()),
        ("country", pa.string()),
        ("signup_at", TS),
        ("updated_at", TS),
    ]
)

# Grain: one row per item version.
ITEMS = pa.schema(
    [
        ("item_id", pa.string()),
        ("name", pa.string()),
        ("category", pa.string()),
        ("unit_price", pa.float64()),
        ("updated_at", TS),
    ]
)

# Grain: one row per piece of feedback; ``rating`` is null when the customer
# wrote text without a star rating.
FEEDBACK = pa.schema(
    [
        ("feedback_id", pa.string()),
        ("customer_id", pa.string()),
        ("order_id", pa.string()),
        ("rating", pa.int64()),
        ("text", pa.string()),
        ("submitted_at", TS),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "transactions": TRANSACTIONS,
    "customers": CUSTOMERS,
    "items": ITEMS,
    "feedback": FEEDBACK,
}

TRANSACTION_KINDS = ("purchase", "cancellation", "return")

#: The key of each entity (unique within a source).
KEYS: dict[str, str] = {
    "transactions": "transaction_id",
    "customers": "customer_id",
    "items": "item_id",
    "feedback": "feedback_id",
}

#: The column that orders the versions of a key (the latest wins); a source's watermark.
VERSION_COLUMNS: dict[str, str] = {
    "transactions": "updated_at",
    "customers": "updated_at",
    "items": "updated_at",
    "feedback": "submitted_at",
}

#: Columns whose values identify a person (emails, names, phone numbers, free-text
#: addresses, free text a customer wrote). Their values are masked in every DQ message,
#: log line and stored validation result (:mod:`cva_tasks.quality.masking`); the data
#: itself (raw, quarantine, staged) keeps them. A source's phone number or address is
#: mapped into one of these columns or left out of the canonical entity.
PII_COLUMNS: dict[str, frozenset[str]] = {
    "transactions": frozenset(),
    "customers": frozenset({"email", "full_name"}),
    "items": frozenset(),
    "feedback": frozenset({"text"}),
}

"""Every source suite bounds its money and quantities: no infinity, no 1e300.

On main ``unit_price`` had only a lower bound: ``+inf`` and ``1e300`` passed the gate,
and every later day's ``build_features`` then failed (it sums money as integer
micro-units, and ``quantity * unit_price * 1e6`` no longer fits in 64 bits).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from cva_tasks.entities import SCHEMAS
from cva_tasks.quality import validate_frame

EXPECTATIONS = Path(__file__).resolve().parents[3] / "expectations"
START = datetime(2025, 6, 10, tzinfo=UTC)
END = datetime(2025, 6, 11, tzinfo=UTC)
STAMP = pd.Timestamp("2025-06-10 10:00", tz="UTC")
SAMPLE_ROWS = {
    "transactions": {
        "transaction_id": "L1",
        "order_id": "O1",
        "customer_id": "7",
        "item_id": "A",
        "quantity": 2,
        "unit_price": 9.5,
        "kind": "purchase",
        "is_product": True,
        "occurred_at": STAMP,
        "updated_at": STAMP,
    },
    "items": {
        "item_id": "A",
        "name": "mug",
        "category": "Kitchen",
        "unit_price": 9.5,
        "updated_at": STAMP,
    },
    "feedback": {
        "feedback_id": "F1",
        "customer_id": "7",
        "order_id": "O1",
        "rating": 4,
        "text": "fine",
        "submitted_at": STAMP,
    },
}
# Largest micro-unit amount of one line the feature build can hold (BIGINT).
MAX_MICRO_UNITS = 2**63 - 1


def source_suites() -> list[tuple[str, str]]:
    """(suite name, entity) of every source suite."""
    found = []
    for path in sorted(EXPECTATIONS.glob("*.json")):
        source, entity = path.stem.split(".", 1)
        if source not in ("features", "scores"):
            found.append((path.stem, entity))
    return found


def numeric_columns(entity: str) -> list[str]:
    return [f.name for f in SCHEMAS[entity] if str(f.type) in ("int64", "double")]


CASES = [
    (suite, entity, column, bad)
    for suite, entity in source_suites()
    for column in numeric_columns(entity)
    for bad in (
        [float("inf"), float("-inf"), 1e300]
        if str(SCHEMAS[entity].field(column).type) == "double"
        else [10**15, -(10**15)]
    )
]


def test_every_numeric_source_column_is_covered():
    covered = {(suite, column) for suite, _e, column, _b in CASES}
    assert ("demo_shop.transactions", "unit_price") in covered
    assert ("online_retail.items", "unit_price") in covered
    assert ("demo_feedback.feedback", "rating") in covered


@pytest.mark.parametrize(("suite", "entity", "column", "bad"), CASES)
def test_a_non_finite_or_absurd_value_is_quarantined(suite, entity, column, bad):
    rows = [dict(SAMPLE_ROWS[entity]) for _ in range(20)]
    key = next(iter(SAMPLE_ROWS[entity]))
    for number, row in enumerate(rows):
        row[key] = f"K{number}"
    rows[7][column] = bad
    frame = pd.DataFrame(rows)
    outcome = validate_frame(
        frame, EXPECTATIONS / f"{suite}.json", interval_start=START, interval_end=END
    )
    quarantined = outcome.quarantined
    assert quarantined[key].tolist() == ["K7"], f"{suite}: {column}={bad!r} passed the gate"
    assert f"expect_column_values_to_be_between({column})" in quarantined["dq_rules"].iloc[0]


def _between(suite: dict, column: str) -> tuple[float, float]:
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        if (
            expectation["type"] == "expect_column_values_to_be_between"
            and kwargs.get("column") == column
        ):
            return kwargs.get("min_value"), kwargs.get("max_value")
    raise AssertionError(f"{suite['name']}: no between rule on {column}")


@pytest.mark.parametrize("suite_name", [s for s, e in source_suites() if e == "transactions"])
def test_the_bounds_keep_a_line_amount_inside_the_feature_arithmetic(suite_name):
    suite = json.loads((EXPECTATIONS / f"{suite_name}.json").read_text())
    low_q, high_q = _between(suite, "quantity")
    low_p, high_p = _between(suite, "unit_price")
    assert None not in (low_q, high_q, low_p, high_p), f"{suite_name}: an open bound"
    largest = max(abs(low_q), abs(high_q)) * max(abs(low_p), abs(high_p))
    assert largest * 1_000_000 < MAX_MICRO_UNITS

"""Values of PII columns never appear in DQ errors, logs, stored GX results or Data Docs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from cva_tasks.entities import PII_COLUMNS
from cva_tasks.quality import DataQualityError, build_data_docs, enforce, validate_frame
from cva_tasks.quality.masking import mask_value

EXPECTATIONS = Path(__file__).resolve().parents[3] / "expectations"
START = datetime(2025, 6, 10, tzinfo=UTC)
END = datetime(2025, 6, 11, tzinfo=UTC)
BAD_EMAIL = "alice.liddell(at)example.org"
FULL_NAME = "Alice Liddell"


def customers(rows: int = 4, bad_email: str = BAD_EMAIL) -> pd.DataFrame:
    stamp = pd.Timestamp("2025-06-10 09:00", tz="UTC").as_unit("us")
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(rows)],
            "email": [f"someone.{i}@example.org" for i in range(rows)],
            "full_name": [FULL_NAME] + [f"Person {i}" for i in range(1, rows)],
            "country": ["United Kingdom"] * rows,
            "signup_at": [stamp] * rows,
            "updated_at": [stamp] * rows,
        }
    )
    frame.loc[0, "email"] = bad_email
    return frame


def validate_customers(frame: pd.DataFrame):
    return validate_frame(
        frame,
        EXPECTATIONS / "demo_shop.customers.json",
        interval_start=START,
        interval_end=END,
    )


def test_pii_columns_are_declared_per_entity() -> None:
    assert {"email", "full_name"} <= PII_COLUMNS["customers"]
    assert "text" in PII_COLUMNS["feedback"]
    assert PII_COLUMNS["transactions"] == frozenset()


def test_bad_email_is_masked_in_error_log_and_stored_result(caplog, tmp_path: Path) -> None:
    outcome = validate_customers(customers())
    # The row is still quarantined whole: the quarantine is data, not a message.
    assert outcome.quarantined["email"].tolist() == [BAD_EMAIL]

    caplog.set_level(logging.DEBUG)
    with pytest.raises(DataQualityError) as raised:
        enforce(
            outcome,
            source="demo_shop",
            entity="customers",
            ds=date(2025, 6, 10),
            max_failing_share=0.0,
        )
    message = str(raised.value)
    assert "expect_column_values_to_match_regex(email)" in message
    assert BAD_EMAIL not in message and "alice" not in message
    assert "<masked: 28 chars>" in message
    assert BAD_EMAIL not in caplog.text
    assert [f.sample_values for f in raised.value.failures] == [["<masked: 28 chars>"]]

    stored = json.dumps(outcome.result)
    assert BAD_EMAIL not in stored and "alice" not in stored
    regex_results = [
        r["result"]
        for r in outcome.result["results"]
        if r["expectation_config"]["type"] == "expect_column_values_to_match_regex"
    ]
    assert regex_results[0]["unexpected_count"] == 1
    assert regex_results[0]["partial_unexpected_list"] == ["<masked: 28 chars>"]

    index = build_data_docs([outcome.result], tmp_path / "docs")
    pages = "".join(p.read_text() for p in index.parent.rglob("*.html"))
    assert "match_regex" in pages or "match" in pages
    assert BAD_EMAIL not in pages and "alice.liddell" not in pages


def test_email_mask_keeps_a_hint_of_the_shape() -> None:
    assert mask_value("bob@example.org") == "b***@***"
    assert mask_value("Alice Liddell") == "<masked: 13 chars>"
    assert mask_value(None) is None
    assert mask_value(12) == 12  # counts and observed numbers are not values of a PII column


def test_duplicate_full_name_rule_shows_no_name(tmp_path: Path) -> None:
    suite = json.loads((EXPECTATIONS / "demo_shop.customers.json").read_text())
    suite["expectations"].append(
        {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "full_name"},
            "meta": {"severity": "critical"},
        }
    )
    path = tmp_path / "demo_shop.customers.json"
    path.write_text(json.dumps(suite))
    frame = customers(bad_email="ok@example.org")
    frame.loc[1, "full_name"] = FULL_NAME
    outcome = validate_frame(frame, path, interval_start=START, interval_end=END)
    with pytest.raises(DataQualityError) as raised:
        enforce(
            outcome,
            source="demo_shop",
            entity="customers",
            ds=date(2025, 6, 10),
            max_failing_share=0.5,
        )
    assert "expect_column_values_to_be_unique(full_name) failed on 2 rows" in str(raised.value)
    assert FULL_NAME not in str(raised.value)
    assert FULL_NAME not in json.dumps(outcome.result)


def test_values_of_other_columns_stay_visible(tmp_path: Path) -> None:
    frame = customers(bad_email="ok@example.org")
    frame.loc[1, "customer_id"] = "C0"
    outcome = validate_customers(frame)
    with pytest.raises(DataQualityError, match=r"\['C0', 'C0'\]"):
        enforce(
            outcome,
            source="demo_shop",
            entity="customers",
            ds=date(2025, 6, 10),
            max_failing_share=0.5,
        )

"""Tests of the Great Expectations data-quality gate (real GX 1.x, tiny frames)."""

from __future__ import annotations

import copy
import json
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from cva_tasks.quality import (
    DataQualityError,
    ValidationOutcome,
    build_data_docs,
    enforce,
    load_suite,
    validate_frame,
)
from cva_tasks.quality import results as gx_results

START = datetime(2025, 12, 30, tzinfo=UTC)
END = datetime(2025, 12, 31, tzinfo=UTC)
DS = date(2025, 12, 30)
COLUMNS = ["transaction_id", "unit_price", "kind", "occurred_at"]
SUITE = {
    "name": "demo_shop.transactions",
    "meta": {"grain": "one row per order line event"},
    "expectations": [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": COLUMNS, "exact_match": True},
            "meta": {"severity": "critical"},
        },
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "transaction_id"},
            "meta": {"severity": "critical"},
        },
        {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "transaction_id"},
            "meta": {"severity": "critical"},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "unit_price", "min_value": 0, "strict_min": True},
            "meta": {"severity": "row"},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "kind", "value_set": ["purchase", "cancellation", "return"]},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "occurred_at"},
            "meta": {"bounds": "interval"},
        },
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {},
            "meta": {"recent_row_counts": {"min_ratio": 0.1, "max_ratio": 10, "min_history": 3}},
        },
    ],
}
PRICE_RULE = "expect_column_values_to_be_between(unit_price)"
KIND_RULE = "expect_column_values_to_be_in_set(kind)"
TIME_RULE = "expect_column_values_to_be_between(occurred_at)"
ROW_COUNT_RULE = "expect_table_row_count_to_be_between"


@pytest.fixture
def suite_path(tmp_path: Path) -> Path:
    path = tmp_path / "expectations" / "demo_shop.transactions.json"
    path.parent.mkdir()
    path.write_text(json.dumps(SUITE), encoding="utf-8")
    return path


def make_frame(rows: int = 4, **overrides: list) -> pd.DataFrame:
    data = {
        "transaction_id": [f"T{i + 1}" for i in range(rows)],
        "unit_price": [10.0 + i for i in range(rows)],
        "kind": ["purchase"] * rows,
        "occurred_at": [f"2025-12-30 {i:02d}:30" for i in range(rows)],
    }
    data.update(overrides)
    frame = pd.DataFrame(data)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True).astype(
        "datetime64[us, UTC]"
    )
    return frame


def run(frame: pd.DataFrame, path: Path, counts: tuple[int, ...] = ()) -> ValidationOutcome:
    return validate_frame(
        frame, path, interval_start=START, interval_end=END, recent_row_counts=counts
    )


def gate(outcome: ValidationOutcome, max_failing_share: float = 0.5) -> None:
    enforce(
        outcome,
        source="demo_shop",
        entity="transactions",
        ds=DS,
        max_failing_share=max_failing_share,
    )


def failure(outcome: ValidationOutcome, rule: str):
    matches = [item for item in outcome.failures if item.rule == rule]
    assert matches, f"{rule} not among {[item.rule for item in outcome.failures]}"
    return matches[0]


def test_clean_frame_passes(suite_path: Path) -> None:
    frame = make_frame()
    outcome = run(frame, suite_path, counts=(4, 5, 3))
    assert outcome.failures == []
    assert outcome.skipped == []
    assert outcome.quarantined.empty
    assert list(outcome.quarantined.columns) == [*COLUMNS, "dq_rules"]
    pd.testing.assert_frame_equal(outcome.clean, frame)
    assert outcome.failing_share == 0.0
    assert outcome.result["success"] is True
    assert outcome.result["suite_name"] == "demo_shop.transactions"
    assert len(outcome.result["results"]) == len(SUITE["expectations"])
    json.dumps(outcome.result)  # JSON-able
    gate(outcome, max_failing_share=0.0)


def test_negative_price_row_is_quarantined(suite_path: Path) -> None:
    frame = make_frame(unit_price=[10.0, -1.0, 12.0, 13.0])
    outcome = run(frame, suite_path)
    assert outcome.quarantined["transaction_id"].tolist() == ["T2"]
    assert outcome.quarantined["dq_rules"].tolist() == [PRICE_RULE]
    assert outcome.clean["transaction_id"].tolist() == ["T1", "T3", "T4"]
    assert outcome.clean.dtypes.to_dict() == frame.dtypes.to_dict()
    assert outcome.quarantined[COLUMNS].dtypes.to_dict() == frame.dtypes.to_dict()
    price = failure(outcome, PRICE_RULE)
    assert (price.severity, price.column, price.unexpected_count) == ("row", "unit_price", 1)
    assert price.sample_values == [-1.0]
    assert outcome.critical_failures == []
    assert outcome.failing_share == 0.25


def test_quarantine_uses_row_positions_not_index_labels(suite_path: Path) -> None:
    frame = make_frame(
        unit_price=[10.0, -1.0, 12.0, 13.0], kind=["purchase", "gift", "x", "return"]
    )
    frame.index = [7, 7, 3, 1]  # duplicate, unsorted labels
    outcome = run(frame, suite_path)
    assert outcome.quarantined["transaction_id"].tolist() == ["T2", "T3"]
    assert outcome.quarantined["dq_rules"].tolist() == [f"{PRICE_RULE}; {KIND_RULE}", KIND_RULE]
    assert outcome.clean["transaction_id"].tolist() == ["T1", "T4"]
    assert outcome.clean.index.tolist() == [0, 1]


def test_duplicate_key_is_critical_and_enforce_raises(suite_path: Path) -> None:
    outcome = run(make_frame(transaction_id=["T1", "T1", "T3", "T4"]), suite_path)
    unique = failure(outcome, "expect_column_values_to_be_unique(transaction_id)")
    assert unique.severity == "critical"
    assert unique.unexpected_count == 2
    assert unique.sample_values == ["T1", "T1"]
    assert outcome.critical_failures == [unique]
    assert outcome.quarantined.empty  # critical rules fail the run, they do not quarantine
    with pytest.raises(DataQualityError) as caught:
        gate(outcome, max_failing_share=1.0)
    message = str(caught.value)
    assert message.startswith(
        "demo_shop.transactions ds=2025-12-30: critical rule "
        "expect_column_values_to_be_unique(transaction_id) failed on 2 rows, e.g. ['T1', 'T1']"
    )
    assert caught.value.failures == [unique]


def test_missing_column_is_critical(suite_path: Path) -> None:
    outcome = run(make_frame().drop(columns=["unit_price"]), suite_path)
    columns = failure(outcome, "expect_table_columns_to_match_set")
    assert columns.severity == "critical"
    assert columns.sample_values == ["missing: unit_price"]
    # The row rule on the missing column cannot be evaluated: that is critical too.
    price = failure(outcome, PRICE_RULE)
    assert price.error and price.is_critical
    with pytest.raises(DataQualityError, match="missing: unit_price"):
        gate(outcome)


def test_null_key_is_critical(suite_path: Path) -> None:
    outcome = run(make_frame(transaction_id=["T1", None, "T3", "T4"]), suite_path)
    not_null = failure(outcome, "expect_column_values_to_not_be_null(transaction_id)")
    assert (not_null.severity, not_null.unexpected_count, not_null.sample_values) == (
        "critical",
        1,
        [None],
    )
    with pytest.raises(DataQualityError, match=r"to_not_be_null\(transaction_id\) failed on 1"):
        gate(outcome)


def test_value_not_in_set_is_quarantined_by_default(suite_path: Path) -> None:
    outcome = run(make_frame(kind=["purchase", "refund", "return", "purchase"]), suite_path)
    kind = failure(outcome, KIND_RULE)
    assert kind.severity == "row"  # default of column map expectations
    assert kind.sample_values == ["refund"]
    assert outcome.quarantined[["transaction_id", "dq_rules"]].values.tolist() == [
        ["T2", KIND_RULE]
    ]
    gate(outcome)


@pytest.mark.parametrize("unit", ["us", "ns"])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", None])
def test_timestamps_outside_interval_are_quarantined(
    suite_path: Path, unit: str, zone: str | None
) -> None:
    stamps = pd.to_datetime(
        [
            "2025-12-30 00:00:00",  # start: inside
            "2025-12-29 23:59:59",  # before start
            "2025-12-31 00:00:00",  # end: outside (exclusive)
            "2025-12-30 23:59:59.999999",  # inside
        ],
        utc=True,
        format="ISO8601",
    ).astype(f"datetime64[{unit}, UTC]")
    if zone is None:
        stamps = stamps.tz_localize(None)  # naive values are taken as UTC
    elif zone != "UTC":
        stamps = stamps.tz_convert(zone)
    frame = make_frame()
    frame["occurred_at"] = stamps
    outcome = run(frame, suite_path)
    assert outcome.quarantined["transaction_id"].tolist() == ["T2", "T3"]
    assert set(outcome.quarantined["dq_rules"]) == {TIME_RULE}
    assert outcome.clean["transaction_id"].tolist() == ["T1", "T4"]
    assert outcome.clean["occurred_at"].dtype == frame["occurred_at"].dtype
    assert failure(outcome, TIME_RULE).unexpected_count == 2


def test_interval_bounds_are_filled_at_run_time(suite_path: Path) -> None:
    outcome = run(make_frame(), suite_path)
    [evr] = [
        item
        for item in outcome.result["results"]
        if item["expectation_config"]["kwargs"].get("column") == "occurred_at"
    ]
    kwargs = evr["expectation_config"]["kwargs"]
    assert kwargs["min_value"] == "2025-12-30T00:00:00+00:00"
    assert kwargs["max_value"] == "2025-12-31T00:00:00+00:00"
    assert kwargs["strict_max"] is True


def test_long_unexpected_lists_are_dropped_from_stored_result(
    suite_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gx_results, "MAX_STORED_UNEXPECTED", 1)
    outcome = run(make_frame(unit_price=[-1.0, -2.0, 12.0, 13.0]), suite_path)
    assert outcome.quarantined["transaction_id"].tolist() == ["T1", "T2"]  # all failing rows
    [evr] = [
        item
        for item in outcome.result["results"]
        if item["expectation_config"]["kwargs"].get("column") == "unit_price"
    ]
    assert "unexpected_index_list" not in evr["result"]
    assert "unexpected_list" not in evr["result"]
    assert evr["result"]["unexpected_count"] == 2
    assert evr["result"]["partial_unexpected_list"] == [-1.0, -2.0]
    assert failure(outcome, PRICE_RULE).sample_values == [-1.0, -2.0]


def test_row_count_too_low_against_history_fails(suite_path: Path) -> None:
    outcome = run(make_frame(), suite_path, counts=(100, 90, 120))  # median 100 -> 10..1000
    row_count = failure(outcome, ROW_COUNT_RULE)
    assert row_count.severity == "critical"
    assert row_count.sample_values == [4]
    assert outcome.skipped == []
    with pytest.raises(DataQualityError, match="expect_table_row_count_to_be_between failed"):
        gate(outcome)


@pytest.mark.parametrize("counts", [(), (100, 90)])
def test_row_count_skipped_without_enough_history(suite_path: Path, counts: tuple) -> None:
    outcome = run(make_frame(), suite_path, counts=counts)
    assert outcome.skipped == [ROW_COUNT_RULE]
    assert outcome.failures == []
    assert ROW_COUNT_RULE not in {
        item["expectation_config"]["type"] for item in outcome.result["results"]
    }
    assert outcome.result["meta"]["cva_dq"]["skipped"] == [ROW_COUNT_RULE]
    gate(outcome)


def test_empty_frame(suite_path: Path) -> None:
    frame = make_frame(rows=0)
    outcome = run(frame, suite_path)
    assert outcome.failures == []
    assert outcome.clean.empty and outcome.quarantined.empty
    assert outcome.clean.dtypes.to_dict() == frame.dtypes.to_dict()
    assert outcome.failing_share == 0.0
    gate(outcome, max_failing_share=0.0)
    # With history, the row-count rule decides.
    with pytest.raises(DataQualityError, match="expect_table_row_count_to_be_between failed"):
        gate(run(frame, suite_path, counts=(10, 10, 10)))


def test_failing_share_threshold(suite_path: Path) -> None:
    outcome = run(make_frame(unit_price=[10.0, -1.0, 12.0, 13.0]), suite_path)
    assert outcome.failing_share == 0.25
    gate(outcome, max_failing_share=0.25)  # not above
    gate(outcome, max_failing_share=0.5)
    with pytest.raises(DataQualityError) as caught:
        gate(outcome, max_failing_share=0.2)
    message = str(caught.value)
    assert message.startswith("demo_shop.transactions ds=2025-12-30: 1 of 4 rows (25.0%)")
    assert f"{PRICE_RULE} failed on 1 row, e.g. [-1.0]" in message
    with pytest.raises(ValueError):
        gate(outcome, max_failing_share=1.5)


def test_suite_conventions_are_checked(tmp_path: Path) -> None:
    bad_severity = copy.deepcopy(SUITE)
    bad_severity["expectations"][1]["meta"]["severity"] = "warning"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad_severity), encoding="utf-8")
    with pytest.raises(ValueError, match="severity"):
        load_suite(path)

    row_on_table = copy.deepcopy(SUITE)
    row_on_table["expectations"][0]["meta"]["severity"] = "row"
    path.write_text(json.dumps(row_on_table), encoding="utf-8")
    with pytest.raises(ValueError, match="map"):
        run(make_frame(), path)


def test_no_progress_bars_and_no_analytics(suite_path: Path, capfd) -> None:
    run(make_frame(unit_price=[10.0, -1.0, 12.0, 13.0]), suite_path)
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out
    assert "%|" not in captured.err  # tqdm bar
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"


def test_data_docs_render_stored_results(suite_path: Path, tmp_path: Path) -> None:
    failed = run(make_frame(unit_price=[10.0, -1.0, 12.0, 13.0]), suite_path)
    passed = run(make_frame(), suite_path)
    stored = tmp_path / "results" / "failed.json"
    stored.parent.mkdir()
    stored.write_text(json.dumps(failed.result), encoding="utf-8")

    index = build_data_docs([stored, passed.result], tmp_path / "docs")

    assert index == tmp_path / "docs" / "index.html"
    html = index.read_text(encoding="utf-8")
    assert "demo_shop.transactions" in html
    assert "Validation Results" in html
    pages = sorted((tmp_path / "docs" / "validations").rglob("*.html"))
    assert len(pages) == 2
    failed_page = next(page for page in pages if "Failed" in page.read_text(encoding="utf-8"))
    assert "unit_price" in failed_page.read_text(encoding="utf-8")
    assert (tmp_path / "docs" / "expectations" / "demo_shop" / "transactions.html").is_file()
    # Validation still works afterwards (the docs context is not left as the current one).
    assert run(make_frame(), suite_path).failures == []


def test_a_validation_logs_no_great_expectations_info(suite_path: Path) -> None:
    # A fresh process: GX logs most of its INFO lines while the context is first built.
    import subprocess
    import sys

    script = f"""
import logging, sys
logging.basicConfig(
    level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s %(message)s"
)
import pandas as pd
from datetime import datetime, UTC
from cva_tasks.quality import validate_frame
frame = pd.DataFrame({{
    "transaction_id": ["T1", "T2"], "unit_price": [1.0, 2.0], "kind": ["sale", "sale"],
    "occurred_at": pd.to_datetime(["2025-12-30T10:00:00Z"] * 2, utc=True).astype(
        "datetime64[us, UTC]"
    ),
}})
outcome = validate_frame(
    frame,
    __import__("pathlib").Path({str(suite_path)!r}),
    interval_start=datetime(2025, 12, 30, tzinfo=UTC),
    interval_end=datetime(2025, 12, 31, tzinfo=UTC),
)
print("VALIDATED", len(outcome.clean))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert "VALIDATED" in result.stdout, result.stderr[-2000:]
    gx_info = [
        line for line in result.stdout.splitlines() if line.startswith("INFO great_expectations")
    ]
    assert gx_info == [], f"{len(gx_info)} GX INFO lines, e.g. {gx_info[:3]}"

"""Where a user meets a rejected row: ``dq_results`` and ``cva quarantine`` name the rule."""

from __future__ import annotations

import io
import json
from datetime import date

from cva_tasks import cli
from cva_tasks.lake import Lake
from cva_tasks.quality.summary import dq_result_rows

DAY = date(2025, 6, 10)


def test_dq_results_name_the_mapping_rules(tiny_shop, lake):
    """On main ``failed_rules`` listed only the suite's rules: a row rejected by the
    mapping was a bare count in ``rows_rejected_by_mapping``."""
    for n in range(40):
        tiny_shop.order(100 + n, "2025-06-10 09:00:00", lines=[(1000 + n, 1, 9.5)])
    tiny_shop.order(1, "2025-06-10 10:00:00", lines=[(11, "abc", 9.5), (12, 1, -2.0)])
    tiny_shop.run("transactions", DAY)
    rows = dq_result_rows(Lake(str(lake)), DAY, [("demo_shop", "transactions")]).to_pylist()
    assert rows[0]["failed_rules"] == (
        "mapping: quantity is not a whole number: 1 row; "
        "expect_column_values_to_be_between(unit_price): 1 row"
    )
    assert rows[0]["rows_rejected_by_mapping"] == 1 and rows[0]["rows_quarantined"] == 1
    assert rows[0]["failing_share"] == 2 / 42


def test_cva_quarantine_lists_rows_by_rule(tiny_shop, lake, monkeypatch):
    for n in range(40):
        tiny_shop.order(100 + n, "2025-06-10 09:00:00", lines=[(1000 + n, 1, 9.5)])
    tiny_shop.order(1, "2025-06-10 10:00:00", lines=[(11, "abc", 9.5), (12, "x", 1e300)])
    tiny_shop.run("transactions", DAY)
    out = io.StringIO()
    monkeypatch.setattr(cli, "_RESULT_STREAM", out)
    assert cli.main(["quarantine", "demo_shop", "transactions", "2025-06-10", "--json"]) == 0
    report = json.loads(out.getvalue())
    assert report["rows_by_rule"] == {"mapping: quantity is not a whole number": 2}
    assert report["first_rows"] == [
        {"transaction_id": "L11", "dq_rules": "mapping: quantity is not a whole number: 'abc'"},
        {"transaction_id": "L12", "dq_rules": "mapping: quantity is not a whole number: 'x'"},
    ]
    assert report["summary"]["rows_invalid"] == 2

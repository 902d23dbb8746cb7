"""A price of +inf or 1e300 is quarantined at the gate, so the features still build.

On main both landed, and ``build_features`` of that day and of every later day failed
(``quantity * unit_price * 1e6`` no longer fits the BIGINT the feature build sums in).
"""

from __future__ import annotations

from datetime import date

import pytest

from cva_tasks.days import as_of_instant
from cva_tasks.features.customer import build_customer_features
from cva_tasks.staging import stage_day

DAY = date(2025, 6, 10)
TX = ("demo_shop", "transactions")


@pytest.mark.parametrize("price", [float("inf"), 1e300])
def test_an_absurd_price_is_quarantined_and_the_features_build(tiny_shop, view, lake, price):
    for n in range(30):
        tiny_shop.order(100 + n, "2025-06-10 09:00:00", lines=[(1000 + n, 1, 9.5)])
    tiny_shop.order(1, "2025-06-10 10:00:00", lines=[(11, 2, price)])
    for entity in ("transactions", "customers", "items"):
        tiny_shop.run(entity, DAY)
    quarantined = view.quarantine(*TX, DAY)
    assert [q["transaction_id"] for q in quarantined] == ["L11"]
    assert "expect_column_values_to_be_between(unit_price)" in quarantined[0]["dq_rules"]
    stage_day(DAY, ["demo_shop"], str(lake))
    features = build_customer_features(as_of_instant(DAY), str(lake))
    assert features.column("monetary_value").to_pylist() == [285.0]

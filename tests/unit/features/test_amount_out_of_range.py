"""A staged line whose amount the feature sums cannot hold is named, with the way out.

Rows landed before the source suites bounded ``unit_price`` (or by a suite without
bounds) used to fail every later day's ``build_features`` with DuckDB's bare
``Conversion Error: Type DOUBLE with value inf can't be cast ... INT64``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cva_tasks.features.customer import build_customer_features
from cva_tasks.quality import DataQualityError
from tests.unit.features.test_customer_features import D, land_days, line


@pytest.mark.parametrize("price", [float("inf"), 1e300])
def test_an_absurd_staged_price_is_named_with_its_day_and_key(lake, price):
    land_days(
        lake,
        {
            D("2025-01-10"): {
                "transactions": [line("L1", "O1", "1", "A", 2, 10.0, "2025-01-10 10:00")]
            },
            D("2025-01-11"): {
                "transactions": [line("L2", "O2", "1", "A", 3, price, "2025-01-11 10:00")]
            },
        },
    )
    with pytest.raises(DataQualityError) as info:
        build_customer_features(datetime(2025, 1, 12, tzinfo=UTC), str(lake))
    message = str(info.value)
    assert "demo_shop ds=2025-01-11 transaction_id=L2: quantity 3 x unit_price" in message
    assert "Rerun the source DAG" in message

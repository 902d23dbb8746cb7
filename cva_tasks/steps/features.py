"""Daily DAG step: point-in-time customer features of the day."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from cva_tasks.days import as_day, as_of_instant
from cva_tasks.settings import Settings

log = logging.getLogger(__name__)


def build_features(ds: date | datetime | str) -> dict[str, Any]:
    """Point-in-time customer features as of the end of ``ds``, validated and written."""
    from cva_tasks.features.customer import (
        build_customer_features,
        validate_features,
        write_customer_features,
    )

    ds = as_day(ds)
    settings = Settings.from_env()
    table = build_customer_features(as_of_instant(ds), settings.data_root)
    validate_features(table, ds, settings.expectations_dir)
    uri = write_customer_features(table, ds, settings.data_root)
    log.info("features for ds=%s: %d customers at %s", ds, table.num_rows, uri)
    return {"uri": uri, "rows": table.num_rows}

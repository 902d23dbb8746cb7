"""Training the lifetime-value model for a day of the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cva_tasks.features.snapshots import DayData
    from cva_tasks.models.clv.model import LifetimeValueModel
    from cva_tasks.settings import Settings


def train_for_day(
    data: DayData, current: LifetimeValueModel | None, settings: Settings
) -> tuple[LifetimeValueModel, dict[str, Any]]:
    """Validate on the last 90 days out of time, then refit on everything."""
    from cva_tasks.models.clv import train_clv

    # train_clv's features_at(day) means "events before day 00:00 UTC".
    model, report = train_clv(
        data.features_before,
        data.orders_as_of,
        data.ds,
        champion=current,
        discount_rate=settings.clv_discount_rate,
    )
    report.setdefault("algorithm", "BG/NBD + Gamma-Gamma")
    report.setdefault("higher_is_better", False)
    return model, report

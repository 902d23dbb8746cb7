"""Source timestamps to UTC: the one parser every source and the watermark filter use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def utc(values: pd.Series) -> pd.Series:
    """Parse timestamps (text, naive or aware) as UTC ``datetime64[us, UTC]``.

    Offsets are applied (``2025-06-10T23:30:00-02:00`` is 01:30 UTC on 06-11), naive
    values are taken as UTC, values that do not parse become NaT: a mapping turns those
    into reasons (:func:`cva_tasks.sources.canonical.unparsed`).
    """
    import pandas as pd

    return pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce").astype(
        "datetime64[us, UTC]"
    )

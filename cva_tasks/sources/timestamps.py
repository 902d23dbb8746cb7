"""Source timestamps to UTC: the one parser every source and the watermark filter use.

A source whose timestamps carry no offset but are local times (a shop's export in
Europe/London) declares its zone (``Source.timezone`` or ``CVA_SOURCE_TIMEZONE_<NAME>``);
the extract step parses inside :func:`local_zone`, so those values are read in that
zone and converted to UTC before any watermark or interval compares them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

_ZONE: ContextVar[str] = ContextVar("cva_source_timezone", default="UTC")
#: Text that ends in an offset or ``Z`` names its instant itself.
_HAS_OFFSET = re.compile(r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$")


@contextlib.contextmanager
def local_zone(zone: str) -> Iterator[None]:
    """Within it, :func:`utc` reads timestamps without an offset as local times in ``zone``."""
    token = _ZONE.set(zone)
    try:
        yield
    finally:
        _ZONE.reset(token)


def utc(values: pd.Series) -> pd.Series:
    """Parse timestamps (text, naive or aware) as UTC ``datetime64[us, UTC]``.

    Offsets are applied (``2025-06-10T23:30:00-02:00`` is 01:30 UTC on 06-11), values
    without one are local times of the :func:`local_zone` (UTC unless a source declares
    its zone), values that do not parse become NaT: a mapping turns those into reasons
    (:func:`cva_tasks.sources.canonical.unparsed`). In a zone with summer time, a local
    time of the hour repeated in autumn is read as its first (summer) instant, and one of
    the hour skipped in spring as the instant the clocks jumped to.
    """
    import numpy as np
    import pandas as pd

    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce").astype(
        "datetime64[us, UTC]"
    )
    zone = _ZONE.get()
    if zone == "UTC" or not len(values):
        return parsed
    naive = _without_offset(values) & parsed.notna()
    if not naive.any():
        return parsed
    wall = parsed[naive].dt.tz_localize(None)
    local = wall.dt.tz_localize(
        zone, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="shift_forward"
    ).dt.tz_convert("UTC")
    out = parsed.copy()
    out[naive] = local.astype("datetime64[us, UTC]")
    return out


def _without_offset(values: pd.Series) -> pd.Series:
    """Per value, whether it names a wall-clock time only (no offset, no zone)."""
    import pandas as pd

    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return pd.Series(False, index=values.index)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return pd.Series(True, index=values.index)

    def naive(value) -> bool:
        if isinstance(value, str):
            return not _HAS_OFFSET.search(value.strip())
        tzinfo = getattr(value, "tzinfo", None)
        return hasattr(value, "year") and tzinfo is None

    return values.map(naive).astype(bool)

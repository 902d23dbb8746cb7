"""Which rows of a run's window are the run's to land: late rows once, nothing twice.

A run reads ``[start - lookback, end)`` (its window, see
:class:`cva_tasks.sources.base.Interval`), so it sees again rows of earlier days. Of
the rows it read, :func:`settle` keeps:

* every row whose version lies in the run's interval, or that the gate must judge
  (a version that does not parse, a drop's row outside the window);
* a *late* row, whose version lies in the lookback, unless the same key with the same
  version was already landed or quarantined on an earlier day (a newer version or a row
  committed after its day's extract is landed; a copy is not), and unless its day was
  never landed by a source that rereads (that day's own run will land it, so it is not
  landed twice).

It leaves out:

* a daily drop's row past the end of its day, but before the end of the next one: the
  next day's run reads this drop too and lands it on its UTC day (a drop named after the
  shop's local day holds rows of the next UTC day);
* rows of the previous day's drop outside the run's interval (that drop's own run
  handles them).

The same rows for the same lake and source: a rerun of a day gives the same rows.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from cva_tasks.entities import KEYS, VERSION_COLUMNS
from cva_tasks.sources.base import DROP_DAY, Interval

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Settled:
    """The rows a run keeps, and how many of the others it left out and why."""

    frame: pd.DataFrame
    already_landed: int
    not_yet_due: int
    left_for_next_day: int


def earlier_days(interval: Interval) -> list[date]:
    """The days before the run's own whose rows its lookback reads again."""
    first = interval.window_start.date()
    return [first + timedelta(days=n) for n in range((interval.ds - first).days)]


def settle(
    frame: pd.DataFrame,
    entity: str,
    interval: Interval,
    earlier: pd.DataFrame,
    landed_days: Set[date],
    *,
    rereads: bool,
) -> Settled:
    """Keep the rows of ``frame`` that are the run's to land (see the module docstring).

    Args:
        frame: Canonical rows the run read (typed; may carry :data:`DROP_DAY`).
        entity: Canonical entity name (its key and version column).
        interval: The run's interval and lookback.
        earlier: Key and version of the rows landed or quarantined on
            :func:`earlier_days` (columns named as in ``frame``).
        landed_days: Which of those days were landed.
        rereads: Whether a later run of the source reads an earlier day again.

    Returns:
        The kept rows (index reset) and the counts of rows left out.
    """
    import pandas as pd

    key, version = KEYS[entity], VERSION_COLUMNS[entity]
    stamps = frame[version]
    in_interval = ((stamps >= interval.start) & (stamps < interval.end)).fillna(False)
    nothing = pd.Series(False, index=frame.index)
    if DROP_DAY in frame.columns:
        earlier_drop = frame[DROP_DAY].notna() & (frame[DROP_DAY] < interval.ds)
        foreign = earlier_drop & ~in_interval
        next_day_end = interval.end + timedelta(days=1)
        past_end = ((stamps >= interval.end) & (stamps < next_day_end)).fillna(False)
        next_day = ~earlier_drop & past_end & (interval.lookback > timedelta(0))
    else:
        foreign = next_day = nothing
    pairs = frame[[key, version]].astype({version: "datetime64[us, UTC]"})
    known = earlier[[key, version]].astype({version: "datetime64[us, UTC]"}).drop_duplicates()
    seen = (
        pairs.merge(known.assign(_seen=True), on=[key, version], how="left")["_seen"]
        .fillna(False)
        .astype(bool)
        .to_numpy()
    )
    already = pd.Series(seen, index=frame.index) & stamps.notna() & ~foreign & ~next_day
    late = ((stamps >= interval.window_start) & (stamps < interval.start)).fillna(False)
    if rereads:
        day_landed = stamps.dt.date.isin(set(landed_days))
        not_due = late & ~day_landed & ~already & ~foreign
    else:
        not_due = nothing
    keep = ~(foreign | next_day | already | not_due)
    return Settled(
        frame=frame.loc[keep].reset_index(drop=True),
        already_landed=int(already.sum()),
        not_yet_due=int(not_due.sum()),
        left_for_next_day=int(next_day.sum()),
    )

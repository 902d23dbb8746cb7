"""The demo shop written straight into the lake, for tests and benchmarks without Airflow.

:func:`write_raw_from_frames` lands, for every requested day, what the source DAGs
``cva_source_demo_shop`` and ``cva_source_demo_feedback`` would land for that day:

* ``raw/demo_shop/transactions``: the rows of ``TRANSACTIONS_SQL`` whose watermark lies in
  the day: every line of an order last updated that day as a ``purchase`` (``L<line>``),
  plus a ``cancellation`` (``C<line>``, negative quantity, at the cancellation time) for
  each line of a cancelled order, and each return booked that day (``R<return>``);
* ``raw/demo_shop/customers`` and ``raw/demo_shop/items``: customers / products whose
  ``updated_at`` lies in the day;
* ``raw/demo_feedback/feedback``: the day's feedback drop (by ``submitted_at``).

The same mapping functions as the DAGs turn the source columns into canonical rows
(:mod:`cva_tasks.sources.demo_shop`, :mod:`cva_tasks.sources.demo_feedback`,
:func:`cva_tasks.sources.canonical.to_table`), but over all days at once instead of one
SQL query per day. Like the DAGs, a day without rows gets an empty partition, and rows
last updated before the first requested day are never landed (a watermark extract only
sees rows that change while it runs).

With ``stage=True`` (the default) each day is then staged exactly as
:func:`cva_tasks.staging.stage_day` would stage it (same function, fed from memory, with
the same record of the raw files it was built from), so the features can be built right
away and the daily DAG's stage step finds these days up to date.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cva_tasks import staging, storage
from cva_tasks.lake import Lake
from cva_tasks.sources import demo_feedback, demo_shop
from cva_tasks.sources.base import Interval
from cva_tasks.sources.canonical import REJECTED, to_table

if TYPE_CHECKING:
    import pyarrow as pa

    from cva_tasks.demo.shop import ShopFrames

log = logging.getLogger(__name__)

SHOP = "demo_shop"
FEEDBACK = "demo_feedback"
SOURCES: tuple[str, ...] = (SHOP, FEEDBACK)
_US_PER_DAY = 86_400_000_000
_EPOCH = date(1970, 1, 1)
# Transactions are mapped a month of days at a time: about 1M rows per block at
# 1M customers, which keeps the pandas copies of the mapping small.
_BLOCK_DAYS = 31
_PURCHASE, _CANCELLATION, _RETURN = 0, 1, 2


def _us(series: pd.Series) -> np.ndarray:
    """Timestamps (tz-aware) as int64 epoch microseconds."""
    return np.asarray(series.dt.as_unit("us").array.asi8, dtype=np.int64)


def _ts(us: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(us, dtype=np.int64).view("datetime64[us]")).dt.tz_localize(UTC)


def _epoch_day(day: date) -> int:
    return (day - _EPOCH).days


class _DaySlices:
    """Canonical rows of one (source, entity), sorted by day, sliced per day."""

    def __init__(self, entity: str) -> None:
        self.entity = entity
        self.by_day: dict[int, pa.Table] = {}

    def add(self, table: pa.Table, days: np.ndarray) -> None:
        """Add rows sorted by ``days`` (epoch day of each row)."""
        if len(days) == 0:
            return
        bounds = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(days)]])
        for s, e in zip(starts, ends, strict=True):
            self.by_day[int(days[s])] = table.slice(int(s), int(e - s))

    def get(self, day: int) -> pa.Table:
        from cva_tasks.entities import SCHEMAS

        return self.by_day.get(day, SCHEMAS[self.entity].empty_table())


def _block_interval(days: np.ndarray) -> Interval:
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(days.min()))
    return Interval(start, start + timedelta(days=int(days.max() - days.min()) + 1))


def _select_days(day: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of rows whose day is wanted, ordered by day (stable)."""
    pos = np.flatnonzero(np.isin(day, wanted))
    return pos[np.argsort(day[pos], kind="stable")]


def _customers(frames: ShopFrames, wanted: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    src = frames.customers
    day = _us(src["updated_at"]) // _US_PER_DAY
    pos = _select_days(day, wanted)
    cols = ["customer_id", "email", "first_name", "last_name", "country", "signup_at"]
    frame = src.iloc[pos][[*cols, "updated_at"]].reset_index(drop=True)
    mapped = demo_shop.customers(frame, _block_interval(wanted))
    return to_table(mapped, "customers", f"{SHOP}.customers"), day[pos]


def _items(frames: ShopFrames, wanted: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    src = frames.products
    day = _us(src["updated_at"]) // _US_PER_DAY
    pos = _select_days(day, wanted)
    frame = src.iloc[pos][["product_id", "name", "category", "unit_price", "updated_at"]]
    mapped = demo_shop.items(frame.reset_index(drop=True), _block_interval(wanted))
    return to_table(mapped, "items", f"{SHOP}.items"), day[pos]


def _feedback(frames: ShopFrames, wanted: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    src = frames.feedback
    day = _us(src["submitted_at"]) // _US_PER_DAY
    pos = _select_days(day, wanted)
    frame = src.iloc[pos].reindex(columns=list(demo_feedback.COLUMNS)).reset_index(drop=True)
    mapped = demo_feedback.feedback(frame, _block_interval(wanted))
    # The DAG quarantines what the mapping rejects; the generator makes none.
    clean = mapped[REJECTED].isna().to_numpy()
    table = to_table(mapped.loc[clean].reset_index(drop=True), "feedback", f"{FEEDBACK}.feedback")
    return table, day[pos][clean]


class _Transactions:
    """The demo shop's order lines, cancellations and returns as canonical row specs.

    A row spec is ``(kind, ref, day)``: ``ref`` is the order-line position for
    purchases and cancellations, the return position for returns; ``day`` is the
    epoch day of the row's watermark (the order's or the return's ``updated_at``).
    """

    def __init__(self, frames: ShopFrames) -> None:
        orders, lines, returns = frames.orders, frames.order_lines, frames.returns
        order_index = pd.Index(orders["order_id"].to_numpy())
        line_order = order_index.get_indexer(lines["order_id"].to_numpy())
        if (line_order < 0).any():
            raise ValueError("order lines refer to unknown orders")
        self.line_id = lines["order_line_id"].to_numpy(dtype=np.int64)
        self.order_id = lines["order_id"].to_numpy(dtype=np.int64)
        self.product_id = lines["product_id"].to_numpy(dtype=np.int64)
        self.quantity = lines["quantity"].to_numpy(dtype=np.int64)
        self.price = lines["unit_price"].to_numpy(dtype=np.float64)
        self.customer_id = orders["customer_id"].to_numpy(dtype=np.int64)[line_order]
        self.ordered = _us(orders["ordered_at"])[line_order]
        self.updated = _us(orders["updated_at"])[line_order]
        self.cancelled = (orders["status"] == "cancelled").to_numpy()[line_order]
        del line_order
        self.return_line = pd.Index(self.line_id).get_indexer(returns["order_line_id"].to_numpy())
        if (self.return_line < 0).any():
            raise ValueError("returns refer to unknown order lines")
        self.return_id = returns["return_id"].to_numpy(dtype=np.int64)
        self.return_qty = returns["quantity"].to_numpy(dtype=np.int64)
        self.returned = _us(returns["returned_at"])
        self.return_updated = _us(returns["updated_at"])

    def specs(self, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row specs of the wanted days, sorted by (day, kind, ref)."""
        n_lines = len(self.line_id)
        cancel_ref = np.flatnonzero(self.cancelled)
        kind = np.concatenate(
            [
                np.full(n_lines, _PURCHASE, np.int8),
                np.full(len(cancel_ref), _CANCELLATION, np.int8),
                np.full(len(self.return_id), _RETURN, np.int8),
            ]
        )
        ref = np.concatenate([np.arange(n_lines), cancel_ref, np.arange(len(self.return_id))])
        day = (
            np.concatenate([self.updated, self.updated[cancel_ref], self.return_updated])
            // _US_PER_DAY
        )
        keep = np.isin(day, wanted)
        kind, ref, day = kind[keep], ref[keep], day[keep]
        order = np.lexsort((ref, kind, day))
        return kind[order], ref[order], day[order]

    def source_frame(self, kind: np.ndarray, ref: np.ndarray) -> pd.DataFrame:
        """The rows as ``TRANSACTIONS_SQL`` returns them (before the mapping)."""
        is_return = kind == _RETURN
        returned = ref[is_return]
        line = ref.copy()
        line[is_return] = self.return_line[returned]
        ident = self.line_id[line]
        ident[is_return] = self.return_id[returned]
        quantity = self.quantity[line]
        quantity[is_return] = self.return_qty[returned]
        quantity = np.where(kind == _PURCHASE, quantity, -quantity)
        occurred = np.where(kind == _PURCHASE, self.ordered[line], self.updated[line])
        occurred[is_return] = self.returned[returned]
        updated = self.updated[line]
        updated[is_return] = self.return_updated[returned]
        prefix = pd.Series(np.array(["L", "C", "R"], dtype=object)[kind], dtype="string")
        kinds = np.array(["purchase", "cancellation", "return"], dtype=object)[kind]
        return pd.DataFrame(
            {
                "transaction_id": prefix + pd.Series(ident).astype("string"),
                "order_id": self.order_id[line],
                "customer_id": self.customer_id[line],
                "product_id": self.product_id[line],
                "quantity": quantity,
                "unit_price": self.price[line],
                "kind": pd.Series(kinds, dtype="string"),
                "occurred_at": _ts(occurred),
                "updated_at": _ts(updated),
            }
        )


def _period_days(frames: ShopFrames) -> list[date]:
    return [frames.start + timedelta(days=n) for n in range((frames.end - frames.start).days + 1)]


def write_raw_from_frames(
    frames: ShopFrames,
    data_root: str,
    days: Sequence[date] | None = None,
    *,
    stage: bool = True,
    pseudonymise_key: str | None = None,
) -> None:
    """Land the demo shop's raw partitions (and stage them) for each day, as the DAGs would.

    Writes ``raw/demo_shop/{transactions,customers,items}/ds=<day>`` and
    ``raw/demo_feedback/feedback/ds=<day>`` (canonical schemas of
    :mod:`cva_tasks.entities`; grain: one row per changed row of the day, see the
    module docstring) for every day in ``days``, each partition replaced whole;
    with ``stage`` also ``staged/<entity>/ds=<day>`` (:mod:`cva_tasks.staging`).

    Args:
        frames: The generated shop (:func:`cva_tasks.demo.shop.generate_frames`).
        data_root: Lake root (local path or fsspec URI).
        days: Days to land; default every day of the shop's period.
        stage: Also stage each day (identical to ``stage_day(day, SOURCES)``).
        pseudonymise_key: ``CVA_PSEUDONYMISE_KEY``, as ``stage_day`` takes it.
    """
    t0 = time.perf_counter()
    root = data_root.rstrip("/")
    day_list = sorted(set(days)) if days is not None else _period_days(frames)
    if not day_list:
        return
    wanted = np.array([_epoch_day(d) for d in day_list], dtype=np.int64)

    slices = {
        (SHOP, "transactions"): _DaySlices("transactions"),
        (SHOP, "customers"): _DaySlices("customers"),
        (SHOP, "items"): _DaySlices("items"),
        (FEEDBACK, "feedback"): _DaySlices("feedback"),
    }
    slices[SHOP, "customers"].add(*_customers(frames, wanted))
    slices[SHOP, "items"].add(*_items(frames, wanted))
    slices[FEEDBACK, "feedback"].add(*_feedback(frames, wanted))
    log.info("mapped customers, items and feedback (%.1f s)", time.perf_counter() - t0)

    transactions = _Transactions(frames)
    kind, ref, row_day = transactions.specs(wanted)
    log.info("%d transaction rows over %d days to land", len(kind), len(day_list))
    for b in range(0, len(day_list), _BLOCK_DAYS):
        block = wanted[b : b + _BLOCK_DAYS]
        lo, hi = np.searchsorted(row_day, [block.min(), block.max() + 1])
        frame = transactions.source_frame(kind[lo:hi], ref[lo:hi])
        mapped = demo_shop.transactions(frame, _block_interval(block))
        slices[SHOP, "transactions"].add(
            to_table(mapped, "transactions", f"{SHOP}.transactions"), row_day[lo:hi]
        )
        _write_days(root, day_list[b : b + _BLOCK_DAYS], slices, stage, pseudonymise_key)
        log.info(
            "landed%s days %s..%s (%d/%d days, %d transaction rows, %.1f s)",
            " and staged" if stage else "",
            day_list[b],
            day_list[min(b + _BLOCK_DAYS, len(day_list)) - 1],
            min(b + _BLOCK_DAYS, len(day_list)),
            len(day_list),
            hi - lo,
            time.perf_counter() - t0,
        )
        for piece in slices.values():  # drop what is written, keep memory flat
            for d in block:
                piece.by_day.pop(int(d), None)


def _write_days(
    root: str,
    days: Sequence[date],
    slices: dict[tuple[str, str], _DaySlices],
    stage: bool,
    pseudonymise_key: str | None = None,
) -> None:
    # Sequential on purpose: writer threads were slower (the per-partition work is
    # mostly Python in fsspec, which holds the GIL).
    from cva_tasks.privacy.policy import StagingPrivacy

    lake = Lake(root)
    privacy = StagingPrivacy.for_lake(lake, pseudonymise_key) if stage else None
    for day in days:
        key = _epoch_day(day)
        by_entity: dict[str, dict[str, pa.Table]] = {}
        for (source, entity), piece in slices.items():
            table = piece.get(key)
            storage.replace_partition(table, lake.raw(source, entity, day))
            by_entity.setdefault(entity, {})[source] = table
        if stage:
            for entity, tables in by_entity.items():
                # The same record stage_day keeps, so the stage step finds these up to date.
                inputs = {
                    source: storage.partition_fingerprint(lake.raw(source, entity, day))
                    for source in tables
                }
                staging.write_staged(
                    lake, entity, day, staging.stage_tables(entity, tables, privacy), inputs
                )

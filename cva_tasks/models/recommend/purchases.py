"""Purchase lines as the recommenders read them: checks, encoding, weighting, groups.

The models work on plain DataFrames turned into integer codes here, so they do not
depend on storage: :func:`purchase_log` encodes the lines before an as-of instant as a
:class:`PurchaseLog` (sorted by customer, one array per column), :class:`Weighting`
turns its lines into one implicit-feedback value per (customer, item), and
:class:`CustomerGroups` holds the segment and country used for cold start.
:func:`training_data` is the shared first step of fitting: the catalogue of items sold
before the as-of instant, the log on it and the groups.

Per-pair feedback is summed in float64, so it does not depend on the order of the
input lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cva_tasks.models.base import NotEnoughData

INTERACTION_COLUMNS = ("customer_id", "item_id", "quantity", "occurred_at")
GROUP_KINDS = ("segment", "country")
#: Microseconds in a day.
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class Weighting:
    """How purchase lines become one implicit-feedback value per (customer, item).

    Each line weighs ``0.5 ** (age_days / half_life_days)`` (1 without a half-life)
    times its quantity term (``"one"``: 1, ``"log1p"``: ``log(1 + quantity)``,
    ``"raw"``: the quantity); a pair's value is ``transform`` of the sum over its lines
    (``"sum"``, ``"log1p"`` or ``"binary"``: 1 whatever was bought).

    Attributes:
        half_life_days: Recency half-life in days, or ``None`` for no decay.
        quantity: Quantity term per line.
        transform: Transform of the per-pair sum.
    """

    half_life_days: float | None = None
    quantity: str = "one"
    transform: str = "sum"

    def __post_init__(self) -> None:
        if self.half_life_days is not None and not self.half_life_days > 0:
            raise ValueError(f"half_life_days must be positive or None, got {self.half_life_days}")
        if self.quantity not in ("one", "log1p", "raw"):
            raise ValueError(f"quantity must be 'one', 'log1p' or 'raw', got {self.quantity!r}")
        if self.transform not in ("sum", "log1p", "binary"):
            raise ValueError(
                f"transform must be 'sum', 'log1p' or 'binary', got {self.transform!r}"
            )

    def line_weights(self, age_days: np.ndarray, quantity: np.ndarray) -> np.ndarray:
        """Weight of each line (float64, so that sums do not depend on the line order)."""
        weights = np.ones(len(age_days), dtype=np.float64)
        if self.half_life_days is not None:
            weights = np.exp2(-age_days.astype(np.float64) / self.half_life_days)
        if self.quantity == "log1p":
            weights *= np.log1p(quantity.astype(np.float64))
        elif self.quantity == "raw":
            weights *= quantity
        return weights

    def apply_transform(self, values: np.ndarray) -> np.ndarray:
        """The per-pair transform applied to summed line weights (in place when possible)."""
        if self.transform == "log1p":
            return np.log1p(values)
        if self.transform == "binary":
            return np.ones_like(values)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Weighting:
        """Inverse of :func:`dataclasses.asdict`."""
        return cls(**values)


@dataclass(frozen=True, eq=False)
class PurchaseLog:
    """Purchase lines as integer codes, sorted by customer (no strings, no DataFrame).

    Attributes:
        customer_ids: The customers (rows); lines of customer ``c`` are
            ``indptr[c]:indptr[c + 1]``.
        item_ids: The catalogue (columns).
        customer: Customer code of each line (int32, ascending).
        item: Item code of each line (int32).
        age_days: Days between the line and ``as_of`` (float32, positive).
        day: UTC calendar day of the line, days since 1970-01-01 (int32).
        quantity: Quantity of the line (float32, positive).
        indptr: Line offsets per customer (int64, ``len(customer_ids) + 1``).
        as_of: The instant the ages are measured from (UTC).
    """

    customer_ids: pd.Index
    item_ids: pd.Index
    customer: np.ndarray
    item: np.ndarray
    age_days: np.ndarray
    day: np.ndarray
    quantity: np.ndarray
    indptr: np.ndarray
    as_of: pd.Timestamp

    @property
    def n_customers(self) -> int:
        return len(self.customer_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def matrix(self, weighting: Weighting, start: int = 0, stop: int | None = None):
        """Customers ``start:stop`` x items, weighted (``scipy.sparse.csr_matrix``, float32)."""
        stop = self.n_customers if stop is None else stop
        lo, hi = self.indptr[start], self.indptr[stop]
        weights = weighting.line_weights(self.age_days[lo:hi], self.quantity[lo:hi])
        # Summed in float64, then rounded: the result does not depend on the order of
        # the lines (float32 sums would, in their last bits, and ALS amplifies that).
        matrix = sparse.csr_matrix(
            (weights, (self.customer[lo:hi] - start, self.item[lo:hi])),
            shape=(stop - start, self.n_items),
            dtype=np.float64,
        )
        matrix.sum_duplicates()
        return sparse.csr_matrix(
            (
                weighting.apply_transform(matrix.data).astype(np.float32),
                matrix.indices,
                matrix.indptr,
            ),
            shape=matrix.shape,
        )

    def bought(self, start: int = 0, stop: int | None = None):
        """Which items customers ``start:stop`` bought (``csr_matrix`` of ones, int8)."""
        stop = self.n_customers if stop is None else stop
        lo, hi = self.indptr[start], self.indptr[stop]
        matrix = sparse.csr_matrix(
            (
                np.ones(hi - lo, dtype=np.int8),
                (self.customer[lo:hi] - start, self.item[lo:hi]),
            ),
            shape=(stop - start, self.n_items),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1
        return matrix


def aware_timestamp(value: datetime | pd.Timestamp | str, name: str) -> pd.Timestamp:
    """``value`` as a UTC Timestamp in microseconds; naive values are refused (ValueError).

    Unlike :func:`cva_tasks.days.utc_timestamp`, which reads naive as UTC: an as-of
    instant given without a zone here is taken for a mistake.
    """
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {value!r}")
    return stamp.tz_convert("UTC").as_unit("us")


def require_columns(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``frame`` is a DataFrame with ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {list(columns)}")


def check_interactions(interactions: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the column and the rule an interaction frame breaks.

    Rules: columns ``customer_id, item_id, quantity, occurred_at``; no nulls in them;
    ``occurred_at`` a timezone-aware datetime; ``quantity`` a positive number
    (purchase lines only: cancellations and returns are the caller's to remove).
    """
    require_columns(interactions, "interactions", INTERACTION_COLUMNS)
    for column in INTERACTION_COLUMNS:
        nulls = int(interactions[column].isna().sum())
        if nulls:
            raise ValueError(f"interactions.{column} has {nulls} null value(s)")
    occurred = interactions["occurred_at"]
    if not isinstance(occurred.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"interactions.occurred_at must be a timezone-aware datetime, got {occurred.dtype}"
        )
    if not pd.api.types.is_numeric_dtype(interactions["quantity"]):
        raise ValueError(
            f"interactions.quantity must be numeric, got {interactions['quantity'].dtype}"
        )
    bad = int((interactions["quantity"] <= 0).sum())
    if bad:
        raise ValueError(
            f"interactions.quantity must be positive (purchase lines only), {bad} row(s) are not"
        )


def stamp_us(stamp: pd.Timestamp) -> int:
    """Microseconds since the epoch of ``stamp``."""
    # Timestamp.value is in nanoseconds whatever the unit.
    return int(stamp.value // 1000)


def epoch_us(occurred: pd.Series) -> np.ndarray:
    """Microseconds since the epoch (UTC); a view, not a copy, when stored in microseconds."""
    values = occurred.array
    if values.unit != "us":
        values = values.as_unit("us")
    return values.asi8


def purchase_log(
    interactions: pd.DataFrame,
    item_ids: pd.Index,
    as_of: datetime | pd.Timestamp,
    customer_ids: pd.Index | None = None,
    *,
    check: bool = True,
) -> PurchaseLog:
    """Encode the lines before ``as_of`` of known items (and of ``customer_ids`` if given).

    Args:
        interactions: Purchase lines (see :func:`check_interactions`).
        item_ids: The catalogue; lines of other items are dropped.
        as_of: Lines at or after it are dropped; ages are measured from it.
        customer_ids: The rows, in this order; lines of other customers are dropped.
            Default: every customer with a kept line, sorted.
        check: Validate ``interactions`` first (callers that already did pass False).

    Returns:
        The :class:`PurchaseLog`.
    """
    if check:
        check_interactions(interactions)
    as_of = aware_timestamp(as_of, "as_of")
    as_of_us = stamp_us(as_of)
    # Memory matters at tens of millions of lines: codes go to int32 at once and
    # every temporary is released before the next one is made.
    keep = epoch_us(interactions["occurred_at"]) < as_of_us
    item = item_ids.get_indexer(interactions["item_id"])
    keep &= item >= 0
    item = item.astype(np.int32)
    if customer_ids is None:
        customer_column = interactions["customer_id"]
        if not keep.all():
            customer_column = customer_column[keep]
        codes, uniques = pd.factorize(customer_column, sort=True)
        del customer_column
        customer_index = pd.Index(uniques, name="customer_id")
        customer = codes.astype(np.int32)
        del codes
    else:
        customer_index = customer_ids
        customer = customer_ids.get_indexer(interactions["customer_id"])
        keep &= customer >= 0
        customer = customer[keep].astype(np.int32)
    all_kept = bool(keep.all())
    order = np.argsort(customer, kind="stable")
    customer = customer[order]
    item = (item if all_kept else item[keep])[order]
    when = epoch_us(interactions["occurred_at"])
    when = (when if all_kept else when[keep])[order]
    day = (when // DAY_US).astype(np.int32)
    when = (as_of_us - when).astype(np.float64)
    when /= DAY_US
    age_days = when.astype(np.float32)
    del when
    quantity = interactions["quantity"].to_numpy()
    quantity = (quantity if all_kept else quantity[keep])[order].astype(np.float32)
    del order, keep
    counts = np.bincount(customer, minlength=len(customer_index))
    indptr = np.zeros(len(customer_index) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return PurchaseLog(
        customer_ids=customer_index,
        item_ids=item_ids,
        customer=customer,
        item=item,
        age_days=age_days,
        day=day,
        quantity=quantity,
        indptr=indptr,
        as_of=as_of,
    )


@dataclass(frozen=True, eq=False)
class CustomerGroups:
    """Segment and country of each known customer, as codes.

    Attributes:
        customer_ids: The customers.
        codes: Per kind (``segment``, ``country``), the group code of each customer
            (int32, -1 when unknown).
        labels: Per kind, the group labels (codes index them).
    """

    customer_ids: pd.Index
    codes: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, customers: pd.DataFrame | None) -> CustomerGroups:
        """From ``customer_id, country`` and optionally ``segment`` (nulls allowed)."""
        if customers is None:
            return cls(pd.Index([]), {}, {})
        require_columns(customers, "customers", ("customer_id", "country"))
        if customers["customer_id"].isna().any():
            raise ValueError("customers.customer_id has null value(s)")
        duplicated = customers["customer_id"].duplicated()
        if duplicated.any():
            examples = customers.loc[duplicated, "customer_id"].head(3).tolist()
            raise ValueError(f"customers.customer_id must be unique, repeated: {examples}")
        codes, labels = {}, {}
        for kind in GROUP_KINDS:
            if kind in customers.columns:
                kind_codes, uniques = pd.factorize(customers[kind].astype("string"), sort=True)
                codes[kind] = kind_codes.astype(np.int32)
                labels[kind] = np.asarray(uniques, dtype=str)
        return cls(pd.Index(customers["customer_id"].to_numpy()), codes, labels)

    def lookup(self, customer_ids: pd.Index, kind: str) -> np.ndarray:
        """Group codes of ``customer_ids`` (-1: unknown customer or group)."""
        if kind not in self.codes or len(self.customer_ids) == 0:
            return np.full(len(customer_ids), -1, dtype=np.int32)
        position = self.customer_ids.get_indexer(customer_ids)
        out = np.full(len(customer_ids), -1, dtype=np.int32)
        known = position >= 0
        out[known] = self.codes[kind][position[known]]
        return out


def build_catalogue(items: pd.DataFrame, bought: pd.Series) -> tuple[pd.Index, np.ndarray]:
    """The items of ``bought`` (sorted) and their names from ``items`` (validated)."""
    require_columns(items, "items", ("item_id", "name"))
    if items["item_id"].isna().any():
        raise ValueError("items.item_id has null value(s)")
    duplicated = items["item_id"].duplicated()
    if duplicated.any():
        examples = items.loc[duplicated, "item_id"].head(3).tolist()
        raise ValueError(f"items.item_id must be unique, repeated: {examples}")
    sold = pd.Index(pd.unique(bought))
    known = pd.Index(items["item_id"].to_numpy())
    unknown = sold[known.get_indexer(sold) < 0]
    if len(unknown):
        raise ValueError(
            f"interactions hold {len(unknown)} item_id(s) missing from items, "
            f"e.g. {unknown[:3].tolist()}"
        )
    catalogue = sold.sort_values()
    names = items.set_index("item_id")["name"].reindex(catalogue)
    names = names.astype(object).where(names.notna(), pd.Series(catalogue.astype(str)).values)
    return pd.Index(catalogue, name="item_id"), names.to_numpy(dtype=object)


def training_data(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    customers: pd.DataFrame | None,
    as_of: datetime | pd.Timestamp,
    *,
    check: bool = True,
) -> tuple[PurchaseLog, np.ndarray, CustomerGroups]:
    """The purchase log before ``as_of`` on the catalogue of items sold before it.

    Returns:
        ``(purchases, item_names, groups)``: the :class:`PurchaseLog`, the name of each
        catalogue item and the :class:`CustomerGroups` of ``customers``.

    Raises:
        NotEnoughData: no line before ``as_of``.
    """
    as_of = aware_timestamp(as_of, "as_of")
    if check:
        check_interactions(interactions)
    before = epoch_us(interactions["occurred_at"]) < stamp_us(as_of)
    if not before.any():
        raise NotEnoughData(f"no interaction before as_of {as_of}: nothing to fit on")
    item_ids, names = build_catalogue(items, interactions["item_id"][before])
    del before
    groups = CustomerGroups.from_frame(customers)
    return purchase_log(interactions, item_ids, as_of, check=False), names, groups

"""Product recommendations: bestsellers, item-based collaborative filtering, implicit ALS.

Every customer gets two lists:

* ``next_best``: the top ``k`` items they have not bought yet (already-bought items
  are excluded by default), from the chosen model;
* ``buy_again``: items they bought on at least ``min_purchases`` distinct days,
  ranked by a recency-decayed count of those days (repeat purchases are common in
  retail, so they get their own list instead of crowding out discovery).

Models (all on plain DataFrames, so they do not depend on storage):

* ``bestsellers_recent`` / ``bestsellers_all_time``: the popularity baseline, items
  ranked by the share of buyers who bought them in the last ``window_days`` before
  the as-of instant (``None``: all history). What a marketer would send without us.
* ``item_cf``: item-based collaborative filtering. The customer x item matrix holds
  implicit feedback (purchase lines weighted by recency and quantity, see
  :class:`Weighting`); item-item similarities are (asymmetric) cosines of its
  columns, pruned to each item's ``neighbours`` nearest items; a customer's score for
  item ``j`` is ``sum_i profile_i * similarity(i, j)`` over the items ``i`` they
  bought. The item ``i`` that contributes most is the reason ("because you bought
  ...").
* ``als``: matrix factorization by alternating least squares (``implicit`` 0.7.3,
  Hu, Koren & Volinsky 2008). Only the item factors are kept: a customer's factors are
  solved from their purchases when they are scored (ALS's exact least-squares step),
  so customers unseen in training and purchases made since are used. The reason is
  the bought item nearest (cosine of item factors, times its weight) to the
  recommended one: an approximation of ALS's own explanation, which needs one
  Cholesky factorization per customer.

Trend blend: retail demand moves with the season (the Online Retail test period holds
Christmas), which pure co-purchase models ignore. The next-best scores of item-CF and
ALS are scaled per customer to a maximum of 1 and ``trend_weight`` times the recent
bestsellers' scores (last ``recent_window_days``, scaled to a maximum of 1) is added.

Customers with fewer than ``min_items`` distinct bought items (cold start) get the
recent bestsellers of their segment, else of their country, else of everybody
(a group qualifies with at least ``min_group_customers`` buyers in the window). A
model whose own scores run out (item-CF has no co-purchase evidence for some
customers) fills the rest of the list with the recent global bestsellers, with that
reason. Each list names the model that produced it in ``model``.

Defaults (:data:`DEFAULT_PARAMS`, :func:`fit_recommender`) were chosen on Online
Retail with training before 2011-10-01 and validation in October 2011, i.e. before the
test period of ``cva evaluate recommendations``: item-CF on binary purchases with BM25
weighting and 50 neighbours; ALS with 64 factors on lines weighted by a 90-day
half-life times ``log(1 + quantity)``; trend weight 0.4 over 14 days; ``min_items`` 2
(1 to 3 made no measurable difference). On the test period (see that module) NDCG@10
was 0.078 for the last-30-days bestsellers, 0.095 for item-CF and 0.119 for ALS.

Memory: the customer x item matrix is ``scipy.sparse`` throughout; scoring works on
chunks of customers, a dense block of at most ``SCORE_BLOCK_CELLS`` scores at a time,
so memory is bounded however many customers are scored. There is never a dense
customer x item array of all customers.

Evaluation protocol (:func:`train_recommenders`, and ``cva evaluate
recommendations`` on real data): train on purchases before a split instant; the
relevant items of a customer are the items they bought in the test window that they
had not bought before; only customers with a purchase in both periods and at least
one such new item count. Metrics at ``k`` (:func:`ranking_metrics`): precision
(hits / k), recall (hits / relevant), NDCG (binary gains, ideal DCG over
``min(relevant, k)`` positions), MAP (average precision over ``min(relevant, k)``)
and catalogue coverage (distinct recommended items / items in the catalogue).

Determinism: the bestsellers and item-CF are exact computations; ALS starts from
factors drawn with ``seed`` and its per-customer solves are independent of the
thread count (``implicit`` runs on up to 2 threads, BLAS on one while ALS works, so
sums do not depend on thread scheduling); per-pair feedback is summed in float64 so
it does not depend on the order of the input lines. Same inputs and seed give the
same lists.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cva_tasks.models.base import NotEnoughData

log = logging.getLogger(__name__)

NEXT_BEST = "next_best"
BUY_AGAIN = "buy_again"
LISTS = (NEXT_BEST, BUY_AGAIN)
OUTPUT_COLUMNS = ("customer_id", "list", "rank", "item_id", "item_name", "score", "reason", "model")
INTERACTION_COLUMNS = ("customer_id", "item_id", "quantity", "occurred_at")
COMPARISON_METRIC = "ndcg_at_10"
CANDIDATES = ("bestsellers_all_time", "bestsellers_recent", "item_cf", "als")
FORMAT_VERSION = 1
GROUP_KINDS = ("segment", "country")

# Largest dense block of scores (rows x items) held at once: 2**24 float32 = 64 MiB.
SCORE_BLOCK_CELLS = 1 << 24
_DAY_US = 86_400 * 1_000_000


# --------------------------------------------------------------------------- #
# Interaction weighting and the purchase log
# --------------------------------------------------------------------------- #


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


def _timestamp(value: datetime | pd.Timestamp | str, name: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got {value!r}")
    return stamp.tz_convert("UTC").as_unit("us")


def _require(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
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
    _require(interactions, "interactions", INTERACTION_COLUMNS)
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


def _stamp_us(stamp: pd.Timestamp) -> int:
    # Timestamp.value is in nanoseconds whatever the unit.
    return int(stamp.value // 1000)


def _epoch_us(occurred: pd.Series) -> np.ndarray:
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
    as_of = _timestamp(as_of, "as_of")
    as_of_us = _stamp_us(as_of)
    # Memory matters at tens of millions of lines: codes go to int32 at once and
    # every temporary is released before the next one is made.
    keep = _epoch_us(interactions["occurred_at"]) < as_of_us
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
    when = _epoch_us(interactions["occurred_at"])
    when = (when if all_kept else when[keep])[order]
    day = (when // _DAY_US).astype(np.int32)
    when = (as_of_us - when).astype(np.float64)
    when /= _DAY_US
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


# --------------------------------------------------------------------------- #
# Customer groups (segment, country) for cold start
# --------------------------------------------------------------------------- #


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
        _require(customers, "customers", ("customer_id", "country"))
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


# --------------------------------------------------------------------------- #
# Top-k selection on dense score blocks
# --------------------------------------------------------------------------- #


def _mask(scores: np.ndarray, excluded) -> None:
    """Set the scores of ``excluded`` (csr, same rows) to -inf, in place."""
    if excluded is None or excluded.nnz == 0:
        return
    rows = np.repeat(np.arange(excluded.shape[0]), np.diff(excluded.indptr))
    scores[rows, excluded.indices] = -np.inf


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` columns of each row, by score descending then column ascending.

    Which of several items tied exactly at the cut-off gets in is up to numpy's
    selection (deterministic for the same input); bestseller rankings, where ties are
    common, go through :func:`top_k_ranked`, which always prefers the lower item code.

    Args:
        scores: Dense (rows x items) block; ``-inf`` marks items that must not come out.

    Returns:
        ``(items, values)``, both ``(rows, k)``; positions without a candidate hold
        item ``-1`` and value ``-inf``.
    """
    n_rows, n_items = scores.shape
    width = min(k, n_items)
    if width == 0 or n_rows == 0:
        return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, np.float32)
    if width < n_items:
        # Row blocks: argpartition returns an int64 index per cell, twice the block.
        step = max(1, (1 << 21) // n_items)
        candidates = np.empty((n_rows, width), dtype=np.int64)
        for lo in range(0, n_rows, step):
            block = np.argpartition(scores[lo : lo + step], n_items - width, axis=1)
            candidates[lo : lo + step] = block[:, n_items - width :]
    else:
        candidates = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    values = np.take_along_axis(scores, candidates, axis=1)
    # Sort by score descending, then item code ascending: deterministic ties.
    order = np.lexsort((candidates, -values), axis=1)
    items = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    values = np.take_along_axis(values, order, axis=1).astype(np.float32)
    items[~np.isfinite(values)] = -1
    if width < k:
        items = np.pad(items, ((0, 0), (0, k - width)), constant_values=-1)
        values = np.pad(values, ((0, 0), (0, k - width)), constant_values=-np.inf)
    return items, values


def rank_rows(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's items by score descending, then item ascending; -1 past the positive ones.

    Returns:
        ``(items, values)`` of the shape of ``scores``.
    """
    order = np.argsort(-scores, axis=1, kind="stable")
    values = np.take_along_axis(scores, order, axis=1).astype(np.float32)
    order[~(values > 0)] = -1
    return order, values


def top_k_ranked(
    ranking: tuple[np.ndarray, np.ndarray], which: np.ndarray, excluded, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` for rows that share a few rankings (bestsellers): no dense block.

    Row ``r`` takes the first ``k`` items of ranking ``which[r]`` that ``excluded``
    (csr, canonical, one row per row) does not hold. Only the first
    ``k + max(excluded per row)`` positions of a ranking can be needed.
    """
    items_ranked, values_ranked = ranking
    n_rows, n_items = len(which), items_ranked.shape[1]
    per_row = np.diff(excluded.indptr) if excluded is not None else np.zeros(n_rows, np.int64)
    width = min(n_items, k + int(per_row.max(initial=0)))
    candidates = items_ranked[:, :width][which]
    values = values_ranked[:, :width][which]
    valid = candidates >= 0
    if excluded is not None and excluded.nnz:
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), per_row)
        excluded_keys = rows * n_items + excluded.indices  # sorted: canonical csr
        keys = np.arange(n_rows, dtype=np.int64)[:, None] * n_items + candidates
        position = np.minimum(np.searchsorted(excluded_keys, keys), len(excluded_keys) - 1)
        valid &= excluded_keys[position] != keys
    rank = np.cumsum(valid, axis=1)
    take = valid & (rank <= k)
    out_items = np.full((n_rows, k), -1, dtype=np.int64)
    out_values = np.full((n_rows, k), -np.inf, dtype=np.float32)
    r, c = np.nonzero(take)
    out_items[r, rank[r, c] - 1] = candidates[r, c]
    out_values[r, rank[r, c] - 1] = values[r, c]
    return out_items, out_values


def _blend_trend(scores: np.ndarray, trend: np.ndarray, weight: float) -> None:
    """``scores / row max + weight * trend / max(trend)``, in place.

    Rows are scaled to a maximum of 1 so that one weight fits every customer, however
    many items they bought; rows without a positive score are left as they are.
    """
    row_max = scores.max(axis=1, keepdims=True)
    np.divide(scores, row_max, out=scores, where=row_max > 0)
    top = float(trend.max()) if len(trend) else 0.0
    if top > 0:
        scores += np.float32(weight / top) * trend


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Positions where a new value starts in a sorted array."""
    if len(sorted_values) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])


def _unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array.

    Sorting first is several times faster than ``np.unique``'s hashing on tens of
    millions of int64 keys here, and needs one copy.
    """
    ordered = np.sort(values)
    return ordered[_run_starts(ordered)]


def _chunk_rows(n_items: int, chunk_customers: int | None) -> int:
    if chunk_customers is not None:
        if chunk_customers < 1:
            raise ValueError(f"chunk_customers must be positive, got {chunk_customers}")
        return chunk_customers
    return max(256, SCORE_BLOCK_CELLS // max(n_items, 1))


# --------------------------------------------------------------------------- #
# Models
# --------------------------------------------------------------------------- #


def _window_label(window_days: int | None) -> str:
    return "of all time" if window_days is None else f"in the last {window_days} days"


class PopularityRecommender:
    """Bestsellers: items ranked by the share of buyers who bought them in a window.

    Also holds the bestsellers of every segment and country, for cold start.

    Args:
        window_days: Days before ``as_of`` that count; ``None`` for all history.
        min_group_customers: Buyers a segment or country needs in the window for its
            own list; smaller groups fall back to the next kind, then to everybody.
    """

    def __init__(self, window_days: int | None = 30, min_group_customers: int = 20) -> None:
        self.window_days = window_days
        self.min_group_customers = min_group_customers

    @property
    def name(self) -> str:
        return "bestsellers_all_time" if self.window_days is None else "bestsellers_recent"

    @property
    def config(self) -> dict[str, Any]:
        return {"window_days": self.window_days, "min_group_customers": self.min_group_customers}

    def fit(self, purchases: PurchaseLog, groups: CustomerGroups | None = None):
        """Count buyers per item (and per group and item) in the window; returns self."""
        if self.window_days is not None and self.window_days <= 0:
            raise ValueError(f"window_days must be positive or None, got {self.window_days}")
        in_window = np.ones(len(purchases.item), dtype=bool)
        if self.window_days is not None:
            in_window = purchases.age_days <= self.window_days
            if not in_window.any():
                log.warning(
                    "no purchase in the %d days before %s: bestsellers over all history",
                    self.window_days,
                    purchases.as_of,
                )
                in_window[:] = True
        n_items = purchases.n_items
        pairs = _unique(
            purchases.customer[in_window].astype(np.int64) * n_items + purchases.item[in_window]
        )
        del in_window
        pair_customer, pair_item = pairs // n_items, pairs % n_items
        del pairs
        # pair_customer is sorted: its runs are the buyers of the window.
        buyers_in_window = pair_customer[_run_starts(pair_customer)]
        n_buyers = max(len(buyers_in_window), 1)
        self.scores_ = (np.bincount(pair_item, minlength=n_items) / n_buyers).astype(np.float32)
        self.n_buyers_ = len(buyers_in_window)
        self.group_labels_: dict[str, np.ndarray] = {}
        self.group_scores_: dict[str, sparse.csr_matrix] = {}
        self.group_buyers_: dict[str, np.ndarray] = {}
        groups = groups or CustomerGroups.from_frame(None)
        for kind in groups.codes:
            labels = groups.labels[kind]
            code_of_customer = groups.lookup(purchases.customer_ids, kind)
            buyer_code = code_of_customer[buyers_in_window]
            buyers = np.bincount(buyer_code[buyer_code >= 0], minlength=len(labels))
            code = code_of_customer[pair_customer]
            known = code >= 0
            counts = sparse.csr_matrix(
                (np.ones(int(known.sum()), dtype=np.float32), (code[known], pair_item[known])),
                shape=(len(labels), n_items),
            )
            counts.sum_duplicates()
            share = sparse.diags(1.0 / np.maximum(buyers, 1)).astype(np.float32) @ counts
            self.group_labels_[kind] = labels
            self.group_scores_[kind] = share.tocsr().astype(np.float32)
            self.group_buyers_[kind] = buyers.astype(np.int64)
        return self

    def score(self, profile) -> np.ndarray:
        """The global bestseller scores for each row of ``profile``."""
        return np.tile(self.scores_, (profile.shape[0], 1))

    def reason(self, kind: str | None = None, label: str | None = None) -> str:
        """The reason text for a list of this model's bestsellers."""
        window = _window_label(self.window_days)
        if kind == "country":
            return f"bestseller in {label} {window}"
        if kind == "segment":
            return f"bestseller among {label} customers {window}"
        return f"bestseller {window}"

    def group_table(self) -> tuple[np.ndarray, list[str], list[str]]:
        """Dense score rows: row 0 everybody, then every qualifying group.

        Returns:
            ``(table, reasons, scopes)``, one reason and scope (``global``, ``segment``,
            ``country``) per row.
        """
        rows, reasons, scopes = [self.scores_], [self.reason()], ["global"]
        self._group_row: dict[str, np.ndarray] = {}
        for kind, labels in self.group_labels_.items():
            row_of_group = np.full(len(labels), -1, dtype=np.int64)
            dense = self.group_scores_[kind].toarray()
            for code, label in enumerate(labels):
                if self.group_buyers_[kind][code] >= self.min_group_customers:
                    row_of_group[code] = len(rows)
                    rows.append(dense[code])
                    reasons.append(self.reason(kind, str(label)))
                    scopes.append(kind)
            self._group_row[kind] = row_of_group
        table = np.vstack(rows).astype(np.float32)
        self._ranking = rank_rows(table)
        return table, reasons, scopes

    def ranking(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`rank_rows` of :meth:`group_table` (row 0: everybody)."""
        if not hasattr(self, "_ranking"):
            self.group_table()
        return self._ranking

    def rows_for(self, customer_ids: pd.Index, groups: CustomerGroups) -> np.ndarray:
        """Row of :meth:`group_table` for each customer: segment, else country, else 0.

        Groups are matched by label, so ``groups`` may come from a newer customer frame
        than the one the model was fitted with.
        """
        if not hasattr(self, "_group_row"):
            self.group_table()
        rows = np.zeros(len(customer_ids), dtype=np.int64)
        for kind in reversed(GROUP_KINDS):  # segment last: it wins over country
            if kind not in self._group_row or kind not in groups.codes:
                continue
            fitted = pd.Index(self.group_labels_[kind])
            to_fitted = fitted.get_indexer(pd.Index(groups.labels[kind]))
            code = groups.lookup(customer_ids, kind)
            fitted_code = np.where(code >= 0, to_fitted[np.maximum(code, 0)], -1)
            row = np.where(fitted_code >= 0, self._group_row[kind][fitted_code], -1)
            rows = np.where(row >= 0, row, rows)
        return rows

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"scores": self.scores_, "n_buyers": np.array([self.n_buyers_])}
        for kind, matrix in self.group_scores_.items():
            out[f"{kind}_labels"] = self.group_labels_[kind]
            out[f"{kind}_buyers"] = self.group_buyers_[kind]
            for part in ("data", "indices", "indptr"):
                out[f"{kind}_{part}"] = getattr(matrix, part)
        return out

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]):
        model = cls(**config)
        model.scores_ = arrays["scores"]
        model.n_buyers_ = int(arrays["n_buyers"][0])
        model.group_labels_, model.group_scores_, model.group_buyers_ = {}, {}, {}
        for kind in GROUP_KINDS:
            if f"{kind}_labels" not in arrays:
                continue
            labels = arrays[f"{kind}_labels"]
            model.group_labels_[kind] = labels
            model.group_buyers_[kind] = arrays[f"{kind}_buyers"]
            model.group_scores_[kind] = sparse.csr_matrix(
                (arrays[f"{kind}_data"], arrays[f"{kind}_indices"], arrays[f"{kind}_indptr"]),
                shape=(len(labels), len(model.scores_)),
            )
        return model


def _item_similarity(matrix, neighbours: int, alpha: float, shrink: float) -> sparse.csr_matrix:
    """Item x item similarities of the columns of ``matrix``, top ``neighbours`` per row.

    ``S[i, j] = <x_i, x_j> / (|x_i| ** alpha * |x_j| ** (1 - alpha) + shrink)``, the
    diagonal set to 0; row ``i`` (a bought item) keeps its ``neighbours`` largest
    positive entries. Computed in blocks of rows, one dense block at a time.
    """
    n_items = matrix.shape[1]
    by_item = matrix.T.tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()).astype(np.float32)
    source_norm = norms**alpha
    target_norm = norms ** (1.0 - alpha)
    block = max(1, SCORE_BLOCK_CELLS // max(n_items, 1))
    keep = min(neighbours, max(n_items - 1, 1))
    rows, cols, vals = [], [], []
    for lo in range(0, n_items, block):
        hi = min(lo + block, n_items)
        dots = (by_item[lo:hi] @ matrix).toarray().astype(np.float32, copy=False)
        denominator = source_norm[lo:hi, None] * target_norm[None, :] + np.float32(shrink)
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = np.where(denominator > 0, dots / denominator, 0).astype(np.float32)
        sims[np.arange(hi - lo), np.arange(lo, hi)] = 0
        if keep < n_items:
            top = np.argpartition(-sims, keep - 1, axis=1)[:, :keep]
        else:
            top = np.broadcast_to(np.arange(n_items), sims.shape)
        top_vals = np.take_along_axis(sims, top, axis=1)
        positive = top_vals > 0
        rows.append(np.broadcast_to(np.arange(lo, hi)[:, None], top.shape)[positive])
        cols.append(top[positive])
        vals.append(top_vals[positive])
        log.debug("item similarities: %d/%d items", hi, n_items)
    similarity = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    similarity.sort_indices()
    return similarity


def bm25_weight(matrix, k1: float = 1.2, b: float = 0.75) -> sparse.csr_matrix:
    """BM25 weighting of a customer x item matrix, items as documents and customers as terms.

    As ``implicit.nearest_neighbours.bm25_weight`` on the item x customer matrix:
    a customer's idf is ``log(n_items) - log(1 + items they bought)`` (a customer who
    buys everything says little about any pair of items), and an item's length
    normalization damps items with much feedback. Returns a new csr matrix (float32).
    """
    weighted = sparse.coo_matrix(matrix, dtype=np.float32)
    n_items = weighted.shape[1]
    items_per_customer = np.bincount(weighted.row, minlength=weighted.shape[0])
    idf = np.log(n_items) - np.log1p(items_per_customer)
    item_length = np.bincount(weighted.col, weights=weighted.data, minlength=n_items)
    mean_length = item_length.mean() if n_items else 1.0
    length_norm = (1.0 - b) + b * item_length / max(mean_length, 1e-12)
    weighted.data = (
        weighted.data
        * (k1 + 1.0)
        / (k1 * length_norm[weighted.col] + weighted.data)
        * idf[weighted.row]
    ).astype(np.float32)
    return weighted.tocsr()


def _explain_pairs(profile, items: np.ndarray, pair_value) -> np.ndarray:
    """For each recommended item, the bought item contributing most.

    Args:
        profile: Customers x items (csr) of the rows being explained.
        items: ``(rows, k)`` recommended item codes (-1: none).
        pair_value: ``f(bought_codes, recommended_codes) -> values`` (vectorized).

    Returns:
        ``(rows, k)`` item codes of the reasons (-1 when nothing contributes).
    """
    n_rows, k = items.shape
    reasons = np.full((n_rows, k), -1, dtype=np.int64)
    per_row = np.diff(profile.indptr)
    # Rows in blocks of about 2**21 (bought item, slot) pairs, so heavy buyers
    # cannot blow up memory; pairs are laid out slot by slot so that each slot's
    # candidates are contiguous (a segmented max, no sort).
    cumulative = np.cumsum(per_row * k)
    block = cumulative // (1 << 21)
    bounds = [0, *(np.flatnonzero(np.diff(block)) + 1).tolist(), n_rows]
    for lo, hi in itertools.pairwise(bounds):
        if lo == hi:
            continue
        counts = per_row[lo:hi]
        rows = np.flatnonzero(counts > 0)
        if len(rows) == 0:
            continue
        counts = counts[rows]
        group_size = np.repeat(counts, k)  # one group per (row, slot)
        n_pairs = int(group_size.sum())
        group_start = np.zeros(len(group_size), dtype=np.int64)
        np.cumsum(group_size[:-1], out=group_start[1:])
        group_of_pair = np.repeat(np.arange(len(group_size)), group_size)
        within = np.arange(n_pairs) - group_start[group_of_pair]
        row_of_group = np.repeat(rows, k)
        nz = profile.indptr[lo + row_of_group][group_of_pair] + within
        target = items[lo:hi][row_of_group, np.tile(np.arange(k), len(rows))][group_of_pair]
        bought = profile.indices[nz].astype(np.int64)
        values = np.full(n_pairs, -np.inf, dtype=np.float32)
        valid = target >= 0
        values[valid] = profile.data[nz[valid]] * pair_value(bought[valid], target[valid])
        values[values <= 0] = -np.inf
        best = np.maximum.reduceat(values, group_start)
        is_best = (values == best[group_of_pair]) & np.isfinite(values)
        first = np.minimum.reduceat(np.where(is_best, np.arange(n_pairs), n_pairs), group_start)
        found = first < n_pairs
        slot_rows = lo + row_of_group[found]
        slot_cols = np.tile(np.arange(k), len(rows))[found]
        reasons[slot_rows, slot_cols] = bought[first[found]]
    return reasons


class ItemKNNRecommender:
    """Item-based collaborative filtering on the sparse customer x item matrix.

    Args:
        neighbours: Similar items kept per item.
        alpha: Asymmetric cosine exponent (0.5: cosine); larger values damp the
            similarity from popular bought items less than to popular targets.
        shrink: Added to the similarity denominator (damps pairs with little support).
        bm25: Weight the matrix with :func:`bm25_weight` before the cosines.
        bm25_k1: BM25 saturation.
        bm25_b: BM25 length normalization.
        similarity_weighting: Feedback used to compute the similarities.
        profile_weighting: Feedback of a customer's purchases when scoring.
    """

    name = "item_cf"

    def __init__(
        self,
        neighbours: int = 100,
        alpha: float = 0.5,
        shrink: float = 0.0,
        bm25: bool = False,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        similarity_weighting: Weighting | None = None,
        profile_weighting: Weighting | None = None,
    ) -> None:
        self.neighbours = neighbours
        self.alpha = alpha
        self.shrink = shrink
        self.bm25 = bm25
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.similarity_weighting = similarity_weighting or Weighting()
        self.profile_weighting = profile_weighting or Weighting()

    @property
    def config(self) -> dict[str, Any]:
        return {
            "neighbours": self.neighbours,
            "alpha": self.alpha,
            "shrink": self.shrink,
            "bm25": self.bm25,
            "bm25_k1": self.bm25_k1,
            "bm25_b": self.bm25_b,
            "similarity_weighting": asdict(self.similarity_weighting),
            "profile_weighting": asdict(self.profile_weighting),
        }

    def fit(self, purchases: PurchaseLog, groups: CustomerGroups | None = None):
        """Compute the pruned item-item similarities; returns self."""
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be positive, got {self.neighbours}")
        matrix = purchases.matrix(self.similarity_weighting)
        if self.bm25:
            matrix = bm25_weight(matrix, self.bm25_k1, self.bm25_b)
        self.similarity_ = _item_similarity(matrix, self.neighbours, self.alpha, self.shrink)
        self._prepare()
        return self

    def _prepare(self) -> None:
        n_items = self.similarity_.shape[0]
        self._dense = self.similarity_.toarray() if n_items * n_items <= SCORE_BLOCK_CELLS else None
        rows = np.repeat(np.arange(n_items, dtype=np.int64), np.diff(self.similarity_.indptr))
        self._keys = rows * n_items + self.similarity_.indices

    def score(self, profile) -> np.ndarray:
        """Scores (rows x items, dense float32) of the customers in ``profile``."""
        if self._dense is not None:
            return np.asarray(profile @ self._dense, dtype=np.float32)
        return (profile @ self.similarity_).toarray().astype(np.float32, copy=False)

    def _pair_similarity(self, bought: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return self._dense[bought, target]
        keys = bought * self.similarity_.shape[0] + target
        position = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        found = self._keys[position] == keys
        return np.where(found, self.similarity_.data[position], 0).astype(np.float32)

    def explain(self, profile, items: np.ndarray) -> np.ndarray:
        """The bought item with the largest ``weight * similarity`` to each recommendation."""
        if len(self._keys) == 0:
            return np.full(items.shape, -1, dtype=np.int64)
        return _explain_pairs(profile, items, self._pair_similarity)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "data": self.similarity_.data,
            "indices": self.similarity_.indices,
            "indptr": self.similarity_.indptr,
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]):
        config = dict(config)
        for key in ("similarity_weighting", "profile_weighting"):
            config[key] = Weighting.from_dict(config[key])
        model = cls(**config)
        n_items = len(arrays["indptr"]) - 1
        model.similarity_ = sparse.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n_items, n_items)
        )
        model._prepare()
        return model


def _threads(num_threads: int | None) -> int:
    return num_threads if num_threads else min(2, os.cpu_count() or 1)


class ALSRecommender:
    """Implicit-feedback matrix factorization (``implicit``'s ALS) as the challenger.

    Args:
        factors: Latent factors.
        regularization: L2 regularization.
        alpha: Confidence scale (``implicit`` multiplies the feedback by it).
        iterations: ALS sweeps.
        weighting: Feedback (the same for fitting and for solving a customer's factors).
        seed: Seed of the initial factors.
        num_threads: Threads of ``implicit`` (default: up to 2).
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        weighting: Weighting | None = None,
        seed: int = 0,
        num_threads: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting or Weighting()
        self.seed = seed
        self.num_threads = num_threads

    @property
    def profile_weighting(self) -> Weighting:
        return self.weighting

    @property
    def config(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "weighting": asdict(self.weighting),
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def _implicit_model(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=_threads(self.num_threads),
        )

    def fit(self, purchases: PurchaseLog, groups: CustomerGroups | None = None):
        """Factorize the weighted customer x item matrix; returns self."""
        from threadpoolctl import threadpool_limits

        matrix = purchases.matrix(self.weighting)
        # One BLAS thread: implicit parallelizes itself, and single-threaded BLAS sums
        # are reproducible (implicit also warns against threaded OpenBLAS).
        with threadpool_limits(1, "blas"):
            model = self._implicit_model()
            model.fit(matrix, show_progress=False)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._prepare()
        return self

    def _prepare(self) -> None:
        model = self._implicit_model()
        model.item_factors = self.item_factors_
        self._model = model
        norms = np.linalg.norm(self.item_factors_, axis=1, keepdims=True)
        self._unit = self.item_factors_ / np.where(norms > 0, norms, 1)
        n_items = len(self.item_factors_)
        self._cosines = (
            self._unit @ self._unit.T if n_items * n_items <= SCORE_BLOCK_CELLS else None
        )

    def customer_factors(self, profile) -> np.ndarray:
        """Least-squares factors of the customers in ``profile`` given the item factors."""
        from threadpoolctl import threadpool_limits

        if profile.shape[0] == 0:
            return np.zeros((0, self.factors), dtype=np.float32)
        with threadpool_limits(1, "blas"):
            factors = self._model.recalculate_user(np.arange(profile.shape[0]), profile)
        return np.asarray(factors, dtype=np.float32).reshape(profile.shape[0], -1)

    def score(self, profile) -> np.ndarray:
        """Scores (rows x items, dense float32) of the customers in ``profile``."""
        return self.customer_factors(profile) @ self.item_factors_.T

    def _pair_similarity(self, bought: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self._cosines is not None:
            return self._cosines[bought, target]
        out = np.empty(len(bought), dtype=np.float32)
        step = max(1, (1 << 24) // max(self.factors, 1))  # 64 MiB of gathered factors
        for lo in range(0, len(bought), step):
            hi = lo + step
            out[lo:hi] = np.einsum("ij,ij->i", self._unit[bought[lo:hi]], self._unit[target[lo:hi]])
        return out

    def explain(self, profile, items: np.ndarray) -> np.ndarray:
        """The bought item nearest (factor cosine x weight) to each recommendation."""
        return _explain_pairs(profile, items, self._pair_similarity)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_}

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]):
        config = dict(config)
        config["weighting"] = Weighting.from_dict(config["weighting"])
        model = cls(**config)
        model.item_factors_ = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        model._prepare()
        return model


_MODEL_CLASSES = {
    "popularity": PopularityRecommender,
    "item_cf": ItemKNNRecommender,
    "als": ALSRecommender,
}

# Defaults chosen out of time on Online Retail with training before 2011-10-01 and
# validation in October 2011 (before the test period of ``cva evaluate
# recommendations``); see that module for the figures.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "bestsellers_all_time": {"window_days": None},
    "bestsellers_recent": {"window_days": 30},
    "item_cf": {
        "neighbours": 50,
        "alpha": 0.5,
        "shrink": 0.0,
        "bm25": True,
        "similarity_weighting": Weighting(transform="binary"),
        "profile_weighting": Weighting(transform="binary"),
    },
    "als": {
        "factors": 64,
        "regularization": 0.01,
        "alpha": 1.0,
        "iterations": 15,
        "weighting": Weighting(half_life_days=90, quantity="log1p"),
    },
}


def make_model(name: str, seed: int = 0, **overrides: Any):
    """A fresh, unfitted model by candidate name with :data:`DEFAULT_PARAMS` and overrides.

    Args:
        name: One of :data:`CANDIDATES`.
        seed: Seed (used by ALS).
        **overrides: Constructor arguments replacing the defaults.
    """
    if name not in DEFAULT_PARAMS:
        raise ValueError(f"unknown recommender {name!r}; choose one of {list(CANDIDATES)}")
    params = {**DEFAULT_PARAMS[name], **overrides}
    for key, value in list(params.items()):
        if key.endswith("weighting") and isinstance(value, dict):
            params[key] = Weighting.from_dict(value)
    if name.startswith("bestsellers"):
        return PopularityRecommender(**params)
    if name == "item_cf":
        return ItemKNNRecommender(**params)
    return ALSRecommender(seed=seed, **params)


# --------------------------------------------------------------------------- #
# The trained recommender: chosen model + cold start + buy again
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class BuyAgain:
    """The "buy again" list.

    Attributes:
        k: Items per customer (0 turns the list off).
        min_purchases: Distinct days an item must have been bought on.
        half_life_days: Recency half-life of each purchase day's weight.
    """

    k: int = 10
    min_purchases: int = 2
    half_life_days: float = 90.0

    def __post_init__(self) -> None:
        if self.k < 0 or self.min_purchases < 1 or not self.half_life_days > 0:
            raise ValueError(f"invalid buy-again settings: {self}")


def _id_array(index: pd.Index) -> np.ndarray:
    if pd.api.types.is_integer_dtype(index.dtype):
        return index.to_numpy(dtype=np.int64)
    return np.asarray(index.astype(str), dtype=str)


def _id_index(values: np.ndarray, name: str) -> pd.Index:
    if values.dtype.kind in "iu":
        return pd.Index(values, dtype="int64", name=name)
    return pd.Index(values.astype(object), dtype="str", name=name)


class Recommender:
    """A fitted recommender: the next-best model, the cold-start bestsellers, buy-again.

    Build one with :func:`fit_recommender` or :func:`train_recommenders`; score with
    :func:`recommend`; persist with :meth:`save` / :meth:`load`.

    Attributes:
        next_best: The model of the ``next_best`` list.
        fallback: Recent bestsellers (cold start and filling short lists).
        item_ids: The catalogue (items bought before ``as_of``).
        item_names: Name of each catalogue item.
        groups: Segment/country of the customers known at fit time.
        min_items: Customers with fewer distinct bought items are cold-start.
        trend_weight: Weight of the recent bestsellers added to the per-customer
            scaled next-best scores of item-CF and ALS (0: none).
        buy_again: Settings of the ``buy_again`` list.
        as_of: End (exclusive) of the training data.
        metrics: Validation report (set by :func:`train_recommenders`).
    """

    def __init__(
        self,
        next_best,
        fallback: PopularityRecommender,
        item_ids: pd.Index,
        item_names: np.ndarray,
        groups: CustomerGroups,
        *,
        min_items: int = 2,
        trend_weight: float = 0.4,
        buy_again: BuyAgain | None = None,
        as_of: pd.Timestamp | None = None,
        training: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        if min_items < 1:
            raise ValueError(f"min_items must be at least 1, got {min_items}")
        self.next_best = next_best
        self.fallback = fallback
        self.item_ids = item_ids
        self.item_names = np.asarray(item_names, dtype=object)
        self.groups = groups
        self.min_items = min_items
        if trend_weight < 0:
            raise ValueError(f"trend_weight must be non-negative, got {trend_weight}")
        self.trend_weight = trend_weight
        self.buy_again = buy_again or BuyAgain()
        self.as_of = as_of
        self.training = training or {}
        self.metrics = metrics or {}

    @property
    def model_name(self) -> str:
        """Name of the model of the ``next_best`` list."""
        return self.next_best.name

    @property
    def params(self) -> dict[str, Any]:
        """Everything that defines this recommender, JSON-able."""
        return {
            "model": self.model_name,
            "model_params": self.next_best.config,
            "fallback": self.fallback.config,
            "min_items": self.min_items,
            "trend_weight": self.trend_weight,
            "buy_again": asdict(self.buy_again),
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "catalogue_items": len(self.item_ids),
            **self.training,
        }

    def save(self, directory: Path) -> None:
        """Write the recommender into the existing folder ``directory`` (npz + json)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not an existing folder")
        kind = "popularity" if isinstance(self.next_best, PopularityRecommender) else None
        document = {
            "format_version": FORMAT_VERSION,
            "next_best": {"class": kind or self.next_best.name, "config": self.next_best.config},
            "fallback": self.fallback.config,
            "min_items": self.min_items,
            "trend_weight": self.trend_weight,
            "buy_again": asdict(self.buy_again),
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "training": self.training,
            "metrics": self.metrics,
            "group_kinds": list(self.groups.codes),
        }
        (directory / "recommender.json").write_text(
            json.dumps(document, indent=1, sort_keys=True, default=str)
        )
        np.savez(
            directory / "catalogue.npz",
            item_ids=_id_array(self.item_ids),
            item_names=np.asarray(self.item_names, dtype=str),
        )
        np.savez(directory / "next_best.npz", **self.next_best.arrays())
        np.savez(directory / "fallback.npz", **self.fallback.arrays())
        groups = {"customer_ids": _id_array(self.groups.customer_ids)}
        for kind in self.groups.codes:
            groups[f"{kind}_codes"] = self.groups.codes[kind]
            groups[f"{kind}_labels"] = self.groups.labels[kind]
        np.savez(directory / "groups.npz", **groups)

    @classmethod
    def load(cls, directory: Path) -> Recommender:
        """Read a recommender written by :meth:`save`."""
        directory = Path(directory)
        document = json.loads((directory / "recommender.json").read_text())
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory}: format_version {document.get('format_version')} is not "
                f"{FORMAT_VERSION}"
            )

        def arrays(name: str) -> dict[str, np.ndarray]:
            with np.load(directory / name, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}

        catalogue = arrays("catalogue.npz")
        spec = document["next_best"]
        next_best = _MODEL_CLASSES[spec["class"]].from_state(
            spec["config"], arrays("next_best.npz")
        )
        fallback = PopularityRecommender.from_state(document["fallback"], arrays("fallback.npz"))
        stored = arrays("groups.npz")
        groups = CustomerGroups(
            _id_index(stored["customer_ids"], "customer_id"),
            {kind: stored[f"{kind}_codes"] for kind in document["group_kinds"]},
            {kind: stored[f"{kind}_labels"] for kind in document["group_kinds"]},
        )
        return cls(
            next_best,
            fallback,
            _id_index(catalogue["item_ids"], "item_id"),
            catalogue["item_names"],
            groups,
            min_items=document["min_items"],
            trend_weight=document["trend_weight"],
            buy_again=BuyAgain(**document["buy_again"]),
            as_of=None if document["as_of"] is None else pd.Timestamp(document["as_of"]),
            training=document["training"],
            metrics=document["metrics"],
        )

    # -- scoring ----------------------------------------------------------- #

    def _recommend_chunk(
        self,
        purchases: PurchaseLog,
        start: int,
        stop: int,
        k: int,
        exclude_bought: bool,
        buy_again_k: int,
        group_rows: np.ndarray,
        table: tuple[np.ndarray, list[str], list[str]],
    ) -> pd.DataFrame:
        bought = purchases.bought(start, stop)
        warm = np.diff(bought.indptr) >= self.min_items
        parts = []
        if k > 0 and warm.any():
            parts.append(self._warm(purchases, start, stop, warm, bought, k, exclude_bought, table))
        if k > 0 and (~warm).any():
            parts.append(self._cold(~warm, bought, k, exclude_bought, group_rows, table))
        if buy_again_k > 0:
            parts.append(self._buy_again(purchases, start, stop, buy_again_k))
        columns = ("row", "list", "rank", "item", "score", "reason")
        if parts:
            merged = {c: np.concatenate([p[c] for p in parts]) for c in columns}
        else:
            merged = {c: np.zeros(0, dtype=object if c == "reason" else np.int64) for c in columns}
        models = np.concatenate([p["model"] for p in parts]) if parts else np.zeros(0, object)
        order = np.lexsort((merged["rank"], merged["list"], merged["row"]))
        rows = merged["row"][order]
        item = merged["item"][order]
        return pd.DataFrame(
            {
                "customer_id": purchases.customer_ids[start + rows],
                "list": pd.Categorical.from_codes(merged["list"][order], categories=list(LISTS)),
                "rank": merged["rank"][order].astype(np.int16),
                "item_id": self.item_ids[item],
                "item_name": pd.Categorical.from_codes(
                    self._reason_texts()[0][item], categories=self._reason_texts()[1]
                ),
                "score": merged["score"][order].astype(np.float64),
                "reason": pd.Categorical(merged["reason"][order]),
                "model": pd.Categorical(models[order]),
            }
        )

    @staticmethod
    def _flatten(rows, items, values, reasons, models, list_code) -> dict[str, np.ndarray]:
        n, k = items.shape
        present = items >= 0
        return {
            "row": np.repeat(rows, k).reshape(n, k)[present],
            "list": np.full(int(present.sum()), list_code, dtype=np.int8),
            "rank": np.broadcast_to(np.arange(1, k + 1), (n, k))[present],
            "item": items[present],
            "score": values[present],
            "reason": reasons[present],
            "model": np.broadcast_to(np.asarray(models, dtype=object).reshape(-1, 1), (n, k))[
                present
            ],
        }

    def _reason_texts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Name codes and categories, and "because you bought <name>" per item (cached)."""
        if not hasattr(self, "_texts"):
            codes, categories = pd.factorize(pd.Series(self.item_names, dtype=object))
            because = np.asarray([f"because you bought {name}" for name in self.item_names])
            self._texts = (codes, np.asarray(categories, dtype=object), because.astype(object))
        return self._texts

    def _warm(self, purchases, start, stop, warm, bought, k, exclude_bought, table):
        rows = np.flatnonzero(warm)
        excluded = bought[rows] if exclude_bought else None
        if isinstance(self.next_best, PopularityRecommender):
            # Everybody shares one ranking: no dense block of scores needed.
            ranking = self.next_best.ranking()
            items, values = top_k_ranked(ranking, np.zeros(len(rows), np.int64), excluded, k)
            reasons = np.full(items.shape, self.next_best.reason(), dtype=object)
            return self._flatten(rows, items, values, reasons, self.model_name, 0)
        profile = purchases.matrix(self.next_best.profile_weighting, start, stop)[rows]
        scores = self.next_best.score(profile)
        if self.trend_weight > 0:
            _blend_trend(scores, self.fallback.scores_, self.trend_weight)
        _mask(scores, excluded)
        items, values = top_k(scores, k)
        del scores
        explained = self.next_best.explain(profile, items)
        reasons = np.full(items.shape, self.fallback.reason(), dtype=object)
        has = explained >= 0
        reasons[has] = self._reason_texts()[2][explained[has]]
        # Positions the model has no evidence for get the recent bestsellers.
        short = (values <= 0).any(axis=1)
        if short.any():
            kept = items[short]
            keep_mask = values[short] > 0
            n_short = len(kept)
            taken = sparse.csr_matrix(
                (
                    np.ones(int(keep_mask.sum()), dtype=np.int8),
                    (np.repeat(np.arange(n_short), keep_mask.sum(axis=1)), kept[keep_mask]),
                ),
                shape=(n_short, len(self.item_ids)),
            )
            if excluded is not None:
                taken = taken + excluded[short]
            taken.sum_duplicates()
            taken.sort_indices()
            fill_items, _ = top_k_ranked(
                self.fallback.ranking(), np.zeros(n_short, np.int64), taken, k
            )
            n_kept = keep_mask.sum(axis=1)
            slot = np.arange(k)[None, :] - n_kept[:, None]
            from_fill = slot >= 0
            take = np.take_along_axis(fill_items, np.maximum(slot, 0), axis=1)
            items[short] = np.where(from_fill, take, kept)
            values[short] = np.where(from_fill, 0, values[short])
            short_reasons = reasons[short]
            short_reasons[from_fill] = self.fallback.reason()
            reasons[short] = short_reasons
            values[items < 0] = -np.inf
        return self._flatten(rows, items, values, reasons, self.model_name, 0)

    def _cold(self, cold, bought, k, exclude_bought, group_rows, table):
        rows = np.flatnonzero(cold)
        _, table_reasons, scopes = table
        which = group_rows[rows]
        items, values = top_k_ranked(
            self.fallback.ranking(), which, bought[rows] if exclude_bought else None, k
        )
        reasons = np.broadcast_to(
            np.asarray(table_reasons, dtype=object)[which][:, None], items.shape
        ).copy()
        labels = np.asarray([f"{self.fallback.name}/{scope}" for scope in scopes], dtype=object)
        return self._flatten(rows, items, values, reasons, labels[which], 0)

    def _buy_again(self, purchases: PurchaseLog, start: int, stop: int, k: int):
        settings = self.buy_again
        lo, hi = purchases.indptr[start], purchases.indptr[stop]
        customer = (purchases.customer[lo:hi] - start).astype(np.int64)
        pair = customer * purchases.n_items + purchases.item[lo:hi]
        day = purchases.day[lo:hi].astype(np.int64)
        first_day = int(day.min()) if len(day) else 0
        span = (int(day.max()) - first_day + 1) if len(day) else 1
        pair_day = _unique(pair * span + (day - first_day))
        pair_of, day_of = pair_day // span, pair_day % span + first_day
        # pair_of is sorted: runs of one pair are its purchase days, oldest first.
        first = _run_starts(pair_of)
        days = np.diff(np.r_[first, len(pair_of)])
        pairs = pair_of[first]
        last_day = day_of[first + days - 1]
        as_of_day = _stamp_us(purchases.as_of) / _DAY_US
        weight = np.exp2(-(as_of_day - day_of) / settings.half_life_days)
        score = np.add.reduceat(weight, first) if len(first) else np.zeros(0)
        repeat = days >= settings.min_purchases
        pairs, days, last_day, score = pairs[repeat], days[repeat], last_day[repeat], score[repeat]
        row, item = pairs // purchases.n_items, pairs % purchases.n_items
        order = np.lexsort((item, -score, row))
        row, item, days, last_day, score = (a[order] for a in (row, item, days, last_day, score))
        group_start = np.r_[0, np.flatnonzero(row[1:] != row[:-1]) + 1] if len(row) else row
        rank = np.arange(len(row)) - np.repeat(group_start, np.diff(np.r_[group_start, len(row)]))
        keep = rank < k
        row, item, days, last_day, score, rank = (
            a[keep] for a in (row, item, days, last_day, score, rank)
        )
        combos, inverse = np.unique(np.stack([days, last_day]), axis=1, return_inverse=True)
        texts = np.asarray([_buy_again_reason(int(n), int(d)) for n, d in combos.T], dtype=object)
        return {
            "row": row,
            "list": np.full(len(row), 1, dtype=np.int8),
            "rank": rank + 1,
            "item": item,
            "score": score,
            "reason": texts[inverse.ravel()] if len(row) else np.zeros(0, dtype=object),
            "model": np.full(len(row), BUY_AGAIN, dtype=object),
        }


@functools.lru_cache(maxsize=1 << 16)
def _buy_again_reason(n_days: int, last_day: int) -> str:
    last = (datetime(1970, 1, 1) + timedelta(days=last_day)).date()
    return f"bought on {n_days} days, last on {last.isoformat()}"


# --------------------------------------------------------------------------- #
# Fitting, training with validation, scoring
# --------------------------------------------------------------------------- #


def _catalogue(items: pd.DataFrame, bought: pd.Series) -> tuple[pd.Index, np.ndarray]:
    _require(items, "items", ("item_id", "name"))
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


def fit_recommender(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    customers: pd.DataFrame | None,
    as_of: datetime | pd.Timestamp,
    model: str = "item_cf",
    *,
    seed: int = 0,
    model_params: dict[str, Any] | None = None,
    min_items: int = 2,
    trend_weight: float = 0.4,
    recent_window_days: int = 14,
    min_group_customers: int = 20,
    buy_again: BuyAgain | None = None,
) -> Recommender:
    """Fit one model on the purchases before ``as_of`` (no validation).

    Args:
        interactions: ``customer_id, item_id, quantity, occurred_at`` (UTC) purchase
            lines; lines at or after ``as_of`` are ignored.
        items: ``item_id, name``; every bought item must be there.
        customers: ``customer_id, country`` and optionally ``segment``, or ``None``.
        as_of: End (exclusive) of the training data; recency is measured from it.
        model: One of :data:`CANDIDATES`.
        seed: Seed of the stochastic models.
        model_params: Overrides of :data:`DEFAULT_PARAMS` for ``model``.
        min_items: Customers with fewer distinct bought items get bestsellers.
        trend_weight: Weight of the recent bestsellers blended into the next-best
            scores (see :class:`Recommender`); 0 turns the blend off.
        recent_window_days: Window of the recent bestsellers used for cold start,
            for filling short lists and as the trend.
        min_group_customers: Buyers a segment/country needs for its own bestsellers.
        buy_again: Settings of the buy-again list.

    Returns:
        The fitted :class:`Recommender`.
    """
    started = time.perf_counter()
    purchases, names, groups = _training_data(interactions, items, customers, as_of)
    return _fit_on_log(
        purchases,
        names,
        groups,
        model,
        started=started,
        seed=seed,
        model_params=model_params,
        min_items=min_items,
        trend_weight=trend_weight,
        recent_window_days=recent_window_days,
        min_group_customers=min_group_customers,
        buy_again=buy_again,
    )


def _training_data(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    customers: pd.DataFrame | None,
    as_of: datetime | pd.Timestamp,
    *,
    check: bool = True,
) -> tuple[PurchaseLog, np.ndarray, CustomerGroups]:
    """The purchase log before ``as_of`` on the catalogue of items sold before it."""
    as_of = _timestamp(as_of, "as_of")
    if check:
        check_interactions(interactions)
    before = _epoch_us(interactions["occurred_at"]) < _stamp_us(as_of)
    if not before.any():
        raise ValueError(f"no interaction before as_of {as_of}: nothing to fit on")
    item_ids, names = _catalogue(items, interactions["item_id"][before])
    del before
    groups = CustomerGroups.from_frame(customers)
    return purchase_log(interactions, item_ids, as_of, check=False), names, groups


def _fit_on_log(
    purchases: PurchaseLog,
    names: np.ndarray,
    groups: CustomerGroups,
    model: str,
    *,
    started: float,
    seed: int,
    model_params: dict[str, Any] | None,
    min_items: int = 2,
    trend_weight: float = 0.4,
    recent_window_days: int = 14,
    min_group_customers: int = 20,
    buy_again: BuyAgain | None = None,
) -> Recommender:
    log.info(
        "fitting %s on %d lines of %d customers x %d items before %s",
        model,
        len(purchases.item),
        purchases.n_customers,
        purchases.n_items,
        purchases.as_of,
    )
    fallback = PopularityRecommender(recent_window_days, min_group_customers).fit(purchases, groups)
    next_best = make_model(model, seed=seed, **(model_params or {}))
    if isinstance(next_best, PopularityRecommender):
        next_best.min_group_customers = min_group_customers
    next_best.fit(purchases, groups)
    seconds = time.perf_counter() - started
    log.info("fitted %s in %.1f s", model, seconds)
    return Recommender(
        next_best,
        fallback,
        purchases.item_ids,
        names,
        groups,
        min_items=min_items,
        trend_weight=trend_weight,
        buy_again=buy_again,
        as_of=purchases.as_of,
        training={
            "fit_seconds": round(seconds, 3),
            "lines": len(purchases.item),
            "customers": purchases.n_customers,
            "seed": seed,
        },
    )


def iter_recommendations(
    model: Recommender,
    customer_ids: Sequence[Any] | pd.Index,
    interactions: pd.DataFrame,
    k: int = 10,
    exclude_bought: bool = True,
    *,
    customers: pd.DataFrame | None = None,
    as_of: datetime | pd.Timestamp | None = None,
    buy_again_k: int | None = None,
    chunk_customers: int | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`recommend`, one chunk of customers at a time (bounded memory).

    Yields frames with :func:`recommend`'s columns; the categories of the categorical
    columns differ between chunks (:func:`concat_recommendations` unites them).
    """
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    ids = pd.Index(customer_ids, name="customer_id")
    if ids.has_duplicates:
        raise ValueError(
            f"customer_ids must be unique, repeated: {ids[ids.duplicated()][:3].tolist()}"
        )
    check_interactions(interactions)
    if as_of is None:
        latest = interactions["occurred_at"].max() if len(interactions) else None
        as_of = (latest + pd.Timedelta(microseconds=1)) if latest is not None else model.as_of
    as_of = _timestamp(as_of, "as_of")
    purchases = purchase_log(interactions, model.item_ids, as_of, customer_ids=ids, check=False)
    groups = model.groups if customers is None else CustomerGroups.from_frame(customers)
    yield from _iter_chunks(
        model, purchases, groups, k, exclude_bought, buy_again_k, chunk_customers
    )


def _iter_chunks(
    model: Recommender,
    purchases: PurchaseLog,
    groups: CustomerGroups,
    k: int,
    exclude_bought: bool,
    buy_again_k: int | None,
    chunk_customers: int | None,
) -> Iterator[pd.DataFrame]:
    buy_again_k = model.buy_again.k if buy_again_k is None else buy_again_k
    if buy_again_k < 0:
        raise ValueError(f"buy_again_k must be non-negative, got {buy_again_k}")
    ids = purchases.customer_ids
    table = model.fallback.group_table()
    group_rows = model.fallback.rows_for(ids, groups)
    step = _chunk_rows(len(model.item_ids), chunk_customers)
    started = time.perf_counter()
    for start in range(0, len(ids), step):
        stop = min(start + step, len(ids))
        yield model._recommend_chunk(
            purchases, start, stop, k, exclude_bought, buy_again_k, group_rows, table
        )
        if (start // step) % 20 == 19 or stop == len(ids):
            log.info(
                "recommended for %d/%d customers (%.0f s)",
                stop,
                len(ids),
                time.perf_counter() - started,
            )


def concat_recommendations(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate chunk frames, keeping the categorical columns categorical."""
    from pandas.api.types import union_categoricals

    frames = list(frames)
    if not frames:
        return _empty_output()
    out = {}
    for column in OUTPUT_COLUMNS:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype) and column != "list":
            out[column] = union_categoricals([f[column] for f in frames], sort_categories=True)
        else:
            out[column] = pd.concat([f[column] for f in frames], ignore_index=True)
    return pd.DataFrame({c: pd.Series(v).reset_index(drop=True) for c, v in out.items()})


def _empty_output() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTPUT_COLUMNS})


def recommend(
    model: Recommender,
    customer_ids: Sequence[Any] | pd.Index,
    interactions: pd.DataFrame,
    k: int = 10,
    exclude_bought: bool = True,
    *,
    customers: pd.DataFrame | None = None,
    as_of: datetime | pd.Timestamp | None = None,
    buy_again_k: int | None = None,
    chunk_customers: int | None = None,
) -> pd.DataFrame:
    """Recommendations for ``customer_ids`` from their purchases in ``interactions``.

    Grain: one row per customer, list and rank. Columns ``customer_id``, ``list``
    (``next_best`` | ``buy_again``), ``rank`` (1..k), ``item_id``, ``item_name``,
    ``score`` (the model's score; 0 for filler bestsellers; buy-again: recency-decayed
    count of purchase days), ``reason`` and ``model`` (which model produced the list:
    the next-best model's name, ``<bestsellers>/<segment|country|global>`` for cold
    start, ``buy_again``). Text columns are categorical to stay small at a million
    customers. Customers are processed in chunks (see :data:`SCORE_BLOCK_CELLS`).

    Args:
        model: A fitted :class:`Recommender`.
        customer_ids: Customers to score (unique); those without purchases get
            bestsellers of their segment/country.
        interactions: Their purchase lines (other customers' lines are ignored, items
            outside the model's catalogue too).
        k: Length of the ``next_best`` list (0: none).
        exclude_bought: Leave out items the customer already bought.
        customers: Current ``customer_id, country[, segment]``, for the cold-start
            groups (default: the customers known at fit time).
        as_of: Recency reference; lines at or after it are ignored. Default: just
            after the latest line in ``interactions``.
        buy_again_k: Length of the ``buy_again`` list (default ``model.buy_again.k``;
            0: none).
        chunk_customers: Customers per chunk (default: a 64 MiB score block).

    Returns:
        The recommendations, sorted by the order of ``customer_ids``, list and rank.
    """
    return concat_recommendations(
        iter_recommendations(
            model,
            customer_ids,
            interactions,
            k,
            exclude_bought,
            customers=customers,
            as_of=as_of,
            buy_again_k=buy_again_k,
            chunk_customers=chunk_customers,
        )
    )


def new_items_after(
    interactions: pd.DataFrame,
    split_at: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The out-of-time truth: items customers bought in ``[split_at, end)`` for the first time.

    Only customers with a purchase before ``split_at`` count (a purchase in both
    periods); an item they had bought before ``split_at`` is not relevant.

    Returns:
        One row per (customer, new item): ``customer_id``, ``item_id``, sorted.
    """
    check_interactions(interactions)
    split_us = _stamp_us(_timestamp(split_at, "split_at"))
    when = _epoch_us(interactions["occurred_at"])
    before = when < split_us
    after = ~before
    if end is not None:
        after &= when < _stamp_us(_timestamp(end, "end"))
    # Only the customers who buy after the split matter: encode against them, so the
    # big arrays are one int64 per line and the rest is small.
    returning = pd.Index(pd.unique(interactions["customer_id"][after]))
    customer = returning.get_indexer(interactions["customer_id"])
    lines = np.flatnonzero((before & (customer >= 0)) | after)
    customer = customer[lines]
    is_before = before[lines]
    del before, after
    item, item_ids = pd.factorize(interactions["item_id"].iloc[lines])
    n_items = max(len(item_ids), 1)
    pair = customer.astype(np.int64) * n_items + item
    seen = _unique(pair[is_before])
    fresh = _unique(pair[~is_before])
    bought_before = np.zeros(len(returning), dtype=bool)
    bought_before[customer[is_before]] = True
    fresh = fresh[~np.isin(fresh, seen, assume_unique=True)]
    fresh = fresh[bought_before[fresh // n_items]]
    out = pd.DataFrame(
        {
            "customer_id": returning[fresh // n_items],
            "item_id": pd.Index(item_ids)[fresh % n_items],
        }
    )
    return out.sort_values(["customer_id", "item_id"], kind="stable").reset_index(drop=True)


def ranking_metrics(
    recommendations: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = 10,
    catalogue_size: int | None = None,
) -> dict[str, float]:
    """Precision, recall, NDCG, MAP and coverage at ``k`` over the customers in ``relevant``.

    Args:
        recommendations: ``customer_id, item_id, rank`` (ranks from 1), next-best list.
        relevant: ``customer_id, item_id`` of the test items; every customer in it counts,
            with or without recommendations.
        k: Cut-off.
        catalogue_size: Items that could be recommended (coverage's denominator).

    Returns:
        ``precision_at_k``, ``recall_at_k``, ``ndcg_at_k``, ``map_at_k`` (means over
        customers), ``coverage_at_k`` and ``customers`` (named with the actual ``k``).
    """
    if relevant.empty:
        raise ValueError("relevant is empty: no customer to evaluate")
    truth = relevant[["customer_id", "item_id"]].drop_duplicates()
    n_relevant = truth.groupby("customer_id", sort=True).size()
    customers = n_relevant.index
    recs = recommendations.loc[
        (recommendations["rank"] <= k) & recommendations["customer_id"].isin(customers),
        ["customer_id", "item_id", "rank"],
    ]
    hits = recs.merge(truth, on=["customer_id", "item_id"], how="inner")
    hits = hits.sort_values(["customer_id", "rank"], kind="stable")
    hits["hit_number"] = hits.groupby("customer_id").cumcount() + 1
    rank = hits["rank"].to_numpy(dtype=float)
    hits["gain"] = 1.0 / np.log2(rank + 1)
    hits["precision_at_hit"] = hits["hit_number"] / rank
    per = hits.groupby("customer_id").agg(
        hits=("rank", "size"), dcg=("gain", "sum"), ap=("precision_at_hit", "sum")
    )
    per = per.reindex(customers, fill_value=0)
    rel = n_relevant.to_numpy(dtype=float)
    ideal_len = np.minimum(rel, k).astype(int)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    idcg = discounts[ideal_len - 1]
    figures = {
        f"precision_at_{k}": float(np.mean(per["hits"].to_numpy() / k)),
        f"recall_at_{k}": float(np.mean(per["hits"].to_numpy() / rel)),
        f"ndcg_at_{k}": float(np.mean(per["dcg"].to_numpy() / idcg)),
        f"map_at_{k}": float(np.mean(per["ap"].to_numpy() / ideal_len)),
        "customers": len(customers),
    }
    if catalogue_size:
        figures[f"coverage_at_{k}"] = float(recs["item_id"].nunique() / catalogue_size)
    return figures


def evaluate_model(
    model: Recommender,
    interactions: pd.DataFrame,
    relevant: pd.DataFrame,
    k: int = 10,
    *,
    as_of: datetime | pd.Timestamp | None = None,
    customers: pd.DataFrame | None = None,
) -> dict[str, float]:
    """Score the customers of ``relevant`` from their purchases before ``as_of``.

    Args:
        model: The fitted recommender.
        interactions: Purchase lines; only those before ``as_of`` are used.
        relevant: ``customer_id, item_id`` truth (e.g. :func:`new_items_after`).
        k: Cut-off.
        as_of: The split instant (default: the model's ``as_of``).
        customers: Current customer groups (default: the model's).

    Returns:
        :func:`ranking_metrics` of the ``next_best`` lists.
    """
    as_of = _timestamp(as_of or model.as_of, "as_of")
    check_interactions(interactions)
    ids = pd.Index(relevant["customer_id"].unique(), name="customer_id")
    purchases = purchase_log(interactions, model.item_ids, as_of, customer_ids=ids, check=False)
    groups = model.groups if customers is None else CustomerGroups.from_frame(customers)
    return _evaluate_on_log(model, purchases, groups, relevant, k)


def _evaluate_on_log(
    model: Recommender,
    purchases: PurchaseLog,
    groups: CustomerGroups,
    relevant: pd.DataFrame,
    k: int,
) -> dict[str, float]:
    recs = concat_recommendations(_iter_chunks(model, purchases, groups, k, True, 0, None))
    return ranking_metrics(recs, relevant, k, catalogue_size=len(model.item_ids))


def train_recommenders(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    customers: pd.DataFrame | None,
    as_of: datetime | pd.Timestamp,
    *,
    validation_days: int = 30,
    seed: int = 0,
    candidates: Sequence[str] = CANDIDATES,
    k: int = 10,
    model_params: dict[str, dict[str, Any]] | None = None,
    **recommender_options: Any,
) -> tuple[Recommender, dict[str, Any]]:
    """Validate every candidate out of time, choose the best, refit it on all data.

    Protocol: each candidate is fitted on the purchases before
    ``as_of - validation_days`` and scored for the customers who bought, in the last
    ``validation_days`` before ``as_of``, at least one item they had not bought
    before (and had bought something before the window); metrics at ``k`` as in
    :func:`ranking_metrics`, on the ``next_best`` list. The chosen model has the best
    ``ndcg_at_10`` (ties: the earlier candidate, the simpler one). It is then
    **refitted on all purchases before as_of** (validation window included) and
    returned with the report as its ``metrics``.

    Args:
        interactions: Purchase lines (lines at or after ``as_of`` are ignored).
        items: ``item_id, name``.
        customers: ``customer_id, country[, segment]`` or ``None``.
        as_of: End (exclusive) of the data.
        validation_days: Length of the validation window.
        seed: Seed of the stochastic models.
        candidates: Model names to compare (default :data:`CANDIDATES`).
        k: Cut-off of the metrics.
        model_params: Per candidate, overrides of :data:`DEFAULT_PARAMS`.
        **recommender_options: Passed to :func:`fit_recommender` (``min_items``,
            ``trend_weight``, ``recent_window_days``, ``min_group_customers``,
            ``buy_again``).

    Returns:
        ``(recommender, report)``; report: ``as_of``, ``validation`` (window,
        customers, protocol), ``models`` (per candidate: the metrics and
        ``fit_seconds``), ``chosen``, ``comparison_metric``, ``refit_seconds``.

    Raises:
        ValueError: when the validation window holds no customer to evaluate.
    """
    if validation_days < 1:
        raise ValueError(f"validation_days must be positive, got {validation_days}")
    if not candidates:
        raise ValueError("candidates is empty")
    unknown = [name for name in candidates if name not in DEFAULT_PARAMS]
    if unknown:
        raise ValueError(f"unknown candidate(s) {unknown}; choose from {list(CANDIDATES)}")
    as_of = _timestamp(as_of, "as_of")
    check_interactions(interactions)
    split = as_of - timedelta(days=validation_days)
    relevant = new_items_after(interactions, split, as_of)
    if relevant.empty:
        raise NotEnoughData(
            f"no customer bought a new item in the validation window [{split}, {as_of}) "
            "after buying before it: cannot validate"
        )
    metric = f"ndcg_at_{k}"
    started = time.perf_counter()
    purchases, names, groups = _training_data(interactions, items, customers, split, check=False)
    prepare_seconds = time.perf_counter() - started
    scoring = purchase_log(
        interactions,
        purchases.item_ids,
        split,
        customer_ids=pd.Index(relevant["customer_id"].unique(), name="customer_id"),
        check=False,
    )
    models: dict[str, dict[str, Any]] = {}
    for name in candidates:
        log.info("validating %s (train before %s, validate until %s)", name, split, as_of)
        fit_started = time.perf_counter() - prepare_seconds  # the shared log counts for each
        fitted = _fit_on_log(
            purchases,
            names,
            groups,
            name,
            started=fit_started,
            seed=seed,
            model_params=(model_params or {}).get(name),
            **recommender_options,
        )
        fit_seconds = time.perf_counter() - fit_started
        figures = _evaluate_on_log(fitted, scoring, groups, relevant, k)
        models[name] = {**figures, "fit_seconds": round(fit_seconds, 3)}
        log.info("%s: %s %.4f (fit %.1f s)", name, metric, figures[metric], fit_seconds)
        del fitted
    del purchases, scoring
    chosen = max(candidates, key=lambda n: (models[n][metric], -list(candidates).index(n)))
    started = time.perf_counter()
    final = fit_recommender(
        interactions,
        items,
        customers,
        as_of,
        chosen,
        seed=seed,
        model_params=(model_params or {}).get(chosen),
        **recommender_options,
    )
    report = {
        "as_of": as_of.isoformat(),
        "validation": {
            "start": split.isoformat(),
            "end": as_of.isoformat(),
            "customers": int(relevant["customer_id"].nunique()),
            "relevant_items": len(relevant),
            "protocol": (
                f"fit before {split.date()}, score customers with a purchase before it and "
                f"a new item in [{split.date()}, {as_of.date()}); metrics at {k} on new items"
            ),
        },
        "models": models,
        "chosen": chosen,
        "comparison_metric": metric,
        "refit_seconds": round(time.perf_counter() - started, 3),
    }
    final.metrics = report
    return final, report


__all__ = [
    "BUY_AGAIN",
    "CANDIDATES",
    "NEXT_BEST",
    "ALSRecommender",
    "BuyAgain",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "Recommender",
    "Weighting",
    "concat_recommendations",
    "evaluate_model",
    "fit_recommender",
    "iter_recommendations",
    "new_items_after",
    "ranking_metrics",
    "recommend",
    "train_recommenders",
]

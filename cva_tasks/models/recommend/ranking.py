"""Top-k selection on blocks of scores, and the reasons of the recommended items.

Scoring works on chunks of customers, a dense block of at most
:data:`SCORE_BLOCK_CELLS` scores at a time, so memory is bounded however many
customers are scored: there is never a dense customer x item array of all customers.
Within a list, equal scores are ordered by item code (deterministic lists).
"""

from __future__ import annotations

import itertools

import numpy as np

# Largest dense block of scores (rows x items) held at once: 2**24 float32 = 64 MiB.
SCORE_BLOCK_CELLS = 1 << 24


def mask_excluded(scores: np.ndarray, excluded) -> None:
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


def blend_trend(scores: np.ndarray, trend: np.ndarray, weight: float) -> None:
    """``scores / row max + weight * trend / max(trend)``, in place.

    Rows are scaled to a maximum of 1 so that one weight fits every customer, however
    many items they bought; rows without a positive score are left as they are.
    """
    row_max = scores.max(axis=1, keepdims=True)
    np.divide(scores, row_max, out=scores, where=row_max > 0)
    top = float(trend.max()) if len(trend) else 0.0
    if top > 0:
        scores += np.float32(weight / top) * trend


def run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Positions where a new value starts in a sorted array."""
    if len(sorted_values) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array.

    Sorting first is several times faster than ``np.unique``'s hashing on tens of
    millions of int64 keys here, and needs one copy.
    """
    ordered = np.sort(values)
    return ordered[run_starts(ordered)]


def chunk_rows(n_items: int, chunk_customers: int | None) -> int:
    """Customers per chunk: ``chunk_customers``, else a block of :data:`SCORE_BLOCK_CELLS`."""
    if chunk_customers is not None:
        if chunk_customers < 1:
            raise ValueError(f"chunk_customers must be positive, got {chunk_customers}")
        return chunk_customers
    return max(256, SCORE_BLOCK_CELLS // max(n_items, 1))


def explain_pairs(profile, items: np.ndarray, pair_value) -> np.ndarray:
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

"""The demo shop's catalogue, and how a product is drawn for a customer: by category
preference, long-tailed popularity and the segment's price sensitivity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cva_tasks.demo.shop.columns import _codes_to_str, _str, _ts
from cva_tasks.demo.shop.seasonality import DAY, _Period
from cva_tasks.demo.shop.vocabulary import CATEGORIES, CATEGORY_NAMES, SEGMENTS


def _n_products(n_customers: int) -> int:
    return max(60, round(200 * (n_customers / 1000) ** 0.4))


@dataclass
class _Products:
    frame: pd.DataFrame
    category: np.ndarray  # category index per product
    price: np.ndarray
    popularity: np.ndarray
    quality: np.ndarray  # latent quality, N(0, 1)
    name: np.ndarray  # object array


def _make_products(rng: np.random.Generator, n: int, period: _Period) -> _Products:
    shares = np.array([c.share for c in CATEGORIES])
    per_cat = np.maximum(3, np.floor(shares / shares.sum() * n).astype(np.int64))
    per_cat[0] += max(0, n - per_cat.sum())
    names: list[str] = []
    category = np.repeat(np.arange(len(CATEGORIES)), per_cat)
    for cat, k in zip(CATEGORIES, per_cat, strict=True):
        combos = len(cat.first) * len(cat.second) * len(cat.nouns)
        picks = rng.choice(combos, size=k, replace=False) if k <= combos else rng.permutation(k)
        for j, p in enumerate(picks):
            p = int(p) % combos
            a, rest = divmod(p, len(cat.second) * len(cat.nouns))
            b, c = divmod(rest, len(cat.nouns))
            suffix = "" if j < combos else f" No. {j // combos + 1}"
            names.append(f"{cat.first[a]} {cat.second[b]} {cat.nouns[c]}{suffix}")
    total = len(category)
    median = np.array([c.median_price for c in CATEGORIES])[category]
    raw = median * rng.lognormal(0.0, 0.55, size=total)
    price = np.maximum(0.99, np.round(raw) - 0.01)
    quality = rng.normal(0.0, 1.0, size=total)
    popularity = rng.lognormal(0.0, 1.3, size=total) * np.exp(0.25 * quality)
    created = period.start_s - rng.integers(30 * DAY, 900 * DAY, size=total)
    edited = rng.random(total) < 0.35
    edit_from = np.maximum(created, period.start_s)
    updated = np.where(
        edited,
        edit_from + (rng.random(total) * (period.end_s - edit_from)).astype(np.int64),
        created,
    )
    # The catalogue was migrated into this database on the first day, so rows older
    # than the period carry that day's updated_at: the first run's watermark
    # extraction is the initial full load.
    updated = np.maximum(updated, period.start_s + np.arange(total, dtype=np.int64) % 3600)
    product_id = np.arange(1, total + 1, dtype=np.int64)
    codes = np.array([c.code for c in CATEGORIES], dtype=object)[category]
    sku = [f"{c}-{i:05d}" for c, i in zip(codes, product_id, strict=True)]
    frame = pd.DataFrame(
        {
            "product_id": product_id,
            "sku": _str(sku),
            "name": _str(names),
            "category": _codes_to_str(category, CATEGORY_NAMES),
            "unit_price": price,
            "created_at": _ts(created),
            "updated_at": _ts(updated),
        }
    )
    return _Products(
        frame=frame,
        category=category,
        price=price,
        popularity=popularity,
        quality=quality,
        name=np.array(names, dtype=object),
    )


def _product_groups(products: _Products) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items sorted by (category, price level) group for :func:`_segmented_pick`.

    Returns (product index per item, group per item, weights per item) where the
    group is ``category * n_levels + level`` and the levels are the segments.
    """
    n_levels = len(SEGMENTS)
    betas = np.array([s.price_beta for s in SEGMENTS])
    order = np.argsort(products.category, kind="stable")
    items, groups, weights = [], [], []
    for level, beta in enumerate(betas):
        items.append(order)
        groups.append(products.category[order] * n_levels + level)
        weights.append(products.popularity[order] * products.price[order] ** -beta)
    item = np.concatenate(items)
    group = np.concatenate(groups)
    weight = np.concatenate(weights)
    by_group = np.argsort(group, kind="stable")
    return item[by_group], group[by_group], weight[by_group]


def _pick_products(
    rng: np.random.Generator,
    cust: np.ndarray,
    cat_pref: np.ndarray,
    segment: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Draw a product per row for customers ``cust`` by category preference and price level.

    ``cat_pref`` (customers x categories) and ``segment`` are per customer index.
    """
    n_cat = len(CATEGORIES)
    n_levels = len(SEGMENTS)
    item, group, weight = groups
    keyed = _keyed_cdf(weight, group)
    pref_cum = np.cumsum(cat_pref, axis=1)
    pref_cum /= pref_cum[:, -1:]
    out = np.empty(len(cust), dtype=np.int64)
    chunk = 2_000_000
    for s in range(0, len(cust), chunk):
        c = cust[s : s + chunk]
        u = rng.random(len(c))
        cat = (pref_cum[c] < u[:, None]).sum(axis=1)
        cat = np.minimum(cat, n_cat - 1)
        g = cat * n_levels + segment[c]
        out[s : s + chunk] = item[np.searchsorted(keyed, g + rng.random(len(c)), side="right")]
    return out


def _segmented_pick(
    rng: np.random.Generator, group: np.ndarray, weights: np.ndarray, group_of_item: np.ndarray
) -> np.ndarray:
    """Draw one item per row among the items of that row's group, by weight.

    ``group_of_item`` must be sorted; every group in ``group`` must own items.
    Vectorised via one ``searchsorted`` on group-offset cumulative weights.
    """
    keyed = _keyed_cdf(weights, group_of_item)
    target = group + rng.random(len(group))
    return np.searchsorted(keyed, target, side="right")


def _keyed_cdf(weights: np.ndarray, group_of_item: np.ndarray) -> np.ndarray:
    """``group + within-group CDF`` per item (last item of a group exactly ``group + 1``)."""
    n = len(weights)
    bounds = np.flatnonzero(np.diff(group_of_item)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [n]])
    seg_id = np.repeat(np.arange(len(starts)), ends - starts)
    total = np.cumsum(weights)
    before = np.concatenate([[0.0], total])[starts]
    within = total - before[seg_id]
    cum = within / (total[ends - 1] - before)[seg_id]
    cum[ends - 1] = 1.0
    return group_of_item + cum

"""Cancellations and returns in the demo shop.

About 2.5% of orders are cancelled (more by bargain hunters), within two days of the order.
About 5% of the lines of placed orders are returned 3-30 days later: more in categories with
sizes, for products of low quality, after a damaged or late delivery and by some segments; the
reason given follows what went wrong. Returns after the period's end are not recorded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cva_tasks.demo.shop.columns import _codes_to_str, _ts
from cva_tasks.demo.shop.products import _Products
from cva_tasks.demo.shop.seasonality import DAY, _Period
from cva_tasks.demo.shop.vocabulary import (
    _R_DAMAGED,
    _R_FAULTY,
    _R_LATE,
    _R_MIND,
    _R_MISTAKE,
    _R_NAD,
    _R_QUALITY,
    _R_SIZE,
    CATEGORIES,
    RETURN_REASONS,
    SEGMENTS,
)

#: Share of (placed-order) lines that are returned, before the period-end cut.
RETURN_SHARE = 0.05


def _cancellations(
    rng: np.random.Generator, segment: np.ndarray, t: np.ndarray, period: _Period
) -> tuple[np.ndarray, np.ndarray]:
    """Which orders are cancelled, and each order's ``updated_at`` (the cancellation time for
    cancelled orders, else the order time), for orders at epoch seconds ``t`` by customers of
    the given segments."""
    m = len(t)
    cancelled = rng.random(m) < np.array([s.p_cancel for s in SEGMENTS])[segment]
    delay = np.clip(rng.lognormal(np.log(2 * 3600), 1.5, size=m), 300, 2 * DAY).astype(np.int64)
    updated = np.where(cancelled, np.minimum(t + delay, period.end_s), t)
    return cancelled, updated


def _draw_returns(
    rng: np.random.Generator,
    products: _Products,
    *,
    order: np.ndarray,
    product: np.ndarray,
    quantity: np.ndarray,
    segment: np.ndarray,
    cancelled: np.ndarray,
    late: np.ndarray,
    damaged: np.ndarray,
    ordered_at: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The latent return decision per line (recorded only if before the period end).

    ``order``, ``product``, ``quantity`` and ``segment`` are per line; ``cancelled``, ``late``,
    ``damaged`` and ``ordered_at`` (epoch seconds) per order, indexed by ``order``.

    Returns:
        ``returned`` per line, then per returned line: the quantity returned, the return's
        epoch seconds and the reason (an index into ``RETURN_REASONS``).
    """
    n = len(order)
    placed = ~cancelled[order]
    cat = products.category.astype(np.int8)[product]
    p_ret = np.array([c.return_rate for c in CATEGORIES])[cat]
    p_ret *= np.exp(-0.45 * products.quality)[product]
    p_ret *= np.array([s.return_mult for s in SEGMENTS])[segment]
    order_mult = np.where(damaged, 4.0, 1.0) * np.where(late, 1.3, 1.0)
    p_ret *= order_mult[order]
    del order_mult
    if placed.any():
        p_ret *= RETURN_SHARE / p_ret[placed].mean()
    np.minimum(p_ret, 0.9, out=p_ret)
    returned = placed & (rng.random(n) < p_ret)
    del p_ret, placed
    r = np.flatnonzero(returned)
    return_qty = 1 + rng.binomial(quantity[r].astype(np.int64) - 1, 0.35)
    return_t = ordered_at[order[r]] + 3 * DAY + (rng.random(len(r)) * 27 * DAY).astype(np.int64)
    reason = _return_reasons(
        rng,
        has_fit=np.array([c.has_fit for c in CATEGORIES])[cat[r]],
        quality=products.quality[product[r]],
        damaged=damaged[order[r]],
        late=late[order[r]],
    )
    return returned, return_qty, return_t, reason


def _return_reasons(
    rng: np.random.Generator,
    *,
    has_fit: np.ndarray,
    quality: np.ndarray,
    damaged: np.ndarray,
    late: np.ndarray,
) -> np.ndarray:
    n = len(has_fit)
    general = np.array([_R_MIND, _R_MISTAKE, _R_NAD, _R_FAULTY, _R_QUALITY])
    reason = general[rng.choice(len(general), size=n, p=[0.35, 0.15, 0.2, 0.15, 0.15])]
    u = rng.random(n)
    low_q = quality < -0.5
    reason = np.where(low_q & (u < 0.45), _R_QUALITY, reason)
    reason = np.where(low_q & (u >= 0.45) & (u < 0.75), _R_NAD, reason)
    reason = np.where(late & (rng.random(n) < 0.3), _R_LATE, reason)
    reason = np.where(has_fit & (rng.random(n) < 0.55), _R_SIZE, reason)
    reason = np.where(damaged & (rng.random(n) < 0.75), _R_DAMAGED, reason)
    return reason.astype(np.int8)


def _returns_frame(
    returned: np.ndarray,
    return_t: np.ndarray,
    return_qty: np.ndarray,
    reason: np.ndarray,
    period: _Period,
) -> pd.DataFrame:
    """The ``returns`` table: the returns of the period, by time (see ``ShopFrames``).

    ``returned`` is per line; the other arrays are per returned line (:func:`_draw_returns`).
    """
    r_line = np.flatnonzero(returned)
    keep = return_t <= period.end_s
    r_line, r_t = r_line[keep], return_t[keep]
    r_qty, r_reason = return_qty[keep], reason[keep]
    r_sort = np.lexsort((r_line, r_t))
    r_t = r_t[r_sort]
    return pd.DataFrame(
        {
            "return_id": np.arange(1, len(r_t) + 1, dtype=np.int64),
            "order_line_id": r_line[r_sort] + 1,
            "quantity": r_qty[r_sort].astype(np.int64),
            "reason": _codes_to_str(r_reason[r_sort], RETURN_REASONS),
            "returned_at": _ts(r_t),
            "created_at": _ts(r_t),
            "updated_at": _ts(r_t),
        }
    )

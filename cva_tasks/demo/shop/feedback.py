"""Customer feedback in the demo shop.

About 20% of placed orders receive feedback 1-10 days later: a 1-5 rating driven by the order's
latent experience (late delivery, damaged parcel, returns, product quality, the customer's
mood), no rating on 10%, and a free-text comment whose sentiment per aspect agrees with that
experience (see :mod:`cva_tasks.demo.feedback_text`). A few entries are general feedback, not
about one order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cva_tasks.demo import feedback_text
from cva_tasks.demo.shop.columns import _str, _ts
from cva_tasks.demo.shop.customers import _Customers
from cva_tasks.demo.shop.orders import _Lines, _Orders
from cva_tasks.demo.shop.products import _Products
from cva_tasks.demo.shop.seasonality import DAY, _Period
from cva_tasks.demo.shop.vocabulary import (
    _R_FAULTY,
    _R_NAD,
    _R_QUALITY,
    _R_SIZE,
    CATEGORIES,
    SEGMENTS,
)

#: Share of placed orders that receive feedback, before the period-end cut.
FEEDBACK_SHARE = 0.2
#: Share of feedback that has no star rating.
NULL_RATING_SHARE = 0.1
#: Share of feedback that is not about a particular order.
GENERAL_FEEDBACK_SHARE = 0.04


def _rating_from_score(score: np.ndarray) -> np.ndarray:
    return (np.searchsorted(np.array([-0.5, -0.1, 0.45, 1.25]), score) + 1).astype(np.int64)


def _make_feedback(
    rng: np.random.Generator,
    customers: _Customers,
    products: _Products,
    orders: _Orders,
    lines: _Lines,
    period: _Period,
) -> pd.DataFrame:
    m = len(orders.t)
    n_lines = np.bincount(lines.order, minlength=m)
    q_mean: np.ndarray = np.bincount(
        lines.order, weights=products.quality[lines.product], minlength=m
    )
    q_mean = q_mean / np.maximum(n_lines, 1)
    ret_orders = lines.order[lines.returned]
    any_return = np.bincount(ret_orders, minlength=m) > 0
    size_return = np.zeros(m, dtype=bool)
    size_return[ret_orders[lines.reason == _R_SIZE]] = True
    quality_return = np.zeros(m, dtype=bool)
    quality_return[ret_orders[np.isin(lines.reason, [_R_QUALITY, _R_FAULTY])]] = True
    nad_return = np.zeros(m, dtype=bool)
    nad_return[ret_orders[lines.reason == _R_NAD]] = True
    clothing = np.array([c.has_fit for c in CATEGORIES])[products.category[lines.product]]
    has_fit = np.bincount(lines.order, weights=clothing, minlength=m) > 0
    first_line = np.searchsorted(lines.order, np.arange(m))
    main_product = lines.product[np.minimum(first_line, len(lines.order) - 1)]

    seg = customers.segment[orders.customer]
    mood = np.array([s.mood for s in SEGMENTS])[seg]
    score = (
        1.0
        + mood
        + 0.55 * q_mean
        - 1.7 * orders.late
        - 2.0 * orders.damaged
        - 1.3 * any_return
        + rng.normal(0.0, 0.75, size=m)
    )
    rating = _rating_from_score(score)
    w = 1.0 + 1.2 * (rating <= 2) + 0.3 * (rating == 5)
    placed = ~orders.cancelled
    p = np.minimum(FEEDBACK_SHARE * w / (w[placed].mean() if placed.any() else 1.0), 0.9)
    submitted = orders.t + DAY + (rng.random(m) * 9 * DAY).astype(np.int64)
    chosen = np.flatnonzero(placed & (rng.random(m) < p) & (submitted <= period.end_s))
    f = len(chosen)

    sc = score[chosen] - 0.6
    noise = rng.normal(0.0, 0.6, size=(f, len(feedback_text.ASPECTS)))
    late, dmg = orders.late[chosen], orders.damaged[chosen]
    qm, ret = q_mean[chosen], any_return[chosen]
    sz, qr, nad, fit = (
        size_return[chosen],
        quality_return[chosen],
        nad_return[chosen],
        has_fit[chosen],
    )
    drivers = {
        "delivery": np.where(late, -3.0, 1.2),
        "packaging": np.where(dmg, -3.0, 1.5),
        "quality": 1.2 * qm - 2.0 * qr,
        "fabric": 1.2 * qm - 2.0 * qr,
        "fit": np.where(sz, -3.0, 0.8),
        "value": np.full(f, 0.3),
        "service": np.where(ret | late | dmg, -1.0, 0.8),
        "photo": 0.8 * qm - 2.5 * nad + 0.3,
    }
    salience = {
        "delivery": 1.0 + 3.0 * late,
        "packaging": 0.35 + 4.0 * dmg,
        "quality": 1.1 + 0.6 * np.abs(qm) + 2.0 * qr,
        "fabric": (1.0 + 0.4 * np.abs(qm) + 1.5 * qr) * fit,
        "fit": (0.8 + 3.0 * sz) * fit,
        "value": np.full(f, 0.9),
        "service": 0.3 + 1.2 * ret,
        "photo": 0.5 + 2.5 * nad,
    }
    aspects = feedback_text.ASPECTS
    driver = np.column_stack([drivers[a] for a in aspects])
    polarity = (driver + 0.8 * sc[:, None] + noise > 0).astype(np.int8)
    comments = feedback_text.compose_comments(
        rng,
        rating=rating[chosen],
        polarity=polarity,
        salience=np.column_stack([salience[a] for a in aspects]),
        product_name=products.name[main_product[chosen]],
    )

    # General feedback, not about one order: service, value, delivery in general.
    g = round(f * GENERAL_FEEDBACK_SHARE / (1 - GENERAL_FEEDBACK_SHARE))
    placed_idx = np.flatnonzero(placed)
    if len(placed_idx) == 0:
        g = 0
    g_orders = placed_idx[rng.integers(0, max(len(placed_idx), 1), size=g)]
    g_cust = orders.customer[g_orders]
    g_time = orders.t[g_orders] + (rng.random(g) * 60 * DAY).astype(np.int64)
    ok = g_time <= period.end_s
    g_cust, g_time = g_cust[ok], g_time[ok]
    g = len(g_cust)
    g_score = 0.9 + np.array([s.mood for s in SEGMENTS])[customers.segment[g_cust]]
    g_score = g_score + rng.normal(0.0, 1.0, size=g)
    g_rating = _rating_from_score(g_score)
    g_sal = np.zeros((g, len(feedback_text.ASPECTS)))
    for a in ("delivery", "value", "service"):
        g_sal[:, feedback_text.ASPECTS.index(a)] = 1.0
    g_pol = (
        0.5 + 0.9 * (g_score[:, None] - 0.6) + rng.normal(0.0, 0.6, size=g_sal.shape) > 0
    ).astype(np.int8)
    g_comments = feedback_text.compose_comments(
        rng,
        rating=g_rating,
        polarity=g_pol,
        salience=g_sal,
        product_name=np.full(g, "order", dtype=object),
        lead_share=0.0,
    )

    cust = np.concatenate([orders.customer[chosen], g_cust]).astype(np.int64)
    order_id = np.concatenate([chosen + 1, np.zeros(g, dtype=np.int64)])
    has_order = np.concatenate([np.ones(f, dtype=bool), np.zeros(g, dtype=bool)])
    rating_all = np.concatenate([rating[chosen], g_rating])
    no_rating = rng.random(f + g) < NULL_RATING_SHARE
    t = np.concatenate([submitted[chosen], g_time])
    text = np.concatenate([comments, g_comments])
    sort = np.lexsort((order_id, cust, t))
    cust, order_id, has_order = cust[sort], order_id[sort], has_order[sort]
    rating_all, no_rating, t, text = rating_all[sort], no_rating[sort], t[sort], text[sort]
    ids = np.arange(1, f + g + 1)
    return pd.DataFrame(
        {
            "feedback_id": _str([f"F{i:07d}" for i in ids]),
            "customer_id": cust + 1,
            "order_id": pd.arrays.IntegerArray(order_id, ~has_order),
            "rating": pd.arrays.IntegerArray(rating_all, no_rating),
            "comment": _str(text),
            "submitted_at": _ts(t),
        }
    )

"""The demo shop's orders and order lines.

Orders form a Poisson process per customer (rate calibrated to about ten orders per customer
over two years) modulated by the seasonality, between the first order and the true churn
instant; each carries a latent experience (late delivery, damaged parcel). Lines are drawn
from the customer's favourites or by category preference and price level, one line per product
and order, with quantities and discounts (more in sales, more for bargain hunters).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cva_tasks.demo.shop.columns import _codes_to_str, _ts
from cva_tasks.demo.shop.customers import _Customers, _Favourites
from cva_tasks.demo.shop.products import _pick_products, _Products, _segmented_pick
from cva_tasks.demo.shop.returns import _cancellations, _draw_returns
from cva_tasks.demo.shop.seasonality import DAY, _Period, _sale_days, _time_of_day
from cva_tasks.demo.shop.vocabulary import SEGMENT_NAMES, SEGMENTS

logger = logging.getLogger(__name__)

#: Average orders per customer over the default two-year period (all customers).
ORDERS_PER_CUSTOMER_PER_731_DAYS = 10.0


@dataclass
class _Orders:
    customer: np.ndarray  # customer index
    t: np.ndarray  # epoch seconds
    cancelled: np.ndarray
    updated: np.ndarray
    late: np.ndarray
    damaged: np.ndarray
    order_rate: np.ndarray  # per customer, orders per 30 days (calibrated)


def _make_orders(
    rng: np.random.Generator, customers: _Customers, period: _Period, intensity: np.ndarray
) -> _Orders:
    n = len(customers.segment)
    cum = np.concatenate([[0.0], np.cumsum(intensity)])
    grid = np.arange(period.n_days + 1, dtype=np.float64)

    def c_of(t: np.ndarray) -> np.ndarray:
        return np.interp((t - period.start_s) / DAY, grid, cum)

    in_period = customers.signup >= period.start_s
    end = np.minimum(customers.churn, period.end_s)
    has_first = in_period & (customers.first_order <= end)
    begin = np.where(in_period, customers.first_order, period.start_s)
    active = end > begin
    exposure = np.where(active, c_of(np.where(active, end, begin)) - c_of(begin), 0.0)

    target = n * ORDERS_PER_CUSTOMER_PER_731_DAYS * period.n_days / 731
    base = float((customers.rate * exposure).sum())
    factor = (target - has_first.sum()) / base if base > 0 else 1.0
    factor = float(np.clip(factor, 0.25, 4.0))
    logger.info("order-rate calibration factor %.3f", factor)
    rate = customers.rate * factor

    k = rng.poisson(rate * exposure)
    cust = np.repeat(np.arange(n, dtype=np.int32), k)
    u = c_of(begin)[cust] + rng.random(len(cust)) * exposure[cust]
    day = np.minimum(np.interp(u, cum, grid).astype(np.int64), period.n_days - 1)
    t = period.start_s + day * DAY + _time_of_day(rng, len(cust))
    ok = (t > begin[cust]) & (t <= end[cust])
    cust, t = cust[ok], t[ok]
    first_c = np.flatnonzero(has_first).astype(np.int32)
    cust = np.concatenate([first_c, cust])
    t = np.concatenate([customers.first_order[first_c], t])
    order = np.lexsort((cust, t))
    cust, t = cust[order], t[order]
    m = len(t)

    cancelled, updated = _cancellations(rng, customers.segment[cust], t, period)
    # Latent order experience: late delivery (more in the peak), damaged parcel.
    day_of = (t - period.start_s) // DAY
    peak = intensity[day_of] > 1.4
    late = rng.random(m) < np.where(peak, 0.16, 0.07)
    damaged = rng.random(m) < 0.025
    return _Orders(cust, t, cancelled, updated, late, damaged, rate * 30.0)


@dataclass
class _Lines:
    order: np.ndarray  # order index
    product: np.ndarray
    quantity: np.ndarray
    price: np.ndarray
    returned: np.ndarray  # latent: this line is returned (before the period cut)
    return_qty: np.ndarray
    return_t: np.ndarray
    reason: np.ndarray


def _make_lines(
    rng: np.random.Generator,
    customers: _Customers,
    products: _Products,
    favourites: _Favourites,
    orders: _Orders,
    groups: tuple[np.ndarray, np.ndarray, np.ndarray],
    period: _Period,
) -> _Lines:
    m = len(orders.t)
    if m >= np.iinfo(np.int32).max:
        raise ValueError("too many orders for int32 order indices")
    seg_o = customers.segment[orders.customer]
    mean_lines = np.array([s.mean_lines for s in SEGMENTS])[seg_o]
    n_lines = np.minimum(1 + rng.poisson(mean_lines - 1.0), 12)
    del mean_lines
    order = np.repeat(np.arange(m, dtype=np.int32), n_lines)
    del n_lines
    cust = orders.customer[order]
    logger.info("drawing products for %d candidate lines", len(order))

    fav = rng.random(len(order)) < favourites.p_favourite[cust]
    product = np.empty(len(order), dtype=np.int32)
    fav_idx = np.flatnonzero(fav)
    product[fav_idx] = favourites.product[
        _segmented_pick(rng, cust[fav_idx], favourites.weight, favourites.customer)
    ]
    del fav_idx
    other = np.flatnonzero(~fav)
    del fav
    product[other] = _pick_products(rng, cust[other], customers.cat_pref, customers.segment, groups)
    del other

    # One line per product within an order (keep the first occurrence).
    key = order.astype(np.int64) * len(products.price) + product
    _, first = np.unique(key, return_index=True)
    del key, _
    keep = np.sort(first)
    del first
    order, product, cust = order[keep], product[keep], cust[keep]
    del keep
    n = len(order)
    seg = customers.segment[cust]
    del cust

    price = products.price[product]
    qty_mean = np.where(price < 8, 0.6, 0.15) + np.array([s.extra_qty for s in SEGMENTS])[seg]
    quantity = np.minimum(1 + rng.poisson(qty_mean), 10).astype(np.int16)
    del qty_mean

    # Discounts: more during sales, more for bargain hunters, fewer for champions.
    order_sale = _sale_days(period)[(orders.t - period.start_s) // DAY]
    seg_mult = np.ones(len(SEGMENTS))
    seg_mult[SEGMENT_NAMES.index("bargain_hunter")] = 2.2
    seg_mult[SEGMENT_NAMES.index("champion")] = 0.7
    p_table = np.minimum(np.array([[0.07], [0.35]]) * seg_mult[None, :], 0.9)
    p_disc = p_table[order_sale[order].astype(np.int8), seg]
    discounted = np.flatnonzero(rng.random(n) < p_disc)
    del p_disc, order_sale
    rates = np.array([0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5])
    disc = rates[
        rng.choice(len(rates), size=len(discounted), p=[0.25, 0.2, 0.2, 0.1, 0.12, 0.08, 0.05])
    ]
    paid = price
    paid[discounted] = np.maximum(np.round(price[discounted] * (1 - disc), 2), 0.01)
    del discounted, disc, price

    returned, return_qty, return_t, reason = _draw_returns(
        rng,
        products,
        order=order,
        product=product,
        quantity=quantity,
        segment=seg,
        cancelled=orders.cancelled,
        late=orders.late,
        damaged=orders.damaged,
        ordered_at=orders.t,
    )
    return _Lines(order, product, quantity, paid, returned, return_qty, return_t, reason)


def _orders_frame(orders: _Orders) -> pd.DataFrame:
    """The ``orders`` table (see ``ShopFrames``); ids increase with time."""
    order_ids = np.arange(1, len(orders.t) + 1, dtype=np.int64)
    return pd.DataFrame(
        {
            "order_id": order_ids,
            "customer_id": orders.customer.astype(np.int64) + 1,
            "ordered_at": _ts(orders.t),
            "status": _codes_to_str(orders.cancelled.astype(np.int8), ("placed", "cancelled")),
            "created_at": _ts(orders.t),
            "updated_at": _ts(orders.updated),
        }
    )


def _lines_frame(orders: _Orders, lines: _Lines) -> pd.DataFrame:
    """The ``order_lines`` table (see ``ShopFrames``), stamped with their order's time."""
    line_t = _ts(orders.t[lines.order])
    return pd.DataFrame(
        {
            "order_line_id": np.arange(1, len(lines.order) + 1, dtype=np.int64),
            "order_id": lines.order.astype(np.int64) + 1,
            "product_id": lines.product.astype(np.int64) + 1,
            "quantity": lines.quantity.astype(np.int64),
            "unit_price": lines.price,
            "created_at": line_t,
            "updated_at": line_t,
        }
    )

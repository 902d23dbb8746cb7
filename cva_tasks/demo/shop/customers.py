"""The demo shop's customers: signups, latent segments, order rates, true churn instants,
category preferences, the customer rows (PII) and each customer's favourite products."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cva_tasks.demo.shop.columns import _codes_to_str, _str, _ts
from cva_tasks.demo.shop.products import _pick_products
from cva_tasks.demo.shop.seasonality import DAY, _Period, _time_of_day
from cva_tasks.demo.shop.vocabulary import (
    CATEGORIES,
    COUNTRIES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    SEGMENTS,
)


@dataclass
class _Customers:
    frame: pd.DataFrame
    segment: np.ndarray
    signup: np.ndarray
    first_order: np.ndarray
    churn: np.ndarray  # epoch seconds; huge for never
    rate: np.ndarray  # orders per day (before calibration)
    cat_pref: np.ndarray  # (n, K)


def _make_customers(
    rng: np.random.Generator, n: int, period: _Period, intensity: np.ndarray
) -> _Customers:
    # Signups: ~30% before the period (up to three years), the rest during it,
    # following the seasonal intensity and a growth trend.
    pre = rng.random(n) < 0.3
    n_pre = int(pre.sum())
    pre_signup = period.start_s - (rng.random(n_pre) ** 0.8 * 3 * 365 * DAY).astype(np.int64) - 1
    growth = 1.0 + 0.5 * np.arange(period.n_days) / max(period.n_days, 1)
    w = intensity * growth
    day = rng.choice(period.n_days, size=n - n_pre, p=w / w.sum())
    in_signup = period.start_s + day * DAY + _time_of_day(rng, n - n_pre)
    signup = np.sort(np.concatenate([pre_signup, in_signup]))

    seg_share = np.array([s.share for s in SEGMENTS])
    segment = rng.choice(len(SEGMENTS), size=n, p=seg_share / seg_share.sum()).astype(np.int8)
    seg_rate = np.array([s.rate for s in SEGMENTS])[segment]
    rate = seg_rate / 30.0 * rng.gamma(2.0, 0.5, size=n)

    quick = rng.random(n) < 0.65
    delay = np.where(
        quick, rng.exponential(8 * 60, size=n), rng.exponential(6 * DAY, size=n)
    ).astype(np.int64)
    first_order = signup + 60 + delay
    lifetime = rng.exponential(np.array([s.lifetime_days for s in SEGMENTS])[segment] * DAY)
    never = rng.random(n) < np.array([s.p_never_churn for s in SEGMENTS])[segment]
    churn = first_order + np.minimum(lifetime, 1e12).astype(np.int64)
    churn[never] = np.iinfo(np.int64).max // 4

    # Category preferences: concentrated Dirichlet around the catalogue shares.
    shares = np.array([c.share for c in CATEGORIES])
    cat_pref = rng.dirichlet(shares / shares.sum() * 2.5, size=n)

    customer_id = np.arange(1, n + 1, dtype=np.int64)
    first_idx = rng.integers(0, len(FIRST_NAMES), size=n)
    last_idx = rng.integers(0, len(LAST_NAMES), size=n)
    dom_idx = rng.choice(len(EMAIL_DOMAINS), size=n, p=[0.7, 0.2, 0.1])
    firsts = np.array(FIRST_NAMES, dtype=object)[first_idx]
    lasts = np.array(LAST_NAMES, dtype=object)[last_idx]
    f_low = np.array([x.lower() for x in FIRST_NAMES], dtype=object)[first_idx]
    l_low = np.array([x.lower().replace(" ", "") for x in LAST_NAMES], dtype=object)[last_idx]
    doms = np.array(EMAIL_DOMAINS, dtype=object)[dom_idx]
    email = f_low + "." + l_low + "." + customer_id.astype(str).astype(object) + "@" + doms
    c_names = tuple(c for c, _ in COUNTRIES)
    c_w = np.array([w for _, w in COUNTRIES])
    country = rng.choice(len(c_names), size=n, p=c_w / c_w.sum())
    edited = rng.random(n) < 0.3
    updated = np.where(
        edited,
        signup + (rng.random(n) * (period.end_s - signup)).astype(np.int64),
        signup,
    )
    # Customers who signed up before the period were migrated in on the first day
    # (see the products above): their rows reach the lake with the first extraction.
    updated = np.maximum(updated, period.start_s + customer_id.astype(np.int64) % 86400)
    frame = pd.DataFrame(
        {
            "customer_id": customer_id,
            "email": _str(email),
            "first_name": _str(firsts),
            "last_name": _str(lasts),
            "country": _codes_to_str(country, c_names),
            "signup_at": _ts(signup),
            "created_at": _ts(signup),
            "updated_at": _ts(updated),
        }
    )
    return _Customers(frame, segment, signup, first_order, churn, rate, cat_pref)


@dataclass
class _Favourites:
    customer: np.ndarray  # customer index, sorted
    product: np.ndarray
    weight: np.ndarray  # within-customer weights, sum 1
    p_favourite: np.ndarray  # per customer


def _make_favourites(
    rng: np.random.Generator,
    customers: _Customers,
    groups: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> _Favourites:
    n = len(customers.segment)
    k = np.minimum(2 + rng.poisson(1.5, size=n), 7)
    cust = np.repeat(np.arange(n), k)
    product = _pick_products(rng, cust, customers.cat_pref, customers.segment, groups)
    # merge duplicates (a customer drawing the same favourite twice)
    key = cust.astype(np.int64) * (product.max() + 1) + product
    key, first = np.unique(key, return_index=True)
    cust, product = cust[first], product[first]
    weight = rng.gamma(1.0, 1.0, size=len(cust))
    total = np.bincount(cust, weights=weight, minlength=n)
    weight = weight / total[cust]
    p_seg = np.array([s.p_favourite for s in SEGMENTS])[customers.segment]
    p_fav = np.clip(p_seg * rng.lognormal(0.0, 0.3, size=n), 0.02, 0.85)
    return _Favourites(cust, product, weight, p_fav)

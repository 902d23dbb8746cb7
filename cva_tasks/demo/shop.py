"""Seeded generator of a realistic online shop: "the demo shop".

The demo shop is the data set the pipeline runs on when nothing else is
configured, and the fixture of its tests. One knob, ``n_customers``, scales it
from about a thousand customers (a few seconds) to a million (a few minutes,
a few GB of RAM): everything is vectorised with numpy, there is no Python loop
per order or line.

What it simulates:

* **Customers** sign up over the period (plus about 30% who existed before
  it). Each has a latent segment (``champion``, ``loyal``, ``bargain_hunter``,
  ``occasional``, ``one_time``) with its own order rate, basket size, price
  sensitivity, mood and churn rate. The first order usually follows the
  signup within minutes; further orders form a Poisson process (rate drawn
  per customer from a gamma distribution) modulated by the shop's seasonality
  (Nov-Dec peak about twice the summer level, Black Friday, a weekly and a
  daily rhythm). Each customer has a true churn instant (exponential lifetime
  from the first order, some customers never churn) and orders nothing after it.
* **Affinities**: each customer prefers a few categories (Dirichlet weights)
  and has a handful of favourite products which make up a large share of
  their basket lines; the rest is drawn by category preference, long-tailed
  product popularity and the segment's price sensitivity.
* **Orders** are ``placed`` or ``cancelled`` (about 2.5%); lines carry the
  product price with occasional discounts (more in sales, more for bargain
  hunters); about 5% of lines of placed orders are returned 3-30 days later.
* **Feedback** on about 20% of orders, 1-10 days after the order: a 1-5 rating
  driven by the order's latent experience (late delivery, damaged parcel,
  returns, product quality, the customer's mood), 10% without a rating, and a
  free-text comment whose sentiment agrees with that experience (see
  :mod:`cva_tasks.demo.feedback_text`).

Outputs: five database tables (``customers``, ``products``, ``orders``,
``order_lines``, ``returns``; SQLite or PostgreSQL), one JSONL feedback drop
per day, and ground-truth Parquet files with the latent segments, churn
instants, order rates and item affinities for evaluations.

Same seed and arguments give identical frames, tables and files.
"""

from __future__ import annotations

import io
import logging
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa

from cva_tasks.demo import feedback_text

logger = logging.getLogger(__name__)

DEFAULT_START = date(2024, 1, 1)
DEFAULT_END = date(2025, 12, 31)  # inclusive last day

#: Names of the database tables, in load order.
TABLES: tuple[str, ...] = ("customers", "products", "orders", "order_lines", "returns")

DAY = 86_400
_EPOCH = date(1970, 1, 1)
#: Average orders per customer over the default two-year period (all customers).
ORDERS_PER_CUSTOMER_PER_731_DAYS = 10.0
#: Share of (placed-order) lines that are returned, before the period-end cut.
RETURN_SHARE = 0.05
#: Share of placed orders that receive feedback, before the period-end cut.
FEEDBACK_SHARE = 0.2
#: Share of feedback that has no star rating.
NULL_RATING_SHARE = 0.1
#: Share of feedback that is not about a particular order.
GENERAL_FEEDBACK_SHARE = 0.04


# --------------------------------------------------------------------------- #
# Static vocabulary
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Segment:
    name: str
    share: float
    rate: float  # orders per 30 days before calibration
    lifetime_days: float  # mean lifetime after the first order
    p_never_churn: float
    mean_lines: float
    p_favourite: float  # share of lines drawn from the favourite products
    price_beta: float  # product weight ~ price ** -beta
    mood: float  # shift of the latent experience
    p_cancel: float
    return_mult: float
    extra_qty: float


SEGMENTS: tuple[_Segment, ...] = (
    _Segment("champion", 0.07, 4.0, 1400, 0.55, 3.6, 0.50, -0.3, 0.35, 0.015, 0.8, 0.35),
    _Segment("loyal", 0.22, 1.6, 800, 0.35, 3.0, 0.45, 0.2, 0.20, 0.020, 1.0, 0.20),
    _Segment("bargain_hunter", 0.19, 0.8, 450, 0.10, 2.7, 0.25, 1.4, -0.20, 0.035, 1.3, 0.40),
    _Segment("occasional", 0.32, 0.4, 400, 0.08, 2.3, 0.20, 0.5, 0.00, 0.025, 1.0, 0.10),
    _Segment("one_time", 0.20, 0.15, 12, 0.0, 2.0, 0.10, 0.6, -0.10, 0.030, 1.2, 0.10),
)
SEGMENT_NAMES: tuple[str, ...] = tuple(s.name for s in SEGMENTS)


@dataclass(frozen=True)
class _Category:
    """A product category; the name parts are ``|``-separated word lists."""

    name: str
    code: str
    share: float  # share of the catalogue
    median_price: float
    return_rate: float  # relative return propensity
    has_fit: bool  # sized items (fit/fabric comments apply)
    first_words: str  # material / descriptor
    second_words: str  # colour / scent
    noun_words: str

    @property
    def first(self) -> tuple[str, ...]:
        return tuple(self.first_words.split("|"))

    @property
    def second(self) -> tuple[str, ...]:
        return tuple(self.second_words.split("|"))

    @property
    def nouns(self) -> tuple[str, ...]:
        return tuple(self.noun_words.split("|"))


_COLOURS = "Blue|Sage|Navy|Mustard|Blush|Charcoal|Ivory|Teal|Coral|Olive|Grey|Red|Green|Black|White"

CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "Home Decor", "HOM", 0.17, 22.0, 0.04, False,
        "Ceramic|Glass|Linen|Rattan|Wooden|Velvet|Marble|Woven|Brass|Terracotta",
        _COLOURS,
        "Vase|Cushion Cover|Candle Holder|Photo Frame|Throw|Wall Mirror|Lantern|Plant Pot|"
        "Table Lamp|Clock",
    ),
    _Category(
        "Kitchen", "KIT", 0.16, 14.0, 0.035, False,
        "Ceramic|Enamel|Bamboo|Stoneware|Cast Iron|Glass|Copper|Stainless|Porcelain|Olive Wood",
        _COLOURS,
        "Mug|Teapot|Chopping Board|Mixing Bowl|Serving Tray|Utensil Set|Storage Jar|Tea Towel|"
        "Salad Bowl|Coffee Press",
    ),
    _Category(
        "Clothing", "CLO", 0.20, 30.0, 0.14, True,
        "Cotton|Linen|Wool|Cashmere Blend|Denim|Jersey|Fleece|Silk|Corduroy|Knitted",
        _COLOURS,
        "T-Shirt|Jumper|Scarf|Dress|Shirt|Cardigan|Hoodie|Pyjama Set|Skirt|Socks",
    ),
    _Category(
        "Accessories", "ACC", 0.12, 18.0, 0.05, False,
        "Leather|Canvas|Silver|Beaded|Suede|Woven|Gold Plated|Vegan Leather|Tweed|Straw",
        _COLOURS,
        "Tote Bag|Wallet|Necklace|Bracelet|Belt|Hat|Backpack|Earrings|Keyring|Glasses Case",
    ),
    _Category(
        "Toys", "TOY", 0.09, 15.0, 0.03, False,
        "Wooden|Plush|Felt|Magnetic|Knitted|Tin|Rainbow|Musical|Puzzle|Stacking",
        _COLOURS,
        "Train Set|Teddy Bear|Building Blocks|Jigsaw|Rocket|Doll|Kite|Puppet|Dinosaur|Board Game",
    ),
    _Category(
        "Stationery", "STA", 0.08, 6.0, 0.015, False,
        "Recycled|Leather Bound|Kraft|Floral|Dotted|Pastel|Hardback|Spiral|Linen Bound|Marbled",
        _COLOURS,
        "Notebook|Journal|Pen Set|Planner|Greeting Card|Sticker Pack|Pencil Case|Desk Organiser|"
        "Wrapping Paper|Bookmark",
    ),
    _Category(
        "Garden", "GAR", 0.08, 20.0, 0.03, False,
        "Galvanised|Terracotta|Solar|Wicker|Cedar|Zinc|Stone|Bamboo|Enamel|Wrought Iron",
        _COLOURS,
        "Planter|Bird Feeder|Watering Can|String Lights|Bench Cushion|Trowel|Wind Chime|Seed Kit|"
        "Hose Reel|Lantern",
    ),
    _Category(
        "Beauty", "BEA", 0.10, 10.0, 0.02, False,
        "Mini|Large|Travel|Deluxe|Classic|Organic|Luxury|Gentle|Refreshing|Calming",
        "Lavender|Rose|Citrus|Coconut|Vanilla|Eucalyptus|Shea|Oat|Sea Salt|Jasmine",
        "Soap Bar|Hand Cream|Bath Bomb|Lip Balm|Body Scrub|Face Mask|Candle|Bath Oil|Shampoo Bar|"
        "Gift Set",
    ),
)  # fmt: skip
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

COUNTRIES: tuple[tuple[str, float], ...] = (
    ("United Kingdom", 0.58),
    ("Germany", 0.08),
    ("France", 0.07),
    ("Ireland", 0.05),
    ("Netherlands", 0.04),
    ("Spain", 0.03),
    ("Belgium", 0.03),
    ("Italy", 0.025),
    ("Sweden", 0.02),
    ("Switzerland", 0.02),
    ("United States", 0.018),
    ("Norway", 0.015),
    ("Portugal", 0.015),
    ("Denmark", 0.015),
    ("Australia", 0.012),
    ("Poland", 0.01),
)

FIRST_NAMES: tuple[str, ...] = (
    "Anna", "James", "Olivia", "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah",
    "Emily", "Jack", "Sophie", "Leo", "Grace", "Arthur", "Mia", "Oscar", "Chloe", "Charlie",
    "Ella", "Thomas", "Lily", "Henry", "Freya", "William", "Evie", "Alfie", "Ruby", "Jacob",
    "Lucy", "Daniel", "Hannah", "Samuel", "Laura", "Max", "Julia", "Lukas", "Emma", "Paul",
    "Lea", "Felix", "Clara", "Louis", "Camille", "Hugo", "Sofia", "Mateo", "Elena", "Marco",
    "Giulia", "Sean", "Aoife", "Lars", "Ingrid", "Pieter", "Sanne", "Maria", "David", "Sarah",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Wright", "Robinson", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Cooper",
    "Ward", "Morris", "King", "Baker", "Harris", "Lewis", "Young", "Allen", "Khan", "Murphy",
    "Kelly", "Walsh", "Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Martin", "Bernard",
    "Dubois", "Moreau", "Laurent", "Garcia", "Lopez", "Rossi", "Russo", "Jansen", "De Vries",
    "Nilsson", "Larsen", "Nowak", "Silva", "Santos",
)  # fmt: skip

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")

RETURN_REASONS: tuple[str, ...] = (
    "Wrong size",
    "Damaged in transit",
    "Poor quality",
    "Not as described",
    "Changed my mind",
    "Ordered by mistake",
    "Arrived too late",
    "Faulty item",
)
_R_SIZE, _R_DAMAGED, _R_QUALITY, _R_NAD, _R_MIND, _R_MISTAKE, _R_LATE, _R_FAULTY = range(8)

# Month profile of demand (Jan..Dec), mean about 1; summer dip, Nov-Dec peak.
_MONTH_FACTOR = np.array([0.9, 0.85, 0.95, 0.95, 0.9, 0.8, 0.75, 0.75, 0.95, 1.05, 1.5, 1.65])
_MONTH_FACTOR = _MONTH_FACTOR / _MONTH_FACTOR.mean()
# Monday..Sunday.
_WEEKDAY_FACTOR = np.array([1.05, 1.0, 0.98, 0.97, 0.92, 0.88, 1.2])
# Hour-of-day weights (UTC): quiet nights, lunch bump, evening peak.
_HOUR_WEIGHTS = np.array(
    [0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.5, 1.0, 1.5, 1.8, 2.0, 2.2,
     2.6, 2.5, 2.1, 2.0, 2.0, 2.2, 2.6, 3.1, 3.4, 3.2, 2.4, 1.3]
)  # fmt: skip
_HOUR_WEIGHTS = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()


# --------------------------------------------------------------------------- #
# Public result type
# --------------------------------------------------------------------------- #


@dataclass(frozen=True, eq=False)
class ShopFrames:
    """All generated data of one demo shop, as DataFrames.

    Timestamps are ``datetime64[us, UTC]``, ids are ``int64``, texts are
    pandas strings.

    Attributes:
        customers: One row per customer: ``customer_id``, ``email``,
            ``first_name``, ``last_name``, ``country``, ``signup_at``,
            ``created_at`` (= signup), ``updated_at`` (later for profile edits).
        products: One row per product: ``product_id``, ``sku``, ``name``,
            ``category``, ``unit_price``, ``created_at``, ``updated_at``.
        orders: One row per order: ``order_id``, ``customer_id``,
            ``ordered_at``, ``status`` (``placed``/``cancelled``),
            ``created_at`` (= ordered_at), ``updated_at`` (cancellation time for
            cancelled orders, else created_at). Ids increase with time.
        order_lines: One row per order line: ``order_line_id``, ``order_id``,
            ``product_id``, ``quantity``, ``unit_price`` (price paid per unit),
            ``created_at`` = ``updated_at`` = order time.
        returns: One row per returned line: ``return_id``, ``order_line_id``,
            ``quantity`` (<= line quantity), ``reason``, ``returned_at``,
            ``created_at`` = ``updated_at`` = returned_at.
        feedback: One row per piece of feedback, sorted by time:
            ``feedback_id`` (``F0000001``), ``customer_id``, ``order_id``
            (nullable ``Int64``; null for general feedback), ``rating``
            (nullable ``Int64``, 1-5), ``comment``, ``submitted_at``.
        truth_customers: Ground truth, one row per customer:
            ``customer_id``, ``latent_segment``, ``churn_at`` (null when the
            customer is still alive at the end of the period), ``order_rate``
            (expected orders per 30 days at average seasonal intensity while
            alive).
        truth_affinities: Ground truth, one row per (customer, favourite
            product): ``customer_id``, ``product_id``, ``affinity`` (expected
            share of the customer's order lines that are this product through
            the favourite channel).
        start: First day of the period.
        end: Last day of the period (inclusive).
    """

    customers: pd.DataFrame
    products: pd.DataFrame
    orders: pd.DataFrame
    order_lines: pd.DataFrame
    returns: pd.DataFrame
    feedback: pd.DataFrame
    truth_customers: pd.DataFrame
    truth_affinities: pd.DataFrame
    start: date = field(default=DEFAULT_START)
    end: date = field(default=DEFAULT_END)

    def counts(self) -> dict[str, int]:
        """Row counts of the tables and the feedback."""
        return {name: len(getattr(self, name)) for name in (*TABLES, "feedback")}


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Period:
    start: date
    end: date

    @property
    def start_day(self) -> int:
        return (self.start - _EPOCH).days

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def start_s(self) -> int:
        return self.start_day * DAY

    @property
    def end_s(self) -> int:
        """Last second of the period (inclusive)."""
        return (self.start_day + self.n_days) * DAY - 1


def _ts(secs: np.ndarray, missing: np.ndarray | None = None) -> pd.Series:
    """Epoch seconds -> ``datetime64[us, UTC]`` series (``missing`` rows NaT)."""
    us = np.asarray(secs, dtype=np.int64) * 1_000_000
    values = us.view("datetime64[us]")
    if missing is not None:
        values = values.copy()
        values[missing] = np.datetime64("NaT")
    return pd.Series(values, copy=False).dt.tz_localize("UTC")


def _secs(series: pd.Series) -> np.ndarray:
    """``datetime64[*, UTC]`` series -> int64 epoch seconds."""
    arr = series.array
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[arr.unit]
    return np.asarray(arr.asi8) // per_second


def _peak_mb() -> float:
    """Peak resident memory of this process in MB (0 where unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def _str(values: Any) -> pd.Series:
    return pd.Series(values, dtype="str")


def _codes_to_str(codes: np.ndarray, labels: tuple[str, ...]) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, categories=list(labels))).astype("str")


_TIME_OF_DAY: np.ndarray | None = None


def _time_strings() -> np.ndarray:
    global _TIME_OF_DAY
    if _TIME_OF_DAY is None:
        sod = np.arange(DAY)
        _TIME_OF_DAY = np.array(
            [
                f"{h:02d}:{m:02d}:{s:02d}"
                for h, m, s in zip(sod // 3600, sod // 60 % 60, sod % 60, strict=True)
            ],
            dtype=object,
        )
    return _TIME_OF_DAY


def _ts_text(secs: np.ndarray, sep: str = " ", suffix: str = "") -> np.ndarray:
    """Epoch seconds -> object array of ``YYYY-MM-DD HH:MM:SS`` strings (fast)."""
    secs = np.asarray(secs, dtype=np.int64)
    if len(secs) == 0:
        return np.empty(0, dtype=object)
    days = secs // DAY
    d0 = int(days.min())
    span = int(days.max()) - d0 + 1
    dates = np.datetime_as_string(np.arange(d0, d0 + span).astype("datetime64[D]")).astype(object)
    dates = dates + sep
    out = dates[days - d0] + _time_strings()[secs - days * DAY]
    if suffix:
        out = out + suffix
    return out


def _daily_intensity(period: _Period) -> np.ndarray:
    """Relative order intensity per day of the period (mean about 1 over a year)."""
    days = np.arange(period.start_day, period.start_day + period.n_days).astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    month_idx = (months.astype(np.int64) % 12).astype(np.int64)
    dom = (days - months).astype(np.int64)  # 0-based day of month
    month_len = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(
        np.int64
    )
    # Smooth month profile: interpolate between mid-month anchors.
    pos = dom / month_len - 0.5
    nxt = np.where(pos >= 0, (month_idx + 1) % 12, (month_idx - 1) % 12)
    w = np.abs(pos)
    level = (1 - w) * _MONTH_FACTOR[month_idx] + w * _MONTH_FACTOR[nxt]
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    level = level * _WEEKDAY_FACTOR[weekday]
    # Events: Black Friday to Cyber Monday, Christmas days, January sales.
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    boost = np.ones(len(days))
    for year in np.unique(years):
        nov1 = date(int(year), 11, 1)
        first_thu = nov1 + timedelta(days=(3 - nov1.weekday()) % 7)
        black_friday = first_thu + timedelta(days=22)
        bf = np.datetime64(black_friday, "D")
        boost[(days >= bf) & (days <= bf + 3)] = 2.2
        xmas = np.datetime64(date(int(year), 12, 25), "D")
        boost[days == xmas - 1] = 0.6
        boost[days == xmas] = 0.35
        boost[days == xmas + 1] = 1.2
        jan = np.datetime64(date(int(year), 1, 1), "D")
        boost[(days >= jan + 1) & (days <= jan + 7)] = 1.15
    return level * boost


def _sale_days(period: _Period) -> np.ndarray:
    """Boolean per day: a sales event (Black Friday week, Boxing Day to mid-January)."""
    days = np.arange(period.start_day, period.start_day + period.n_days).astype("datetime64[D]")
    sale = np.zeros(len(days), dtype=bool)
    years = days.astype("datetime64[Y]").astype(np.int64) + 1970
    for year in np.unique(years):
        nov1 = date(int(year), 11, 1)
        black_friday = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 22)
        bf = np.datetime64(black_friday, "D")
        sale |= (days >= bf - 3) & (days <= bf + 3)
        boxing = np.datetime64(date(int(year), 12, 26), "D")
        jan = np.datetime64(date(int(year), 1, 1), "D")
        sale |= (days >= boxing) & (days <= boxing + 5)
        sale |= (days >= jan) & (days <= jan + 13)
    return sale


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS)
    return hours * 3600 + rng.integers(0, 3600, size=n)


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


# --------------------------------------------------------------------------- #
# Generation stages
# --------------------------------------------------------------------------- #


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
    customers: _Customers,
    groups: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> np.ndarray:
    """Draw a product per row for customers ``cust`` by category preference and price level."""
    n_cat = len(CATEGORIES)
    n_levels = len(SEGMENTS)
    item, group, weight = groups
    keyed = _keyed_cdf(weight, group)
    pref_cum = np.cumsum(customers.cat_pref, axis=1)
    pref_cum /= pref_cum[:, -1:]
    out = np.empty(len(cust), dtype=np.int64)
    chunk = 2_000_000
    for s in range(0, len(cust), chunk):
        c = cust[s : s + chunk]
        u = rng.random(len(c))
        cat = (pref_cum[c] < u[:, None]).sum(axis=1)
        cat = np.minimum(cat, n_cat - 1)
        g = cat * n_levels + customers.segment[c]
        out[s : s + chunk] = item[np.searchsorted(keyed, g + rng.random(len(c)), side="right")]
    return out


def _make_favourites(
    rng: np.random.Generator,
    customers: _Customers,
    groups: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> _Favourites:
    n = len(customers.segment)
    k = np.minimum(2 + rng.poisson(1.5, size=n), 7)
    cust = np.repeat(np.arange(n), k)
    product = _pick_products(rng, cust, customers, groups)
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

    seg = customers.segment[cust]
    cancelled = rng.random(m) < np.array([s.p_cancel for s in SEGMENTS])[seg]
    delay = np.clip(rng.lognormal(np.log(2 * 3600), 1.5, size=m), 300, 2 * DAY).astype(np.int64)
    updated = np.where(cancelled, np.minimum(t + delay, period.end_s), t)
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
    product[other] = _pick_products(rng, cust[other], customers, groups)
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

    # Returns (latent decision; recorded only if before the period end).
    placed = ~orders.cancelled[order]
    cat = products.category.astype(np.int8)[product]
    p_ret = np.array([c.return_rate for c in CATEGORIES])[cat]
    p_ret *= np.exp(-0.45 * products.quality)[product]
    p_ret *= np.array([s.return_mult for s in SEGMENTS])[seg]
    del seg
    order_mult = np.where(orders.damaged, 4.0, 1.0) * np.where(orders.late, 1.3, 1.0)
    p_ret *= order_mult[order]
    del order_mult
    if placed.any():
        p_ret *= RETURN_SHARE / p_ret[placed].mean()
    np.minimum(p_ret, 0.9, out=p_ret)
    returned = placed & (rng.random(n) < p_ret)
    del p_ret, placed
    r = np.flatnonzero(returned)
    return_qty = 1 + rng.binomial(quantity[r].astype(np.int64) - 1, 0.35)
    return_t = orders.t[order[r]] + 3 * DAY + (rng.random(len(r)) * 27 * DAY).astype(np.int64)
    reason = _return_reasons(
        rng,
        has_fit=np.array([c.has_fit for c in CATEGORIES])[cat[r]],
        quality=products.quality[product[r]],
        damaged=orders.damaged[order[r]],
        late=orders.late[order[r]],
    )
    return _Lines(order, product, quantity, paid, returned, return_qty, return_t, reason)


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
    q_mean = np.bincount(lines.order, weights=products.quality[lines.product], minlength=m)
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


# --------------------------------------------------------------------------- #
# Public API: generation
# --------------------------------------------------------------------------- #


def generate_frames(
    n_customers: int = 1000,
    seed: int = 7,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
) -> ShopFrames:
    """Generate the demo shop in memory.

    Args:
        n_customers: Number of customers (the one scale knob). Products grow
            slowly with it (about 200 at 1,000 customers, 3,000 at 1,000,000);
            orders average about 10 per customer over two years.
        seed: Seed of ``np.random.default_rng``; same seed and arguments give
            identical frames.
        start: First day of the period (UTC).
        end: Last day of the period, inclusive.

    Returns:
        The frames; see :class:`ShopFrames` for grains and columns.
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be positive, got {n_customers}")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    t0 = time.perf_counter()
    period = _Period(start, end)
    streams = np.random.default_rng(seed).spawn(6)
    intensity = _daily_intensity(period)

    products = _make_products(streams[0], _n_products(n_customers), period)
    logger.info("generated %d products (peak RSS %.0f MB)", len(products.price), _peak_mb())
    customers = _make_customers(streams[1], n_customers, period, intensity)
    logger.info("generated %d customers (peak RSS %.0f MB)", n_customers, _peak_mb())
    groups = _product_groups(products)
    favourites = _make_favourites(streams[2], customers, groups)
    orders = _make_orders(streams[3], customers, period, intensity)
    logger.info(
        "generated %d orders (%.1f per customer, peak RSS %.0f MB)",
        len(orders.t),
        len(orders.t) / n_customers,
        _peak_mb(),
    )
    lines = _make_lines(streams[4], customers, products, favourites, orders, groups, period)
    logger.info("generated %d order lines (peak RSS %.0f MB)", len(lines.order), _peak_mb())
    feedback = _make_feedback(streams[5], customers, products, orders, lines, period)
    logger.info("generated %d feedback entries (peak RSS %.0f MB)", len(feedback), _peak_mb())

    order_ids = np.arange(1, len(orders.t) + 1, dtype=np.int64)
    orders_df = pd.DataFrame(
        {
            "order_id": order_ids,
            "customer_id": orders.customer.astype(np.int64) + 1,
            "ordered_at": _ts(orders.t),
            "status": _codes_to_str(orders.cancelled.astype(np.int8), ("placed", "cancelled")),
            "created_at": _ts(orders.t),
            "updated_at": _ts(orders.updated),
        }
    )
    line_t = _ts(orders.t[lines.order])
    lines_df = pd.DataFrame(
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
    del line_t
    r_line = np.flatnonzero(lines.returned)
    keep = lines.return_t <= period.end_s
    r_line, r_t = r_line[keep], lines.return_t[keep]
    r_qty, r_reason = lines.return_qty[keep], lines.reason[keep]
    r_sort = np.lexsort((r_line, r_t))
    r_t = r_t[r_sort]
    returns_df = pd.DataFrame(
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

    churned = customers.churn <= period.end_s
    truth_customers = pd.DataFrame(
        {
            "customer_id": np.arange(1, n_customers + 1, dtype=np.int64),
            "latent_segment": _codes_to_str(customers.segment, SEGMENT_NAMES),
            "churn_at": _ts(np.where(churned, customers.churn, 0), missing=~churned),
            "order_rate": orders.order_rate,
        }
    )
    aff_order = np.lexsort((favourites.product, -favourites.weight, favourites.customer))
    truth_affinities = pd.DataFrame(
        {
            "customer_id": favourites.customer[aff_order].astype(np.int64) + 1,
            "product_id": favourites.product[aff_order] + 1,
            "affinity": (favourites.weight * favourites.p_favourite[favourites.customer])[
                aff_order
            ],
        }
    )
    logger.info(
        "generated the demo shop in %.1f s (peak RSS %.0f MB)",
        time.perf_counter() - t0,
        _peak_mb(),
    )
    return ShopFrames(
        customers=customers.frame,
        products=products.frame,
        orders=orders_df,
        order_lines=lines_df,
        returns=returns_df,
        feedback=feedback,
        truth_customers=truth_customers,
        truth_affinities=truth_affinities,
        start=start,
        end=end,
    )


# --------------------------------------------------------------------------- #
# Public API: writers
# --------------------------------------------------------------------------- #

# Column kinds: id (integer primary key), int, real, text, ts (timestamp).
_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "customers": (
        ("customer_id", "id"),
        ("email", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("country", "text"),
        ("signup_at", "ts"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "products": (
        ("product_id", "id"),
        ("sku", "text"),
        ("name", "text"),
        ("category", "text"),
        ("unit_price", "real"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "orders": (
        ("order_id", "id"),
        ("customer_id", "int"),
        ("ordered_at", "ts"),
        ("status", "text"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "order_lines": (
        ("order_line_id", "id"),
        ("order_id", "int"),
        ("product_id", "int"),
        ("quantity", "int"),
        ("unit_price", "real"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
    "returns": (
        ("return_id", "id"),
        ("order_line_id", "int"),
        ("quantity", "int"),
        ("reason", "text"),
        ("returned_at", "ts"),
        ("created_at", "ts"),
        ("updated_at", "ts"),
    ),
}

_SQL_TYPES: dict[str, dict[str, str]] = {
    "sqlite": {
        "id": "INTEGER PRIMARY KEY",
        "int": "INTEGER NOT NULL",
        "real": "REAL NOT NULL",
        "text": "TEXT NOT NULL",
        "ts": "TEXT NOT NULL",
    },
    "postgresql": {
        "id": "INTEGER PRIMARY KEY",
        "int": "INTEGER NOT NULL",
        "real": "DOUBLE PRECISION NOT NULL",
        "text": "TEXT NOT NULL",
        "ts": "TIMESTAMP NOT NULL",
    },
}

_SQLITE_CHUNK = 250_000
_PG_CHUNK = 1_000_000


def _ddl(table: str, dialect: str, qualified: str) -> str:
    types = _SQL_TYPES[dialect]
    cols = ", ".join(f"{c} {types[k]}" for c, k in _COLUMNS[table])
    return f"CREATE TABLE {qualified} ({cols})"


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for s in range(0, n, size):
        yield s, min(s + size, n)


def _log_progress(table: str, done: int, total: int, t0: float) -> None:
    logger.info(
        "  %s: %d/%d rows (%.0f%%, %.1f s)",
        table,
        done,
        total,
        100.0 * done / max(total, 1),
        time.perf_counter() - t0,
    )


def write_database(frames: ShopFrames, db_url: str, *, schema: str | None = None) -> None:
    """Write the five shop tables to a database, replacing them if present.

    Tables (grain / columns as in :class:`ShopFrames`): ``customers``,
    ``products``, ``orders``, ``order_lines``, ``returns``, each with an
    integer primary key and an index on ``updated_at``. Timestamps are UTC:
    ``TEXT`` ``YYYY-MM-DD HH:MM:SS`` in SQLite, ``TIMESTAMP`` (without time
    zone) in PostgreSQL; prices are ``REAL`` (SQLite) / ``DOUBLE PRECISION``.

    SQLite is written with ``sqlite3`` ``executemany`` in one transaction,
    PostgreSQL (``postgresql+psycopg2``) with ``COPY`` from in-memory CSV
    chunks; any other SQLAlchemy URL falls back to chunked Core inserts.

    Args:
        frames: The generated shop.
        db_url: SQLAlchemy URL, e.g. ``sqlite:////tmp/shop.db`` or
            ``postgresql+psycopg2://user@host:5432/db``.
        schema: Database schema (PostgreSQL: created if missing). SQLite only
            supports ``None``/``"main"``.
    """
    url = sa.engine.make_url(db_url)
    backend = url.get_backend_name()
    t0 = time.perf_counter()
    if backend == "sqlite":
        if schema not in (None, "main"):
            raise ValueError("SQLite supports no schema other than 'main'")
        if not url.database or url.database == ":memory:":
            raise ValueError(f"need a SQLite file, got {db_url!r}")
        _write_sqlite(frames, Path(url.database))
    elif backend == "postgresql" and url.get_driver_name() == "psycopg2":
        _write_postgres(frames, url, schema)
    else:
        _write_generic(frames, url, schema)
    logger.info("wrote the database in %.1f s", time.perf_counter() - t0)


def _sqlite_values(
    df: pd.DataFrame, cols: tuple[tuple[str, str], ...], s: int, e: int
) -> list[list]:
    """Python values of rows ``s:e`` per column; timestamps as ``YYYY-MM-DD HH:MM:SS``."""
    out: list[list] = []
    seen: list[tuple[np.ndarray, list]] = []  # timestamp columns already formatted
    for col, kind in cols:
        part = df[col].iloc[s:e]
        if kind != "ts":
            out.append(part.tolist())
            continue
        secs = _secs(part)
        for other, text in seen:  # created_at and updated_at are often the same
            if np.array_equal(other, secs):
                out.append(text)
                break
        else:
            text = _ts_text(secs).tolist()
            seen.append((secs, text))
            out.append(text)
    return out


def _write_sqlite(frames: ShopFrames, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode=MEMORY")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-200000")
        con.execute("BEGIN")
        for table in TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
        for table in TABLES:
            df: pd.DataFrame = getattr(frames, table)
            cols = _COLUMNS[table]
            con.execute(_ddl(table, "sqlite", table))
            sql = (
                f"INSERT INTO {table} ({', '.join(c for c, _ in cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})"
            )
            t0 = time.perf_counter()
            for i, (s, e) in enumerate(_chunks(len(df), _SQLITE_CHUNK), start=1):
                con.executemany(sql, zip(*_sqlite_values(df, cols, s, e), strict=True))
                if i % 20 == 0:
                    _log_progress(table, e, len(df), t0)
            con.execute(f"CREATE INDEX ix_{table}_updated_at ON {table} (updated_at)")
            logger.info("wrote %s: %d rows", table, len(df))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _arrow_chunk(df: pd.DataFrame, cols: tuple[tuple[str, str], ...], s: int, e: int) -> pa.Table:
    arrays = []
    for c, k in cols:
        part = df[c].iloc[s:e]
        if k == "ts":
            arrays.append(pa.array(_secs(part).astype("datetime64[s]")))
        elif k == "text":
            arrays.append(pa.array(part.to_numpy(dtype=object), type=pa.string()))
        else:
            arrays.append(pa.array(part.to_numpy()))
    return pa.Table.from_arrays(arrays, names=[c for c, _ in cols])


def _write_postgres(frames: ShopFrames, url: sa.URL, schema: str | None) -> None:
    engine = sa.create_engine(url)
    try:
        raw = engine.raw_connection()
        try:
            conn = raw.driver_connection
            with conn.cursor() as cur:
                if schema:
                    cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                prefix = f'"{schema}".' if schema else ""
                for table in TABLES:
                    cur.execute(f"DROP TABLE IF EXISTS {prefix}{table}")
                for table in TABLES:
                    df: pd.DataFrame = getattr(frames, table)
                    cols = _COLUMNS[table]
                    cur.execute(_ddl(table, "postgresql", prefix + table))
                    copy = (
                        f"COPY {prefix}{table} ({', '.join(c for c, _ in cols)}) "
                        "FROM STDIN WITH (FORMAT csv)"
                    )
                    t0 = time.perf_counter()
                    for s, e in _chunks(len(df), _PG_CHUNK):
                        buf = io.BytesIO()
                        pa_csv.write_csv(
                            _arrow_chunk(df, cols, s, e),
                            buf,
                            write_options=pa_csv.WriteOptions(include_header=False),
                        )
                        buf.seek(0)
                        cur.copy_expert(copy, buf)
                        if len(df) > _PG_CHUNK:
                            _log_progress(table, e, len(df), t0)
                    cur.execute(
                        f"CREATE INDEX ix_{table}_updated_at ON {prefix}{table} (updated_at)"
                    )
                    logger.info("wrote %s%s: %d rows", prefix, table, len(df))
            conn.commit()
        except BaseException:
            raw.driver_connection.rollback()
            raise
        finally:
            raw.close()
    finally:
        engine.dispose()


def _write_generic(frames: ShopFrames, url: sa.URL, schema: str | None) -> None:
    kinds = {
        "id": sa.Integer,
        "int": sa.Integer,
        "real": sa.Float,
        "text": sa.Text,
        "ts": sa.DateTime,
    }
    meta = sa.MetaData(schema=schema)
    tables = {
        name: sa.Table(
            name,
            meta,
            *(
                sa.Column(
                    c, kinds[k](), primary_key=k == "id", nullable=False, index=c == "updated_at"
                )
                for c, k in cols
            ),
        )
        for name, cols in _COLUMNS.items()
    }
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            meta.drop_all(conn)
            meta.create_all(conn)
            for name in TABLES:
                df: pd.DataFrame = getattr(frames, name)
                cols = _COLUMNS[name]
                for s, e in _chunks(len(df), 50_000):
                    data: dict[str, list] = {}
                    for c, k in cols:
                        part = df[c].iloc[s:e]
                        if k == "ts":
                            data[c] = part.dt.tz_localize(None).dt.to_pydatetime().tolist()
                        else:
                            data[c] = part.tolist()
                    rows = [
                        dict(zip(data, r, strict=True)) for r in zip(*data.values(), strict=True)
                    ]
                    conn.execute(tables[name].insert(), rows)
                logger.info("wrote %s: %d rows", name, len(df))
    finally:
        engine.dispose()


def write_feedback_drops(frames: ShopFrames, drops_dir: Path) -> int:
    """Write the feedback as one JSONL file per day of the period.

    Files are ``drops_dir/feedback_YYYY-MM-DD.jsonl`` for every day of the
    period (empty files for days without feedback); stale ``feedback_*.jsonl``
    files in ``drops_dir`` are removed first. Each line is one feedback entry
    (grain: one piece of feedback) with keys ``feedback_id`` (string),
    ``customer_id`` (int), ``order_id`` (int or null), ``rating`` (int 1-5 or
    null), ``comment`` (string) and ``submitted_at``
    (``YYYY-MM-DDTHH:MM:SSZ``, inside that UTC day); lines are sorted by
    ``submitted_at``.

    Args:
        frames: The generated shop.
        drops_dir: Directory to write to (created if missing).

    Returns:
        Number of files written.
    """
    drops_dir = Path(drops_dir)
    drops_dir.mkdir(parents=True, exist_ok=True)
    for old in drops_dir.glob("feedback_????-??-??.jsonl"):
        old.unlink()
    period = _Period(frames.start, frames.end)
    fb = frames.feedback
    secs = _secs(fb["submitted_at"])
    if len(secs) and not (np.diff(secs) >= 0).all():
        order = np.argsort(secs, kind="stable")
        fb, secs = fb.iloc[order], secs[order]
    out = fb.drop(columns=["submitted_at"]).assign(
        submitted_at=_str(_ts_text(secs, sep="T", suffix="Z"))
    )
    lines = out.to_json(orient="records", lines=True).split("\n") if len(out) else []
    day = secs // DAY - period.start_day
    if len(day) and (day.min() < 0 or day.max() >= period.n_days):
        raise ValueError("feedback outside the period")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(day, minlength=period.n_days))])
    for d in range(period.n_days):
        s, e = int(bounds[d]), int(bounds[d + 1])
        name = f"feedback_{period.start + timedelta(days=d):%Y-%m-%d}.jsonl"
        body = "\n".join(lines[s:e]) + "\n" if e > s else ""
        (drops_dir / name).write_bytes(body.encode("utf-8"))
    logger.info("wrote %d feedback entries to %d daily files", len(fb), period.n_days)
    return period.n_days


_TRUTH_README = """\
# Ground truth of the demo shop

The pipeline never reads these files; evaluations do. `customers.parquet` has one
row per customer: `customer_id`, `latent_segment` (the behavioural segment the
customer was simulated from: champion, loyal, bargain_hunter, occasional,
one_time), `churn_at` (UTC instant after which the customer places no more
orders; null if the customer is still alive at the end of the period; may lie
before the period for customers who lapsed before it started) and `order_rate`
(expected orders per 30 days at the shop's average seasonal intensity while the
customer is alive, excluding the first order right after signup).
`item_affinities.parquet` has one row per customer and favourite product:
`customer_id`, `product_id` and `affinity`, the expected share of that
customer's order lines that are this product through their favourites (the
rest of their lines are drawn by category preference and popularity).
"""


def write_ground_truth(frames: ShopFrames, truth_dir: Path) -> None:
    """Write the latent truth for evaluations.

    Writes ``customers.parquet`` (one row per customer: ``customer_id``,
    ``latent_segment``, ``churn_at``, ``order_rate``),
    ``item_affinities.parquet`` (one row per customer and favourite product:
    ``customer_id``, ``product_id``, ``affinity``) and a ``README.md``.

    Args:
        frames: The generated shop.
        truth_dir: Directory to write to (created if missing).
    """
    truth_dir = Path(truth_dir)
    truth_dir.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(frames.truth_customers, preserve_index=False),
        truth_dir / "customers.parquet",
    )
    pq.write_table(
        pa.Table.from_pandas(frames.truth_affinities, preserve_index=False),
        truth_dir / "item_affinities.parquet",
    )
    (truth_dir / "README.md").write_text(_TRUTH_README, encoding="utf-8")
    logger.info("wrote ground truth to %s", truth_dir)


def generate_shop(
    out_dir: Path,
    n_customers: int = 1000,
    seed: int = 7,
    start: date = DEFAULT_START,
    end: date = DEFAULT_END,
    db_url: str | None = None,
    frames: ShopFrames | None = None,
) -> dict:
    """Generate the demo shop and write all its outputs.

    Writes the database (default: SQLite file ``out_dir/shop.db``), the daily
    feedback drops (``out_dir/drops/feedback``) and the ground truth
    (``out_dir/ground_truth``).

    Args:
        out_dir: Output directory (created if missing).
        n_customers: Number of customers.
        seed: Random seed.
        start: First day of the period.
        end: Last day of the period, inclusive.
        db_url: SQLAlchemy URL of the target database; default the SQLite file.
        frames: the shop already generated with the same arguments, when the
            caller needs the frames too (``cva demo`` lands history from them).

    Returns:
        JSON-able summary: ``n_customers``, ``seed``, ``period``, ``counts`` per
        table, ``feedback_files``, ``seconds`` per stage, ``peak_rss_mb`` of
        the process, ``db_url`` (password hidden) and ``paths``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if db_url is None:
        db_url = f"sqlite:///{(out_dir / 'shop.db').resolve()}"
    drops_dir = out_dir / "drops" / "feedback"
    truth_dir = out_dir / "ground_truth"
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    logger.info(
        "generating the demo shop: %d customers, seed %d, %s..%s", n_customers, seed, start, end
    )
    if frames is None:
        frames = generate_frames(n_customers=n_customers, seed=seed, start=start, end=end)
    seconds["generate"] = time.perf_counter() - t0
    t = time.perf_counter()
    logger.info("writing the database %s", sa.engine.make_url(db_url).render_as_string())
    write_database(frames, db_url)
    seconds["database"] = time.perf_counter() - t
    t = time.perf_counter()
    n_files = write_feedback_drops(frames, drops_dir)
    seconds["feedback_drops"] = time.perf_counter() - t
    t = time.perf_counter()
    write_ground_truth(frames, truth_dir)
    seconds["ground_truth"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    summary = {
        "n_customers": n_customers,
        "seed": seed,
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "counts": frames.counts(),
        "feedback_files": n_files,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "peak_rss_mb": round(_peak_mb()),
        "db_url": sa.engine.make_url(db_url).render_as_string(hide_password=True),
        "paths": {
            "out_dir": str(out_dir),
            "feedback_drops": str(drops_dir),
            "ground_truth": str(truth_dir),
        },
    }
    logger.info("demo shop done in %.1f s: %s", seconds["total"], summary["counts"])
    return summary

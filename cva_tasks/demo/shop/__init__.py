"""Seeded generator of a realistic online shop: "the demo shop".

The demo shop is the data set the pipeline runs on when nothing else is
configured, and the fixture of its tests. One knob, ``n_customers``, scales it
from a thousand customers to a million (times and memory measured in the
README, "The demo shop"): everything is vectorised with numpy, there is no
Python loop per order or line.

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

Modules, in the order the generator runs them (:mod:`.generate`):

* :mod:`.vocabulary`: segments, categories, names, countries, return reasons;
* :mod:`.seasonality`: the period and the seasonal intensity of demand;
* :mod:`.products`, :mod:`.customers` (with favourites), :mod:`.orders` (and
  lines), :mod:`.returns` (and cancellations), :mod:`.feedback`;
* :mod:`.frames`: the result, :class:`ShopFrames`;
* :mod:`.database`, :mod:`.files`: the writers;
* :mod:`.columns`: array/column conversions shared by the others.
"""

from cva_tasks.demo.shop.database import write_database
from cva_tasks.demo.shop.files import write_feedback_drops, write_ground_truth
from cva_tasks.demo.shop.frames import TABLES, ShopFrames
from cva_tasks.demo.shop.generate import generate_frames, generate_shop
from cva_tasks.demo.shop.seasonality import DEFAULT_END, DEFAULT_START

__all__ = [
    "DEFAULT_END",
    "DEFAULT_START",
    "TABLES",
    "ShopFrames",
    "generate_frames",
    "generate_shop",
    "write_database",
    "write_feedback_drops",
    "write_ground_truth",
]

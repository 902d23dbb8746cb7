"""Generating the demo shop: :func:`generate_frames` runs the stages in memory,
:func:`generate_shop` also writes the database, the feedback drops and the ground truth."""

from __future__ import annotations

import logging
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cva_tasks.demo.shop.columns import _codes_to_str, _ts
from cva_tasks.demo.shop.customers import _make_customers, _make_favourites
from cva_tasks.demo.shop.database import write_database
from cva_tasks.demo.shop.feedback import _make_feedback
from cva_tasks.demo.shop.files import write_feedback_drops, write_ground_truth
from cva_tasks.demo.shop.frames import ShopFrames
from cva_tasks.demo.shop.orders import _lines_frame, _make_lines, _make_orders, _orders_frame
from cva_tasks.demo.shop.products import _make_products, _n_products, _product_groups
from cva_tasks.demo.shop.returns import _returns_frame
from cva_tasks.demo.shop.seasonality import DEFAULT_END, DEFAULT_START, _daily_intensity, _Period
from cva_tasks.demo.shop.vocabulary import SEGMENT_NAMES

logger = logging.getLogger(__name__)


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

    orders_df = _orders_frame(orders)
    lines_df = _lines_frame(orders, lines)
    returns_df = _returns_frame(
        lines.returned, lines.return_t, lines.return_qty, lines.reason, period
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


def _peak_mb() -> float:
    """Peak resident memory of this process in MB (0 where unknown)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024

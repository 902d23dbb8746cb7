"""The demo shop's files: one JSONL feedback drop per day, and the ground truth for
evaluations."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cva_tasks.demo.shop.columns import _secs, _str, _ts_text
from cva_tasks.demo.shop.frames import ShopFrames
from cva_tasks.demo.shop.seasonality import DAY, _Period

logger = logging.getLogger(__name__)


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

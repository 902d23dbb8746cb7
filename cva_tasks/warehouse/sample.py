"""Deterministic sample rows of a warehouse table, for tests and benchmarks."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from cva_tasks.warehouse.schema import TableSpec

if TYPE_CHECKING:
    import pyarrow as pa

_COUNTRIES = (
    ("United Kingdom", 0.55),
    ("Germany", 0.1),
    ("France", 0.09),
    ("Netherlands", 0.05),
    ("Spain", 0.05),
    ("Italy", 0.04),
    ("Belgium", 0.03),
    ("Switzerland", 0.03),
    ("Portugal", 0.02),
    ("Sweden", 0.02),
    ("Ireland", 0.02),
)


def _segment(r, f, m):
    import numpy as np

    conditions = [
        (r >= 4) & (f >= 4) & (m >= 4),
        (r >= 3) & (f >= 3),
        (r >= 4) & (f <= 2),
        (r <= 2) & (f >= 3),
        (r <= 2) & (f <= 2),
    ]
    names = ["Champions", "Loyal", "New", "At risk", "Hibernating"]
    return np.select(conditions, names, default="Needs attention")


def sample_rows(spec: TableSpec, as_of_date: date, n: int, seed: int = 0) -> pa.Table:
    """Deterministic, realistic rows of ``spec`` for one day (tests, benchmarks).

    customer_scores columns get consistent RFM values (recency, frequency and
    spend drawn from skewed distributions, scores as quintiles, segment from the
    scores, about 1% unknown countries); any other column gets a plain value of
    its type, so a spec extended by a later migration still gets rows.

    Returns:
        An Arrow table with ``spec``'s input columns (no run_id/loaded_at); grain
        and key as the spec, ``customer_id`` values ``C0000000``, ``C0000001``, ...
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    idx = np.arange(n)
    recency = np.round(rng.exponential(60.0, n), 3)
    frequency = np.maximum(1, rng.geometric(0.25, n)).astype(np.int32)
    avg = np.round(rng.lognormal(3.5, 0.6, n), 2)
    monetary = np.round(avg * frequency, 2)
    tenure = np.round(recency + rng.exponential(300.0, n), 3)
    spend_90d = np.round(np.where(recency < 90, monetary * rng.uniform(0.1, 0.6, n), 0.0), 2)

    def quintile(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
        ranks = values.argsort(kind="stable").argsort(kind="stable")
        score = 1 + (ranks * 5) // max(n, 1)
        return (score if higher_is_better else 6 - score).astype(np.int16)

    r, f, m = quintile(recency, False), quintile(frequency, True), quintile(monetary, True)
    names, weights = zip(*_COUNTRIES, strict=True)
    countries = rng.choice(np.array(names, dtype=object), n, p=np.array(weights) / sum(weights))
    midnight = datetime.combine(as_of_date, time(), tzinfo=UTC)
    last_order = (
        np.datetime64(midnight.replace(tzinfo=None), "us")
        - (recency * 86400e6).astype("timedelta64[us]")
    ).astype("datetime64[us]")
    known = {
        "as_of_date": pa.array(np.full(n, np.datetime64(as_of_date, "D"))),
        "customer_id": pc.binary_join_element_wise(
            "C", pc.utf8_lpad(pa.array(idx).cast(pa.string()), 7, "0"), ""
        ),
        "country": pa.array(countries, pa.string(), mask=rng.random(n) < 0.01),
        "recency_days": pa.array(recency),
        "frequency": pa.array(frequency),
        "monetary_value": pa.array(monetary),
        "avg_order_value": pa.array(avg),
        "tenure_days": pa.array(tenure),
        "spend_90d": pa.array(spend_90d),
        "last_order_at": pa.array(last_order, pa.timestamp("us", tz="UTC")),
        "r_score": pa.array(r),
        "f_score": pa.array(f),
        "m_score": pa.array(m),
        "rfm_cell": pa.array(r * 100 + f * 10 + m).cast(pa.string()),
        "segment": pa.array(_segment(r, f, m).astype(object), pa.string()),
    }
    plain = {
        "DATE": lambda: pa.array(np.full(n, np.datetime64(as_of_date, "D"))),
        "TEXT": lambda: pc.binary_join_element_wise("v", pa.array(idx).cast(pa.string()), ""),
        "DOUBLE PRECISION": lambda: pa.array(rng.random(n)),
        "INTEGER": lambda: pa.array(idx.astype(np.int32)),
        "BIGINT": lambda: pa.array(idx.astype(np.int64)),
        "SMALLINT": lambda: pa.array((idx % 5 + 1).astype(np.int16)),
        "BOOLEAN": lambda: pa.array(idx % 2 == 0),
        "TIMESTAMPTZ": lambda: pa.array(
            np.full(n, np.datetime64(midnight.replace(tzinfo=None) - timedelta(hours=1), "us")),
            pa.timestamp("us", tz="UTC"),
        ),
    }
    arrays = [known[c.name] if c.name in known else plain[c.type]() for c in spec.input_columns]
    table = pa.Table.from_arrays(arrays, names=[c.name for c in spec.input_columns])
    return table.cast(spec.arrow_schema())

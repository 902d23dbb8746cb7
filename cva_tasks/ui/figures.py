"""The figures of the "Customer value" page, per published day.

Each function takes a :class:`~cva_tasks.ui.reader.WarehouseReader` and a day and
returns plain JSON-ready dicts: the JSON endpoints return them as they are and the
page draws its charts from the same dicts, so both always show the same numbers.

A *published day* is an ``as_of_date`` with rows in ``customer_scores`` (the table
the daily pipeline's ``publish`` task writes last). Histories (model runs, data
quality, drift) run up to the chosen day, never past it, so an older day's page shows
what was known on that day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cva_tasks.lake import Lake
from cva_tasks.ui.reader import WarehouseReader, iso

#: Tables the page reads; ``customer_scores`` alone decides whether anything is published.
PAGE_TABLES = (
    "customer_scores",
    "segment_profiles",
    "model_runs",
    "dq_results",
    "audience_sizes",
)
#: Churn tiers in risk order (``cva_tasks.models.churn.reasons.TIERS``; not imported here
#: because that package brings scikit-learn into the API server).
TIER_ORDER = ("Low", "Medium", "High")
#: Days of data-quality and drift history shown before the chosen day.
HISTORY_DAYS = 60
#: Bins of the CLV histogram between 0 and the 99th percentile (the rest is one bin).
CLV_BINS = 20


class DayNotPublished(LookupError):
    """The warehouse has no published rows for the requested day."""


def published_days(reader: WarehouseReader) -> list[date]:
    """Days with rows in ``customer_scores``, newest first; empty when nothing is published."""
    if "customer_scores" not in reader.existing_tables(["customer_scores"]):
        return []
    rows = reader.query("SELECT DISTINCT as_of_date FROM customer_scores ORDER BY as_of_date DESC")
    return [row["as_of_date"] for row in rows]


def days_index(reader: WarehouseReader) -> dict[str, Any]:
    """``{"days": [newest, ...], "latest": newest or None}`` as ISO dates."""
    days = published_days(reader)
    return {"days": [d.isoformat() for d in days], "latest": iso(days[0]) if days else None}


def require_published(reader: WarehouseReader, ds: date) -> None:
    """Raises :class:`DayNotPublished` unless ``ds`` has rows in ``customer_scores``."""
    if ds not in published_days(reader):
        raise DayNotPublished(f"nothing published for {ds.isoformat()}")


def summary(reader: WarehouseReader, ds: date) -> dict[str, Any]:
    """Headline figures of the day.

    Returns:
        ``customers_scored`` (rows of the day), ``active_customers`` (those with RFM
        scores: an order within the active window), ``customers_with_clv``,
        ``total_clv_365d``, ``mean_churn_probability``, ``high_churn_customers``,
        ``run_id`` and ``loaded_at`` of the load.
    """
    (row,) = reader.query(
        "SELECT count(*) AS customers_scored, "
        "count(r_score) AS active_customers, "
        "count(clv_365d) AS customers_with_clv, "
        "sum(clv_365d) AS total_clv_365d, "
        "avg(churn_probability) AS mean_churn_probability, "
        "sum(CASE WHEN churn_tier = 'High' THEN 1 ELSE 0 END) AS high_churn_customers, "
        "max(run_id) AS run_id, max(loaded_at) AS loaded_at "
        "FROM customer_scores WHERE as_of_date = ?",
        [ds],
    )
    return {
        "as_of_date": ds.isoformat(),
        **{k: row[k] for k in ("customers_scored", "active_customers", "customers_with_clv")},
        "total_clv_365d": _round(row["total_clv_365d"], 2),
        "mean_churn_probability": _round(row["mean_churn_probability"], 4),
        "high_churn_customers": int(row["high_churn_customers"] or 0),
        "run_id": row["run_id"],
        "loaded_at": iso(row["loaded_at"]),
    }


def segments(reader: WarehouseReader, ds: date) -> dict[str, Any]:
    """RFM segment sizes of the day, largest first (``segment``, ``customers``, ``share``)."""
    rows = reader.query(
        "SELECT segment, count(*) AS customers FROM customer_scores "
        "WHERE as_of_date = ? GROUP BY segment ORDER BY customers DESC, segment",
        [ds],
    )
    return {"as_of_date": ds.isoformat(), "segments": _with_shares(rows, "segment")}


def clusters(reader: WarehouseReader, ds: date) -> dict[str, Any]:
    """Behavioural clusters of the day (``segment_profiles``), by cluster id."""
    if "segment_profiles" not in reader.existing_tables(["segment_profiles"]):
        return {"as_of_date": ds.isoformat(), "clusters": []}
    rows = reader.query(
        "SELECT cluster_id, label, customers, share_of_customers, share_of_revenue, "
        "median_recency_days, median_frequency, median_monetary_value, model_version "
        "FROM segment_profiles WHERE as_of_date = ? ORDER BY cluster_id",
        [ds],
    )
    return {"as_of_date": ds.isoformat(), "clusters": rows}


def churn_tiers(reader: WarehouseReader, ds: date) -> dict[str, Any]:
    """Customers per churn tier, Low to High; ``tier`` None counts customers not scored."""
    rows = reader.query(
        "SELECT churn_tier AS tier, count(*) AS customers FROM customer_scores "
        "WHERE as_of_date = ? GROUP BY churn_tier",
        [ds],
    )
    order = {tier: i for i, tier in enumerate(TIER_ORDER)}
    rows.sort(key=lambda r: (r["tier"] is None, order.get(r["tier"], len(order)), r["tier"] or ""))
    return {"as_of_date": ds.isoformat(), "tiers": _with_shares(rows, "tier")}


def clv_distribution(reader: WarehouseReader, ds: date, bins: int = CLV_BINS) -> dict[str, Any]:
    """Histogram of ``clv_365d``: ``bins`` equal bins from 0 (or the minimum, if negative)
    to the 99th percentile, and the customers above it in ``above``.

    Returns:
        ``bins`` (``low``, ``high``, ``customers``), ``above`` (``low``, ``customers``),
        ``not_scored`` (customers without a CLV), ``median``, ``p99``, ``max``.
    """
    (stats,) = reader.query(
        "SELECT count(clv_365d) AS n, min(clv_365d) AS low, max(clv_365d) AS high, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY clv_365d) AS median, "
        "percentile_cont(0.99) WITHIN GROUP (ORDER BY clv_365d) AS p99, "
        "count(*) - count(clv_365d) AS not_scored "
        "FROM customer_scores WHERE as_of_date = ?",
        [ds],
    )
    result: dict[str, Any] = {
        "as_of_date": ds.isoformat(),
        "bins": [],
        "above": None,
        "not_scored": int(stats["not_scored"] or 0),
        "median": _round(stats["median"], 2),
        "p99": _round(stats["p99"], 2),
        "max": _round(stats["high"], 2),
    }
    if not stats["n"]:
        return result
    start = min(0.0, float(stats["low"]))
    end = float(stats["p99"])
    if end <= start:
        end = max(float(stats["high"]), start + 1.0)
    width = (end - start) / bins
    rows = reader.query(
        "SELECT CAST(floor((clv_365d - ?) / ?) AS INTEGER) AS bin, count(*) AS customers "
        "FROM customer_scores WHERE as_of_date = ? AND clv_365d IS NOT NULL "
        "AND clv_365d <= ? GROUP BY 1",
        [start, width, ds, end],
    )
    counts = [0] * bins
    for row in rows:
        counts[min(max(int(row["bin"]), 0), bins - 1)] += int(row["customers"])
    result["bins"] = [
        {
            "low": _round(start + i * width, 2),
            "high": _round(start + (i + 1) * width, 2),
            "customers": counts[i],
        }
        for i in range(bins)
    ]
    above = int(stats["n"]) - sum(counts)
    result["above"] = {"low": _round(end, 2), "customers": above}
    return result


def model_runs(reader: WarehouseReader, ds: date) -> dict[str, Any]:
    """Model runs up to ``ds``: the day's, and each kind's history of its metric.

    Returns:
        ``on_day``: runs trained on ``ds``; ``history``: per kind, every run up to
        ``ds`` oldest first (``as_of_date``, ``version``, ``metric``, ``metric_value``,
        ``champion_metric_value``, ``higher_is_better``, ``promoted``, ``reason``);
        ``champions``: per kind, the latest promoted run on or before ``ds``.
    """
    if "model_runs" not in reader.existing_tables(["model_runs"]):
        return {"as_of_date": ds.isoformat(), "on_day": [], "history": {}, "champions": {}}
    rows = reader.query(
        "SELECT as_of_date, kind, version, algorithm, metric, metric_value, "
        "higher_is_better, champion_version, champion_metric_value, promoted, reason "
        "FROM model_runs WHERE as_of_date <= ? ORDER BY kind, as_of_date",
        [ds],
    )
    history: dict[str, list[dict[str, Any]]] = {}
    champions: dict[str, dict[str, Any]] = {}
    for row in rows:
        run = {**row, "as_of_date": iso(row["as_of_date"])}
        history.setdefault(row["kind"], []).append(run)
        if row["promoted"]:
            champions[row["kind"]] = run
    on_day = [run for runs in history.values() for run in runs if run["as_of_date"] == iso(ds)]
    return {
        "as_of_date": ds.isoformat(),
        "on_day": on_day,
        "history": history,
        "champions": champions,
    }


def quality(
    reader: WarehouseReader,
    ds: date,
    data_docs_dir: Path | None = None,
    history_days: int = HISTORY_DAYS,
) -> dict[str, Any]:
    """Data quality per source entity over the ``history_days`` up to ``ds``.

    Returns:
        ``entities``: per source entity (sorted), ``source``, ``entity``, ``on_day`` (the
        day's ``dq_results`` row, or None when it was not validated that day) and
        ``history`` (``as_of_date``, ``rows_checked``, ``rows_clean``,
        ``rows_quarantined``, ``failing_share``, oldest first); ``data_docs``: per source
        seen, the page-relative link to its Data Docs, or None when they were not built.
    """
    since = ds - timedelta(days=history_days - 1)
    empty: dict[str, Any] = {"as_of_date": ds.isoformat(), "since": since.isoformat()}
    if "dq_results" not in reader.existing_tables(["dq_results"]):
        return {**empty, "entities": [], "data_docs": {}}
    rows = reader.query(
        "SELECT as_of_date, source, entity, suite, rows_extracted, rows_rejected_by_mapping, "
        "rows_checked, rows_clean, rows_quarantined, failing_share, failed_rules "
        "FROM dq_results WHERE as_of_date BETWEEN ? AND ? ORDER BY source, entity, as_of_date",
        [since, ds],
    )
    entities: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["source"], row["entity"])
        entry = entities.setdefault(
            key, {"source": key[0], "entity": key[1], "on_day": None, "history": []}
        )
        point = {**row, "as_of_date": iso(row["as_of_date"])}
        entry["history"].append(
            {
                k: point[k]
                for k in (
                    "as_of_date",
                    "rows_checked",
                    "rows_clean",
                    "rows_quarantined",
                    "failing_share",
                )
            }
        )
        if row["as_of_date"] == ds:
            entry["on_day"] = {k: v for k, v in point.items() if k not in ("source", "entity")}
    sources = sorted({source for source, _ in entities})
    return {
        **empty,
        "entities": [entities[key] for key in sorted(entities)],
        "data_docs": {source: data_docs_link(data_docs_dir, source) for source in sources},
    }


def data_docs_link(data_docs_dir: Path | None, source: str) -> str | None:
    """``data-docs/<source>/index.html`` (relative to the page) when that site exists."""
    if data_docs_dir is None or not (data_docs_dir / source / "index.html").is_file():
        return None
    return f"data-docs/{source}/index.html"


def drift(
    lake: Lake, ds: date, threshold: float, history_days: int = HISTORY_DAYS
) -> dict[str, Any]:
    """The churn model's feature drift: the day's check and the recent ones.

    Returns:
        ``threshold`` (``CVA_CHURN_PSI_THRESHOLD``), ``on_day`` (the day's record of
        :func:`cva_tasks.models.drift_log.drift_record`, or None: no check ran that day)
        and ``history`` (``as_of_date``, ``max_psi``, ``max_feature``, ``over_threshold``,
        ``champion_version``, oldest first).
    """
    from cva_tasks.models.drift_log import read_drift

    records = read_drift(lake, "churn", ds, since=ds - timedelta(days=history_days - 1))
    on_day = next((r for r in records if r["as_of_date"] == ds.isoformat()), None)
    keep = ("as_of_date", "max_psi", "max_feature", "over_threshold", "champion_version")
    return {
        "as_of_date": ds.isoformat(),
        "kind": "churn",
        "threshold": threshold,
        "on_day": on_day,
        "history": [{k: r.get(k) for k in keep} for r in records],
    }


def audiences(
    reader: WarehouseReader, ds: date, history_days: int = HISTORY_DAYS
) -> dict[str, Any]:
    """Named audiences: the day's sizes and each audience's size over the days up to ``ds``.

    Returns:
        ``on_day``: per audience published for the day (by name), ``audience``,
        ``description``, ``customers``; ``history``: per audience seen in the window,
        ``as_of_date`` and ``customers``, oldest first; ``since``: the window's first day.
    """
    since = ds - timedelta(days=history_days - 1)
    result: dict[str, Any] = {
        "as_of_date": ds.isoformat(),
        "since": since.isoformat(),
        "on_day": [],
        "history": {},
    }
    if "audience_sizes" not in reader.existing_tables(["audience_sizes"]):
        return result
    rows = reader.query(
        "SELECT as_of_date, audience, description, customers FROM audience_sizes "
        "WHERE as_of_date BETWEEN ? AND ? ORDER BY audience, as_of_date",
        [since, ds],
    )
    for row in rows:
        result["history"].setdefault(row["audience"], []).append(
            {"as_of_date": iso(row["as_of_date"]), "customers": int(row["customers"])}
        )
        if row["as_of_date"] == ds:
            result["on_day"].append(
                {
                    "audience": row["audience"],
                    "description": row["description"],
                    "customers": int(row["customers"]),
                }
            )
    return result


def _with_shares(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    total = sum(int(r["customers"]) for r in rows)
    return [
        {
            name: r[name],
            "customers": int(r["customers"]),
            "share": _round(int(r["customers"]) / total, 4) if total else None,
        }
        for r in rows
    ]


def _round(value: Any, digits: int) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, digits) if math.isfinite(number) else None


#: The parts of a day's document, in page order (the JSON endpoints use them with "-").
PARTS = (
    "summary",
    "segments",
    "clusters",
    "churn_tiers",
    "clv",
    "model_runs",
    "quality",
    "drift",
    "audiences",
)


def day_report(
    reader: WarehouseReader,
    ds: date,
    *,
    lake: Lake,
    data_docs_dir: Path | None,
    psi_threshold: float,
    max_failing_share: float | None = None,
    parts: Sequence[str] = PARTS,
) -> dict[str, Any]:
    """The figures of the day's page in one document (``GET /cva/api/days/{ds}``): every
    part of :data:`PARTS`, or only those named in ``parts``.

    Raises:
        DayNotPublished: ``ds`` has no rows in ``customer_scores``.
        KeyError: a part that is not in :data:`PARTS`.
    """
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "summary": lambda: summary(reader, ds),
        "segments": lambda: segments(reader, ds),
        "clusters": lambda: clusters(reader, ds),
        "churn_tiers": lambda: churn_tiers(reader, ds),
        "clv": lambda: clv_distribution(reader, ds),
        "model_runs": lambda: model_runs(reader, ds),
        "quality": lambda: {
            **quality(reader, ds, data_docs_dir),
            "max_failing_share": max_failing_share,
        },
        "drift": lambda: drift(lake, ds, psi_threshold),
        "audiences": lambda: audiences(reader, ds),
    }
    unknown = sorted(set(parts) - set(makers))
    if unknown:
        raise KeyError(f"no part(s) {unknown}; known: {list(PARTS)}")
    require_published(reader, ds)
    return {"as_of_date": ds.isoformat(), **{name: makers[name]() for name in parts}}

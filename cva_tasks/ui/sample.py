"""Sample published days for the "Customer value" page (tests, a look without a run).

:func:`publish_sample_days` writes, through the warehouse's own loader, what the daily
pipeline publishes for a run of days (customer scores with segments, clusters, CLV and
churn; segment profiles; model runs with champion/challenger decisions; data quality
per source entity) and the churn drift checks in the lake, with known figures that a
test can check the page against. The values are deterministic for a seed and shaped
like the demo shop's, not drawn from it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from cva_tasks.lake import Lake
from cva_tasks.models.drift_log import record_drift
from cva_tasks.warehouse import Warehouse
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

CLUSTER_LABELS = ("lapsed customers", "frequent high spenders", "new customers")
KIND_METRICS = {
    "clv": ("mae_orders", False, 1.6),
    "clusters": ("silhouette", True, 0.32),
    "churn": ("auc", True, 0.74),
    "recommender": ("ndcg_at_10", True, 0.2),
    "sentiment": ("roc_auc", True, 0.97),
}
DQ_ENTITIES = (
    ("demo_shop", "transactions", 90),
    ("demo_shop", "customers", 6),
    ("demo_shop", "items", 2),
    ("demo_feedback", "feedback", 5),
)
TRAIN_EVERY_DAYS = 7


def publish_sample_days(
    warehouse: Warehouse,
    lake: Lake,
    days: list[date],
    *,
    customers: int = 400,
    data_docs_dir: Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Publish ``days`` of sample rows into ``warehouse`` and drift checks into ``lake``.

    Models train on the first day and every ``TRAIN_EVERY_DAYS`` after it (the second
    scheduled clv run is not promoted); churn also retrains on the fourth day, flagged
    by drift, and every other day records a drift check. ``demo_shop.transactions``
    quarantines 3 rows on the second day. With ``data_docs_dir``, a Data Docs site is
    written for ``demo_shop`` only.

    Returns:
        What was written, for assertions: per day the ``customer_scores`` rows (a list
        of dicts), the ``model_runs`` rows, the ``dq_results`` rows and the drift record.
    """
    written: dict[str, Any] = {"days": {}}
    for index, day in enumerate(days):
        run_id = f"scheduled__{(day + timedelta(days=1)).isoformat()}T00:00:00+00:00"
        scores = _customer_scores(day, customers, seed + index)
        warehouse.replace_partition("customer_scores", scores, day, run_id)
        warehouse.replace_partition("segment_profiles", _profiles(day, scores), day, run_id)
        runs = _model_runs(day, index)
        if runs:
            warehouse.replace_partition("model_runs", _table("model_runs", runs), day, run_id)
        dq = _dq_results(day, index, run_id)
        warehouse.replace_partition("dq_results", _table("dq_results", dq), day, run_id)
        sizes = _audiences(warehouse, day, scores, run_id)
        drift = None
        if not any(run["kind"] == "churn" for run in runs) or index == 3:
            psi = {"recency_days": 0.05 + 0.01 * index, "tenure_days": 0.12 + 0.03 * index}
            psi["frequency"] = 0.01
            drift = record_drift(lake, "churn", day, "churn-sample", psi, threshold=0.2)
        written["days"][day] = {
            "customer_scores": scores.to_pylist(),
            "model_runs": runs,
            "dq_results": dq,
            "drift_file": drift,
            "audience_sizes": sizes,
        }
    if data_docs_dir is not None:
        site = data_docs_dir / "demo_shop"
        site.mkdir(parents=True, exist_ok=True)
        (site / "index.html").write_text("<html><body><h1>demo_shop Data Docs</h1></body></html>")
    return written


def _audiences(warehouse: Warehouse, day: date, scores, run_id: str) -> dict[str, int]:
    """The packaged audiences evaluated on the sample scores (no recommendations: the
    audiences that attach items are empty), published; returns the sizes."""
    import pandas as pd

    from cva_tasks.audiences.definitions import load_audiences
    from cva_tasks.audiences.evaluation import audience_members, audience_sizes

    audiences = load_audiences()
    members = audience_members(audiences, scores.to_pandas(), pd.DataFrame())
    sizes = audience_sizes(audiences, members).assign(as_of_date=day)
    rows = TABLES["audience_members"].table_from_frame(members.assign(as_of_date=day))
    warehouse.replace_partition("audience_members", rows, day, run_id)
    table = TABLES["audience_sizes"].table_from_frame(sizes)
    warehouse.replace_partition("audience_sizes", table, day, run_id)
    return dict(zip(sizes["audience"], sizes["customers"].astype(int), strict=True))


def _table(name: str, rows: list[dict[str, Any]]):
    import pyarrow as pa

    spec = TABLES[name]
    return pa.Table.from_pylist(rows, schema=spec.arrow_schema())


def _customer_scores(day: date, customers: int, seed: int):
    import numpy as np
    import pyarrow as pa

    spec = TABLES["customer_scores"]
    table = sample_rows(spec, day, customers, seed=seed)
    rng = np.random.default_rng(seed)
    recency = table["recency_days"].to_numpy()
    frequency = table["frequency"].to_numpy()
    active = recency <= 200  # the rest gets no RFM scores and the inactive segment
    cluster = np.where(recency > 120, 0, np.where(frequency >= 4, 1, 2)).astype(np.int32)
    churn = np.clip(recency / 150 + rng.normal(0, 0.1, customers), 0.01, 0.99)
    tier = np.where(churn >= 0.66, "High", np.where(churn >= 0.33, "Medium", "Low"))
    clv = np.round(rng.lognormal(5.0, 1.1, customers), 2)
    has_clv = rng.random(customers) > 0.02
    replace = {
        "r_score": pa.array(table["r_score"].to_numpy(), mask=~active),
        "segment": pa.array(np.where(active, table["segment"].to_numpy(), "Lost").astype(object)),
        "cluster_id": pa.array(cluster),
        "cluster_label": pa.array(np.array(CLUSTER_LABELS, dtype=object)[cluster]),
        "cluster_model_version": pa.array([f"clusters-{_stamp(day)}"] * customers),
        "clv_365d": pa.array(clv, mask=~has_clv),
        "churn_probability": pa.array(np.round(churn, 4)),
        "churn_tier": pa.array(tier.astype(object)),
    }
    for name, values in replace.items():
        i = table.column_names.index(name)
        table = table.set_column(i, name, values.cast(spec.column(name).arrow_type))
    return table


def _profiles(day: date, scores) -> Any:
    rows = []
    by_cluster: dict[int, list[dict[str, Any]]] = {}
    for row in scores.to_pylist():
        by_cluster.setdefault(row["cluster_id"], []).append(row)
    revenue = sum(r["monetary_value"] for r in scores.to_pylist())
    total = scores.num_rows
    for cluster_id, members in sorted(by_cluster.items()):
        rows.append(
            {
                "as_of_date": day,
                "cluster_id": cluster_id,
                "label": CLUSTER_LABELS[cluster_id],
                "customers": len(members),
                "share_of_customers": len(members) / total,
                "share_of_revenue": sum(m["monetary_value"] for m in members) / revenue,
                "median_recency_days": _median([m["recency_days"] for m in members]),
                "median_frequency": _median([m["frequency"] for m in members]),
                "median_avg_order_value": _median([m["avg_order_value"] for m in members]),
                "median_monetary_value": _median([m["monetary_value"] for m in members]),
                "median_tenure_days": _median([m["tenure_days"] for m in members]),
                "median_return_rate": 0.02,
                "model_version": f"clusters-{_stamp(day)}",
            }
        )
    return _table("segment_profiles", rows)


def _model_runs(day: date, index: int) -> list[dict[str, Any]]:
    kinds = list(KIND_METRICS) if index % TRAIN_EVERY_DAYS == 0 else []
    if index == 3:
        kinds.append("churn")
    runs = []
    for kind in kinds:
        metric, higher, base = KIND_METRICS[kind]
        value = base + (0.004 * index if higher else 0.05 * index)
        first = index == 0
        champion = None if first else base
        promoted = first or kind != "clv"
        reason = (
            "no model trained before this day"
            if first
            else f"{'promoted' if promoted else 'not promoted'}: {metric} {value:.4f} vs "
            f"champion {base:.4f}"
        )
        runs.append(
            {
                "as_of_date": day,
                "kind": kind,
                "version": f"{kind}-{_stamp(day)}",
                "trained_at": datetime.combine(day + timedelta(days=1), time(1), tzinfo=UTC),
                "algorithm": "sample",
                "metric": metric,
                "metric_value": round(value, 4),
                "higher_is_better": higher,
                "champion_version": None if first else f"{kind}-sample",
                "champion_metric_value": champion,
                "promoted": promoted,
                "reason": reason,
                "params_json": json.dumps({}),
                "metrics_json": json.dumps({metric: value}),
                "library_versions_json": json.dumps({}),
            }
        )
    return runs


def _dq_results(day: date, index: int, run_id: str) -> list[dict[str, Any]]:
    rows = []
    for source, entity, size in DQ_ENTITIES:
        checked = size + index % 3
        quarantined = 3 if (entity == "transactions" and index == 1) else 0
        rows.append(
            {
                "as_of_date": day,
                "source": source,
                "entity": entity,
                "suite": f"{source}.{entity}",
                "validated_by_run": run_id,
                "rows_extracted": checked,
                "rows_rejected_by_mapping": 0,
                "rows_checked": checked,
                "rows_clean": checked - quarantined,
                "rows_quarantined": quarantined,
                "failing_share": quarantined / checked,
                "failed_rules": (
                    f"expect_column_values_to_be_between(unit_price): {quarantined} rows"
                    if quarantined
                    else None
                ),
                "skipped_rules": None,
            }
        )
    return rows


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return float(ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2)


def _stamp(day: date) -> str:
    return day.strftime("%Y%m%d")

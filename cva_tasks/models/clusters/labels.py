"""Cluster profiles and readable cluster labels.

Profiles: per cluster, its customers, its shares of customers and of revenue, and the
medians of :data:`PROFILE_COLUMNS` (which include ``monetary_value``, not clustered).

Labels
------
A label is generated once, at fit time, from the training profile: for each key feature
``P(f)`` is the position of the cluster's median within the whole training population
(mid-rank percentile, 0..1). Words, in this order:

* status: ``lapsed`` if ``P(recency_days) >= 0.7``; else ``new`` if
  ``P(tenure_days) <= 0.25``; else nothing;
* frequency: ``one-time`` if the median frequency is <= 1; else ``frequent`` if
  ``P(frequency) >= 0.7``; else nothing;
* noun: ``serial returners`` if the median return rate is > 0 and
  ``P(return_rate) >= 0.75``; else ``big spenders`` if ``P(avg_order_value) >= 0.7``;
  else ``high spenders`` if ``P(monetary_value) >= 0.7``; else ``bargain buyers`` if
  ``P(avg_order_value) <= 0.3``; else ``customers`` (``average customers`` when it is
  the only word).

A cluster that inherits an id from the previous model keeps that model's label, so a
median sitting on a rule's border (a median frequency of 1 one week, 2 the next) does
not rename a segment every retrain; the label it would get afresh is recorded in
``matching["pairs"][i]["generated_label"]``, where drift shows. A new cluster gets its
generated label (with ``(cluster <id>)`` if an inherited label already has those words).

Two clusters with the same words are told apart by the key feature on which their
positions differ most (``..., more recent`` / ``..., less recent``: the lowest and the
highest of the group get a qualifier); any that still collide get ``(cluster <id>)``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import pandas as pd

from cva_tasks.models.clusters.scaling import _numeric_column

# Medians reported per cluster (and used for labels), in this order.
PROFILE_COLUMNS: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "avg_order_value",
    "monetary_value",
    "tenure_days",
    "return_rate",
)

# (lower, higher) qualifiers used to tell apart clusters that got the same words.
_QUALIFIERS: dict[str, tuple[str, str]] = {
    "recency_days": ("more recent", "less recent"),
    "frequency": ("less frequent", "more frequent"),
    "avg_order_value": ("smaller baskets", "larger baskets"),
    "monetary_value": ("lower value", "higher value"),
    "tenure_days": ("newer", "longer-standing"),
    "return_rate": ("fewer returns", "more returns"),
}


class Labelled(Protocol):
    """What :func:`_carry_labels` reads of the previous model."""

    @property
    def labels(self) -> dict[int, str]: ...


def _profile_table(
    features: pd.DataFrame, ids: np.ndarray, cluster_ids: np.ndarray, labels: dict[int, str]
) -> pd.DataFrame:
    columns = {name: _numeric_column(features, name) for name in PROFILE_COLUMNS}
    frame = pd.DataFrame(columns)
    frame["cluster_id"] = ids.astype(np.int64)
    grouped = frame.groupby("cluster_id", sort=True)
    medians = grouped[list(PROFILE_COLUMNS)].median().reindex(cluster_ids)
    counts = grouped.size().reindex(cluster_ids, fill_value=0)
    revenue = grouped["monetary_value"].sum().reindex(cluster_ids, fill_value=0.0)
    total_revenue = float(np.nansum(columns["monetary_value"]))
    total = len(frame)
    out = pd.DataFrame(
        {
            "cluster_id": cluster_ids.astype(np.int64),
            "label": [labels[int(c)] for c in cluster_ids],
            "customers": counts.to_numpy(dtype=np.int64),
            "share_of_customers": counts.to_numpy(dtype=float) / total if total else np.nan,
            "share_of_revenue": (
                revenue.to_numpy(dtype=float) / total_revenue if total_revenue > 0 else np.nan
            ),
        }
    )
    for name in PROFILE_COLUMNS:
        out[f"median_{name}"] = medians[name].to_numpy(dtype=float)
    return out


def _percentile_position(population: np.ndarray, value: float) -> float:
    """Mid-rank position of ``value`` in ``population`` (nulls ignored); 0.5 if unknown."""
    known = population[~np.isnan(population)]
    if known.size == 0 or math.isnan(value):
        return 0.5
    below = float((known < value).mean())
    equal = float((known == value).mean())
    return below + equal / 2


def _words(median: dict[str, float], position: dict[str, float]) -> str:
    """Label words for one cluster from its medians and their population positions."""
    words = []
    if position["recency_days"] >= 0.7:
        words.append("lapsed")
    elif position["tenure_days"] <= 0.25:
        words.append("new")
    if not math.isnan(median["frequency"]) and median["frequency"] <= 1:
        words.append("one-time")
    elif position["frequency"] >= 0.7:
        words.append("frequent")
    return_rate = median["return_rate"]
    if not math.isnan(return_rate) and return_rate > 0 and position["return_rate"] >= 0.75:
        noun = "serial returners"
    elif position["avg_order_value"] >= 0.7:
        noun = "big spenders"
    elif position["monetary_value"] >= 0.7:
        noun = "high spenders"
    elif position["avg_order_value"] <= 0.3:
        noun = "bargain buyers"
    else:
        noun = "customers" if words else "average customers"
    return " ".join([*words, noun])


def make_labels(features: pd.DataFrame, ids: np.ndarray, cluster_ids: np.ndarray) -> dict[int, str]:
    """Readable, unique labels from each cluster's medians relative to the population.

    The rules are in this module's docstring.

    Args:
        features: The population (the training customers).
        ids: Cluster id per row of ``features``.
        cluster_ids: Every cluster id to label.

    Returns:
        Label per cluster id; no two equal.
    """
    population = {name: _numeric_column(features, name) for name in PROFILE_COLUMNS}
    positions: dict[int, dict[str, float]] = {}
    labels: dict[int, str] = {}
    for cid in (int(c) for c in cluster_ids):
        member = ids == cid
        median = {
            name: float(np.nanmedian(values[member]))
            if np.any(member & ~np.isnan(values))
            else math.nan
            for name, values in population.items()
        }
        positions[cid] = {
            name: _percentile_position(population[name], median[name]) for name in PROFILE_COLUMNS
        }
        labels[cid] = _words(median, positions[cid])

    groups: dict[str, list[int]] = {}
    for cid, label in labels.items():
        groups.setdefault(label, []).append(cid)
    for label, members in groups.items():
        if len(members) < 2:
            continue
        spread = {
            name: max(positions[c][name] for c in members)
            - min(positions[c][name] for c in members)
            for name in PROFILE_COLUMNS
        }
        feature = max(
            PROFILE_COLUMNS, key=lambda name: (spread[name], -PROFILE_COLUMNS.index(name))
        )
        if spread[feature] <= 0:
            continue
        ordered = sorted(members, key=lambda c: (positions[c][feature], c))
        low, high = _QUALIFIERS[feature]
        labels[ordered[0]] = f"{label}, {low}"
        labels[ordered[-1]] = f"{label}, {high}"
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    for cid in labels:
        if counts[labels[cid]] > 1:
            labels[cid] = f"{labels[cid]} (cluster {cid})"
    return labels


def _carry_labels(
    previous: Labelled, generated: dict[int, str], matching: dict[str, Any]
) -> dict[int, str]:
    """Inherited clusters keep their label; new ones get theirs, made unique against them.

    Also records each cluster's freshly generated label in ``matching["pairs"]``.
    """
    labels = {cid: previous.labels[cid] for cid in generated if cid in previous.labels}
    for cid in sorted(generated):
        if cid not in labels:
            fresh = generated[cid]
            labels[cid] = f"{fresh} (cluster {cid})" if fresh in labels.values() else fresh
    for pair in matching["pairs"]:
        pair["generated_label"] = generated[pair["cluster_id"]]
        pair["label"] = labels[pair["cluster_id"]]
    return labels

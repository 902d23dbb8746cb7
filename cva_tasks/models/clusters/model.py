"""Behavioural customer clusters: K-Means on scaled features, stable ids, readable labels.

Input: the point-in-time customer feature table (:mod:`cva_tasks.features.customer`), one
row per customer. Only the columns of :data:`CLUSTER_FEATURES` are clustered; the
profiles also read ``monetary_value`` (:data:`PROFILE_COLUMNS`).

Feature subset and transform (the fitted parameters are saved with the model)
--------------------------------------------------------------------------------
=====================  =============  =======  ===================================
feature                clip           log1p    null imputed with
=====================  =============  =======  ===================================
``recency_days``       >= 0           yes      training median (never null in practice)
``frequency``          >= 0           yes      0
``avg_order_value``    >= 0           yes      training median of the log value
``tenure_days``        >= 0           yes      training median (never null in practice)
``return_rate``        [0, 1]         no       0
``n_distinct_items``   >= 0           yes      0
=====================  =============  =======  ===================================

* Counts, money and durations are right-skewed (a few customers with hundreds of orders),
  so they are log1p'd; ``return_rate`` is bounded and clipped to [0, 1] (it can pass 1
  when returns refer to purchases before the data starts).
* ``avg_order_value`` is null when every order was cancelled (frequency 0): those
  customers get the median basket, so they stand apart by their frequency, not by an
  invented basket of 0. A null ``return_rate`` means no purchased units: nothing to
  return, so 0.
* Product breadth is ``n_distinct_items``, not ``n_categories``: a source without
  categories (the Online Retail export) has ``n_categories`` 1 for all but a handful of
  customers, and standardizing such a column turns that handful into a cluster.
* Each transformed column is standardized with its training mean and population
  standard deviation (a constant column gets scale 1, so it weighs nothing), then clipped
  to +-:data:`Z_CLIP`: a few extreme customers cannot claim a cluster of their own.
* ``monetary_value`` is not clustered: it is about frequency x basket, already in.

Choosing k
----------
K-Means (scikit-learn, ``n_init`` :data:`N_INIT`, ``random_state=seed``) is fitted on
all customers for every k in ``k_range`` (up to the number of distinct transformed
rows); k is the one with the highest mean silhouette on a seeded random sample of
``sample_size`` customers (ties: the smaller k). Silhouette and inertia of every k are
in :attr:`ClusterModel.metrics`. They are in-sample, internal criteria for choosing k,
not a measure of predictive quality.

Stable ids across retrains
--------------------------
Without a previous model, ids are 0..k-1 by decreasing cluster size. With ``previous``,
every new cluster's centroid is computed in the *previous model's* standardized space
(the mean of ``previous.transform(features)`` over the new cluster's customers) and
compared with the previous centroids by Euclidean distance. That space, rather than
original-unit medians, because it is the one in which the previous clusters were
defined: its units are the previous training population's standard deviations, so one
threshold (``match_threshold``, default :data:`DEFAULT_MATCH_THRESHOLD` SD) means the same
thing for every feature and every day, whereas raw medians mix days with euros and need
a scale anyway; and the mapping is exact (no re-fit, no dependence on the new scaler).

Matching is Hungarian (:func:`scipy.optimize.linear_sum_assignment`) on the distances
capped at the threshold, which is the assignment problem in which leaving a new cluster
unmatched costs the threshold: it never trades a close pair for two mediocre ones. A new
cluster matched within the threshold inherits the old id; any other new cluster gets a
fresh id (one above every id this model lineage ever used, by decreasing size). Old
ids left unmatched are retired and are never reused (:attr:`ClusterModel.retired_ids`
is carried from model to model). The matching and distances are recorded in
:attr:`ClusterModel.matching`, with the share of customers whose id is unchanged
between the previous and the new model (``metrics["same_id_share"]``).

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

Degenerate input raises :class:`ValueError` (no 1-cluster result): fewer customers than
``k_range``'s minimum, or fewer distinct transformed rows than it (all-identical rows
are the extreme case), a missing or non-numeric feature column, infinite values.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "cluster_model.json"
N_INIT = 10
Z_CLIP = 4.0
DEFAULT_MATCH_THRESHOLD = 1.0
# Standard deviations below this are treated as a constant column.
_MIN_SCALE = 1e-12


@dataclass(frozen=True)
class FeatureTransform:
    """How one feature column is prepared for clustering.

    Attributes:
        name: Column of the customer feature table.
        lower: Values below are clipped to it (None: no lower bound).
        upper: Values above are clipped to it (None: no upper bound).
        log: Apply ``log1p`` after clipping.
        fill: Null rule: ``"median"`` (training median of the transformed value) or a
            constant in transformed units.
    """

    name: str
    lower: float | None
    upper: float | None
    log: bool
    fill: str | float


CLUSTER_FEATURES: tuple[FeatureTransform, ...] = (
    FeatureTransform("recency_days", 0.0, None, True, "median"),
    FeatureTransform("frequency", 0.0, None, True, 0.0),
    FeatureTransform("avg_order_value", 0.0, None, True, "median"),
    FeatureTransform("tenure_days", 0.0, None, True, "median"),
    FeatureTransform("return_rate", 0.0, 1.0, False, 0.0),
    FeatureTransform("n_distinct_items", 0.0, None, True, 0.0),
)

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


def _numeric_column(features: pd.DataFrame, name: str) -> np.ndarray:
    """``features[name]`` as float64 with NaN for nulls; errors name the column and rule."""
    if name not in features.columns:
        raise ValueError(
            f"customer features lack column {name!r}, needed for clustering "
            f"(have {sorted(map(str, features.columns))})"
        )
    column = features[name]
    if not (pd.api.types.is_numeric_dtype(column) or column.isna().all()):
        raise ValueError(f"customer feature {name!r} must be numeric, got dtype {column.dtype}")
    values = pd.to_numeric(column, errors="raise").astype("float64").to_numpy(na_value=np.nan)
    infinite = int(np.isinf(values).sum())
    if infinite:
        raise ValueError(f"customer feature {name!r} has {infinite} infinite value(s)")
    return values


@dataclass(frozen=True)
class FeatureScaler:
    """The fitted clip / log1p / impute / standardize transform (one entry per feature)."""

    features: tuple[FeatureTransform, ...]
    fill_values: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    z_clip: float

    @staticmethod
    def _prepare(values: np.ndarray, spec: FeatureTransform) -> np.ndarray:
        clipped = (
            np.clip(values, spec.lower, spec.upper)
            if (spec.lower is not None or spec.upper is not None)
            else values
        )
        return np.log1p(clipped) if spec.log else clipped

    @classmethod
    def fit(
        cls, features: pd.DataFrame, specs: tuple[FeatureTransform, ...], z_clip: float
    ) -> FeatureScaler:
        """Learn fill values, means and scales from the training customers."""
        fills, means, scales = [], [], []
        for spec in specs:
            prepared = cls._prepare(_numeric_column(features, spec.name), spec)
            if spec.fill == "median":
                known = prepared[~np.isnan(prepared)]
                if known.size == 0:
                    raise ValueError(
                        f"customer feature {spec.name!r} is null for every customer: "
                        "no median to impute it with"
                    )
                fill = float(np.median(known))
            else:
                fill = float(spec.fill)
            filled = np.where(np.isnan(prepared), fill, prepared)
            std = float(filled.std())
            fills.append(fill)
            means.append(float(filled.mean()))
            scales.append(std if std > _MIN_SCALE else 1.0)
        return cls(tuple(specs), tuple(fills), tuple(means), tuple(scales), float(z_clip))

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """Standardized matrix, one row per customer, one column per feature."""
        columns = []
        for spec, fill, mean, scale in zip(
            self.features, self.fill_values, self.means, self.scales, strict=True
        ):
            prepared = self._prepare(_numeric_column(features, spec.name), spec)
            filled = np.where(np.isnan(prepared), fill, prepared)
            columns.append((filled - mean) / scale)
        matrix = np.column_stack(columns) if columns else np.empty((len(features), 0))
        return np.clip(matrix, -self.z_clip, self.z_clip)

    def to_dict(self) -> dict[str, Any]:
        return {
            "z_clip": self.z_clip,
            "features": [
                {
                    "name": spec.name,
                    "lower": spec.lower,
                    "upper": spec.upper,
                    "log1p": spec.log,
                    "fill_rule": spec.fill,
                    "fill_value": fill,
                    "mean": mean,
                    "scale": scale,
                }
                for spec, fill, mean, scale in zip(
                    self.features, self.fill_values, self.means, self.scales, strict=True
                )
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaler:
        entries = data["features"]
        specs = tuple(
            FeatureTransform(e["name"], e["lower"], e["upper"], bool(e["log1p"]), e["fill_rule"])
            for e in entries
        )
        return cls(
            specs,
            tuple(float(e["fill_value"]) for e in entries),
            tuple(float(e["mean"]) for e in entries),
            tuple(float(e["scale"]) for e in entries),
            float(data["z_clip"]),
        )


def _nearest(matrix: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared Euclidean; ties: the lower index)."""
    # One centroid at a time: an (n, k, d) difference array would not fit at 1M customers.
    best = np.zeros(len(matrix), dtype=np.int64)
    best_distance = np.full(len(matrix), np.inf)
    for index, centroid in enumerate(centroids):
        distance = ((matrix - centroid) ** 2).sum(axis=1)
        closer = distance < best_distance
        best[closer] = index
        best_distance[closer] = distance[closer]
    return best


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class ClusterModel:
    """A fitted clustering: transform, centroids with stable ids, labels, provenance.

    Build it with :func:`fit_clusters` or :meth:`load`; the constructor only stores.

    Attributes:
        scaler: The fitted feature transform.
        centroids: Centroids in the standardized space, one row per cluster, in
            ``cluster_ids`` order.
        cluster_ids: Stable ids, ascending.
        labels: Readable label per cluster id (unique within the model).
        retired_ids: Ids used earlier in this model lineage and never to be reused.
        params: Training parameters (JSON-able).
        metrics: Training figures: k, silhouette and inertia per k, sizes (JSON-able).
        matching: How the clusters were matched to the previous model (empty dict
            without one).
        training_profiles: :meth:`profiles` of the training customers, as records.
    """

    def __init__(
        self,
        *,
        scaler: FeatureScaler,
        centroids: np.ndarray,
        cluster_ids: np.ndarray,
        labels: dict[int, str],
        retired_ids: tuple[int, ...],
        params: dict[str, Any],
        metrics: dict[str, Any],
        matching: dict[str, Any],
        training_profiles: list[dict[str, Any]],
    ) -> None:
        self.scaler = scaler
        self.centroids = centroids
        self.cluster_ids = cluster_ids
        self.labels = labels
        self.retired_ids = retired_ids
        self.params = params
        self.metrics = metrics
        self.matching = matching
        self.training_profiles = training_profiles

    @property
    def next_id(self) -> int:
        """The smallest id above every id this lineage has used (current or retired)."""
        used = [int(i) for i in self.cluster_ids] + [int(i) for i in self.retired_ids]
        return max(used) + 1

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """The customers in this model's standardized feature space.

        Args:
            features: Customer feature table (needs the :data:`CLUSTER_FEATURES` columns).

        Returns:
            Array of shape ``(len(features), n_features)``.
        """
        return self.scaler.transform(features)

    def assign(self, features: pd.DataFrame) -> np.ndarray:
        """Stable cluster id of each customer (nearest centroid).

        Args:
            features: Customer feature table, one row per customer.

        Returns:
            ``int64`` array of cluster ids, aligned with the rows of ``features``.
        """
        if len(features) == 0:
            return np.empty(0, dtype=np.int64)
        return self.cluster_ids[_nearest(self.transform(features), self.centroids)]

    def profiles(
        self, features: pd.DataFrame, assignments: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Cluster profiles of a customer population.

        Grain: one row per cluster of the model (clusters without customers included,
        with 0 customers and null medians), sorted by ``cluster_id``.

        Args:
            features: Customer feature table (needs :data:`PROFILE_COLUMNS`).
            assignments: Cluster id per row of ``features``; default :meth:`assign`.

        Returns:
            Columns ``cluster_id`` (int), ``label`` (the model's, fixed at fit time),
            ``customers`` (int), ``share_of_customers``, ``share_of_revenue`` (share of
            the summed ``monetary_value``; null when that sum is not positive) and
            ``median_<c>`` for each ``c`` in :data:`PROFILE_COLUMNS`.

        Raises:
            ValueError: when ``assignments`` does not match ``features`` in length or
                holds an id this model does not have.
        """
        ids = self.assign(features) if assignments is None else np.asarray(assignments)
        if ids.shape != (len(features),):
            raise ValueError(
                f"assignments must have one id per customer row: got shape {ids.shape} "
                f"for {len(features)} rows"
            )
        unknown = sorted(set(ids.tolist()) - set(self.cluster_ids.tolist()))
        if unknown:
            raise ValueError(
                f"assignments hold cluster id(s) {unknown[:10]} not in this model "
                f"(ids {self.cluster_ids.tolist()})"
            )
        return _profile_table(features, ids, self.cluster_ids, self.labels)

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the model, JSON-able."""
        return {
            "format_version": FORMAT_VERSION,
            "kind": "kmeans_clusters",
            "scaler": self.scaler.to_dict(),
            "clusters": [
                {
                    "cluster_id": int(cid),
                    "label": self.labels[int(cid)],
                    "centroid": [float(v) for v in centroid],
                }
                for cid, centroid in zip(self.cluster_ids, self.centroids, strict=True)
            ],
            "retired_ids": [int(i) for i in self.retired_ids],
            "params": self.params,
            "metrics": self.metrics,
            "matching": self.matching,
            "training_profiles": self.training_profiles,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterModel:
        """Rebuild a model from :meth:`to_dict` output."""
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"cluster model format_version {version!r} is not supported "
                f"(this code reads {FORMAT_VERSION})"
            )
        clusters = data["clusters"]
        return cls(
            scaler=FeatureScaler.from_dict(data["scaler"]),
            centroids=np.array([c["centroid"] for c in clusters], dtype=np.float64),
            cluster_ids=np.array([c["cluster_id"] for c in clusters], dtype=np.int64),
            labels={int(c["cluster_id"]): str(c["label"]) for c in clusters},
            retired_ids=tuple(int(i) for i in data["retired_ids"]),
            params=data["params"],
            metrics=data["metrics"],
            matching=data["matching"],
            training_profiles=data["training_profiles"],
        )

    def save(self, directory: Path) -> None:
        """Write the model as ``cluster_model.json`` into an existing folder.

        Args:
            directory: Existing local folder (the registry gives an empty one).

        Raises:
            FileNotFoundError: when ``directory`` is not an existing folder.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"cannot save cluster model: {directory} is not a folder")
        text = json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False)
        (directory / MODEL_FILE).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> ClusterModel:
        """Read a model written by :meth:`save`.

        Args:
            directory: The folder :meth:`save` wrote into.

        Raises:
            FileNotFoundError: when the folder has no ``cluster_model.json``.
        """
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no cluster model at {path}")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


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

    The rules are in the module docstring.

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
    previous: ClusterModel, generated: dict[int, str], matching: dict[str, Any]
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


def _check_arguments(
    k_range: tuple[int, int], sample_size: int, match_threshold: float
) -> tuple[int, int]:
    try:
        k_min, k_max = (int(k) for k in k_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"k_range must be a pair of integers (min, max), got {k_range!r}") from exc
    if not 2 <= k_min <= k_max:
        raise ValueError(f"k_range must satisfy 2 <= min <= max, got {k_range!r}")
    if sample_size <= k_max:
        raise ValueError(
            f"sample_size ({sample_size}) must exceed k_range's max ({k_max}): the "
            "silhouette needs more sampled customers than clusters"
        )
    if not match_threshold > 0:
        raise ValueError(f"match_threshold must be positive, got {match_threshold!r}")
    return k_min, k_max


def _match(
    previous: ClusterModel,
    features: pd.DataFrame,
    raw_labels: np.ndarray,
    sizes: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, tuple[int, ...], dict[str, Any]]:
    """Ids for the new raw clusters from the previous model (see the module docstring).

    Returns:
        Id per raw cluster, the lineage's retired ids, and the matching record.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    in_previous_space = previous.transform(features)
    k = len(sizes)
    centroids = np.vstack([in_previous_space[raw_labels == j].mean(axis=0) for j in range(k)])
    distances = cdist(centroids, previous.centroids)
    rows, cols = linear_sum_assignment(np.minimum(distances, threshold))
    ids = np.full(k, -1, dtype=np.int64)
    for row, col in zip(rows, cols, strict=True):
        if distances[row, col] <= threshold:
            ids[row] = previous.cluster_ids[col]
    next_id = previous.next_id
    for row in sorted(np.flatnonzero(ids < 0), key=lambda j: (-sizes[j], j)):
        ids[row] = next_id
        next_id += 1
    retired_now = sorted(set(previous.cluster_ids.tolist()) - set(ids.tolist()))
    retired = tuple(sorted({*previous.retired_ids, *retired_now}))
    previous_index = {int(cid): i for i, cid in enumerate(previous.cluster_ids)}
    pairs = []
    for j in np.argsort(ids):
        nearest = int(distances[j].argmin())
        matched = previous_index.get(int(ids[j]))
        pairs.append(
            {
                "cluster_id": int(ids[j]),
                "previous_cluster_id": None if matched is None else int(ids[j]),
                "distance": None if matched is None else float(distances[j, matched]),
                "nearest_previous_cluster_id": int(previous.cluster_ids[nearest]),
                "nearest_distance": float(distances[j, nearest]),
            }
        )
    record = {
        "space": "previous model's standardized feature space (Euclidean, SD units)",
        "threshold": float(threshold),
        "previous_cluster_ids": [int(i) for i in previous.cluster_ids],
        "pairs": pairs,
        "retired_now": [int(i) for i in retired_now],
        "distances": {
            str(int(ids[j])): {
                str(int(previous.cluster_ids[i])): float(distances[j, i])
                for i in range(len(previous.cluster_ids))
            }
            for j in range(k)
        },
    }
    return ids, retired, record


def fit_clusters(
    features: pd.DataFrame,
    *,
    k_range: tuple[int, int] = (3, 8),
    sample_size: int = 5000,
    seed: int = 0,
    previous: ClusterModel | None = None,
    match_threshold: float = DEFAULT_MATCH_THRESHOLD,
    threads: int = 1,
) -> ClusterModel:
    """Fit K-Means clusters of customers, choose k by silhouette, keep ids stable.

    Args:
        features: Customer feature table, one row per customer (needs the columns of
            :data:`CLUSTER_FEATURES` and :data:`PROFILE_COLUMNS`).
        k_range: Smallest and largest k tried (inclusive), min >= 2.
        sample_size: Customers (seeded random sample) on which the silhouette of each k
            is computed; all when there are fewer.
        seed: Seed of K-Means and of the silhouette sample.
        previous: The model this one replaces; its ids are carried over by matching.
        match_threshold: Largest centroid distance (previous model's SD units) at which
            a new cluster inherits a previous id.
        threads: OpenMP / BLAS threads for K-Means and the silhouette. One by default:
            on a shared worker, busy-waiting OpenMP threads made a fit 50x slower
            (15.9 s against 0.3 s for 600 customers with the machine's 2 cores loaded).

    Returns:
        The fitted :class:`ClusterModel`.

    Raises:
        ValueError: on bad arguments, a missing / non-numeric / infinite feature, fewer
            customers than ``k_range``'s min, or fewer distinct transformed customers
            than it (all-identical rows included).
    """
    # scikit-learn first: threadpoolctl only limits the OpenMP / BLAS runtimes loaded
    # when the limit is set, and sklearn brings its own OpenMP runtime.
    import sklearn.cluster  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return _fit_clusters(features, k_range, sample_size, seed, previous, match_threshold)


def _fit_clusters(
    features: pd.DataFrame,
    k_range: tuple[int, int],
    sample_size: int,
    seed: int,
    previous: ClusterModel | None,
    match_threshold: float,
) -> ClusterModel:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    started = time.perf_counter()
    k_min, k_max = _check_arguments(k_range, sample_size, match_threshold)
    n = len(features)
    if n < k_min:
        raise ValueError(
            f"cannot cluster {n} customer(s) into at least {k_min} clusters "
            f"(k_range {k_range!r}): need at least {k_min} customers"
        )
    scaler = FeatureScaler.fit(features, CLUSTER_FEATURES, Z_CLIP)
    matrix = scaler.transform(features)
    n_distinct = len(np.unique(matrix, axis=0))
    if n_distinct < k_min:
        raise ValueError(
            f"only {n_distinct} distinct customer profile(s) after the transform "
            f"(of {n} customers), fewer than k_range's min {k_min}: nothing to cluster"
        )
    rng = np.random.default_rng(seed)
    sample = (
        np.sort(rng.choice(n, size=sample_size, replace=False)) if n > sample_size else np.arange(n)
    )
    candidates = list(range(k_min, min(k_max, n_distinct, len(sample) - 1) + 1))
    if not candidates:
        raise ValueError(f"no k in {k_range!r} can be scored with {len(sample)} sampled customers")
    log.info(
        "clustering %d customers (%d distinct), k in %s, silhouette on %d",
        n,
        n_distinct,
        candidates,
        len(sample),
    )
    silhouettes: dict[int, float] = {}
    inertias: dict[int, float] = {}
    fits: dict[int, Any] = {}
    for k in candidates:
        kmeans = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(matrix)
        labels = _nearest(matrix, kmeans.cluster_centers_)
        sampled = labels[sample]
        n_labels = len(np.unique(sampled))
        silhouettes[k] = (
            float(silhouette_score(matrix[sample], sampled))
            if 2 <= n_labels <= len(sample) - 1
            else math.nan
        )
        inertias[k] = float(kmeans.inertia_)
        fits[k] = (kmeans.cluster_centers_, labels)
        log.info(
            "k=%d: silhouette %.4f, inertia %.1f (%d/%d, %.1f s)",
            k,
            silhouettes[k],
            inertias[k],
            k - candidates[0] + 1,
            len(candidates),
            time.perf_counter() - started,
        )
    scored = [k for k in candidates if not math.isnan(silhouettes[k])]
    if not scored:
        raise ValueError("no k gave a silhouette: the sampled customers fall in one cluster")
    best_k = max(scored, key=lambda k: (silhouettes[k], -k))
    raw_centroids, raw_labels = fits[best_k]
    sizes = np.bincount(raw_labels, minlength=best_k)

    if previous is None:
        order = sorted(range(best_k), key=lambda j: (-sizes[j], j))
        raw_to_id = np.empty(best_k, dtype=np.int64)
        raw_to_id[order] = np.arange(best_k)
        retired: tuple[int, ...] = ()
        matching: dict[str, Any] = {}
    else:
        raw_to_id, retired, matching = _match(
            previous, features, raw_labels, sizes, match_threshold
        )
    order = np.argsort(raw_to_id)
    cluster_ids = raw_to_id[order]
    centroids = np.asarray(raw_centroids, dtype=np.float64)[order]
    ids = raw_to_id[raw_labels]
    labels = make_labels(features, ids, cluster_ids)
    if previous is not None:
        labels = _carry_labels(previous, labels, matching)
    profiles = _profile_table(features, ids, cluster_ids, labels)

    metrics: dict[str, Any] = {
        "k": int(best_k),
        "silhouette": _json_float(silhouettes[best_k]),
        "inertia": inertias[best_k],
        "silhouette_by_k": {str(k): _json_float(v) for k, v in silhouettes.items()},
        "inertia_by_k": {str(k): v for k, v in inertias.items()},
        "n_customers": int(n),
        "n_distinct_customers": int(n_distinct),
        "silhouette_sample_size": len(sample),
        "cluster_sizes": {str(int(c)): int(s) for c, s in zip(raw_to_id, sizes, strict=True)},
        "criterion": "max mean silhouette on the seeded sample (in-sample; ties: smaller k)",
    }
    if previous is not None:
        same = float(np.mean(previous.assign(features) == ids))
        metrics["same_id_share"] = same
    params: dict[str, Any] = {
        "features": [spec.name for spec in CLUSTER_FEATURES],
        "k_range": [k_min, k_max],
        "sample_size": int(sample_size),
        "seed": int(seed),
        "n_init": N_INIT,
        "z_clip": Z_CLIP,
        "match_threshold": float(match_threshold),
        "algorithm": "sklearn.cluster.KMeans",
    }
    log.info(
        "chose k=%d (silhouette %.4f) in %.1f s; labels %s",
        best_k,
        silhouettes[best_k],
        time.perf_counter() - started,
        list(labels.values()),
    )
    return ClusterModel(
        scaler=scaler,
        centroids=centroids,
        cluster_ids=cluster_ids,
        labels=labels,
        retired_ids=retired,
        params=params,
        metrics=metrics,
        matching=matching,
        training_profiles=json.loads(profiles.to_json(orient="records", double_precision=15)),
    )

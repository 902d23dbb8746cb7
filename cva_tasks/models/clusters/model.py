"""Behavioural customer clusters: K-Means on scaled features, stable ids, readable labels.

Input: the point-in-time customer feature table (:mod:`cva_tasks.features.customer`), one
row per customer. :meth:`ClusterModel.fit` scales the columns of
:data:`~cva_tasks.models.clusters.scaling.CLUSTER_FEATURES`
(:mod:`~cva_tasks.models.clusters.scaling`), fits K-Means for every k of ``k_range`` and
keeps the k with the best silhouette (:mod:`~cva_tasks.models.clusters.kmeans`), gives
the clusters ids that stay stable across retrains by matching them to the previous
model's (:mod:`~cva_tasks.models.clusters.matching`) and readable labels
(:mod:`~cva_tasks.models.clusters.labels`, which also profiles a population; the
profiles read ``monetary_value`` too).

Degenerate input raises :class:`ValueError` (no 1-cluster result): a missing or
non-numeric feature column, infinite values, bad arguments; too little data raises
:class:`~cva_tasks.models.base.NotEnoughData` (a ``ValueError``): fewer customers than
``k_range``'s minimum, or fewer distinct transformed rows than it (all-identical rows
are the extreme case).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.clusters.kmeans import N_INIT, _nearest, choose_k
from cva_tasks.models.clusters.labels import _carry_labels, _profile_table, make_labels
from cva_tasks.models.clusters.matching import DEFAULT_MATCH_THRESHOLD, _match, ids_by_size
from cva_tasks.models.clusters.scaling import CLUSTER_FEATURES, Z_CLIP, FeatureScaler
from cva_tasks.models.untrusted import refuse_unsafe_files

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "cluster_model.json"


class ClusterModel:
    """A clustering: transform, centroids with stable ids, labels, provenance.

    The constructor stores the settings; :meth:`fit` or :meth:`load` sets the rest.

    Args:
        k_range: Smallest and largest k tried (inclusive), min >= 2.
        sample_size: Customers (seeded random sample) on which the silhouette of each k
            is computed; all when there are fewer.
        seed: Seed of K-Means and of the silhouette sample.
        match_threshold: Largest centroid distance (previous model's SD units) at which
            a new cluster inherits a previous id.
        threads: OpenMP / BLAS threads for K-Means and the silhouette. One by default:
            on a shared worker, busy-waiting OpenMP threads made a fit many times slower
            (figures in ``docs/models/clusters.md``).

    Attributes (after :meth:`fit` or :meth:`load`):
        scaler: The fitted feature transform.
        centroids: Centroids in the standardized space, one row per cluster, in
            ``cluster_ids`` order.
        cluster_ids: Stable ids, ascending.
        labels: Readable label per cluster id (unique within the model).
        retired_ids: Ids used earlier in this model lineage and never to be reused.
        matching: How the clusters were matched to the previous model (empty dict
            without one).
        training_profiles: :meth:`profiles` of the training customers, as records.
    """

    kind: ClassVar[str] = "clusters"

    scaler: FeatureScaler
    centroids: np.ndarray
    cluster_ids: np.ndarray
    labels: dict[int, str]
    retired_ids: tuple[int, ...]
    matching: dict[str, Any]
    training_profiles: list[dict[str, Any]]

    def __init__(
        self,
        *,
        k_range: tuple[int, int] = (3, 8),
        sample_size: int = 5000,
        seed: int = 0,
        match_threshold: float = DEFAULT_MATCH_THRESHOLD,
        threads: int = 1,
    ) -> None:
        self.k_range = k_range
        self.sample_size = sample_size
        self.seed = seed
        self.match_threshold = match_threshold
        self.threads = threads
        self._params: dict[str, Any] | None = None
        self._metrics: dict[str, Any] = {}

    @property
    def params(self) -> dict[str, Any]:
        """Training parameters (JSON-able); the settings before a fit."""
        if self._params is not None:
            return self._params
        return {
            "k_range": list(self.k_range),
            "sample_size": self.sample_size,
            "seed": self.seed,
            "match_threshold": self.match_threshold,
        }

    @property
    def metrics(self) -> dict[str, Any]:
        """Training figures: k, silhouette and inertia per k, sizes (JSON-able)."""
        return self._metrics

    def fit(self, features: pd.DataFrame, *, previous: ClusterModel | None = None) -> Self:
        """Fit K-Means clusters of customers, choose k by silhouette, keep ids stable.

        Args:
            features: Customer feature table, one row per customer (needs the columns of
                :data:`~cva_tasks.models.clusters.scaling.CLUSTER_FEATURES` and
                :data:`~cva_tasks.models.clusters.labels.PROFILE_COLUMNS`).
            previous: The model this one replaces; its ids are carried over by matching.

        Returns:
            The model itself, fitted.

        Raises:
            NotEnoughData: fewer customers than ``k_range``'s min, or fewer distinct
                transformed customers than it (all-identical rows included).
            ValueError: on bad arguments, a missing / non-numeric / infinite feature.
        """
        # scikit-learn first: threadpoolctl only limits the OpenMP / BLAS runtimes loaded
        # when the limit is set, and sklearn brings its own OpenMP runtime.
        import sklearn.cluster  # noqa: F401
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            self._fit(features, previous)
        return self

    def _fit(self, features: pd.DataFrame, previous: ClusterModel | None) -> None:
        started = time.perf_counter()
        k_range, sample_size, seed = self.k_range, self.sample_size, self.seed
        k_min, k_max = _check_arguments(k_range, sample_size, self.match_threshold)
        n = len(features)
        if n < k_min:
            raise NotEnoughData(
                f"cannot cluster {n} customer(s) into at least {k_min} clusters "
                f"(k_range {k_range!r}): need at least {k_min} customers"
            )
        scaler = FeatureScaler.fit(features, CLUSTER_FEATURES, Z_CLIP)
        matrix = scaler.transform(features)
        n_distinct = len(np.unique(matrix, axis=0))
        if n_distinct < k_min:
            raise NotEnoughData(
                f"only {n_distinct} distinct customer profile(s) after the transform "
                f"(of {n} customers), fewer than k_range's min {k_min}: nothing to cluster"
            )
        choice = choose_k(matrix, k_range, k_min, k_max, n_distinct, sample_size, seed)
        best_k, silhouettes, inertias = choice.k, choice.silhouettes, choice.inertias
        raw_labels = choice.labels
        sizes = np.bincount(raw_labels, minlength=best_k)

        if previous is None:
            raw_to_id = ids_by_size(sizes)
            retired: tuple[int, ...] = ()
            matching: dict[str, Any] = {}
        else:
            raw_to_id, retired, matching = _match(
                previous, features, raw_labels, sizes, self.match_threshold
            )
        order = np.argsort(raw_to_id)
        cluster_ids = raw_to_id[order]
        centroids = np.asarray(choice.centroids, dtype=np.float64)[order]
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
            "silhouette_sample_size": choice.sample_size,
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
            "match_threshold": float(self.match_threshold),
            "algorithm": "sklearn.cluster.KMeans",
        }
        log.info(
            "chose k=%d (silhouette %.4f) in %.1f s; labels %s",
            best_k,
            silhouettes[best_k],
            time.perf_counter() - started,
            list(labels.values()),
        )
        self.scaler = scaler
        self.centroids = centroids
        self.cluster_ids = cluster_ids
        self.labels = labels
        self.retired_ids = retired
        self._params = params
        self._metrics = metrics
        self.matching = matching
        self.training_profiles = json.loads(profiles.to_json(orient="records", double_precision=15))

    @property
    def next_id(self) -> int:
        """The smallest id above every id this lineage has used (current or retired)."""
        used = [int(i) for i in self.cluster_ids] + [int(i) for i in self.retired_ids]
        return max(used) + 1

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """The customers in this model's standardized feature space.

        Args:
            features: Customer feature table (needs the columns of
                :data:`~cva_tasks.models.clusters.scaling.CLUSTER_FEATURES`).

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

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """The cluster of each customer: ``customer_id``, ``cluster_id``, ``cluster_label``.

        Args:
            features: Customer feature table, one row per customer (with ``customer_id``).

        Returns:
            One row per row of ``features``, in its order.
        """
        if "customer_id" not in features.columns:
            raise ValueError("customer features lack column 'customer_id'")
        ids = self.assign(features)
        return pd.DataFrame(
            {
                "customer_id": features["customer_id"].to_numpy(),
                "cluster_id": ids,
                "cluster_label": [self.labels[int(i)] for i in ids],
            }
        )

    def profiles(
        self, features: pd.DataFrame, assignments: np.ndarray | None = None
    ) -> pd.DataFrame:
        """Cluster profiles of a customer population.

        Grain: one row per cluster of the model (clusters without customers included,
        with 0 customers and null medians), sorted by ``cluster_id``.

        Args:
            features: Customer feature table (needs
                :data:`~cva_tasks.models.clusters.labels.PROFILE_COLUMNS`).
            assignments: Cluster id per row of ``features``; default :meth:`assign`.

        Returns:
            Columns ``cluster_id`` (int), ``label`` (the model's, fixed at fit time),
            ``customers`` (int), ``share_of_customers``, ``share_of_revenue`` (share of
            the summed ``monetary_value``; null when that sum is not positive) and
            ``median_<c>`` for each ``c`` in
            :data:`~cva_tasks.models.clusters.labels.PROFILE_COLUMNS`.

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
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild a model from :meth:`to_dict` output."""
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"cluster model format_version {version!r} is not supported "
                f"(this code reads {FORMAT_VERSION})"
            )
        params = data["params"]
        model = cls(
            k_range=(int(params["k_range"][0]), int(params["k_range"][1])),
            sample_size=params["sample_size"],
            seed=params["seed"],
            match_threshold=params["match_threshold"],
        )
        clusters = data["clusters"]
        model.scaler = FeatureScaler.from_dict(data["scaler"])
        model.centroids = np.array([c["centroid"] for c in clusters], dtype=np.float64)
        model.cluster_ids = np.array([c["cluster_id"] for c in clusters], dtype=np.int64)
        model.labels = {int(c["cluster_id"]): str(c["label"]) for c in clusters}
        model.retired_ids = tuple(int(i) for i in data["retired_ids"])
        model._params = params
        model._metrics = data["metrics"]
        model.matching = data["matching"]
        model.training_profiles = data["training_profiles"]
        return model

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
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`.

        Args:
            directory: The folder :meth:`save` wrote into.

        Raises:
            FileNotFoundError: when the folder has no ``cluster_model.json``.
        """
        refuse_unsafe_files(Path(directory), cls.kind)
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no cluster model at {path}")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


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

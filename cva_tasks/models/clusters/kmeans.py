"""K-Means over a range of k, and the choice of k by the silhouette.

K-Means (scikit-learn, ``n_init`` :data:`N_INIT`, ``random_state=seed``) is fitted on
all customers for every k in ``k_range`` (up to the number of distinct transformed
rows); k is the one with the highest mean silhouette on a seeded random sample of
``sample_size`` customers (ties: the smaller k). Silhouette and inertia of every k are
in ``ClusterModel.metrics``. They are in-sample, internal criteria for choosing k,
not a measure of predictive quality.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from cva_tasks.models.base import NotEnoughData

log = logging.getLogger(__name__)

N_INIT = 10


@dataclass(frozen=True)
class KChoice:
    """The outcome of :func:`choose_k`.

    Attributes:
        k: The chosen number of clusters.
        centroids: Its K-Means centroids (raw order).
        labels: Raw cluster per customer (nearest centroid).
        silhouettes: Mean silhouette on the sample per k tried (NaN when undefined).
        inertias: K-Means inertia per k tried.
        sample_size: Customers the silhouette was computed on.
    """

    k: int
    centroids: np.ndarray
    labels: np.ndarray
    silhouettes: dict[int, float]
    inertias: dict[int, float]
    sample_size: int


def choose_k(
    matrix: np.ndarray,
    k_range: tuple[int, int],
    k_min: int,
    k_max: int,
    n_distinct: int,
    sample_size: int,
    seed: int,
) -> KChoice:
    """Fit K-Means for every k that can be scored; keep the k of the best silhouette.

    Args:
        matrix: The standardized customers, one row each.
        k_range: As given by the caller (for messages).
        k_min, k_max: The checked bounds of ``k_range``.
        n_distinct: Distinct rows of ``matrix`` (no k above it is tried).
        sample_size: Customers (seeded random sample) for the silhouette.
        seed: Seed of K-Means and of the sample.

    Raises:
        NotEnoughData: no k can be scored, or every k leaves the sample in one cluster.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    started = time.perf_counter()
    n = len(matrix)
    rng = np.random.default_rng(seed)
    sample = (
        np.sort(rng.choice(n, size=sample_size, replace=False)) if n > sample_size else np.arange(n)
    )
    candidates = list(range(k_min, min(k_max, n_distinct, len(sample) - 1) + 1))
    if not candidates:
        raise NotEnoughData(
            f"no k in {k_range!r} can be scored with {len(sample)} sampled customers"
        )
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
        raise NotEnoughData("no k gave a silhouette: the sampled customers fall in one cluster")
    best_k = max(scored, key=lambda k: (silhouettes[k], -k))
    centroids, labels = fits[best_k]
    return KChoice(best_k, centroids, labels, silhouettes, inertias, len(sample))


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

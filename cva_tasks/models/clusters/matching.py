"""Stable cluster ids across retrains: matching new clusters to the previous model's.

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
ids left unmatched are retired and are never reused (``ClusterModel.retired_ids``
is carried from model to model). The matching and distances are recorded in
``ClusterModel.matching``, with the share of customers whose id is unchanged
between the previous and the new model (``metrics["same_id_share"]``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

DEFAULT_MATCH_THRESHOLD = 1.0


class PreviousModel(Protocol):
    """What the matching reads of the model being replaced (a ``ClusterModel``)."""

    @property
    def centroids(self) -> np.ndarray: ...

    @property
    def cluster_ids(self) -> np.ndarray: ...

    @property
    def retired_ids(self) -> tuple[int, ...]: ...

    @property
    def next_id(self) -> int: ...

    def transform(self, features: pd.DataFrame) -> np.ndarray: ...


def ids_by_size(sizes: np.ndarray) -> np.ndarray:
    """Ids without a previous model: 0..k-1 by decreasing size (ties: raw order)."""
    k = len(sizes)
    order = sorted(range(k), key=lambda j: (-sizes[j], j))
    raw_to_id = np.empty(k, dtype=np.int64)
    raw_to_id[order] = np.arange(k)
    return raw_to_id


def _match(
    previous: PreviousModel,
    features: pd.DataFrame,
    raw_labels: np.ndarray,
    sizes: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, tuple[int, ...], dict[str, Any]]:
    """Ids for the new raw clusters from the previous model (see this module's docstring).

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

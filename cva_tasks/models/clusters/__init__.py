"""Behavioural customer clusters (kind ``clusters``): K-Means with stable ids and labels.

Modules, by concern:

* :mod:`~cva_tasks.models.clusters.scaling`: the clustered features and their fitted
  transform;
* :mod:`~cva_tasks.models.clusters.kmeans`: K-Means over ``k_range`` and the choice of k
  by the silhouette;
* :mod:`~cva_tasks.models.clusters.matching`: ids kept stable across retrains
  (Hungarian matching to the previous model);
* :mod:`~cva_tasks.models.clusters.labels`: cluster profiles and readable labels;
* :mod:`~cva_tasks.models.clusters.model`: :class:`ClusterModel` (fit, predict, assign,
  profiles, save / load);
* :mod:`~cva_tasks.models.clusters.training`: the pipeline's day trainer.
"""

from cva_tasks.models.clusters.kmeans import N_INIT
from cva_tasks.models.clusters.labels import PROFILE_COLUMNS, make_labels
from cva_tasks.models.clusters.matching import DEFAULT_MATCH_THRESHOLD
from cva_tasks.models.clusters.model import FORMAT_VERSION, MODEL_FILE, ClusterModel
from cva_tasks.models.clusters.scaling import (
    CLUSTER_FEATURES,
    Z_CLIP,
    FeatureScaler,
    FeatureTransform,
)

__all__ = [
    "CLUSTER_FEATURES",
    "DEFAULT_MATCH_THRESHOLD",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "N_INIT",
    "PROFILE_COLUMNS",
    "Z_CLIP",
    "ClusterModel",
    "FeatureScaler",
    "FeatureTransform",
    "make_labels",
]

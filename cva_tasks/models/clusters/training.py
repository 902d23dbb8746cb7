"""Training behavioural clusters for a day of the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cva_tasks.features.snapshots import DayData
    from cva_tasks.models.clusters.model import ClusterModel
    from cva_tasks.settings import Settings


def train_for_day(
    data: DayData, current: ClusterModel | None, settings: Settings
) -> tuple[ClusterModel, dict[str, Any]]:
    """K-Means on the day's features, matched to ``current`` so ids stay stable."""
    from cva_tasks.models.clusters import ClusterModel

    features = data.features_at(data.ds)
    model = ClusterModel(k_range=settings.cluster_k_range, seed=0).fit(features, previous=current)
    silhouette = model.metrics.get("silhouette")
    return model, {
        "algorithm": f"K-Means (k={model.metrics.get('k')}, chosen by silhouette)",
        # Clusters describe, they do not predict: the silhouette is an internal,
        # in-sample criterion, recorded but not used to refuse a retrain.
        "metric": "silhouette",
        "metric_value": silhouette,
        "higher_is_better": True,
        "champion_metric": None,
        "training_window": {"start": None, "end": data.ds},
        "params": model.params,
        "model_metrics": model.metrics,
        "matching": model.matching,
    }

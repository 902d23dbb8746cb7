"""Training the feedback sentiment model for a day of the pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cva_tasks.features.snapshots import DayData
    from cva_tasks.models.sentiment.model import SentimentModel
    from cva_tasks.settings import Settings


def train_for_day(
    data: DayData, current: SentimentModel | None, settings: Settings
) -> tuple[SentimentModel, dict[str, Any]]:
    """Train on the rated feedback known at the end of the day; validate on the latest."""
    from cva_tasks.models.sentiment import configure_tensorflow, train_sentiment

    configure_tensorflow(settings.tf_threads)
    feedback = data.visible("feedback")
    model, metrics = train_sentiment(
        feedback["text"],
        feedback["rating"],
        order=feedback["submitted_at"],
        champion=current,
        neutral_band=settings.sentiment_neutral_band,
        max_train_texts=settings.sentiment_max_train_texts,
    )
    rated = feedback[feedback["rating"].notna()].sort_values("submitted_at")
    split = rated["submitted_at"].iloc[-metrics["n_validation"]] if len(rated) else None
    return model, {
        "algorithm": f"Keras {model.params.get('architecture', 'text classifier')}",
        "metric": "roc_auc",
        "metric_value": metrics["roc_auc"],
        "higher_is_better": True,
        "champion_metric": metrics.get("champion_roc_auc"),
        "training_window": {
            "start": rated["submitted_at"].min() if len(rated) else None,
            "end": split,
        },
        "validation_window": {"start": split, "end": data.ds},
        "params": model.params,
        **metrics,
    }

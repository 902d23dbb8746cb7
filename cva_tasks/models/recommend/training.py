"""Training the recommender for a day of the pipeline, and the inputs it reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cva_tasks.models.base import NotEnoughData

if TYPE_CHECKING:
    import pandas as pd

    from cva_tasks.features.snapshots import DayData
    from cva_tasks.models.recommend.model import Recommender
    from cva_tasks.segments.rfm import RuleTable
    from cva_tasks.settings import Settings


def recommender_inputs(
    data: DayData, rules: RuleTable
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Purchase lines, items and customers (with their RFM segment) as of the end of ``ds``."""
    from cva_tasks.features.history import purchase_interactions
    from cva_tasks.segments.rfm import score_rfm

    # Streamed and cut to four columns as it comes: the whole lines frame (order ids,
    # amounts, a name per line) of a 1M-customer shop did not fit in 20 GB.
    interactions, items = purchase_interactions(data.as_of, data.root)
    # Each item's latest known name; an item never landed keeps its id.
    items = items.assign(name=items["item_name"].fillna(items["item_id"]))[["item_id", "name"]]
    features = data.features_at(data.ds)
    customers = features[["customer_id", "country"]].merge(
        score_rfm(features, rules)[["customer_id", "segment"]], on="customer_id", how="left"
    )
    return interactions, items, customers


def train_for_day(
    data: DayData, current: Recommender | None, settings: Settings
) -> tuple[Recommender, dict[str, Any]]:
    """Validate every candidate on the last 30 days, refit the best on everything."""
    from cva_tasks.models.recommend.selection import train_recommenders
    from cva_tasks.segments.rfm import load_rules

    interactions, items, customers = recommender_inputs(data, load_rules(settings.rfm_rules))
    if interactions.empty:
        raise NotEnoughData("no purchase lines yet")
    model, report = train_recommenders(interactions, items, customers, data.as_of, seed=0)
    metric = report["comparison_metric"]
    # The champion was fitted on data that overlaps this validation window, so scoring
    # it there would flatter it; its procedure (model and parameters) refitted at the
    # same split is what is compared, and every candidate was validated that way.
    champion_figures = report["models"].get(current.model_name) if current else None
    validation = report["validation"]
    return model, {
        **report,
        "algorithm": model.model_name,
        "metric": metric,
        "metric_value": report["models"][report["chosen"]][metric],
        "higher_is_better": True,
        "champion_metric": champion_figures[metric] if champion_figures else None,
        "training_window": {"start": None, "end": data.ds},
        "validation_window": {"start": validation["start"], "end": validation["end"]},
        "params": model.params,
    }

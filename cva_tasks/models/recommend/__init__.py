"""Product recommendations: bestsellers, item-based collaborative filtering, implicit ALS.

One module per concern, the way ``implicit`` keeps one algorithm per module:

* :mod:`.purchases`: checks and encoding of the purchase lines, weighting, groups;
* :mod:`.popularity`, :mod:`.item_knn`, :mod:`.als`: the algorithms;
  :mod:`.candidates`: their defaults and names;
* :mod:`.ranking`: top-k selection on chunks of scores, reasons;
* :mod:`.buy_again`, :mod:`.lists`: the buy-again list, the output frames;
* :mod:`.model`: :class:`Recommender` (fit, predict, save, load);
* :mod:`.metrics`: out-of-time truth and ranking metrics;
* :mod:`.selection`: :func:`train_recommenders` (validate, choose, refit);
* :mod:`.training`: the trainer of the daily pipeline.
"""

from cva_tasks.models.recommend.als import ALSRecommender
from cva_tasks.models.recommend.buy_again import BuyAgain
from cva_tasks.models.recommend.candidates import CANDIDATES, DEFAULT_PARAMS
from cva_tasks.models.recommend.item_knn import ItemKNNRecommender
from cva_tasks.models.recommend.lists import (
    BUY_AGAIN,
    LISTS,
    NEXT_BEST,
    OUTPUT_COLUMNS,
    concat_recommendations,
)
from cva_tasks.models.recommend.metrics import evaluate_model, new_items_after, ranking_metrics
from cva_tasks.models.recommend.model import Recommender
from cva_tasks.models.recommend.popularity import PopularityRecommender
from cva_tasks.models.recommend.purchases import Weighting
from cva_tasks.models.recommend.selection import train_recommenders

__all__ = [
    "BUY_AGAIN",
    "CANDIDATES",
    "DEFAULT_PARAMS",
    "LISTS",
    "NEXT_BEST",
    "OUTPUT_COLUMNS",
    "ALSRecommender",
    "BuyAgain",
    "ItemKNNRecommender",
    "PopularityRecommender",
    "Recommender",
    "Weighting",
    "concat_recommendations",
    "evaluate_model",
    "new_items_after",
    "ranking_metrics",
    "train_recommenders",
]

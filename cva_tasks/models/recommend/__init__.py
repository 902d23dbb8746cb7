"""Transitional re-export while the family is split by concern."""

from cva_tasks.models.recommend.model import *  # noqa: F403
from cva_tasks.models.recommend.model import OUTPUT_COLUMNS, top_k  # noqa: F401

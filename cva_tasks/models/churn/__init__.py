"""Transitional re-export while the family is split by concern."""

from cva_tasks.models.churn.model import *  # noqa: F403

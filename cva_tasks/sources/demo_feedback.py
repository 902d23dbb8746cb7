"""The demo shop's feedback: one JSONL file dropped per day.

``feedback_YYYY-MM-DD.jsonl`` under ``CVA_DEMO_FEEDBACK_DROPS`` (default
``$CVA_HOME/demo/drops/feedback``). A day without its file fails the extract (the drop
has not arrived); an empty file is an empty day.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from cva_tasks.sources.base import FileEntity, Interval, Source
from cva_tasks.sources.canonical import id_text
from cva_tasks.sources.readers import read_jsonl

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("feedback_id", "customer_id", "order_id", "rating", "comment", "submitted_at")


def feedback(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Feedback lines -> canonical feedback (one row per feedback).

    ``rating`` stays null where the customer gave none. A rating that is not a
    whole number is rejected (``rejected_reason``); whole numbers out of 1-5
    go through to the suite, which quarantines them. ``submitted_at`` and ``text``
    are typed row by row by :func:`~cva_tasks.sources.canonical.convert`.
    """
    import pandas as pd

    rating = pd.to_numeric(frame["rating"], errors="coerce")
    not_whole = frame["rating"].notna() & (rating.isna() | (rating % 1 != 0))
    return frame.assign(
        rejected_reason=pd.Series("rating is not a whole number", index=frame.index).where(
            not_whole, None
        ),
        feedback_id=frame["feedback_id"].astype("string"),
        customer_id=id_text(frame["customer_id"]),
        order_id=id_text(frame["order_id"]),
        rating=rating.where(~not_whole).astype("Int64"),
        text=frame["comment"],
    )


SOURCE = Source(
    name="demo_feedback",
    description="Demo shop feedback drops (one JSONL file per day)",
    location_env="CVA_DEMO_FEEDBACK_DROPS",
    default_location="demo/drops/feedback",
    start_date=date(2024, 1, 1),
    entities=(
        FileEntity(
            entity="feedback",
            suite="demo_feedback.feedback",
            pattern="feedback_{ds}.jsonl",
            reader=read_jsonl,
            required_columns=COLUMNS,
            to_canonical=feedback,
        ),
    ),
    tags=("demo",),
)

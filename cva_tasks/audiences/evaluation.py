"""Who is in each audience on a day: the definitions applied to the day's scores.

Pure functions on frames (no lake, no warehouse): :func:`audience_members` takes the
day's ``customer_scores`` rows and ``customer_recommendations`` rows and returns the
rows of the warehouse table ``audience_members``; :func:`audience_sizes` counts them.
The same inputs always give the same rows in the same order, so a rerun of a day
publishes identical rows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cva_tasks.audiences.definitions import Audience, Condition

if TYPE_CHECKING:
    import pandas as pd

#: Score columns copied into each member row, so a list is usable without a join.
CONTEXT_COLUMNS = (
    "segment",
    "country",
    "recency_days",
    "churn_tier",
    "churn_probability",
    "clv_365d",
    "negative_feedback_90d",
)
MEMBER_COLUMNS = (
    "as_of_date",
    "audience",
    "customer_id",
    "reason",
    *CONTEXT_COLUMNS,
    "recommended_items",
)


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if not value.is_integer() else f"{value:,.0f}"
    return str(value)


def condition_holds(scores: pd.DataFrame, condition: Condition) -> tuple[pd.Series, pd.Series]:
    """Which rows meet ``condition`` (nulls never do), and why, in words, for those rows.

    Returns:
        ``(mask, reasons)``: a boolean Series and a text Series on ``scores``' index.
    """
    import pandas as pd

    values = scores[condition.column]
    present = values.notna()
    shown = values.map(lambda v: None if pd.isna(v) else _text(v)).astype("object")
    column = condition.column
    if condition.op == "in":
        allowed = set(condition.value)
        mask = present & values.map(lambda v: v in allowed if not pd.isna(v) else False)
        reasons = column + " " + shown.fillna("")
    elif condition.op in ("min", "max"):
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        mask = numbers >= condition.value if condition.op == "min" else numbers <= condition.value
        mask = present & mask.fillna(False)
        reasons = column + " " + shown.fillna("")
    else:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        counted = int(numbers.notna().sum())
        # Ties at the edge share the best rank ("min"), so all of them are in.
        ranks = numbers.rank(ascending=condition.op == "bottom_share", method="min")
        cut = max(1, math.ceil(round(condition.value * counted, 9))) if counted else 0
        mask = present & (ranks <= cut).fillna(False)
        side = "top" if condition.op == "top_share" else "bottom"
        rank_text = ranks.map(lambda r: "" if pd.isna(r) else f"{int(r):,}")
        reasons = (
            column
            + " "
            + shown.fillna("")
            + f" ({side} {condition.value:.0%}: rank "
            + rank_text
            + f" of {counted:,})"
        )
    return mask.astype(bool), reasons.astype("object")


def _all_hold(scores: pd.DataFrame, conditions: Sequence[Condition]) -> tuple[pd.Series, pd.Series]:
    import pandas as pd

    mask = pd.Series(True, index=scores.index)
    reasons = pd.Series("", index=scores.index, dtype="object")
    for condition in conditions:
        held, why = condition_holds(scores, condition)
        mask &= held
        reasons = reasons.where(reasons == "", reasons + "; ") + why
    return mask, reasons


def _recommended_items(recommendations: pd.DataFrame, audience: Audience) -> pd.Series:
    """Per customer, the JSON list of the attached items (``rank``, ``item_id``, ``item_name``)."""
    import pandas as pd

    wanted = audience.recommendations
    if wanted is None or recommendations.empty:
        return pd.Series(dtype="object")
    chosen = recommendations[
        (recommendations["list"].astype(str) == wanted.list)
        & (recommendations["rank"] <= wanted.top)
    ].sort_values(["customer_id", "rank"], kind="stable")
    return chosen.groupby("customer_id", sort=False).apply(
        lambda rows: json.dumps(
            [
                {
                    "rank": int(r.rank),
                    "item_id": str(r.item_id),
                    "item_name": None if pd.isna(r.item_name) else str(r.item_name),
                }
                for r in rows.itertuples(index=False)
            ],
            ensure_ascii=False,
        ),
        include_groups=False,
    )


def members_of(
    audience: Audience, scores: pd.DataFrame, recommendations: pd.DataFrame
) -> pd.DataFrame:
    """The rows of ``audience_members`` for one audience (sorted by customer_id).

    Args:
        audience: the definition.
        scores: the day's ``customer_scores`` rows (one per customer).
        recommendations: the day's ``customer_recommendations`` rows (may be empty).
    """
    import pandas as pd

    mask, reasons = _all_hold(scores, audience.where)
    if audience.any_of:
        any_mask = pd.Series(False, index=scores.index)
        any_reason = pd.Series("", index=scores.index, dtype="object")
        for group in audience.any_of:
            held, why = _all_hold(scores, group)
            # The first group that holds explains the membership.
            any_reason = any_reason.where(any_mask | ~held, why)
            any_mask |= held
        mask &= any_mask
        reasons = reasons.where(reasons == "", reasons + "; ") + any_reason
    chosen = scores.loc[mask]
    out = pd.DataFrame(
        {
            "as_of_date": chosen["as_of_date"].to_numpy(),
            "audience": audience.name,
            "customer_id": chosen["customer_id"].astype(str).to_numpy(),
            "reason": reasons[mask].to_numpy(),
            **{name: chosen[name].to_numpy() for name in CONTEXT_COLUMNS},
        }
    )
    out["recommended_items"] = None
    if audience.recommendations is not None:
        items = _recommended_items(recommendations, audience)
        out["recommended_items"] = out["customer_id"].map(items)
        # Nothing to offer: a cross-sell list needs items.
        out = out[out["recommended_items"].notna()]
        wanted = audience.recommendations
        out["reason"] = out["reason"] + f"; top {wanted.top} {wanted.list} items attached"
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)[
        list(MEMBER_COLUMNS)
    ]


def audience_members(
    audiences: Sequence[Audience], scores: pd.DataFrame, recommendations: pd.DataFrame
) -> pd.DataFrame:
    """Members of every audience, in definition order then by customer."""
    import pandas as pd

    frames = [members_of(a, scores, recommendations) for a in audiences]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=MEMBER_COLUMNS)


def audience_sizes(audiences: Sequence[Audience], members: pd.DataFrame) -> pd.DataFrame:
    """One row per defined audience (an empty one counts 0): ``audience``,
    ``description``, ``customers``."""
    import pandas as pd

    counts = members["audience"].value_counts()
    return pd.DataFrame(
        {
            "audience": [a.name for a in audiences],
            "description": [a.description for a in audiences],
            "customers": [int(counts.get(a.name, 0)) for a in audiences],
        }
    )

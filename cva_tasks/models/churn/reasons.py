"""Churn tiers and reasons in words.

Tiers: ``Low`` below 0.33, ``High`` from 0.66, ``Medium`` between (:func:`assign_tiers`);
the cut-offs are passed to :meth:`ChurnModel.predict` at scoring time (the pipeline
passes ``CVA_CHURN_TIER_CUTOFFS``, e.g. ``"0.3,0.7"``), so marketing can move them
without a retrain.

Reasons: for each customer and each *reason group* (:data:`REASON_GROUPS`: recency,
usual gap, frequency, recent activity, spend, tenure, cancellations, returns, product
breadth, ratings, sentiment), the model measures how much its log-odds would fall if
that group's raw features were the population median (of the validation snapshot),
everything else unchanged and re-engineered
(:meth:`ChurnModel.reason_contributions`). This is model agnostic (the same for both
families), needs no extra library, and answers the marketer's question "what makes
this customer riskier than a typical one?". The three largest positive contributions
are rendered in words (:func:`top_reasons`, :func:`reason_text`: "no order for 140
days", "orders slowed: 95 days since last vs 30 usual").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cva_tasks.models.churn.features import SENTIMENT_COLUMNS, numeric

DEFAULT_TIER_CUTOFFS = (0.33, 0.66)
TIERS = ("Low", "Medium", "High")
#: A reason is shown only when it raises the log-odds by at least this much.
MIN_REASON_LOG_ODDS = 0.05

#: Reason group -> the raw columns set to the population median to measure its effect.
REASON_GROUPS: dict[str, tuple[str, ...]] = {
    "recency": ("recency_days",),
    "usual_gap": ("mean_days_between_orders", "std_days_between_orders"),
    "frequency": ("frequency",),
    "recent_activity": ("orders_90d", "spend_90d", "spend_30d"),
    "spend": ("gross_revenue", "avg_order_value", "monetary_value"),
    "tenure": ("tenure_days",),
    "cancellations": ("n_cancelled_orders",),
    "returns": ("n_returned_lines", "returned_units", "return_rate"),
    "breadth": ("n_distinct_items",),
    "ratings": ("avg_rating", "feedback_count"),
    "sentiment": SENTIMENT_COLUMNS,
}


def assign_tiers(probabilities: Any, cutoffs: Sequence[float] = DEFAULT_TIER_CUTOFFS) -> np.ndarray:
    """``Low`` below the first cut-off, ``High`` from the second, ``Medium`` between.

    Raises:
        ValueError: when the cut-offs are not two increasing probabilities in (0, 1).
    """
    values = tuple(float(v) for v in cutoffs)
    if len(values) != 2 or not 0.0 < values[0] < values[1] < 1.0:
        raise ValueError(
            f"tier cut-offs: need two increasing probabilities strictly between 0 and 1, "
            f"got {cutoffs!r}"
        )
    low, high = values
    p = np.asarray(probabilities, dtype=float)
    return np.where(p >= high, TIERS[2], np.where(p >= low, TIERS[1], TIERS[0]))


_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _count(n: float, noun: str, plural: str | None = None) -> str:
    n = round(n)
    word = _WORDS[n] if 0 <= n < len(_WORDS) else f"{n:,}"
    return f"{word} {noun if n == 1 else (plural or noun + 's')}"


def _days(value: float) -> str:
    days = round(value)
    return {0: "less than a day", 1: "1 day"}.get(days, f"{days:,} days")


def _money(value: float) -> str:
    return f"{value:,.0f}"


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def risky_side(group: str, features: pd.DataFrame, typical: dict[str, float]) -> np.ndarray:
    """Whether each customer is on the side of the typical value that a reason names.

    Recency, usual gap, cancellations, returns and negative feedback count when above
    typical; frequency, recent activity, spend, tenure, product breadth, rating and
    sentiment when below.
    """

    def col(name: str) -> pd.Series:
        if name not in features.columns:
            return pd.Series(np.nan, index=features.index)
        return numeric(features, name)

    def above(name: str) -> pd.Series:
        return col(name) > typical.get(name, np.inf)

    def below(name: str) -> pd.Series:
        return col(name) < typical.get(name, -np.inf)

    if group == "recency":
        side = above("recency_days")
    elif group == "usual_gap":
        # One order only has no gap: "one order only" (frequency) says it.
        gap, recency = col("mean_days_between_orders"), col("recency_days")
        side = gap.notna() & ((recency >= gap + 7) | above("mean_days_between_orders"))
    elif group == "frequency":
        side = below("frequency")
    elif group == "recent_activity":
        # "nothing bought in 90 days" would repeat "no order for N days" when that shows.
        repeats_recency = (col("orders_90d") == 0) & above("recency_days")
        side = (below("orders_90d") | below("spend_90d")) & ~repeats_recency
    elif group == "spend":
        side = below("gross_revenue") | below("avg_order_value")
    elif group == "tenure":
        side = below("tenure_days")
    elif group == "cancellations":
        side = above("n_cancelled_orders") & (col("n_cancelled_orders") > 0)
    elif group == "returns":
        side = above("n_returned_lines") & (col("n_returned_lines") > 0)
    elif group == "breadth":
        side = below("n_distinct_items")
    elif group == "ratings":
        side = below("avg_rating")
    elif group == "sentiment":
        side = (
            (col("negative_feedback_90d") > 0)
            | (col("last_feedback_sentiment") < 0)
            | below("avg_sentiment_90d")
        )
    else:
        raise ValueError(f"unknown reason group {group!r}")
    return side.fillna(False).to_numpy(dtype=bool)


def reason_text(group: str, row: dict[str, Any], typical: dict[str, float]) -> str:
    """A customer's reason of group ``group`` in words, with the typical value for contrast.

    Args:
        group: A key of :data:`REASON_GROUPS`.
        row: The customer's raw feature values.
        typical: Population medians of the raw features.
    """

    def get(name: str) -> Any:  # Any like the row: a number, or None when absent
        return row.get(name)

    if group == "recency":
        return f"no order for {_days(get('recency_days'))}"
    if group == "usual_gap":
        gap, recency = get("mean_days_between_orders"), get("recency_days")
        if not _present(gap):
            return f"no repeat order in {_days(get('tenure_days'))} as a customer"
        if _present(recency) and recency >= gap + 7:
            return f"orders slowed: {round(recency)} days since last vs {round(gap)} usual"
        return f"orders only every {_days(gap)} on average"
    if group == "frequency":
        n = get("frequency")
        if n <= 1:
            return "one order only" if n == 1 else "no completed order"
        return f"only {_count(n, 'order')} in {_days(get('tenure_days'))}"
    if group == "recent_activity":
        n = get("orders_90d")
        if not n:
            return "nothing bought in the last 90 days"
        return f"only {_count(n, 'order')} in the last 90 days ({_money(get('spend_90d'))} spent)"
    if group == "spend":
        aov, gross = get("avg_order_value"), get("gross_revenue")
        if (
            _present(aov)
            and _present(typical.get("avg_order_value"))
            and (aov < typical["avg_order_value"])
        ):
            return (
                f"small orders: {_money(aov)} on average vs "
                f"{_money(typical['avg_order_value'])} typical"
            )
        usual = _money(typical.get("gross_revenue", 0.0))
        return f"low spend: {_money(gross)} in total vs {usual} typical"
    if group == "tenure":
        return f"new customer: first order {_days(get('tenure_days'))} ago"
    if group == "cancellations":
        return _count(get("n_cancelled_orders"), "cancelled order")
    if group == "returns":
        text = _count(get("n_returned_lines") or 0, "returned item")
        rate = get("return_rate")
        return f"{text} ({rate:.0%} of units bought)" if _present(rate) and rate > 0 else text
    if group == "breadth":
        if not get("n_distinct_items"):
            return "no catalogue product bought yet"
        return f"buys few products: {_count(get('n_distinct_items'), 'distinct item')}"
    if group == "ratings":
        rating = get("avg_rating")
        return f"low ratings: {rating:.1f} of 5 on average vs {typical.get('avg_rating', 0):.1f}"
    if group == "sentiment":
        negative = get("negative_feedback_90d")
        if _present(negative) and negative > 0:
            return f"{_count(negative, 'negative review')} in the last 90 days"
        last = get("last_feedback_sentiment")
        if _present(last) and last < 0:
            return "last feedback was negative"
        mean = get("avg_sentiment_90d")
        if _present(mean):
            return f"lukewarm feedback in the last 90 days (sentiment {mean:+.2f})"
        return "no recent feedback"
    raise ValueError(f"unknown reason group {group!r}")


def top_reasons(
    contributions: pd.DataFrame, features: pd.DataFrame, typical: dict[str, float]
) -> list[str]:
    """Each customer's up to three reasons in words, the largest contribution first.

    Args:
        contributions: Log-odds per reason group (:meth:`ChurnModel.reason_contributions`),
            rows as ``features``.
        features: The customers' raw feature rows.
        typical: Population medians of the raw features.

    Returns:
        Per row, the reasons that raise the log-odds by at least
        :data:`MIN_REASON_LOG_ODDS`, ``"; "``-joined (empty when none does).
    """
    records = features.to_dict("records")
    reasons = []
    values = contributions.to_numpy()
    groups = list(contributions.columns)
    for i, row in enumerate(records):
        order = np.argsort(-values[i], kind="stable")
        chosen = [groups[j] for j in order if values[i, j] >= MIN_REASON_LOG_ODDS]
        texts = {g: reason_text(g, row, typical) for g in chosen[:4]}
        top = chosen[:3]
        # "orders slowed: 145 days since last vs 30 usual" already says "no order
        # for 145 days": keep the richer one and make room for the next reason.
        slowed = texts.get("usual_gap", "").startswith("orders slowed")
        if slowed and "recency" in top:
            top = [g for g in chosen[:4] if g != "recency"]
        reasons.append("; ".join(texts[g] for g in top))
    return reasons

"""Audience evaluation on hand-made scores: who is in, why, and the attached items."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd

from cva_tasks.audiences.definitions import Audience, Condition, Recommendations
from cva_tasks.audiences.evaluation import audience_members, audience_sizes, members_of

DAY = date(2025, 11, 30)


def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "as_of_date": [DAY] * 6,
            "customer_id": ["c1", "c2", "c3", "c4", "c5", "c6"],
            "segment": ["Champions", "Loyal", "At Risk", "Hibernating", "New", "Lost"],
            "country": ["UK"] * 6,
            "recency_days": [3.0, 20.0, 200.0, 300.0, 1.0, 500.0],
            "monetary_value": [900.0, 400.0, 800.0, 50.0, 20.0, 10.0],
            "churn_tier": ["Low", "Medium", "High", "High", "Low", None],
            "churn_probability": [0.1, 0.4, 0.8, 0.9, 0.2, None],
            "clv_365d": [1000.0, 500.0, 700.0, 10.0, 30.0, None],
            "negative_feedback_90d": [0, None, 2, 1, 0, None],
        }
    )


def test_every_condition_of_where_must_hold_and_nulls_never_do():
    win_back = Audience(
        "win_back",
        "d",
        (Condition("churn_tier", "in", ("High",)), Condition("clv_365d", "top_share", 0.6)),
    )
    members = members_of(win_back, scores(), pd.DataFrame())
    # 5 customers have a CLV; the top 60% are the 3 best: c1, c3, c2. Of those, c3 is High.
    assert members["customer_id"].tolist() == ["c3"]
    assert members["reason"].iloc[0] == "churn_tier High; clv_365d 700 (top 60%: rank 2 of 5)"
    assert members["churn_probability"].iloc[0] == 0.8 and members["segment"].iloc[0] == "At Risk"

    no_feedback = Audience("calm", "d", (Condition("negative_feedback_90d", "max", 0),))
    assert members_of(no_feedback, scores(), pd.DataFrame())["customer_id"].tolist() == [
        "c1",
        "c5",
    ], "c2 and c6 have no value: they are not in"


def test_any_of_needs_one_group_and_the_first_explains():
    vip = Audience(
        "vip",
        "d",
        (),
        any_of=(
            (Condition("segment", "in", ("Champions",)),),
            (Condition("clv_365d", "top_share", 0.4),),
        ),
    )
    members = members_of(vip, scores(), pd.DataFrame()).set_index("customer_id")
    assert sorted(members.index) == ["c1", "c3"]
    assert members.loc["c1", "reason"] == "segment Champions"
    assert members.loc["c3", "reason"] == "clv_365d 700 (top 40%: rank 2 of 5)"


def test_ties_at_the_edge_of_a_share_are_all_in():
    frame = scores().assign(clv_365d=[5.0, 5.0, 5.0, 1.0, 0.0, None])
    top = Audience("top", "d", (Condition("clv_365d", "top_share", 0.2),))
    assert members_of(top, frame, pd.DataFrame())["customer_id"].tolist() == ["c1", "c2", "c3"]
    bottom = Audience("bottom", "d", (Condition("clv_365d", "bottom_share", 0.2),))
    assert members_of(bottom, frame, pd.DataFrame())["customer_id"].tolist() == ["c5"]


def test_cross_sell_attaches_the_top_items_and_leaves_out_customers_without():
    recommendations = pd.DataFrame(
        {
            "customer_id": ["c1"] * 4 + ["c2"] * 2 + ["c5"],
            "list": [*["next_best"] * 4, "buy_again", "buy_again", "next_best"],
            "rank": [2, 1, 4, 3, 1, 2, 1],
            "item_id": ["b", "a", "d", "c", "x", "y", "z"],
            "item_name": ["B", "A", "D", "C", "X", "Y", None],
        }
    )
    cross_sell = Audience(
        "cross_sell",
        "d",
        (Condition("recency_days", "max", 90),),
        recommendations=Recommendations("next_best", 3),
    )
    members = members_of(cross_sell, scores(), recommendations).set_index("customer_id")
    # c2 is active but has only buy_again items: nothing to cross-sell.
    assert sorted(members.index) == ["c1", "c5"]
    assert json.loads(members.loc["c1", "recommended_items"]) == [
        {"rank": 1, "item_id": "a", "item_name": "A"},
        {"rank": 2, "item_id": "b", "item_name": "B"},
        {"rank": 3, "item_id": "c", "item_name": "C"},
    ]
    assert json.loads(members.loc["c5", "recommended_items"]) == [
        {"rank": 1, "item_id": "z", "item_name": None}
    ]
    assert members.loc["c1", "reason"] == "recency_days 3; top 3 next_best items attached"


def test_sizes_count_every_defined_audience_even_an_empty_one():
    audiences = (
        Audience("high", "high churn", (Condition("churn_tier", "in", ("High",)),)),
        Audience("nobody", "none", (Condition("clv_365d", "min", 1e9),)),
    )
    members = audience_members(audiences, scores(), pd.DataFrame())
    assert members[["audience", "customer_id"]].values.tolist() == [["high", "c3"], ["high", "c4"]]
    sizes = audience_sizes(audiences, members)
    assert sizes.to_dict("records") == [
        {"audience": "high", "description": "high churn", "customers": 2},
        {"audience": "nobody", "description": "none", "customers": 0},
    ]

"""The audiences step on the demo shop: members meet their rule; a rerun gives the same rows."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest

from cva_tasks import storage
from cva_tasks.settings import Settings

DAY = date(2025, 11, 30)


@pytest.fixture
def scored_day(lake, demo_frames):
    """The demo shop landed up to DAY, the models audiences read trained, the day published."""
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_START
    from cva_tasks.steps.features import build_features
    from cva_tasks.steps.feedback import score_feedback
    from cva_tasks.steps.publish import publish
    from cva_tasks.steps.recommend import recommend
    from cva_tasks.steps.score import score
    from cva_tasks.steps.train import train_model

    days = [DEFAULT_START + timedelta(days=n) for n in range((DAY - DEFAULT_START).days + 1)]
    write_raw_from_frames(demo_frames, str(lake), days=days)
    build_features(DAY)
    for kind in ("clv", "sentiment", "recommender", "churn"):
        assert train_model(kind, DAY, "run-1")["trained"], kind
    score_feedback(DAY)
    score(DAY)
    recommend(DAY)
    publish(DAY, "run-1")
    return DAY


def published(table: str, day: date) -> list[dict]:
    from cva_tasks.warehouse import get_warehouse

    rows = get_warehouse().read_table(table, day).drop_columns(["run_id", "loaded_at"])
    return rows.sort_by(
        [
            ("audience", "ascending"),
            *([("customer_id", "ascending")] if "customer_id" in rows.column_names else []),
        ]
    ).to_pylist()


def test_members_meet_their_rule_and_a_rerun_gives_the_same_rows(scored_day, monkeypatch):
    from cva_tasks.steps.audiences import publish_audiences

    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    first = publish_audiences(scored_day, "run-1")
    settings = Settings.from_env()
    scores = storage.read_table(settings.lake.scores("customer_scores", DAY)).to_pandas()
    scores = scores.set_index("customer_id")
    members = published("audience_members", DAY)
    by_audience: dict[str, list[dict]] = {}
    for row in members:
        by_audience.setdefault(row["audience"], []).append(row)
    assert set(by_audience) >= {"win_back", "vip", "cross_sell"}, first["sizes"]

    clv_ranked = scores["clv_365d"].dropna().rank(ascending=False, method="min")
    for row in by_audience["win_back"]:
        customer = scores.loc[row["customer_id"]]
        assert customer["churn_tier"] == "High"
        assert clv_ranked[row["customer_id"]] <= 0.25 * len(clv_ranked) + 1
        assert row["clv_365d"] == customer["clv_365d"] and "churn_tier High" in row["reason"]
    for row in by_audience["vip"]:
        customer = scores.loc[row["customer_id"]]
        assert customer["segment"] == "Champions" or clv_ranked[row["customer_id"]] <= max(
            1, 0.05 * len(clv_ranked) + 1
        )
    for row in by_audience.get("at_risk_negative_feedback", []):
        customer = scores.loc[row["customer_id"]]
        assert customer["churn_tier"] == "High" and customer["negative_feedback_90d"] >= 1
    recommendations = storage.read_table(
        settings.lake.scores("customer_recommendations", DAY)
    ).to_pandas()
    next_best = recommendations[recommendations["list"] == "next_best"]
    for row in by_audience["cross_sell"]:
        assert scores.loc[row["customer_id"], "recency_days"] <= 90
        items = json.loads(row["recommended_items"])
        expected = (
            next_best[next_best["customer_id"] == row["customer_id"]]
            .sort_values("rank")["item_id"]
            .head(3)
            .tolist()
        )
        assert [i["item_id"] for i in items] == expected and len(items) == 3
    # Nobody who meets the rule is left out: win_back is exactly the rule's customers.
    expected_win_back = {
        c
        for c in scores.index
        if scores.loc[c, "churn_tier"] == "High"
        and c in clv_ranked.index
        and clv_ranked[c] <= -(-len(clv_ranked) * 25 // 100)
    }
    assert {r["customer_id"] for r in by_audience["win_back"]} == expected_win_back

    sizes = published("audience_sizes", DAY)
    assert {r["audience"]: r["customers"] for r in sizes} == first["sizes"]
    assert {
        r["audience"]: len(rows)
        for r, rows in [(r, by_audience.get(r["audience"], [])) for r in sizes]
    } == first["sizes"]
    export = storage.read_table(settings.lake.audience_exports(DAY)).to_pandas()
    assert len(export) == len(members)
    assert sorted(export["audience"].unique()) == sorted(by_audience)

    second = publish_audiences(scored_day, "run-2")
    assert second["sizes"] == first["sizes"]
    assert published("audience_members", DAY) == members, "a rerun replaces the day"
    assert published("audience_sizes", DAY) == sizes
    assert len(storage.read_table(settings.lake.audience_exports(DAY))) == len(members)

    from cva_tasks.ui.reader import WarehouseReader

    current = WarehouseReader.from_connection().query(
        "SELECT audience, count(*) AS n FROM current_audiences GROUP BY audience"
    )
    assert {r["audience"]: r["n"] for r in current} == {
        k: v for k, v in first["sizes"].items() if v
    }, "the view holds the latest day"

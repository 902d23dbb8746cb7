"""The audiences step on the demo shop: members meet their rule; a rerun gives the same rows."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pytest

from cva_tasks import storage
from cva_tasks.settings import Settings

DAY = date(2025, 11, 30)


#: The packaged audiences' kinds of rule on columns the demo fills without the slow models
#: (churn and sentiment train for minutes here; the daily DAG test runs the packaged file).
DEFINITIONS = """
audiences:
  - name: lapsing_valuable
    description: recency score 1-2 and high value
    where:
      r_score: {in: [1, 2]}
    any_of:
      - clv_365d: {top_share: 0.25}
      - monetary_value: {top_share: 0.25}
  - name: vip
    description: champions or the top 5% by CLV
    any_of:
      - segment: {in: [Champions]}
      - clv_365d: {top_share: 0.05}
  - name: repeat_low_spend
    description: two orders or more, spend at most 100
    where:
      frequency: {min: 2}
      monetary_value: {max: 100}
  - name: cross_sell
    description: active with their top 3 recommendations
    where:
      recency_days: {max: 90}
    recommendations: {list: next_best, top: 3}
"""


@pytest.fixture
def scored_day(lake, demo_frames, tmp_path, monkeypatch):
    """120 days of the demo shop landed, CLV and recommender trained, DAY published."""
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.steps.features import build_features
    from cva_tasks.steps.publish import publish
    from cva_tasks.steps.recommend import recommend
    from cva_tasks.steps.score import score
    from cva_tasks.steps.train import train_model

    monkeypatch.delenv("AIRFLOW_CONN_CVA_WAREHOUSE", raising=False)
    definitions = tmp_path / "audiences.yaml"
    definitions.write_text(DEFINITIONS)
    monkeypatch.setenv("CVA_AUDIENCES", str(definitions))
    write_raw_from_frames(
        demo_frames, str(lake), days=[DAY - timedelta(days=n) for n in range(120)]
    )
    build_features(DAY)
    for kind in ("clv", "recommender"):
        assert train_model(kind, DAY, "run-1")["trained"], kind
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


def test_members_meet_their_rule_and_a_rerun_gives_the_same_rows(scored_day):
    from cva_tasks.steps.audiences import publish_audiences
    from cva_tasks.ui.reader import WarehouseReader

    first = publish_audiences(scored_day, "run-1")
    settings = Settings.from_env()
    scores = storage.read_table(settings.lake.scores("customer_scores", DAY)).to_pandas()
    scores = scores.set_index("customer_id")
    recommendations = storage.read_table(
        settings.lake.scores("customer_recommendations", DAY)
    ).to_pandas()

    def top(column: str, share: float) -> set[str]:
        values = scores[column].dropna()
        ranks = values.rank(ascending=False, method="min")
        return set(ranks[ranks <= math.ceil(share * len(values))].index)

    expected = {
        "lapsing_valuable": set(scores.index[scores["r_score"].isin([1, 2])])
        & (top("clv_365d", 0.25) | top("monetary_value", 0.25)),
        "vip": set(scores.index[scores["segment"] == "Champions"]) | top("clv_365d", 0.05),
        "repeat_low_spend": set(
            scores.index[(scores["frequency"] >= 2) & (scores["monetary_value"] <= 100)]
        ),
        "cross_sell": set(scores.index[scores["recency_days"] <= 90])
        & set(recommendations.loc[recommendations["list"] == "next_best", "customer_id"]),
    }
    assert all(expected.values()), {k: len(v) for k, v in expected.items()}
    members = published("audience_members", DAY)
    got: dict[str, set[str]] = {name: set() for name in expected}
    for row in members:
        got[row["audience"]].add(row["customer_id"])
        assert row["reason"] and row["segment"] == scores.loc[row["customer_id"], "segment"]
    assert got == expected, "exactly the customers who meet each rule"

    next_best = recommendations[recommendations["list"] == "next_best"].sort_values("rank")
    for row in (r for r in members if r["audience"] == "cross_sell"):
        items = [i["item_id"] for i in json.loads(row["recommended_items"])]
        assert (
            items
            == next_best.loc[next_best["customer_id"] == row["customer_id"], "item_id"]
            .head(3)
            .tolist()
        )
    assert all(r["recommended_items"] is None for r in members if r["audience"] != "cross_sell")

    sizes = published("audience_sizes", DAY)
    assert {r["audience"]: r["customers"] for r in sizes} == {
        k: len(v) for k, v in expected.items()
    }
    assert first["sizes"] == {k: len(v) for k, v in expected.items()}
    export = storage.read_table(settings.lake.audience_exports(DAY)).to_pandas()
    assert sorted(zip(export["audience"], export["customer_id"], strict=True)) == sorted(
        (r["audience"], r["customer_id"]) for r in members
    )

    publish_audiences(scored_day, "run-2")
    assert published("audience_members", DAY) == members, "a rerun replaces the day"
    assert published("audience_sizes", DAY) == sizes
    assert len(storage.read_table(settings.lake.audience_exports(DAY))) == len(members)
    current = WarehouseReader.from_connection().query(
        "SELECT audience, count(*) AS n FROM current_audiences GROUP BY audience"
    )
    assert {r["audience"]: r["n"] for r in current} == first["sizes"], "the latest day's members"

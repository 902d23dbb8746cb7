"""The model steps of the daily pipeline on the demo lake: schedule, drift, backfill as of."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cva_tasks import storage
from cva_tasks.features.snapshots import DayData
from cva_tasks.models import registry
from cva_tasks.settings import Settings
from cva_tasks.steps.features import build_features
from cva_tasks.steps.feedback import score_feedback
from cva_tasks.steps.recommend import recommend
from cva_tasks.steps.score import customer_model_columns
from cva_tasks.steps.train import train_model

DAY = date(2025, 11, 30)


@pytest.fixture
def demo_lake(lake, demo_frames):
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_START

    days = [DEFAULT_START + timedelta(days=n) for n in range((DAY - DEFAULT_START).days + 1)]
    write_raw_from_frames(demo_frames, str(lake), days=days)
    return lake


def model_columns(day: date):
    settings = Settings.from_env()
    data = DayData(day, settings.lake)
    features = data.features_at(day)
    return features, *customer_model_columns(features, data, settings)


def churn_versions(day: date) -> set[str]:
    _features, columns, _profiles = model_columns(day)
    return set(columns["churn_model_version"].dropna())


def test_a_backfilled_day_is_scored_with_the_model_of_its_own_time(demo_lake):
    latest = train_model("churn", DAY, "scheduled__latest")
    assert latest["trained"] and latest["version"] == "churn-20251130"

    # Backfill an earlier day: no model existed then, so it trains as of that day...
    early = DAY - timedelta(days=60)
    backfilled = train_model("churn", early, "backfill__early")
    assert backfilled["trained"] and "no model trained before" in backfilled["reason"]
    [run] = [
        r for r in registry.list_runs("churn", Settings.from_env().lake) if r.trained_as_of == early
    ]
    assert date.fromisoformat(run.validation_window["end"]) <= early
    early_version = registry.version_for("churn", early)
    assert churn_versions(early) == {early_version}
    # ...and a day between the two is scored by the earlier model, never the later one.
    assert churn_versions(early + timedelta(days=10)) == {early_version}
    assert churn_versions(DAY) == {"churn-20251130"}


def test_training_follows_the_schedule(demo_lake, monkeypatch):
    monkeypatch.setenv("CVA_TRAIN_EVERY_DAYS_CLUSTERS", "7")
    first = train_model("clusters", DAY - timedelta(days=7), "run-1")
    assert first["trained"]
    skipped = train_model("clusters", DAY - timedelta(days=3), "run-2")
    assert not skipped["trained"] and "4 days ago" in skipped["reason"]
    again = train_model("clusters", DAY, "run-3")
    assert again["trained"] and "7 days ago" in again["reason"]
    assert again["promoted"], "clusters always move to the retrained model"
    [old, new] = registry.list_runs("clusters", Settings.from_env().lake)
    assert new.champion_version == old.version


def test_churn_drift_is_measured_against_the_day_before(demo_lake, monkeypatch):
    first = DAY - timedelta(days=7)
    assert train_model("churn", first, "run-1")["trained"]
    # Two ordinary days in a row of the same shop: no retrain. Against the champion's
    # ~90-day-old validation snapshot, tenure (every customer 90 days older) and recency
    # drifted above 0.2 every day and churn retrained daily.
    for day in (DAY - timedelta(days=3), DAY - timedelta(days=2)):
        build_features(day)
        quiet = train_model("churn", day, f"run-{day}")
        assert not quiet["trained"], quiet["reason"]
        assert "no feature drift above PSI 0.2" in quiet["reason"]
    from cva_tasks.models.drift_log import read_drift  # the check is kept for the UI page

    second = DAY - timedelta(days=2)
    (kept,) = read_drift(Settings.from_env().lake, "churn", second, since=second)
    assert kept["threshold"] == 0.2 and kept["over_threshold"] == [] and kept["max_psi"] > 0
    assert kept["psi"]["tenure_days"] < 0.05 and kept["psi"]["recency_days"] < 0.05, kept

    monkeypatch.setenv("CVA_CHURN_PSI_THRESHOLD", "1e-9")
    drifted = train_model("churn", DAY - timedelta(days=2), "run-3")
    assert drifted["trained"] and "feature drift above PSI" in drifted["reason"]
    assert drifted["champion_metric_value"] is not None, "compared on the same validation"


def test_without_models_the_scores_carry_nulls_and_no_version(demo_lake):
    build_features(DAY)
    features, columns, profiles = model_columns(DAY)
    assert len(columns) == len(features) and profiles.empty
    version_columns = [c for c in columns if c.endswith("_model_version")]
    assert len(version_columns) == 4
    assert columns.drop(columns="customer_id").isna().all().all()
    assert score_feedback(DAY)["scored"] == 0
    # The recommender declined (none trained): the recent bestsellers, not 0 rows.
    summary = recommend(DAY)
    assert summary["model_version"] == "bestseller" and summary["rows"] > 0
    assert set(summary["models"]) == {"bestseller"}
    rows = storage.read_table(
        Settings.from_env().lake.scores("customer_recommendations", DAY)
    ).to_pandas()
    active = features.loc[features["recency_days"] <= 365, "customer_id"]
    assert set(rows["customer_id"]) == set(active), "every active customer gets a list"
    assert (rows.groupby("customer_id")["rank"].max() == 10).all()

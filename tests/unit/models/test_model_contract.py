"""One contract, every model kind: the registry's trainers on the demo lake.

For each kind of :mod:`cva_tasks.models.kinds` (the way ``implicit`` runs one test
mixin over every algorithm): the day trainer returns a fitted model of the kind's class
that follows :class:`cva_tasks.models.base.Model` and a complete training report;
predictions have one row per scored entity; training twice under the same seed gives
the same predictions; a save/load round trip gives identical predictions and params;
``params`` and ``metrics`` are plain JSON; an empty lake raises ``NotEnoughData``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cva_tasks.features.snapshots import DayData
from cva_tasks.lake import Lake
from cva_tasks.models.base import Model, NotEnoughData
from cva_tasks.models.kinds import KIND_NAMES, KINDS
from cva_tasks.settings import Settings

DAY = date(2025, 11, 30)
REPORT_KEYS = ("algorithm", "metric", "metric_value", "higher_is_better", "training_window")


def predict_clusters(model, data: DayData) -> pd.DataFrame:
    return model.predict(data.features_at(data.ds))


def predict_clv(model, data: DayData) -> pd.DataFrame:
    return model.predict(data.features_at(data.ds), data.as_of)


def predict_churn(model, data: DayData) -> pd.DataFrame:
    from cva_tasks.models.churn.training import churn_inputs

    return model.predict(churn_inputs(data.features_at(data.ds), None))


def predict_recommender(model, data: DayData) -> pd.DataFrame:
    from cva_tasks.models.recommend.training import recommender_inputs
    from cva_tasks.segments.rfm import load_rules

    interactions, _items, customers = recommender_inputs(data, load_rules())
    ids = data.features_at(data.ds)["customer_id"].head(60)
    return model.predict(ids, interactions, customers=customers, as_of=data.as_of)


def predict_sentiment(model, data: DayData) -> pd.DataFrame:
    return model.predict(data.visible("feedback")["text"].head(300))


#: How each kind scores the day, and the columns that identify one scored row.
CASES: dict[str, tuple[Callable[[Any, DayData], pd.DataFrame], tuple[str, ...]]] = {
    "clusters": (predict_clusters, ("customer_id",)),
    "clv": (predict_clv, ("customer_id",)),
    "churn": (predict_churn, ("customer_id",)),
    "recommender": (predict_recommender, ("customer_id", "list", "rank")),
    "sentiment": (predict_sentiment, ()),
}


def test_every_registered_kind_has_a_case():
    assert set(CASES) == set(KIND_NAMES)


@pytest.fixture(scope="module")
def demo_day(tmp_path_factory, demo_frames) -> DayData:
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_START

    root = tmp_path_factory.mktemp("contract-lake")
    days = [DEFAULT_START + timedelta(days=n) for n in range((DAY - DEFAULT_START).days + 1)]
    write_raw_from_frames(demo_frames, str(root), days=days)
    return DayData(DAY, Lake(str(root)))


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_env({})


@pytest.fixture(scope="module")
def trained() -> dict[str, tuple[Any, dict[str, Any]]]:
    """Each kind trained once on the demo day (shared by the tests below)."""
    return {}


def train(kind: str, data: DayData, settings: Settings) -> tuple[Any, dict[str, Any]]:
    return KINDS[kind].train_function()(data, None, settings)


def trained_once(cache: dict, kind: str, data: DayData, settings: Settings):
    if kind not in cache:
        cache[kind] = train(kind, data, settings)
    return cache[kind]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_the_trainer_gives_a_fitted_model_of_its_kind(kind, trained, demo_day, settings):
    model, report = trained_once(trained, kind, demo_day, settings)
    assert isinstance(model, KINDS[kind].model_class())
    assert model.kind == kind
    assert isinstance(model, Model)
    missing = [key for key in REPORT_KEYS if key not in report]
    assert not missing, f"{kind} report lacks {missing}"
    # Plain JSON: no numpy scalars, dates or NaN hiding in them.
    json.dumps(model.params, allow_nan=False)
    json.dumps(model.metrics, allow_nan=False)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_predictions_have_one_row_per_scored_entity(kind, trained, demo_day, settings):
    model, _report = trained_once(trained, kind, demo_day, settings)
    predict, key = CASES[kind]
    predicted = predict(model, demo_day)
    assert isinstance(predicted, pd.DataFrame) and len(predicted) > 0
    if key:
        assert not predicted.duplicated(list(key)).any(), f"{kind}: {key} is not a key"
        known = set(demo_day.features_at(demo_day.ds)["customer_id"])
        assert set(predicted["customer_id"]) <= known
    else:
        assert len(predicted) == min(300, len(demo_day.visible("feedback")))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_the_same_seed_gives_the_same_predictions(kind, trained, demo_day, settings):
    first, _ = trained_once(trained, kind, demo_day, settings)
    again, _ = train(kind, demo_day, settings)
    predict, _key = CASES[kind]
    pd.testing.assert_frame_equal(predict(first, demo_day), predict(again, demo_day))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_save_load_round_trip_predicts_the_same(kind, trained, demo_day, settings, tmp_path):
    model, _ = trained_once(trained, kind, demo_day, settings)
    folder = tmp_path / kind
    folder.mkdir()
    model.save(folder)
    assert any(Path(folder).iterdir()), f"{kind} saved no file"
    loaded = KINDS[kind].model_class().load(folder)
    predict, _key = CASES[kind]
    pd.testing.assert_frame_equal(predict(loaded, demo_day), predict(model, demo_day))
    assert json.loads(json.dumps(loaded.params)) == json.loads(json.dumps(model.params))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_an_empty_lake_is_not_enough_data(kind, tmp_path, settings):
    with pytest.raises(NotEnoughData):
        train(kind, DayData(DAY, Lake(str(tmp_path / "empty"))), settings)


class _WritesMarker:
    """Unpickling this writes a file: the proof that loading ran code from the lake."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.mark.parametrize("placement", ["replaces_every_file", "beside_as_joblib"])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_a_planted_pickle_is_refused_unread(kind, placement, trained, demo_day, settings, tmp_path):
    import pickle

    from cva_tasks.models.untrusted import UntrustedModelFile

    model, _ = trained_once(trained, kind, demo_day, settings)
    folder = tmp_path / kind
    folder.mkdir()
    model.save(folder)
    marker = tmp_path / "marker"
    planted = pickle.dumps(_WritesMarker(marker))
    if placement == "replaces_every_file":
        targets = [p for p in folder.rglob("*") if p.is_file()]
    else:  # the file name an old joblib churn model has
        targets = [folder / "churn_model.joblib"]
    for target in targets:
        target.write_bytes(planted)
    with pytest.raises(UntrustedModelFile) as refused:
        KINDS[kind].model_class().load(folder)
    message = str(refused.value)
    assert "pickle" in message and any(str(t) in message for t in targets), message
    assert f"train_{kind}" in message  # how to recover
    assert not marker.exists(), f"loading a {kind} model ran the planted pickle"
    pickle.loads(planted)  # the planted file is a real attack: unpickled, it runs
    assert marker.exists()

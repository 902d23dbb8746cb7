"""The model registry: saved runs, champion per day, schedule, promotion rule."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from cva_tasks.models import registry


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CVA_HOME", str(tmp_path / "home"))
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"memory://registry-{uuid.uuid4().hex}"


def _train(root: str, ds: date, value: float, champion_value: float | None) -> registry.ModelRun:
    current = registry.champion("churn", ds, root)
    report = {
        "algorithm": "test model",
        "metric": "auc",
        "metric_value": np.float64(value),
        "higher_is_better": True,
        "champion_metric": champion_value,
        "training_window": {"start": date(2024, 1, 1), "end": ds},
        "params": {"weights": np.arange(3)},
    }
    run = registry.new_run(
        "churn", ds, "manual__test", report, current, tolerance=0.005, why="scheduled"
    )

    def write(folder: Path) -> None:
        (folder / "model.txt").write_text(f"trained {ds} value {value}")
        (folder / "sub").mkdir()
        (folder / "sub" / "part.bin").write_bytes(b"\x00\x01")

    registry.save_run(run, write, root)
    return run


def test_save_list_and_load_files(root: str) -> None:
    run = _train(root, date(2025, 1, 6), 0.70, None)
    [listed] = registry.list_runs("churn", root)
    assert listed == run
    assert listed.metrics["params"]["weights"] == [0, 1, 2]
    assert listed.training_window == {"start": "2024-01-01", "end": "2025-01-06"}
    folder = registry.local_copy(listed, root)
    assert (folder / "model.txt").read_text() == "trained 2025-01-06 value 0.7"
    assert (folder / "sub" / "part.bin").read_bytes() == b"\x00\x01"
    assert listed.library_versions["numpy"] == np.__version__


def test_champion_is_point_in_time_and_promotion_rule(root: str) -> None:
    first = _train(root, date(2025, 1, 6), 0.70, None)
    better = _train(root, date(2025, 1, 13), 0.72, 0.70)
    worse = _train(root, date(2025, 1, 20), 0.60, 0.72)
    within_tolerance = _train(root, date(2025, 1, 27), 0.717, 0.72)
    assert first.promoted and "no champion" in first.reason
    assert better.promoted and better.champion_version == first.version
    assert not worse.promoted and "kept the champion" in worse.reason
    assert within_tolerance.promoted

    assert registry.champion("churn", date(2025, 1, 5), root) is None
    assert registry.champion("churn", date(2025, 1, 6), root).version == first.version
    assert registry.champion("churn", date(2025, 1, 19), root).version == better.version
    # the refused model never scores: the day after it trained the older champion still does
    assert registry.champion("churn", date(2025, 1, 21), root).version == better.version
    assert registry.champion("churn", date(2025, 2, 1), root).version == within_tolerance.version


def test_rerun_of_a_day_replaces_its_version(root: str) -> None:
    _train(root, date(2025, 1, 6), 0.70, None)
    _train(root, date(2025, 1, 6), 0.71, None)
    [run] = registry.list_runs("churn", root)
    assert run.metric_value == pytest.approx(0.71)
    assert (registry.local_copy(run, root) / "model.txt").read_text().endswith("0.71")


def test_training_schedule(root: str) -> None:
    due, why = registry.training_due("churn", date(2025, 1, 6), 7, root)
    assert due and "no model" in why
    _train(root, date(2025, 1, 6), 0.70, None)
    assert registry.training_due("churn", date(2025, 1, 6), 7, root)[0]  # rerun of the day
    assert not registry.training_due("churn", date(2025, 1, 12), 7, root)[0]
    due, why = registry.training_due("churn", date(2025, 1, 13), 7, root)
    assert due and "7 days ago" in why
    # a backfilled earlier day sees no model before it
    assert registry.training_due("churn", date(2024, 12, 1), 7, root)[0]


def test_unknown_kind_and_missing_metric() -> None:
    with pytest.raises(ValueError, match="unknown model kind"):
        registry.list_runs("magic", "memory://nowhere")
    promoted, reason = registry.decide_promotion(
        None, 0.7, higher_is_better=True, tolerance=0.0, metric="auc"
    )
    assert not promoted and "could not be validated" in reason
    promoted, _ = registry.decide_promotion(
        0.30, 0.28, higher_is_better=False, tolerance=0.01, metric="mae"
    )
    assert not promoted


def test_a_retrain_that_fails_to_move_in_keeps_the_old_model(
    root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A same-day retrain keeps the day's old model readable until the new one is in place."""
    from cva_tasks import storage

    _train(root, date(2025, 1, 6), 0.70, None)
    [old] = registry.list_runs("churn", root)
    fs, target = storage.filesystem(registry.model_uri(old, root))
    real_mv = type(fs).mv
    failed: list[str] = []

    def mv(self, src, dst, *args, **kwargs):
        if str(dst).rstrip("/") == target and not failed:
            failed.append(str(src))
            raise OSError("connection reset while moving the new model in")
        return real_mv(self, src, dst, *args, **kwargs)

    monkeypatch.setattr(type(fs), "mv", mv)
    with pytest.raises(OSError, match="connection reset"):
        _train(root, date(2025, 1, 6), 0.71, None)
    monkeypatch.undo()

    assert failed, "the move into place was attempted"
    [kept] = registry.list_runs("churn", root)
    assert kept.metric_value == pytest.approx(0.70)
    assert (registry.local_copy(kept, root) / "model.txt").read_text().endswith("0.7")


def test_a_version_a_killed_retrain_took_away_is_put_back(root: str) -> None:
    from cva_tasks import storage

    _train(root, date(2025, 1, 6), 0.70, None)
    [old] = registry.list_runs("churn", root)
    fs, target = storage.filesystem(registry.model_uri(old, root))
    parent, name = target.rsplit("/", 1)
    fs.mv(target, f"{parent}/.{name}.old-0123456789ab", recursive=True)
    fs.makedirs(f"{parent}/.{name}.new-0123456789ab", exist_ok=True)
    fs.pipe(f"{parent}/.{name}.new-0123456789ab/model.txt", b"half written")

    [kept] = registry.list_runs("churn", root)
    assert kept.metric_value == pytest.approx(0.70)
    assert (registry.local_copy(kept, root) / "model.txt").read_text().endswith("0.7")
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(parent, detail=False)) == [name]

"""Trained models in the lake: versions, metadata, champions and the training schedule.

Every training of a model kind (``clv``, ``clusters``, ``churn``, ``recommender``,
``sentiment``) is a *model run*, saved whole under
``<data root>/models/<kind>/<version>/``: the model's own files plus
``metadata.json`` (:class:`ModelRun`: training day and window, parameters, the
out-of-time validation metrics, the previous champion's metric on the same
validation, whether it was promoted and why, library versions).

The version is ``<kind>-<YYYYMMDD of the training day>``: a rerun of a day's
training replaces that day's model instead of adding another, so reruns stay
idempotent like every other output of the pipeline.

Point in time: the model that scores day ``ds`` is the latest *promoted* run
trained on a day ``<= ds`` (:func:`champion`). A backfilled day is therefore scored
with the model that was champion on that day, or with one trained as of that day,
never with a model that saw later data.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from cva_tasks import storage
from cva_tasks.lake import Lake
from cva_tasks.models.kinds import KIND_NAMES, get_kind

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
_LIBRARIES = (
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "tensorflow-cpu",
    "keras",
    "implicit",
    "duckdb",
)


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries a model may depend on (installed ones only)."""
    import platform

    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class ModelRun:
    """Metadata of one training run of a model kind.

    Attributes:
        kind: model kind, one of :data:`cva_tasks.models.kinds.KINDS`.
        version: ``<kind>-<YYYYMMDD>`` of ``trained_as_of``.
        trained_as_of: the training day ``ds``: the model saw data up to the end of it.
        trained_at: wall-clock time of the training (UTC).
        run_id: the Airflow run (or CLI invocation) that trained it.
        algorithm: what was fitted, in words (e.g. ``"HistGradientBoosting + isotonic"``).
        metric: name of the out-of-time validation metric that decides promotion.
        metric_value: the new model's value of ``metric``.
        higher_is_better: direction of ``metric``.
        champion_version: the champion when this run trained (``None`` for the first).
        champion_metric_value: that champion's ``metric`` on the same validation.
        promoted: whether this run became the champion.
        reason: why it was (not) promoted, and why training ran.
        training_window: ``{"start": ..., "end": ...}`` ISO dates of the training data.
        validation_window: the same for the out-of-time validation.
        params: the model's parameters.
        metrics: every figure of the training report (baselines included).
        library_versions: :func:`library_versions` at training time.
    """

    kind: str
    version: str
    trained_as_of: date
    trained_at: datetime
    run_id: str
    algorithm: str
    metric: str
    metric_value: float | None
    higher_is_better: bool
    champion_version: str | None
    champion_metric_value: float | None
    promoted: bool
    reason: str
    training_window: dict[str, str | None] = field(default_factory=dict)
    validation_window: dict[str, str | None] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["trained_as_of"] = self.trained_as_of.isoformat()
        out["trained_at"] = self.trained_at.isoformat()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRun:
        data = dict(data)
        data["trained_as_of"] = date.fromisoformat(data["trained_as_of"])
        data["trained_at"] = datetime.fromisoformat(data["trained_at"])
        return cls(**data)


def version_for(kind: str, ds: date) -> str:
    return f"{kind}-{ds:%Y%m%d}"


def _lake(data_root: str | Lake) -> Lake:
    return data_root if isinstance(data_root, Lake) else Lake(data_root)


def list_runs(kind: str, data_root: str | Lake) -> list[ModelRun]:
    """Every saved run of ``kind``, oldest training day first."""
    lake = _lake(data_root)
    get_kind(kind)
    fs, base = storage.filesystem(lake.models(kind))
    if not fs.exists(base):
        return []
    runs = []
    names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(base, detail=False)]
    for name in names:
        swap = storage.SWAP_RE.match(name)
        if swap and swap.group("state") == "old" and swap.group("name") not in names:
            # A retrain killed while moving its model in: put the old one back.
            storage.recover_if_abandoned(lake.model_version(kind, swap.group("name")))
            names.append(swap.group("name"))
    for name in sorted(set(names)):
        meta = lake.model_file(kind, name, METADATA_FILE)
        if name.startswith(".") or not storage.exists(meta):
            continue  # a save in progress or an interrupted one: not a run yet
        runs.append(ModelRun.from_json(storage.read_json(meta)))
    return sorted(runs, key=lambda run: run.trained_as_of)


def champion(kind: str, ds: date, data_root: str | Lake) -> ModelRun | None:
    """The model that scores day ``ds``: the latest promoted run trained on or before ``ds``."""
    promoted = [r for r in list_runs(kind, data_root) if r.promoted and r.trained_as_of <= ds]
    return promoted[-1] if promoted else None


def training_due(kind: str, ds: date, every_days: int, data_root: str | Lake) -> tuple[bool, str]:
    """Whether ``kind`` trains on ``ds``, and why.

    It trains when no run exists before ``ds``, when the latest run before ``ds`` is
    ``every_days`` or more old, or when ``ds`` already has a run (a rerun of the day
    reproduces its training instead of silently keeping it).
    """
    runs = list_runs(kind, data_root)
    earlier = [r for r in runs if r.trained_as_of < ds]
    if not earlier:
        due, why = True, "no model trained before this day"
    else:
        age = (ds - earlier[-1].trained_as_of).days
        due = age >= every_days
        why = f"last trained {age} days ago (schedule: every {every_days} days)"
    if any(r.trained_as_of == ds for r in runs) and not due:
        # The day trained before (e.g. on drift): a rerun reproduces that training.
        return True, f"rerun of a day that trained; {why}"
    return due, why


def model_uri(run: ModelRun, data_root: str | Lake) -> str:
    return _lake(data_root).model_version(run.kind, run.version)


def save_run(run: ModelRun, write_files: Callable[[Path], None], data_root: str | Lake) -> str:
    """Save a run: the model's files (written by ``write_files`` into a local folder) and metadata.

    Files and metadata go to a hidden folder that is then swapped in whole
    (:func:`cva_tasks.storage.replace_folder`): an earlier save of the same version (a
    rerun of the day) stays readable until the new one is in place, and a crash leaves
    no half-saved version that :func:`list_runs` would pick up.

    Returns:
        The URI of the version folder.
    """
    lake = _lake(data_root)
    target = model_uri(run, lake)
    with tempfile.TemporaryDirectory(prefix=f"cva-{run.kind}-") as local:
        write_files(Path(local))
        files = sorted(path for path in Path(local).rglob("*") if path.is_file())

        def upload(fs: Any, folder: str) -> None:
            for path in files:
                destination = f"{folder}/{path.relative_to(local).as_posix()}"
                fs.makedirs(destination.rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(path), destination)
            with fs.open(f"{folder}/{METADATA_FILE}", "w") as handle:
                json.dump(run.to_json(), handle, indent=1, default=str, sort_keys=True)

        storage.replace_folder(target, upload)
    log.info(
        "saved model %s (%s %s=%s, promoted=%s) to %s",
        run.version,
        run.algorithm,
        run.metric,
        run.metric_value,
        run.promoted,
        target,
    )
    return target


def local_copy(run: ModelRun, data_root: str | Lake, cache_dir: Path | None = None) -> Path:
    """A local folder with the run's files (the lake folder itself when the lake is local).

    Args:
        cache_dir: where copies of a remote lake's models are kept (default: a folder
            under the system's temporary directory).
    """
    uri = model_uri(run, data_root)
    fs, path = storage.filesystem(uri)
    if "file" in fs.protocol or "local" in fs.protocol:
        return Path(path)
    # A rerun of a day replaces the version: key the cache on when it was trained too.
    stamp = run.trained_at.strftime("%Y%m%dT%H%M%S%f")
    base = cache_dir or Path(tempfile.gettempdir()) / "cva-model-cache"
    cache = base / run.kind / run.version / stamp
    marker = cache / METADATA_FILE
    if not marker.exists():
        if cache.exists():
            shutil.rmtree(cache)
        cache.mkdir(parents=True)
        fs.get(path.rstrip("/") + "/", str(cache) + "/", recursive=True)
    return cache


def decide_promotion(
    metric_value: float | None,
    champion_metric_value: float | None,
    *,
    higher_is_better: bool,
    tolerance: float,
    metric: str,
) -> tuple[bool, str]:
    """Champion/challenger rule: the new model replaces the champion unless it is worse.

    "Worse" means worse than the champion's value on the same out-of-time
    validation by more than ``tolerance`` (absolute). A model without a metric
    (validation impossible, e.g. too little history) is promoted only when there is
    no champion.
    """
    if champion_metric_value is None:
        if metric_value is None:
            return True, f"first model; {metric} could not be validated yet"
        return True, f"no champion to compare with; {metric}={metric_value:.4f}"
    if metric_value is None:
        return False, f"{metric} could not be validated; the champion stays"
    margin = metric_value - champion_metric_value
    if not higher_is_better:
        margin = -margin
    comparison = (
        f"{metric} {metric_value:.4f} vs champion {champion_metric_value:.4f} "
        f"on the same validation (tolerance {tolerance:g})"
    )
    if margin >= -tolerance:
        return True, f"promoted: {comparison}"
    return False, f"kept the champion: {comparison}"


def new_run(
    kind: str,
    ds: date,
    run_id: str,
    report: dict[str, Any],
    champion_run: ModelRun | None,
    *,
    tolerance: float,
    why: str,
) -> ModelRun:
    """Build the :class:`ModelRun` of a training report and decide its promotion.

    ``report`` keys used: ``algorithm``, ``metric``, ``metric_value``,
    ``higher_is_better``, ``champion_metric`` (the champion on the same validation),
    ``training_window``, ``validation_window``, ``params``; the whole report is kept
    in ``metrics``.
    """
    metric = report["metric"]
    higher = bool(report["higher_is_better"])
    value = _number(report.get("metric_value"))
    champion_value = _number(report.get("champion_metric")) if champion_run else None
    promoted, reason = decide_promotion(
        value, champion_value, higher_is_better=higher, tolerance=tolerance, metric=metric
    )
    return ModelRun(
        kind=kind,
        version=version_for(kind, ds),
        trained_as_of=ds,
        trained_at=datetime.now(UTC),
        run_id=run_id,
        algorithm=str(report.get("algorithm", kind)),
        metric=metric,
        metric_value=value,
        higher_is_better=higher,
        champion_version=champion_run.version if champion_run else None,
        champion_metric_value=champion_value,
        promoted=promoted,
        reason=f"{why}; {reason}",
        training_window=_jsonable(report.get("training_window", {})),
        validation_window=_jsonable(report.get("validation_window", {})),
        params=_jsonable(report.get("params", {})),
        metrics=_jsonable(report),
        library_versions=library_versions(),
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if value == value else None  # NaN: no metric


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars and arrays unboxed, dates as ISO text, NaN as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def runs_trained_on(ds: date, data_root: str | Lake) -> list[ModelRun]:
    """Runs of every kind trained on ``ds`` (what ``model_runs`` gets for that day)."""
    return [r for kind in KIND_NAMES for r in list_runs(kind, data_root) if r.trained_as_of == ds]


def load_model(run: ModelRun, data_root: str | Lake, cache_dir: Path | None = None) -> Any:
    """The model object of a saved run."""
    folder = local_copy(run, data_root, cache_dir)
    return get_kind(run.kind).model_class().load(folder)


@dataclass(frozen=True)
class Champion:
    """The model in force for a day, and its run."""

    model: Any
    run: ModelRun


def champion_model(
    kind: str, ds: date, data_root: str | Lake, cache_dir: Path | None = None
) -> Champion | None:
    """The champion of ``kind`` for day ``ds`` (loaded), or None before the first one."""
    run = champion(kind, ds, data_root)
    if run is None:
        return None
    return Champion(load_model(run, data_root, cache_dir), run)

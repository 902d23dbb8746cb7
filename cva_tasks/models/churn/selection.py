"""Churn model selection: out-of-time roles, tuning, the family choice, champion/challenger.

Out of time, never a random split: the snapshots, oldest first, are split by time into
three roles, and the customers by a stable hash of their id
(:func:`cva_tasks.models.churn.labels.holdout_customers`) into a fitted share and a
held-out share (30%):

* **fit**: the fitted customers at all but the two latest snapshots; both model
  families are fitted on them.
* **calibration**: the held-out customers at the second latest snapshot. The
  hyper-parameters are chosen on them (each setting fitted on *fit*, scored here), and
  the probability calibrator (Platt scaling by default, isotonic on request) is fitted
  on the chosen setting's scores of them.
* **validation**: the held-out customers at the latest snapshot. Nothing is fitted or
  tuned on them; the only choice made there is the pick between the two families (the
  issue's "the better one on out-of-time validation is used"). Every reported figure
  comes from these rows, and the champion is scored on the same rows.

Each role is later in time than the one before, so the calibration data is apart
from the reported data (an earlier snapshot) and the reported model is exactly the
saved model (nothing is refitted afterwards). Why customers are split as well: the
label windows of consecutive snapshots overlap when the step is shorter than the
horizon, and a flexible model recognises a customer from the snapshot before (most
features barely move in two weeks) and repeats the label it saw there (measured in
``docs/models/churn.md``). The hash does not depend on the run, so a champion never
saw the customers it is compared on. The real-data evaluation
(:mod:`cva_tasks.evaluation.churn`) also scores a snapshot whose label window starts
after every training label is known.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.churn.estimators import FAMILIES, HGB_GRID, LR_GRID
from cva_tasks.models.churn.features import engineer_snapshots
from cva_tasks.models.churn.labels import (
    DEFAULT_HOLDOUT_SHARE,
    DEFAULT_HORIZON_DAYS,
    DEFAULT_N_SNAPSHOTS,
    DEFAULT_STEP_DAYS,
    FeaturesAt,
    OrdersAsOf,
    build_training_set,
    holdout_customers,
    snapshot_days,
)
from cva_tasks.models.churn.metrics import _auc
from cva_tasks.models.churn.model import ChurnModel, library_versions
from cva_tasks.models.churn.reasons import DEFAULT_TIER_CUTOFFS

log = logging.getLogger(__name__)

PROMOTION_METRIC = "auc"
#: Rows of each label class every role (fit, calibration, validation) must hold. Fewer
#: and the figures mean nothing: on the demo shop at 120 days of history the validation
#: rows were 11 customers with 1 churner (AUC 1.0), at 200 days 21 with 7; the first
#: model would be promoted on them and score every customer. With 10 of each class the
#: standard error of an AUC near 0.7 is still about 0.09.
MIN_CLASS_ROWS = 10


@dataclass
class CandidateTraining:
    """Everything one training produced, before the champion comparison.

    Attributes:
        candidates: Per family, the tuned, calibrated and validated model.
        chosen: The family with the best validation AUC.
        validation: The validation snapshot's rows (features, ``snapshot_day``, ``churned``).
        windows: Snapshot roles and label windows (JSON-able).
        tuning: Every tried setting with its AUC on the calibration snapshot.
        frames: The stacked snapshots (all roles), for callers that report more.
    """

    candidates: dict[str, ChurnModel]
    chosen: str
    validation: pd.DataFrame
    windows: dict[str, Any]
    tuning: list[dict[str, Any]]
    frames: pd.DataFrame


def fit_candidates(
    frames: pd.DataFrame,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    calibration: str = "platt",
    holdout_share: float = DEFAULT_HOLDOUT_SHARE,
    seed: int = 0,
    lr_grid: Sequence[dict[str, Any]] = LR_GRID,
    hgb_grid: Sequence[dict[str, Any]] = HGB_GRID,
    min_class_rows: int = MIN_CLASS_ROWS,
) -> CandidateTraining:
    """Tune, fit, calibrate and validate both families, out of time and out of customer.

    Roles (snapshots oldest first; customers split by :func:`holdout_customers`):

    * fit: the other customers at every snapshot but the two latest;
    * calibration (tuning and calibrator): held-out customers at the second latest snapshot;
    * validation (reported figures, champion comparison): held-out customers at the latest.

    So the calibration rows are later than every fit row and the validation rows later
    than every calibration row, and no fitted model ever scores a customer it was fitted
    on (see the module docstring for why customers are split as well).

    Args:
        frames: :func:`build_training_set` output with at least three snapshot days.
        horizon_days: Label horizon (for the BG/NBD features and the report).
        calibration: ``platt`` or ``isotonic``.
        holdout_share: Share of customers held out from fitting.
        seed: Seed of the estimators, the BG/NBD sampling and the customer split.
        lr_grid: Logistic-regression settings tried.
        hgb_grid: HistGradientBoosting settings tried.
        min_class_rows: Rows of each label class every role must hold.

    Returns:
        The candidates, the chosen family and the validation snapshot (all its
        customers, with a boolean ``holdout`` column marking the validation rows).

    Raises:
        NotEnoughData: fewer than three snapshots, or a role with fewer than
            ``min_class_rows`` churned or retained rows (one class only included).
    """
    days = sorted(frames["snapshot_day"].unique())
    if len(days) < 3:
        raise NotEnoughData(
            f"churn training needs >= 3 snapshots (fit, calibration, validation), got {len(days)}"
        )
    frames = frames.reset_index(drop=True)
    held_out = holdout_customers(frames["customer_id"], holdout_share, seed)
    fit_days, calibration_day, validation_day = days[:-2], days[-2], days[-1]
    is_fit = frames["snapshot_day"].isin(fit_days).to_numpy() & ~held_out
    is_calibration = (frames["snapshot_day"] == calibration_day).to_numpy() & held_out
    is_validation = (frames["snapshot_day"] == validation_day).to_numpy() & held_out
    labels = frames["churned"].to_numpy()
    for role, mask in (
        ("fit", is_fit),
        ("calibration", is_calibration),
        ("validation", is_validation),
    ):
        churned = int(labels[mask].sum())
        retained = int(mask.sum()) - churned
        if min(churned, retained) == 0:
            raise NotEnoughData(
                f"churn training: the {role} rows ({int(mask.sum())}) hold fewer than two "
                "label classes; add snapshots or customers"
            )
        if min(churned, retained) < min_class_rows:
            raise NotEnoughData(
                f"churn training: the {role} rows hold {churned} churned and {retained} "
                f"retained customers, fewer than {min_class_rows} of each; wait for more "
                "history or customers"
            )

    # Engineer every snapshot once, each with a BG/NBD fitted on all its customers (no
    # labels), exactly as predict() will see a whole day's population.
    engineered, fits = engineer_snapshots(frames, horizon_days=horizon_days, seed=seed)
    fit_frame = frames[is_fit]
    tuning: list[dict[str, Any]] = []
    candidates: dict[str, ChurnModel] = {}
    for family, grid in (("logistic_regression", lr_grid), ("hist_gradient_boosting", hgb_grid)):
        best: tuple[float, ChurnModel] | None = None
        for hyper in grid:
            model = ChurnModel(family, dict(hyper), horizon_days=horizon_days, seed=seed).fit(
                fit_frame, engineered=engineered[is_fit]
            )
            auc = _auc(labels[is_calibration], model.scores_of(engineered[is_calibration]))
            tuning.append({"family": family, "hyperparameters": dict(hyper), "auc": round(auc, 4)})
            log.info("tuning %s %s: calibration AUC %.4f", family, hyper, auc)
            if best is None or auc > best[0] + 1e-9:
                best = (auc, model)
        assert best is not None
        model = best[1]
        model.calibrate(frames[is_calibration], calibration, engineered=engineered[is_calibration])
        validation_all = frames[frames["snapshot_day"] == validation_day]
        model.set_population(validation_all, bgnbd=fits[validation_day])
        model.validate(frames[is_validation], engineered=engineered[is_validation])
        candidates[family] = model
    chosen = max(FAMILIES, key=lambda f: (candidates[f].metrics["auc"], f == FAMILIES[0]))
    baseline_auc = candidates["logistic_regression"].metrics["auc"]
    for model in candidates.values():
        model.record(
            metrics={"baseline_auc": baseline_auc},
            params={
                "fit_snapshots": [d.isoformat() for d in fit_days],
                "calibration_snapshot": calibration_day.isoformat(),
                "validation_snapshot": validation_day.isoformat(),
                "holdout_share": holdout_share,
                "tier_cutoffs": list(DEFAULT_TIER_CUTOFFS),
            },
        )
    h = timedelta(days=horizon_days)
    windows = {
        "horizon_days": horizon_days,
        "fit_snapshots": [d.isoformat() for d in fit_days],
        "calibration_snapshot": calibration_day.isoformat(),
        "validation_snapshot": validation_day.isoformat(),
        "fit_label_window": [fit_days[0].isoformat(), (fit_days[-1] + h).isoformat()],
        "calibration_label_window": [
            calibration_day.isoformat(),
            (calibration_day + h).isoformat(),
        ],
        "validation_label_window": [validation_day.isoformat(), (validation_day + h).isoformat()],
        "holdout_share": holdout_share,
        "rows": {
            "fit": int(is_fit.sum()),
            "calibration": int(is_calibration.sum()),
            "validation": int(is_validation.sum()),
        },
    }
    validation = frames[frames["snapshot_day"] == validation_day].assign(
        holdout=held_out[(frames["snapshot_day"] == validation_day).to_numpy()]
    )
    return CandidateTraining(
        candidates, chosen, validation.reset_index(drop=True), windows, tuning, frames
    )


def promotion_decision(
    value: float, champion_value: float | None, *, tolerance: float = 0.005
) -> tuple[bool, str]:
    """Whether a new model with validation AUC ``value`` replaces the champion.

    It does when there is no champion or when it is not worse than the champion's AUC
    on the same validation rows by more than ``tolerance``.

    Raises:
        ValueError: for a negative tolerance.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if champion_value is None or math.isnan(champion_value):
        return True, "no champion to compare with"
    if value >= champion_value - tolerance:
        return True, (
            f"new AUC {value:.4f} vs champion {champion_value:.4f} on the same validation: "
            f"not worse by more than {tolerance}"
        )
    return False, (
        f"new AUC {value:.4f} is worse than the champion's {champion_value:.4f} on the same "
        f"validation by more than {tolerance}: the champion stays"
    )


def train_churn(
    ds: date,
    features_at: FeaturesAt,
    orders_as_of: OrdersAsOf,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    n_snapshots: int = DEFAULT_N_SNAPSHOTS,
    step_days: int = DEFAULT_STEP_DAYS,
    champion: ChurnModel | None = None,
    tolerance: float = 0.005,
    calibration: str = "platt",
    holdout_share: float = DEFAULT_HOLDOUT_SHARE,
    seed: int = 0,
) -> tuple[ChurnModel, dict[str, Any]]:
    """Train the churn model for a run on ``ds`` and decide whether it replaces the champion.

    Uses only labels known on ``ds`` (:func:`snapshot_days`), splits the snapshots by
    time (:func:`fit_candidates`), keeps the family with the better validation AUC and
    scores the champion, if any, on the same validation rows.

    Args:
        ds: Day of the run.
        features_at: ``day -> feature table as of day`` (events before day 00:00 UTC).
        orders_as_of: ``instant -> counted orders known at instant``.
        horizon_days: Churn horizon.
        n_snapshots: Snapshots stacked (>= 3: fit, calibration, validation).
        step_days: Days between snapshots.
        champion: The current champion, or None.
        tolerance: AUC the new model may lose against the champion and still replace it.
        calibration: ``platt`` or ``isotonic``.
        holdout_share: Share of customers held out from fitting (calibration and
            validation rows; :func:`holdout_customers`).
        seed: Seed of everything random (keep it fixed across runs: it picks the
            held-out customers).

    Returns:
        The new model (whether promoted or not) and a JSON-able report: ``metric``
        (``"auc"``), ``value``, ``champion_metric``, ``promote``, ``reason``,
        ``chosen``, per-family ``candidates`` figures, ``baseline_auc``, ``windows``,
        ``tuning``, ``params``, ``metrics``, ``library_versions``.
    """
    started = time.perf_counter()
    days = snapshot_days(ds, horizon_days, n_snapshots, step_days)
    frames = build_training_set(days, features_at, orders_as_of, horizon_days=horizon_days)
    training = fit_candidates(
        frames,
        horizon_days=horizon_days,
        calibration=calibration,
        holdout_share=holdout_share,
        seed=seed,
    )
    model = training.candidates[training.chosen]
    model.record(params={"ds": ds.isoformat(), "n_snapshots": n_snapshots, "step_days": step_days})
    value = float(model.metrics["auc"])
    champion_value: float | None = None
    champion_note = None
    if champion is not None:
        try:
            # The champion scores the whole day as it would in production; it is judged
            # on the held-out customers only, like the new model.
            rows = training.validation
            probability = champion.predict_proba(rows)[rows["holdout"].to_numpy()]
            labels = rows.loc[rows["holdout"], "churned"].to_numpy()
            champion_value = round(_auc(labels, probability), 4)
        except (ValueError, KeyError, RuntimeError) as exc:
            champion_note = f"the champion cannot score the validation snapshot ({exc})"
            log.warning("churn: %s", champion_note)
    promote, reason = promotion_decision(value, champion_value, tolerance=tolerance)
    if champion_note:
        reason = f"{champion_note}: promoted"
    report = {
        "model": "churn",
        "ds": ds.isoformat(),
        "metric": PROMOTION_METRIC,
        "higher_is_better": True,
        "value": value,
        "champion_metric": champion_value,
        "tolerance": tolerance,
        "promote": promote,
        "reason": reason,
        "chosen": training.chosen,
        "candidates": {
            family: {k: v for k, v in m.metrics.items() if k != "calibration"}
            | {"hyperparameters": m.params.get("hyperparameters", {})}
            for family, m in training.candidates.items()
        },
        "baseline_auc": model.metrics["baseline_auc"],
        "windows": training.windows,
        "tuning": training.tuning,
        "params": model.params,
        "metrics": model.metrics,
        "features": list(model.feature_names_),
        "library_versions": library_versions(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    log.info(
        "churn training for %s: %s AUC %.4f (champion %s) -> %s (%s)",
        ds,
        training.chosen,
        value,
        champion_value,
        "promote" if promote else "keep champion",
        reason,
    )
    return model, json.loads(json.dumps(report, default=str))

"""Churn risk: point-in-time labels, out-of-time training, calibration, tiers, reasons, drift.

Modules, by concern:

* :mod:`~cva_tasks.models.churn.labels`: churn labels, labelled snapshots, the
  held-out customers;
* :mod:`~cva_tasks.models.churn.features`: engineered inputs, BG/NBD figures included;
* :mod:`~cva_tasks.models.churn.estimators`: the two model families and their grids;
* :mod:`~cva_tasks.models.churn.model`: :class:`ChurnModel` (fit, calibrate, predict,
  save, load);
* :mod:`~cva_tasks.models.churn.metrics`: AUC, log loss, lift, calibration figures;
* :mod:`~cva_tasks.models.churn.reasons`: tiers and reasons in words;
* :mod:`~cva_tasks.models.churn.drift`: population stability index against the model's
  reference;
* :mod:`~cva_tasks.models.churn.selection`: out-of-time roles, tuning, the family
  choice, champion/challenger (:func:`train_churn`);
* :mod:`~cva_tasks.models.churn.training`: the pipeline's day trainer and drift check.

Measured figures and experiments that were not kept: ``docs/models/churn.md``.
"""

from cva_tasks.models.churn.drift import (
    DRIFT_FEATURES,
    drift_reference,
    drifted_features,
    feature_drift,
    population_stability_index,
    retrain_due_to_drift,
)
from cva_tasks.models.churn.estimators import (
    FAMILIES,
    HGB_GRID,
    LR_GRID,
    make_estimator,
    one_thread,
)
from cva_tasks.models.churn.features import (
    CORE_COLUMNS,
    FEATURE_INPUTS,
    SENTIMENT_COLUMNS,
    available_features,
    engineer_features,
    engineer_snapshots,
    fit_bgnbd,
)
from cva_tasks.models.churn.labels import (
    DEFAULT_HOLDOUT_SHARE,
    DEFAULT_HORIZON_DAYS,
    DEFAULT_N_SNAPSHOTS,
    DEFAULT_STEP_DAYS,
    FeaturesAt,
    OrdersAsOf,
    build_training_set,
    churn_labels,
    holdout_customers,
    snapshot_days,
)
from cva_tasks.models.churn.metrics import (
    PROBABILITY_FLOOR,
    calibration_table,
    churn_metrics,
    expected_calibration_error,
    top_decile_lift,
)
from cva_tasks.models.churn.model import ChurnModel
from cva_tasks.models.churn.reasons import (
    DEFAULT_TIER_CUTOFFS,
    REASON_GROUPS,
    TIERS,
    assign_tiers,
    reason_text,
)
from cva_tasks.models.churn.selection import (
    MIN_CLASS_ROWS,
    PROMOTION_METRIC,
    CandidateTraining,
    fit_candidates,
    promotion_decision,
    train_churn,
)

__all__ = [
    "CORE_COLUMNS",
    "DEFAULT_HOLDOUT_SHARE",
    "DEFAULT_HORIZON_DAYS",
    "DEFAULT_N_SNAPSHOTS",
    "DEFAULT_STEP_DAYS",
    "DEFAULT_TIER_CUTOFFS",
    "DRIFT_FEATURES",
    "FAMILIES",
    "FEATURE_INPUTS",
    "HGB_GRID",
    "LR_GRID",
    "MIN_CLASS_ROWS",
    "PROBABILITY_FLOOR",
    "PROMOTION_METRIC",
    "REASON_GROUPS",
    "SENTIMENT_COLUMNS",
    "TIERS",
    "CandidateTraining",
    "ChurnModel",
    "FeaturesAt",
    "OrdersAsOf",
    "assign_tiers",
    "available_features",
    "build_training_set",
    "calibration_table",
    "churn_labels",
    "churn_metrics",
    "drift_reference",
    "drifted_features",
    "engineer_features",
    "engineer_snapshots",
    "expected_calibration_error",
    "feature_drift",
    "fit_bgnbd",
    "fit_candidates",
    "holdout_customers",
    "make_estimator",
    "one_thread",
    "population_stability_index",
    "promotion_decision",
    "reason_text",
    "retrain_due_to_drift",
    "snapshot_days",
    "top_decile_lift",
    "train_churn",
]

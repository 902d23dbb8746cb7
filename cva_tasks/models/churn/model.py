"""The churn model: a calibrated classifier with its reasons, drift reference and files.

:class:`ChurnModel` follows :class:`cva_tasks.models.base.Model`. The constructor keeps
the hyper-parameters; the learned state comes from :meth:`ChurnModel.load` or from
these steps, each on data later than the one before
(:func:`cva_tasks.models.churn.selection.fit_candidates` gives them their rows):

1. :meth:`~ChurnModel.fit`: the estimator on stacked, labelled snapshots; engineered
   features that are constant there are dropped;
2. :meth:`~ChurnModel.calibrate`: the probability calibrator (Platt scaling or
   isotonic) on a later labelled snapshot;
3. :meth:`~ChurnModel.set_population`: the typical values (for reasons), the drift
   reference and the BG/NBD fallback of a whole snapshot;
4. :meth:`~ChurnModel.validate`: the out-of-time figures on held-out rows of that
   snapshot, kept as :attr:`~ChurnModel.metrics`.

Saved as ``churn_model.skops`` (estimator and calibrator, in skops' format: no pickle,
loaded only if it holds nothing but scikit-learn's own types and :data:`TRUSTED_TYPES`)
and ``churn_model.json`` (everything else, readable, with the BG/NBD parameters).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.churn.drift import drift_reference
from cva_tasks.models.churn.estimators import make_estimator, one_thread
from cva_tasks.models.churn.features import (
    BGNBD_MIN_FIT_CUSTOMERS,
    CORE_COLUMNS,
    FEATURE_INPUTS,
    available_features,
    engineer_features,
    engineer_snapshots,
    fit_bgnbd,
    numeric,
)
from cva_tasks.models.churn.labels import DEFAULT_HORIZON_DAYS, require_columns
from cva_tasks.models.churn.metrics import PROBABILITY_FLOOR, churn_metrics
from cva_tasks.models.churn.reasons import (
    DEFAULT_TIER_CUTOFFS,
    REASON_GROUPS,
    assign_tiers,
    risky_side,
    top_reasons,
)
from cva_tasks.models.untrusted import UntrustedModelFile, refuse_unsafe_files

log = logging.getLogger(__name__)

#: Types a churn model file may hold beyond those skops trusts by default (scikit-learn's
#: estimators): the logistic pipeline clips with ``numpy.clip``, the boosted trees keep
#: their ``TreePredictor``. A file naming any other type is refused unread.
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.clip",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

#: The keys of :attr:`ChurnModel.params` that are constructor arguments.
_HYPER_KEYS = ("horizon_days", "hyperparameters", "seed")


def _varies(values: pd.Series) -> bool:
    """More than one value, and not only by rounding noise (which scaling would blow up)."""
    finite = values.dropna()
    if values.nunique(dropna=False) < 2:
        return False
    if finite.empty:
        return False
    return bool(finite.std() > 1e-6 * max(1.0, float(finite.abs().mean())) or values.isna().any())


def _fit_calibrator(method: str, raw_scores: np.ndarray, labels: np.ndarray) -> Any:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    if method == "platt":
        return LogisticRegression(C=1e6, max_iter=1000).fit(raw_scores.reshape(-1, 1), labels)
    if method == "isotonic":
        return IsotonicRegression(
            y_min=PROBABILITY_FLOOR, y_max=1 - PROBABILITY_FLOOR, out_of_bounds="clip"
        ).fit(raw_scores, labels)
    raise ValueError(f"unknown calibration {method!r}; use 'platt' or 'isotonic'")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a saved model depends on (recorded with it)."""
    import scipy
    import sklearn

    return {
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
    }


class ChurnModel:
    """A calibrated churn model with its features, reasons, drift reference and metrics.

    Build it with :func:`cva_tasks.models.churn.train_churn` (or the steps of the module
    docstring); score with :meth:`predict`.

    Args:
        family: ``logistic_regression`` or ``hist_gradient_boosting``
            (:func:`cva_tasks.models.churn.estimators.make_estimator`).
        hyperparameters: Of the family's estimator.
        horizon_days: Churn horizon, of the labels and of the BG/NBD features.
        seed: Seed of the estimator and of the BG/NBD sampling.

    Learned attributes: ``feature_names_`` (engineered features used), ``estimator_``,
    ``calibrator_`` (None: plain logistic of the log-odds), ``bgnbd_`` (BG/NBD of the
    validation snapshot, for small scoring batches), ``typical_`` (population medians
    for reasons), ``reference_`` (drift reference, :func:`drift_reference`),
    ``metrics_`` and ``training_`` (how it was trained: calibration, snapshots, ...).
    """

    kind: ClassVar[str] = "churn"
    ARTIFACT: ClassVar[str] = "churn_model.skops"
    METADATA: ClassVar[str] = "churn_model.json"

    def __init__(
        self,
        family: str = "logistic_regression",
        hyperparameters: dict[str, Any] | None = None,
        *,
        horizon_days: int = DEFAULT_HORIZON_DAYS,
        seed: int = 0,
    ) -> None:
        self.family = family
        self.hyperparameters = hyperparameters
        self.horizon_days = horizon_days
        self.seed = seed

    # -- training ---------------------------------------------------------- #

    def fit(self, frames: pd.DataFrame, *, engineered: pd.DataFrame | None = None) -> Self:
        """Fit the estimator on stacked, labelled snapshots (:func:`build_training_set`).

        Engineered features that are constant on ``frames`` are dropped. Everything
        learned before (calibrator, population, metrics) is reset.

        Args:
            frames: Stacked snapshots with ``snapshot_day`` and ``churned``.
            engineered: :func:`engineer_snapshots` of ``frames`` when already computed
                (several candidates share it).

        Raises:
            NotEnoughData: when the labels hold one class only.
        """
        require_columns(frames, ["snapshot_day", "churned", *CORE_COLUMNS], "churn fit")
        if frames["churned"].nunique() < 2:
            raise NotEnoughData("churn fit: the training labels hold one class only")
        if engineered is None:
            names = available_features(frames.columns)
            x, _ = engineer_snapshots(
                frames, horizon_days=self.horizon_days, names=names, seed=self.seed
            )
        else:
            x, names = engineered, list(engineered.columns)
        varying = [n for n in names if _varies(x[n])]
        hyper = dict(self.hyperparameters or {})
        started = time.perf_counter()
        with one_thread():
            estimator = make_estimator(self.family, hyper, self.seed).fit(
                x[varying].to_numpy(), frames["churned"].to_numpy()
            )
        log.info(
            "fitted %s %s on %d rows x %d features in %.1f s",
            self.family,
            hyper,
            len(x),
            len(varying),
            time.perf_counter() - started,
        )
        self.feature_names_: list[str] = varying
        self.estimator_: Any = estimator
        self.calibrator_: Any = None
        self.bgnbd_: Any = None
        self.typical_: dict[str, float] = {}
        self.reference_: dict[str, dict[str, Any]] = {}
        self.metrics_: dict[str, Any] = {}
        self.training_: dict[str, Any] = {}
        return self

    def calibrate(
        self,
        frame: pd.DataFrame,
        method: str = "platt",
        *,
        engineered: pd.DataFrame | None = None,
        bgnbd: Any = None,
    ) -> Self:
        """Fit the probability calibrator on a later, labelled snapshot than the fit data.

        Args:
            frame: Rows of one labelled snapshot (features and ``churned``).
            method: ``platt`` (logistic on the log-odds) or ``isotonic``.
            engineered: :func:`engineer_features` of ``frame`` when already computed.
            bgnbd: BG/NBD fit of ``frame``'s customers, when already fitted (without
                ``engineered``; fitted on ``frame`` otherwise).
        """
        raw = self._scores(frame, engineered, bgnbd)
        self.calibrator_ = _fit_calibrator(method, raw, frame["churned"].to_numpy())
        self.training_["calibration"] = method
        return self

    def set_population(self, features: pd.DataFrame, *, bgnbd: Any = None) -> Self:
        """Keep the typical values (reasons), drift reference and BG/NBD fallback of a snapshot.

        Args:
            features: One whole snapshot (all customers, no labels needed).
            bgnbd: BG/NBD fit of ``features``' customers, when already fitted.
        """
        self._check_fitted()
        self.typical_ = {
            c: float(numeric(features, c).median())
            for group in REASON_GROUPS.values()
            for c in group
            if c in features.columns and numeric(features, c).notna().any()
        }
        for extra in ("tenure_days", "recency_days"):
            if extra in features.columns:
                self.typical_[extra] = float(numeric(features, extra).median())
        self.reference_ = drift_reference(features)
        self.bgnbd_ = bgnbd if bgnbd is not None else fit_bgnbd(features, self.seed)
        return self

    def validate(
        self,
        frame: pd.DataFrame,
        *,
        engineered: pd.DataFrame | None = None,
        bgnbd: Any = None,
    ) -> Self:
        """Score held-out rows of a later labelled snapshot; keep the figures as :attr:`metrics`.

        Args:
            frame: Rows of one labelled snapshot (features, ``snapshot_day``,
                ``churned``) that neither the fit nor the calibration saw.
            engineered: :func:`engineer_features` of ``frame`` when already computed.
            bgnbd: BG/NBD fit of the snapshot, when already fitted (without
                ``engineered``; fitted on ``frame`` otherwise).

        Raises:
            ValueError: when the rows come from more than one snapshot or hold one
                label class only.
        """
        require_columns(frame, ["snapshot_day", "churned"], "churn validate")
        days = frame["snapshot_day"].unique()
        if len(days) != 1:
            raise ValueError(f"churn validate: rows of one snapshot expected, got {len(days)}")
        probability = self._calibrated(self._scores(frame, engineered, bgnbd))
        self.metrics_ = {
            **churn_metrics(frame["churned"].to_numpy(), probability),
            "features": list(self.feature_names_),
            "validation_snapshot": days[0].isoformat(),
        }
        return self

    def record(
        self, *, params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None
    ) -> Self:
        """Add what the training knows beyond this model: windows, settings, other figures.

        ``params`` join :attr:`params` (after the hyper-parameters), ``metrics`` join
        :attr:`metrics` (e.g. the baseline family's AUC).

        Raises:
            ValueError: when ``params`` would overwrite a hyper-parameter.
        """
        self._check_fitted()
        clash = sorted(set(params or {}) & set(_HYPER_KEYS))
        if clash:
            raise ValueError(f"ChurnModel.record: {clash} are constructor arguments")
        self.training_.update(params or {})
        self.metrics_.update(metrics or {})
        return self

    # -- what it is -------------------------------------------------------- #

    @property
    def params(self) -> dict[str, Any]:
        """Hyper-parameters, then how the model was trained (calibration, snapshots, ...)."""
        self._check_fitted()
        return {
            "horizon_days": self.horizon_days,
            "hyperparameters": dict(self.hyperparameters or {}),
            "seed": self.seed,
            **self.training_,
        }

    @property
    def metrics(self) -> dict[str, Any]:
        """Out-of-time validation figures (:meth:`validate`; empty until validated)."""
        self._check_fitted()
        return dict(self.metrics_)

    @property
    def input_columns(self) -> list[str]:
        """Raw feature-table columns :meth:`predict` needs."""
        self._check_fitted()
        return sorted({"customer_id", *(c for n in self.feature_names_ for c in FEATURE_INPUTS[n])})

    # -- scoring ----------------------------------------------------------- #

    def _check_fitted(self) -> None:
        if getattr(self, "estimator_", None) is None:
            raise RuntimeError("ChurnModel is not fitted: train it with train_churn() or fit()")

    def _population_bgnbd(self, features: pd.DataFrame) -> Any | None:
        if len(features) >= BGNBD_MIN_FIT_CUSTOMERS:
            fitted = fit_bgnbd(features, self.seed)
            if fitted is not None:
                return fitted
        return self.bgnbd_

    def _scores(
        self, frame: pd.DataFrame, engineered: pd.DataFrame | None, bgnbd: Any
    ) -> np.ndarray:
        if engineered is not None:
            return self.scores_of(engineered)
        return self.raw_scores(
            frame, bgnbd=bgnbd if bgnbd is not None else fit_bgnbd(frame, self.seed)
        )

    def scores_of(self, engineered: pd.DataFrame) -> np.ndarray:
        """Uncalibrated log-odds from already engineered rows (:func:`engineer_features`)."""
        self._check_fitted()
        x = engineered[self.feature_names_].to_numpy()
        with one_thread():
            return np.asarray(self.estimator_.decision_function(x), dtype=float)

    def raw_scores(self, features: pd.DataFrame, *, bgnbd: Any | None = None) -> np.ndarray:
        """Uncalibrated log-odds of churn per row."""
        self._check_fitted()
        x = engineer_features(
            features, bgnbd, horizon_days=self.horizon_days, names=self.feature_names_
        )
        with one_thread():
            return np.asarray(self.estimator_.decision_function(x.to_numpy()), dtype=float)

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        if self.calibrator_ is None:
            p = 1.0 / (1.0 + np.exp(-raw))
        elif hasattr(self.calibrator_, "predict_proba"):
            p = self.calibrator_.predict_proba(raw.reshape(-1, 1))[:, 1]
        else:
            p = self.calibrator_.predict(raw)
        return np.clip(p, PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probabilities, aligned with ``features``' rows."""
        require_columns(features, self.input_columns, "churn predict features")
        return self._calibrated(self.raw_scores(features, bgnbd=self._population_bgnbd(features)))

    def reason_contributions(
        self, features: pd.DataFrame, bgnbd: Any | None = None
    ) -> pd.DataFrame:
        """Per customer and reason group: log-odds above the same customer made typical there.

        Returns:
            One column per usable reason group (positive = raises risk), rows as
            ``features``.
        """
        base = self.raw_scores(features, bgnbd=bgnbd)
        used = set(self.input_columns)
        out = {}
        for group, columns in REASON_GROUPS.items():
            present = [c for c in columns if c in used and c in self.typical_]
            if not present:
                continue
            typical = features.copy()
            for c in present:
                typical[c] = self.typical_[c]
            effect = base - self.raw_scores(typical, bgnbd=bgnbd)
            # Only on the risky side: a model may find, say, a high rating risky for
            # some customers, but "average rating 4.8 of 5" is no reason a marketer
            # can act on.
            out[group] = np.where(risky_side(group, features, self.typical_), effect, 0.0)
        return pd.DataFrame(out, index=features.index)

    def predict(
        self,
        features: pd.DataFrame,
        tier_cutoffs: Sequence[float] = DEFAULT_TIER_CUTOFFS,
        population: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Score customers.

        Args:
            features: Feature table (one row per customer) with :attr:`input_columns`.
            tier_cutoffs: Tier cut-offs; default 0.33/0.66.
            population: The customers the BG/NBD features are fitted on (default:
                ``features``). A part of the day scored on its own passes the whole day,
                so each customer gets the probability the whole day at once gives it.

        Returns:
            ``customer_id``, ``churn_probability`` (calibrated), ``churn_tier``
            (Low/Medium/High) and ``churn_reasons`` (up to three reasons that raise the
            customer's risk, ``"; "``-joined; empty when none does), rows as ``features``.
        """
        require_columns(features, self.input_columns, "churn predict features")
        if features["customer_id"].duplicated().any():
            raise ValueError("churn predict features: customer_id must be unique")
        bgnbd = self._population_bgnbd(features if population is None else population)
        probability = self._calibrated(self.raw_scores(features, bgnbd=bgnbd))
        contributions = self.reason_contributions(features, bgnbd)
        return pd.DataFrame(
            {
                "customer_id": features["customer_id"].to_numpy(),
                "churn_probability": probability,
                "churn_tier": assign_tiers(probability, tier_cutoffs),
                "churn_reasons": top_reasons(contributions, features, self.typical_),
            },
            index=features.index,
        )

    # -- persistence ------------------------------------------------------- #

    def save(self, directory: Path) -> None:
        """Write ``churn_model.skops`` (estimator, calibrator) and ``churn_model.json``.

        Args:
            directory: An existing folder.
        """
        import skops.io

        self._check_fitted()
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"ChurnModel.save: {directory} is not an existing folder")
        skops.io.dump(
            {"estimator": self.estimator_, "calibrator": self.calibrator_},
            directory / self.ARTIFACT,
        )
        metadata = {
            "bgnbd": None if self.bgnbd_ is None else dict(self.bgnbd_.params_),
            "family": self.family,
            "params": self.params,
            "metrics": self.metrics,
            "reference": self.reference_,
            "feature_names": self.feature_names_,
            "typical": self.typical_,
            "library_versions": library_versions(),
        }
        (directory / self.METADATA).write_text(json.dumps(metadata, indent=1, default=str))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`.

        Raises:
            UntrustedModelFile: the folder holds a pickle (an old joblib model, or a
                planted file), or the skops file names a type not trusted here.
        """
        import skops.io

        from cva_tasks.models.clv import BetaGeoFitter

        directory = Path(directory)
        refuse_unsafe_files(directory, cls.kind)
        metadata = json.loads((directory / cls.METADATA).read_text())
        versions = library_versions()
        saved = metadata.get("library_versions", {})
        if saved.get("scikit-learn") != versions["scikit-learn"]:
            log.warning(
                "churn model saved with scikit-learn %s, loading with %s",
                saved.get("scikit-learn"),
                versions["scikit-learn"],
            )
        path = directory / cls.ARTIFACT
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: not a saved churn model")
        unexpected = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
        if unexpected:
            raise UntrustedModelFile(
                f"churn model file {path} holds types this pipeline does not trust "
                f"({', '.join(unexpected)}): refused unread. Retrain the churn model "
                "(clear the train_churn task of the day it was trained)."
            )
        artifact = skops.io.load(path, trusted=list(TRUSTED_TYPES))
        params = dict(metadata["params"])
        model = cls(
            metadata["family"],
            params.get("hyperparameters", {}),
            horizon_days=int(params.get("horizon_days", DEFAULT_HORIZON_DAYS)),
            seed=int(params.get("seed", 0)),
        )
        model.feature_names_ = list(metadata["feature_names"])
        model.estimator_ = artifact["estimator"]
        model.calibrator_ = artifact["calibrator"]
        bgnbd = metadata.get("bgnbd")
        model.bgnbd_ = None if bgnbd is None else BetaGeoFitter.from_params(bgnbd)
        model.typical_ = metadata["typical"]
        model.reference_ = metadata["reference"]
        model.metrics_ = metadata["metrics"]
        model.training_ = {k: v for k, v in params.items() if k not in _HYPER_KEYS}
        return model

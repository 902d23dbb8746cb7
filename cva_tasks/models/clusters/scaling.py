"""The feature transform of the clusters: which columns, clipped, logged, imputed, scaled.

Input: the point-in-time customer feature table (:mod:`cva_tasks.features.customer`), one
row per customer. Only the columns of :data:`CLUSTER_FEATURES` are clustered.

Feature subset and transform (the fitted parameters are saved with the model)
--------------------------------------------------------------------------------
=====================  =============  =======  ===================================
feature                clip           log1p    null imputed with
=====================  =============  =======  ===================================
``recency_days``       >= 0           yes      training median (never null in practice)
``frequency``          >= 0           yes      0
``avg_order_value``    >= 0           yes      training median of the log value
``tenure_days``        >= 0           yes      training median (never null in practice)
``return_rate``        [0, 1]         no       0
``n_distinct_items``   >= 0           yes      0
=====================  =============  =======  ===================================

* Counts, money and durations are right-skewed (a few customers with hundreds of orders),
  so they are log1p'd; ``return_rate`` is bounded and clipped to [0, 1] (it can pass 1
  when returns refer to purchases before the data starts).
* ``avg_order_value`` is null when every order was cancelled (frequency 0): those
  customers get the median basket, so they stand apart by their frequency, not by an
  invented basket of 0. A null ``return_rate`` means no purchased units: nothing to
  return, so 0.
* Product breadth is ``n_distinct_items``, not ``n_categories``: a source without
  categories (the Online Retail export) has ``n_categories`` 1 for all but a handful of
  customers, and standardizing such a column turns that handful into a cluster.
* Each transformed column is standardized with its training mean and population
  standard deviation (a constant column gets scale 1, so it weighs nothing), then clipped
  to +-:data:`Z_CLIP`: a few extreme customers cannot claim a cluster of their own.
* ``monetary_value`` is not clustered: it is about frequency x basket, already in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Z_CLIP = 4.0
# Standard deviations below this are treated as a constant column.
_MIN_SCALE = 1e-12


@dataclass(frozen=True)
class FeatureTransform:
    """How one feature column is prepared for clustering.

    Attributes:
        name: Column of the customer feature table.
        lower: Values below are clipped to it (None: no lower bound).
        upper: Values above are clipped to it (None: no upper bound).
        log: Apply ``log1p`` after clipping.
        fill: Null rule: ``"median"`` (training median of the transformed value) or a
            constant in transformed units.
    """

    name: str
    lower: float | None
    upper: float | None
    log: bool
    fill: str | float


CLUSTER_FEATURES: tuple[FeatureTransform, ...] = (
    FeatureTransform("recency_days", 0.0, None, True, "median"),
    FeatureTransform("frequency", 0.0, None, True, 0.0),
    FeatureTransform("avg_order_value", 0.0, None, True, "median"),
    FeatureTransform("tenure_days", 0.0, None, True, "median"),
    FeatureTransform("return_rate", 0.0, 1.0, False, 0.0),
    FeatureTransform("n_distinct_items", 0.0, None, True, 0.0),
)


def _numeric_column(features: pd.DataFrame, name: str) -> np.ndarray:
    """``features[name]`` as float64 with NaN for nulls; errors name the column and rule."""
    if name not in features.columns:
        raise ValueError(
            f"customer features lack column {name!r}, needed for clustering "
            f"(have {sorted(map(str, features.columns))})"
        )
    column = features[name]
    if not (pd.api.types.is_numeric_dtype(column) or column.isna().all()):
        raise ValueError(f"customer feature {name!r} must be numeric, got dtype {column.dtype}")
    values = pd.to_numeric(column, errors="raise").astype("float64").to_numpy(na_value=np.nan)
    infinite = int(np.isinf(values).sum())
    if infinite:
        raise ValueError(f"customer feature {name!r} has {infinite} infinite value(s)")
    return values


@dataclass(frozen=True)
class FeatureScaler:
    """The fitted clip / log1p / impute / standardize transform (one entry per feature)."""

    features: tuple[FeatureTransform, ...]
    fill_values: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    z_clip: float

    @staticmethod
    def _prepare(values: np.ndarray, spec: FeatureTransform) -> np.ndarray:
        clipped = (
            np.clip(values, spec.lower, spec.upper)
            if (spec.lower is not None or spec.upper is not None)
            else values
        )
        return np.log1p(clipped) if spec.log else clipped

    @classmethod
    def fit(
        cls, features: pd.DataFrame, specs: tuple[FeatureTransform, ...], z_clip: float
    ) -> FeatureScaler:
        """Learn fill values, means and scales from the training customers."""
        fills, means, scales = [], [], []
        for spec in specs:
            prepared = cls._prepare(_numeric_column(features, spec.name), spec)
            if spec.fill == "median":
                known = prepared[~np.isnan(prepared)]
                if known.size == 0:
                    raise ValueError(
                        f"customer feature {spec.name!r} is null for every customer: "
                        "no median to impute it with"
                    )
                fill = float(np.median(known))
            else:
                fill = float(spec.fill)
            filled = np.where(np.isnan(prepared), fill, prepared)
            std = float(filled.std())
            fills.append(fill)
            means.append(float(filled.mean()))
            scales.append(std if std > _MIN_SCALE else 1.0)
        return cls(tuple(specs), tuple(fills), tuple(means), tuple(scales), float(z_clip))

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """Standardized matrix, one row per customer, one column per feature."""
        columns = []
        for spec, fill, mean, scale in zip(
            self.features, self.fill_values, self.means, self.scales, strict=True
        ):
            prepared = self._prepare(_numeric_column(features, spec.name), spec)
            filled = np.where(np.isnan(prepared), fill, prepared)
            columns.append((filled - mean) / scale)
        matrix = np.column_stack(columns) if columns else np.empty((len(features), 0))
        return np.clip(matrix, -self.z_clip, self.z_clip)

    def to_dict(self) -> dict[str, Any]:
        return {
            "z_clip": self.z_clip,
            "features": [
                {
                    "name": spec.name,
                    "lower": spec.lower,
                    "upper": spec.upper,
                    "log1p": spec.log,
                    "fill_rule": spec.fill,
                    "fill_value": fill,
                    "mean": mean,
                    "scale": scale,
                }
                for spec, fill, mean, scale in zip(
                    self.features, self.fill_values, self.means, self.scales, strict=True
                )
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaler:
        entries = data["features"]
        specs = tuple(
            FeatureTransform(e["name"], e["lower"], e["upper"], bool(e["log1p"]), e["fill_rule"])
            for e in entries
        )
        return cls(
            specs,
            tuple(float(e["fill_value"]) for e in entries),
            tuple(float(e["mean"]) for e in entries),
            tuple(float(e["scale"]) for e in entries),
            float(data["z_clip"]),
        )

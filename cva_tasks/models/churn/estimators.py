"""The two churn model families and the grids they are tuned on.

* ``logistic_regression``: the classic baseline, median imputation + standardization +
  L2 logistic regression (``C`` tuned on :data:`LR_GRID`).
* ``hist_gradient_boosting``: scikit-learn's HistGradientBoostingClassifier, shallow
  trees, strong leaf-size and L2 regularization, a fixed number of rounds (no early
  stopping, so no random inner split); the setting is tuned on :data:`HGB_GRID`.

Both run on one OpenMP thread (:func:`one_thread`): the pipeline's workers share few
cores, and contended threads made a boosted fit several times slower
(``docs/models/churn.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

FAMILIES = ("logistic_regression", "hist_gradient_boosting")
#: Standardized inputs of the logistic regression are clipped to +-Z_CLIP.
Z_CLIP = 5.0

LR_GRID: tuple[dict[str, Any], ...] = ({"C": 0.01}, {"C": 0.1}, {"C": 1.0})
HGB_GRID: tuple[dict[str, Any], ...] = (
    {
        "learning_rate": 0.05,
        "max_iter": 150,
        "max_leaf_nodes": 8,
        "min_samples_leaf": 100,
        "l2_regularization": 1.0,
    },
    {
        "learning_rate": 0.03,
        "max_iter": 300,
        "max_depth": 3,
        "min_samples_leaf": 200,
        "l2_regularization": 1.0,
    },
    {
        "learning_rate": 0.05,
        "max_iter": 250,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 50,
        "l2_regularization": 1.0,
    },
)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run scikit-learn's OpenMP / BLAS code on one thread (see the module docstring)."""
    # Import scikit-learn first: threadpoolctl limits only the runtimes already loaded.
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def make_estimator(family: str, params: dict[str, Any], seed: int) -> Any:
    """An unfitted scikit-learn classifier of ``family`` with hyper-parameters ``params``.

    Raises:
        ValueError: for a family not in :data:`FAMILIES`.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if family == "logistic_regression":
        # Standardized values are clipped: a later population can hold values far
        # outside the training range (a BG/NBD fit that degenerates on one snapshot
        # and not the next), and a linear model would extrapolate them without bound.
        return make_pipeline(
            SimpleImputer(strategy="median"),
            StandardScaler(),
            FunctionTransformer(np.clip, kw_args={"a_min": -Z_CLIP, "a_max": Z_CLIP}),
            LogisticRegression(max_iter=5000, **params),
        )
    if family == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(early_stopping=False, random_state=seed, **params)
    raise ValueError(f"unknown churn model family {family!r}; known: {FAMILIES}")

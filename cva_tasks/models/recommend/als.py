"""Implicit-feedback matrix factorization by alternating least squares (``implicit``).

``implicit`` 0.7.3's ALS (Hu, Koren & Volinsky 2008). Only the item factors are kept:
a customer's factors are solved from their purchases when they are scored (ALS's
exact least-squares step), so customers unseen in training and purchases made since
are used. The reason of a recommended item is the bought item nearest to it (cosine of
item factors, times its weight): an approximation of ALS's own explanation, which
needs one Cholesky factorization per customer.

Determinism: the initial factors are drawn with ``seed``, and the per-customer solves
are independent of the thread count (``implicit`` runs on up to 2 threads, BLAS on one
while ALS works, so sums do not depend on thread scheduling).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import numpy as np

from cva_tasks.models.recommend.purchases import CustomerGroups, PurchaseLog, Weighting
from cva_tasks.models.recommend.ranking import SCORE_BLOCK_CELLS, explain_pairs


def _threads(num_threads: int | None) -> int:
    return num_threads if num_threads else min(2, os.cpu_count() or 1)


class ALSRecommender:
    """Implicit-feedback matrix factorization (``implicit``'s ALS) as the challenger.

    Args:
        factors: Latent factors.
        regularization: L2 regularization.
        alpha: Confidence scale (``implicit`` multiplies the feedback by it).
        iterations: ALS sweeps.
        weighting: Feedback (the same for fitting and for solving a customer's factors).
        seed: Seed of the initial factors.
        num_threads: Threads of ``implicit`` (default: up to 2).
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        weighting: Weighting | None = None,
        seed: int = 0,
        num_threads: int | None = None,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting or Weighting()
        self.seed = seed
        self.num_threads = num_threads

    @property
    def profile_weighting(self) -> Weighting:
        return self.weighting

    @property
    def config(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "weighting": asdict(self.weighting),
            "seed": self.seed,
            "num_threads": self.num_threads,
        }

    def _implicit_model(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            num_threads=_threads(self.num_threads),
        )

    def fit(self, purchases: PurchaseLog, groups: CustomerGroups | None = None):
        """Factorize the weighted customer x item matrix; returns self."""
        from threadpoolctl import threadpool_limits

        matrix = purchases.matrix(self.weighting)
        # One BLAS thread: implicit parallelizes itself, and single-threaded BLAS sums
        # are reproducible (implicit also warns against threaded OpenBLAS).
        with threadpool_limits(1, "blas"):
            model = self._implicit_model()
            model.fit(matrix, show_progress=False)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self._prepare()
        return self

    def _prepare(self) -> None:
        model = self._implicit_model()
        model.item_factors = self.item_factors_
        self._model = model
        norms = np.linalg.norm(self.item_factors_, axis=1, keepdims=True)
        self._unit = self.item_factors_ / np.where(norms > 0, norms, 1)
        n_items = len(self.item_factors_)
        self._cosines = (
            self._unit @ self._unit.T if n_items * n_items <= SCORE_BLOCK_CELLS else None
        )

    def customer_factors(self, profile) -> np.ndarray:
        """Least-squares factors of the customers in ``profile`` given the item factors."""
        from threadpoolctl import threadpool_limits

        if profile.shape[0] == 0:
            return np.zeros((0, self.factors), dtype=np.float32)
        with threadpool_limits(1, "blas"):
            factors = self._model.recalculate_user(np.arange(profile.shape[0]), profile)
        return np.asarray(factors, dtype=np.float32).reshape(profile.shape[0], -1)

    def score(self, profile) -> np.ndarray:
        """Scores (rows x items, dense float32) of the customers in ``profile``."""
        return self.customer_factors(profile) @ self.item_factors_.T

    def _pair_similarity(self, bought: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self._cosines is not None:
            return self._cosines[bought, target]
        out = np.empty(len(bought), dtype=np.float32)
        step = max(1, (1 << 24) // max(self.factors, 1))  # 64 MiB of gathered factors
        for lo in range(0, len(bought), step):
            hi = lo + step
            out[lo:hi] = np.einsum("ij,ij->i", self._unit[bought[lo:hi]], self._unit[target[lo:hi]])
        return out

    def explain(self, profile, items: np.ndarray) -> np.ndarray:
        """The bought item nearest (factor cosine x weight) to each recommendation."""
        return explain_pairs(profile, items, self._pair_similarity)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_}

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]):
        config = dict(config)
        config["weighting"] = Weighting.from_dict(config["weighting"])
        model = cls(**config)
        model.item_factors_ = np.ascontiguousarray(arrays["item_factors"], dtype=np.float32)
        model._prepare()
        return model

"""Item-based collaborative filtering on the sparse customer x item matrix.

The matrix holds implicit feedback (purchase lines weighted by recency and quantity,
see :class:`~cva_tasks.models.recommend.purchases.Weighting`); item-item similarities
are (asymmetric) cosines of its columns, pruned to each item's ``neighbours`` nearest
items; a customer's score for item ``j`` is ``sum_i profile_i * similarity(i, j)`` over
the items ``i`` they bought. The item ``i`` that contributes most is the reason
("because you bought ..."). Exact computations: the same purchases give the same
similarities.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
from scipy import sparse

from cva_tasks.models.recommend.purchases import CustomerGroups, PurchaseLog, Weighting
from cva_tasks.models.recommend.ranking import SCORE_BLOCK_CELLS, explain_pairs

log = logging.getLogger(__name__)


def _item_similarity(matrix, neighbours: int, alpha: float, shrink: float) -> sparse.csr_matrix:
    """Item x item similarities of the columns of ``matrix``, top ``neighbours`` per row.

    ``S[i, j] = <x_i, x_j> / (|x_i| ** alpha * |x_j| ** (1 - alpha) + shrink)``, the
    diagonal set to 0; row ``i`` (a bought item) keeps its ``neighbours`` largest
    positive entries. Computed in blocks of rows, one dense block at a time.
    """
    n_items = matrix.shape[1]
    by_item = matrix.T.tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()).astype(np.float32)
    source_norm = norms**alpha
    target_norm = norms ** (1.0 - alpha)
    block = max(1, SCORE_BLOCK_CELLS // max(n_items, 1))
    keep = min(neighbours, max(n_items - 1, 1))
    rows, cols, vals = [], [], []
    for lo in range(0, n_items, block):
        hi = min(lo + block, n_items)
        dots = (by_item[lo:hi] @ matrix).toarray().astype(np.float32, copy=False)
        denominator = source_norm[lo:hi, None] * target_norm[None, :] + np.float32(shrink)
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = np.where(denominator > 0, dots / denominator, 0).astype(np.float32)
        sims[np.arange(hi - lo), np.arange(lo, hi)] = 0
        if keep < n_items:
            top = np.argpartition(-sims, keep - 1, axis=1)[:, :keep]
        else:
            top = np.broadcast_to(np.arange(n_items), sims.shape)
        top_vals = np.take_along_axis(sims, top, axis=1)
        positive = top_vals > 0
        rows.append(np.broadcast_to(np.arange(lo, hi)[:, None], top.shape)[positive])
        cols.append(top[positive])
        vals.append(top_vals[positive])
        log.debug("item similarities: %d/%d items", hi, n_items)
    similarity = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    similarity.sort_indices()
    return similarity


def bm25_weight(matrix, k1: float = 1.2, b: float = 0.75) -> sparse.csr_matrix:
    """BM25 weighting of a customer x item matrix, items as documents and customers as terms.

    As ``implicit.nearest_neighbours.bm25_weight`` on the item x customer matrix:
    a customer's idf is ``log(n_items) - log(1 + items they bought)`` (a customer who
    buys everything says little about any pair of items), and an item's length
    normalization damps items with much feedback. Returns a new csr matrix (float32).
    """
    weighted = sparse.coo_matrix(matrix, dtype=np.float32)
    n_items = weighted.shape[1]
    items_per_customer = np.bincount(weighted.row, minlength=weighted.shape[0])
    idf = np.log(n_items) - np.log1p(items_per_customer)
    item_length = np.bincount(weighted.col, weights=weighted.data, minlength=n_items)
    mean_length = item_length.mean() if n_items else 1.0
    length_norm = (1.0 - b) + b * item_length / max(mean_length, 1e-12)
    weighted.data = (
        weighted.data
        * (k1 + 1.0)
        / (k1 * length_norm[weighted.col] + weighted.data)
        * idf[weighted.row]
    ).astype(np.float32)
    return weighted.tocsr()


class ItemKNNRecommender:
    """Item-based collaborative filtering on the sparse customer x item matrix.

    Args:
        neighbours: Similar items kept per item.
        alpha: Asymmetric cosine exponent (0.5: cosine); larger values damp the
            similarity from popular bought items less than to popular targets.
        shrink: Added to the similarity denominator (damps pairs with little support).
        bm25: Weight the matrix with :func:`bm25_weight` before the cosines.
        bm25_k1: BM25 saturation.
        bm25_b: BM25 length normalization.
        similarity_weighting: Feedback used to compute the similarities.
        profile_weighting: Feedback of a customer's purchases when scoring.
    """

    name = "item_cf"

    def __init__(
        self,
        neighbours: int = 100,
        alpha: float = 0.5,
        shrink: float = 0.0,
        bm25: bool = False,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        similarity_weighting: Weighting | None = None,
        profile_weighting: Weighting | None = None,
    ) -> None:
        self.neighbours = neighbours
        self.alpha = alpha
        self.shrink = shrink
        self.bm25 = bm25
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.similarity_weighting = similarity_weighting or Weighting()
        self.profile_weighting = profile_weighting or Weighting()

    @property
    def config(self) -> dict[str, Any]:
        return {
            "neighbours": self.neighbours,
            "alpha": self.alpha,
            "shrink": self.shrink,
            "bm25": self.bm25,
            "bm25_k1": self.bm25_k1,
            "bm25_b": self.bm25_b,
            "similarity_weighting": asdict(self.similarity_weighting),
            "profile_weighting": asdict(self.profile_weighting),
        }

    def fit(self, purchases: PurchaseLog, groups: CustomerGroups | None = None):
        """Compute the pruned item-item similarities; returns self."""
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be positive, got {self.neighbours}")
        matrix = purchases.matrix(self.similarity_weighting)
        if self.bm25:
            matrix = bm25_weight(matrix, self.bm25_k1, self.bm25_b)
        self.similarity_ = _item_similarity(matrix, self.neighbours, self.alpha, self.shrink)
        self._prepare()
        return self

    def _prepare(self) -> None:
        n_items = self.similarity_.shape[0]
        self._dense = self.similarity_.toarray() if n_items * n_items <= SCORE_BLOCK_CELLS else None
        rows = np.repeat(np.arange(n_items, dtype=np.int64), np.diff(self.similarity_.indptr))
        self._keys = rows * n_items + self.similarity_.indices

    def score(self, profile) -> np.ndarray:
        """Scores (rows x items, dense float32) of the customers in ``profile``."""
        if self._dense is not None:
            return np.asarray(profile @ self._dense, dtype=np.float32)
        return (profile @ self.similarity_).toarray().astype(np.float32, copy=False)

    def _pair_similarity(self, bought: np.ndarray, target: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return self._dense[bought, target]
        keys = bought * self.similarity_.shape[0] + target
        position = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        found = self._keys[position] == keys
        return np.where(found, self.similarity_.data[position], 0).astype(np.float32)

    def explain(self, profile, items: np.ndarray) -> np.ndarray:
        """The bought item with the largest ``weight * similarity`` to each recommendation."""
        if len(self._keys) == 0:
            return np.full(items.shape, -1, dtype=np.int64)
        return explain_pairs(profile, items, self._pair_similarity)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "data": self.similarity_.data,
            "indices": self.similarity_.indices,
            "indptr": self.similarity_.indptr,
        }

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]):
        config = dict(config)
        for key in ("similarity_weighting", "profile_weighting"):
            config[key] = Weighting.from_dict(config[key])
        model = cls(**config)
        n_items = len(arrays["indptr"]) - 1
        model.similarity_ = sparse.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n_items, n_items)
        )
        model._prepare()
        return model

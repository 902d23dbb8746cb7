"""The popularity baseline: bestsellers, overall and per segment and country.

Items are ranked by the share of buyers who bought them in the last ``window_days``
before the as-of instant (``None``: all history): what a marketer would send without
us. The same model, over a short recent window, serves cold start (the bestsellers of
a customer's segment, else country, else everybody), fills lists another model cannot
complete, and is the trend blended into the collaborative scores.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from cva_tasks.models.recommend.purchases import GROUP_KINDS, CustomerGroups, PurchaseLog
from cva_tasks.models.recommend.ranking import rank_rows, run_starts, sorted_unique

log = logging.getLogger(__name__)


def _window_label(window_days: int | None) -> str:
    return "of all time" if window_days is None else f"in the last {window_days} days"


class PopularityRecommender:
    """Bestsellers: items ranked by the share of buyers who bought them in a window.

    Also holds the bestsellers of every segment and country, for cold start.

    Args:
        window_days: Days before ``as_of`` that count; ``None`` for all history.
        min_group_customers: Buyers a segment or country needs in the window for its
            own list; smaller groups fall back to the next kind, then to everybody.
    """

    def __init__(self, window_days: int | None = 30, min_group_customers: int = 20) -> None:
        self.window_days = window_days
        self.min_group_customers = min_group_customers

    @property
    def name(self) -> str:
        return "bestsellers_all_time" if self.window_days is None else "bestsellers_recent"

    @property
    def config(self) -> dict[str, Any]:
        return {"window_days": self.window_days, "min_group_customers": self.min_group_customers}

    def fit(self, purchases: PurchaseLog, groups: CustomerGroups | None = None):
        """Count buyers per item (and per group and item) in the window; returns self."""
        if self.window_days is not None and self.window_days <= 0:
            raise ValueError(f"window_days must be positive or None, got {self.window_days}")
        in_window = np.ones(len(purchases.item), dtype=bool)
        if self.window_days is not None:
            in_window = purchases.age_days <= self.window_days
            if not in_window.any():
                log.warning(
                    "no purchase in the %d days before %s: bestsellers over all history",
                    self.window_days,
                    purchases.as_of,
                )
                in_window[:] = True
        n_items = purchases.n_items
        pairs = sorted_unique(
            purchases.customer[in_window].astype(np.int64) * n_items + purchases.item[in_window]
        )
        del in_window
        pair_customer, pair_item = pairs // n_items, pairs % n_items
        del pairs
        # pair_customer is sorted: its runs are the buyers of the window.
        buyers_in_window = pair_customer[run_starts(pair_customer)]
        n_buyers = max(len(buyers_in_window), 1)
        self.scores_ = (np.bincount(pair_item, minlength=n_items) / n_buyers).astype(np.float32)
        self.n_buyers_ = len(buyers_in_window)
        self.group_labels_: dict[str, np.ndarray] = {}
        self.group_scores_: dict[str, sparse.csr_matrix] = {}
        self.group_buyers_: dict[str, np.ndarray] = {}
        groups = groups or CustomerGroups.from_frame(None)
        for kind in groups.codes:
            labels = groups.labels[kind]
            code_of_customer = groups.lookup(purchases.customer_ids, kind)
            buyer_code = code_of_customer[buyers_in_window]
            buyers = np.bincount(buyer_code[buyer_code >= 0], minlength=len(labels))
            code = code_of_customer[pair_customer]
            known = code >= 0
            counts = sparse.csr_matrix(
                (np.ones(int(known.sum()), dtype=np.float32), (code[known], pair_item[known])),
                shape=(len(labels), n_items),
            )
            counts.sum_duplicates()
            share = sparse.diags(1.0 / np.maximum(buyers, 1)).astype(np.float32) @ counts
            self.group_labels_[kind] = labels
            self.group_scores_[kind] = share.tocsr().astype(np.float32)
            self.group_buyers_[kind] = buyers.astype(np.int64)
        return self

    def score(self, profile) -> np.ndarray:
        """The global bestseller scores for each row of ``profile``."""
        return np.tile(self.scores_, (profile.shape[0], 1))

    def reason(self, kind: str | None = None, label: str | None = None) -> str:
        """The reason text for a list of this model's bestsellers."""
        window = _window_label(self.window_days)
        if kind == "country":
            return f"bestseller in {label} {window}"
        if kind == "segment":
            return f"bestseller among {label} customers {window}"
        return f"bestseller {window}"

    def group_table(self) -> tuple[np.ndarray, list[str], list[str]]:
        """Dense score rows: row 0 everybody, then every qualifying group.

        Returns:
            ``(table, reasons, scopes)``, one reason and scope (``global``, ``segment``,
            ``country``) per row.
        """
        rows, reasons, scopes = [self.scores_], [self.reason()], ["global"]
        self._group_row: dict[str, np.ndarray] = {}
        for kind, labels in self.group_labels_.items():
            row_of_group = np.full(len(labels), -1, dtype=np.int64)
            dense = self.group_scores_[kind].toarray()
            for code, label in enumerate(labels):
                if self.group_buyers_[kind][code] >= self.min_group_customers:
                    row_of_group[code] = len(rows)
                    rows.append(dense[code])
                    reasons.append(self.reason(kind, str(label)))
                    scopes.append(kind)
            self._group_row[kind] = row_of_group
        table = np.vstack(rows).astype(np.float32)
        self._ranking = rank_rows(table)
        return table, reasons, scopes

    def ranking(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`rank_rows` of :meth:`group_table` (row 0: everybody)."""
        if not hasattr(self, "_ranking"):
            self.group_table()
        return self._ranking

    def rows_for(self, customer_ids: pd.Index, groups: CustomerGroups) -> np.ndarray:
        """Row of :meth:`group_table` for each customer: segment, else country, else 0.

        Groups are matched by label, so ``groups`` may come from a newer customer frame
        than the one the model was fitted with.
        """
        if not hasattr(self, "_group_row"):
            self.group_table()
        rows = np.zeros(len(customer_ids), dtype=np.int64)
        for kind in reversed(GROUP_KINDS):  # segment last: it wins over country
            if kind not in self._group_row or kind not in groups.codes:
                continue
            fitted = pd.Index(self.group_labels_[kind])
            to_fitted = fitted.get_indexer(pd.Index(groups.labels[kind]))
            code = groups.lookup(customer_ids, kind)
            fitted_code = np.where(code >= 0, to_fitted[np.maximum(code, 0)], -1)
            row = np.where(fitted_code >= 0, self._group_row[kind][fitted_code], -1)
            rows = np.where(row >= 0, row, rows)
        return rows

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"scores": self.scores_, "n_buyers": np.array([self.n_buyers_])}
        for kind, matrix in self.group_scores_.items():
            out[f"{kind}_labels"] = self.group_labels_[kind]
            out[f"{kind}_buyers"] = self.group_buyers_[kind]
            for part in ("data", "indices", "indptr"):
                out[f"{kind}_{part}"] = getattr(matrix, part)
        return out

    @classmethod
    def from_state(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]):
        model = cls(**config)
        model.scores_ = arrays["scores"]
        model.n_buyers_ = int(arrays["n_buyers"][0])
        model.group_labels_, model.group_scores_, model.group_buyers_ = {}, {}, {}
        for kind in GROUP_KINDS:
            if f"{kind}_labels" not in arrays:
                continue
            labels = arrays[f"{kind}_labels"]
            model.group_labels_[kind] = labels
            model.group_buyers_[kind] = arrays[f"{kind}_buyers"]
            model.group_scores_[kind] = sparse.csr_matrix(
                (arrays[f"{kind}_data"], arrays[f"{kind}_indices"], arrays[f"{kind}_indptr"]),
                shape=(len(labels), len(model.scores_)),
            )
        return model

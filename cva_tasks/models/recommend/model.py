"""The recommender of the pipeline: next-best products and buy-again lists per customer.

Every customer gets two lists:

* ``next_best``: the top ``k`` items they have not bought yet (already-bought items
  are excluded by default), from the chosen model: the bestsellers
  (:mod:`~cva_tasks.models.recommend.popularity`), item-based collaborative filtering
  (:mod:`~cva_tasks.models.recommend.item_knn`) or ALS
  (:mod:`~cva_tasks.models.recommend.als`);
* ``buy_again``: items they bought on at least ``min_purchases`` distinct days,
  ranked by a recency-decayed count of those days
  (:mod:`~cva_tasks.models.recommend.buy_again`).

Trend blend: retail demand moves with the season, which pure co-purchase models
ignore. The next-best scores of item-CF and ALS are scaled per customer to a maximum
of 1 and ``trend_weight`` times the recent bestsellers' scores (last
``recent_window_days``, scaled to a maximum of 1) is added.

Customers with fewer than ``min_items`` distinct bought items (cold start) get the
recent bestsellers of their segment, else of their country, else of everybody (a
group qualifies with at least ``min_group_customers`` buyers in the window). A model
whose own scores run out (item-CF has no co-purchase evidence for some customers)
fills the rest of the list with the recent global bestsellers, with that reason. Each
list names the model that produced it in ``model``.

Customers are scored in chunks (:mod:`~cva_tasks.models.recommend.ranking`), so memory
is bounded however many are scored: :meth:`Recommender.predict_chunks` yields them one
at a time, :meth:`Recommender.predict` unites them. Same inputs and seed give the same
lists.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from scipy import sparse

from cva_tasks.models.recommend.buy_again import BuyAgain, buy_again_lists
from cva_tasks.models.recommend.candidates import MODEL_CLASSES, NextBestModel, make_model
from cva_tasks.models.recommend.lists import (
    LISTS,
    NEXT_BEST,
    chunk_frame,
    concat_recommendations,
    flatten,
)
from cva_tasks.models.recommend.popularity import PopularityRecommender
from cva_tasks.models.recommend.purchases import (
    CustomerGroups,
    PurchaseLog,
    aware_timestamp,
    check_interactions,
    purchase_log,
    training_data,
)
from cva_tasks.models.recommend.ranking import (
    blend_trend,
    chunk_rows,
    mask_excluded,
    top_k,
    top_k_ranked,
)
from cva_tasks.models.untrusted import refuse_unsafe_files

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
NEXT_BEST_CODE = LISTS.index(NEXT_BEST)


def _save_arrays(path: Path, arrays: dict[str, Any]) -> None:
    """``np.savez`` of named arrays (typed ``Any``: numpy's stub would read a key as a flag)."""
    np.savez(path, **arrays)


def _id_array(index: pd.Index) -> np.ndarray:
    if pd.api.types.is_integer_dtype(index.dtype):
        return index.to_numpy(dtype=np.int64)
    return np.asarray(index.astype(str), dtype=str)


def _id_index(values: np.ndarray, name: str) -> pd.Index:
    if values.dtype.kind in "iu":
        return pd.Index(values, dtype="int64", name=name)
    return pd.Index(values.astype(object), dtype="str", name=name)


class Recommender:
    """The next-best model, the cold-start bestsellers and the buy-again list.

    :meth:`fit` one candidate, or let
    :func:`~cva_tasks.models.recommend.train_recommenders` validate every candidate
    and refit the best; score with :meth:`predict`; persist with :meth:`save` /
    :meth:`load`.

    Args:
        model: The model of the ``next_best`` list, one of
            :data:`~cva_tasks.models.recommend.CANDIDATES`.
        seed: Seed of the stochastic models.
        model_params: Overrides of
            :data:`~cva_tasks.models.recommend.candidates.DEFAULT_PARAMS` for ``model``.
        min_items: Customers with fewer distinct bought items get bestsellers.
        trend_weight: Weight of the recent bestsellers added to the per-customer
            scaled next-best scores of item-CF and ALS (0: none).
        recent_window_days: Window of the recent bestsellers used for cold start,
            for filling short lists and as the trend.
        min_group_customers: Buyers a segment/country needs for its own bestsellers.
        buy_again: Settings of the ``buy_again`` list.

    Attributes (set by :meth:`fit` or :meth:`load`):
        next_best: The fitted model of the ``next_best`` list.
        fallback: Recent bestsellers (cold start and filling short lists).
        item_ids: The catalogue (items bought before ``as_of``).
        item_names: Name of each catalogue item.
        groups: Segment/country of the customers known at fit time.
        as_of: End (exclusive) of the training data.
        training: Figures of the fit (lines, customers, seed, seconds).
        metrics: Validation report (set by ``train_recommenders``; empty after a
            plain :meth:`fit`).
    """

    kind: ClassVar[str] = "recommender"

    next_best: NextBestModel
    fallback: PopularityRecommender
    item_ids: pd.Index
    item_names: np.ndarray
    groups: CustomerGroups
    as_of: pd.Timestamp | None
    training: dict[str, Any]
    metrics: dict[str, Any]

    def __init__(
        self,
        model: str = "item_cf",
        *,
        seed: int = 0,
        model_params: dict[str, Any] | None = None,
        min_items: int = 2,
        trend_weight: float = 0.4,
        recent_window_days: int = 14,
        min_group_customers: int = 20,
        buy_again: BuyAgain | None = None,
    ) -> None:
        self.model = model
        self.seed = seed
        self.model_params = model_params
        self.min_items = min_items
        self.trend_weight = trend_weight
        self.recent_window_days = recent_window_days
        self.min_group_customers = min_group_customers
        self.buy_again = buy_again or BuyAgain()

    @property
    def model_name(self) -> str:
        """Name of the model of the ``next_best`` list."""
        return self.next_best.name

    @property
    def params(self) -> dict[str, Any]:
        """Everything that defines this recommender, JSON-able."""
        return {
            "model": self.model_name,
            "model_params": self.next_best.config,
            "fallback": self.fallback.config,
            "min_items": self.min_items,
            "trend_weight": self.trend_weight,
            "buy_again": asdict(self.buy_again),
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "catalogue_items": len(self.item_ids),
            **self.training,
        }

    # -- fitting ----------------------------------------------------------- #

    def fit(
        self,
        interactions: pd.DataFrame,
        items: pd.DataFrame,
        customers: pd.DataFrame | None,
        as_of: datetime | pd.Timestamp,
    ) -> Self:
        """Fit on the purchases before ``as_of`` (no validation); returns self.

        Args:
            interactions: ``customer_id, item_id, quantity, occurred_at`` (UTC) purchase
                lines; lines at or after ``as_of`` are ignored.
            items: ``item_id, name``; every bought item must be there.
            customers: ``customer_id, country`` and optionally ``segment``, or ``None``.
            as_of: End (exclusive) of the training data; recency is measured from it.

        Raises:
            NotEnoughData: no purchase line before ``as_of``.
        """
        started = time.perf_counter()
        purchases, names, groups = training_data(interactions, items, customers, as_of)
        return self.fit_purchases(
            purchases, names, groups, prepared_seconds=time.perf_counter() - started
        )

    def fit_purchases(
        self,
        purchases: PurchaseLog,
        item_names: np.ndarray,
        groups: CustomerGroups,
        *,
        prepared_seconds: float = 0.0,
    ) -> Self:
        """Fit on an encoded purchase log (what :meth:`fit` does once it has encoded one).

        Lets several candidates share one log
        (:func:`~cva_tasks.models.recommend.purchases.training_data`).

        Args:
            purchases: The purchases, on the catalogue of the items sold before its
                ``as_of``.
            item_names: Name of each catalogue item.
            groups: Segment/country of the known customers.
            prepared_seconds: Time spent preparing the log, counted in ``fit_seconds``.
        """
        started = time.perf_counter() - prepared_seconds
        if self.min_items < 1:
            raise ValueError(f"min_items must be at least 1, got {self.min_items}")
        if self.trend_weight < 0:
            raise ValueError(f"trend_weight must be non-negative, got {self.trend_weight}")
        log.info(
            "fitting %s on %d lines of %d customers x %d items before %s",
            self.model,
            len(purchases.item),
            purchases.n_customers,
            purchases.n_items,
            purchases.as_of,
        )
        fallback = PopularityRecommender(self.recent_window_days, self.min_group_customers)
        fallback.fit(purchases, groups)
        next_best = make_model(self.model, seed=self.seed, **(self.model_params or {}))
        if isinstance(next_best, PopularityRecommender):
            next_best.min_group_customers = self.min_group_customers
        next_best.fit(purchases, groups)
        seconds = time.perf_counter() - started
        log.info("fitted %s in %.1f s", self.model, seconds)
        self._set_state(
            next_best,
            fallback,
            purchases.item_ids,
            item_names,
            groups,
            as_of=purchases.as_of,
            training={
                "fit_seconds": round(seconds, 3),
                "lines": len(purchases.item),
                "customers": purchases.n_customers,
                "seed": self.seed,
            },
            metrics={},
        )
        return self

    def _set_state(
        self,
        next_best: NextBestModel,
        fallback: PopularityRecommender,
        item_ids: pd.Index,
        item_names: np.ndarray,
        groups: CustomerGroups,
        *,
        as_of: pd.Timestamp | None,
        training: dict[str, Any],
        metrics: dict[str, Any],
    ) -> None:
        """The learned state, from :meth:`fit_purchases` or :meth:`load`."""
        self.next_best = next_best
        self.fallback = fallback
        self.item_ids = item_ids
        self.item_names = np.asarray(item_names, dtype=object)
        self.groups = groups
        self.as_of = as_of
        self.training = training
        self.metrics = metrics
        self.__dict__.pop("_texts", None)  # the item texts of an earlier fit

    # -- persistence ------------------------------------------------------- #

    def save(self, directory: Path) -> None:
        """Write the recommender into the existing folder ``directory`` (npz + json)."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not an existing folder")
        kind = "popularity" if isinstance(self.next_best, PopularityRecommender) else None
        document = {
            "format_version": FORMAT_VERSION,
            "next_best": {"class": kind or self.next_best.name, "config": self.next_best.config},
            "fallback": self.fallback.config,
            "min_items": self.min_items,
            "trend_weight": self.trend_weight,
            "buy_again": asdict(self.buy_again),
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "training": self.training,
            "metrics": self.metrics,
            "group_kinds": list(self.groups.codes),
        }
        (directory / "recommender.json").write_text(
            json.dumps(document, indent=1, sort_keys=True, default=str)
        )
        np.savez(
            directory / "catalogue.npz",
            item_ids=_id_array(self.item_ids),
            item_names=np.asarray(self.item_names, dtype=str),
        )
        _save_arrays(directory / "next_best.npz", self.next_best.arrays())
        _save_arrays(directory / "fallback.npz", self.fallback.arrays())
        groups = {"customer_ids": _id_array(self.groups.customer_ids)}
        for kind in self.groups.codes:
            groups[f"{kind}_codes"] = self.groups.codes[kind]
            groups[f"{kind}_labels"] = self.groups.labels[kind]
        _save_arrays(directory / "groups.npz", groups)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a recommender written by :meth:`save`.

        The hyper-parameters are those of the saved fit: ``model`` is the fitted
        model's name, ``model_params`` its configuration (without the seed).
        """
        directory = refuse_unsafe_files(Path(directory), cls.kind)
        document = json.loads((directory / "recommender.json").read_text())
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory}: format_version {document.get('format_version')} is not "
                f"{FORMAT_VERSION}"
            )

        def arrays(name: str) -> dict[str, np.ndarray]:
            with np.load(directory / name, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}

        catalogue = arrays("catalogue.npz")
        spec = document["next_best"]
        next_best = MODEL_CLASSES[spec["class"]].from_state(spec["config"], arrays("next_best.npz"))
        fallback = PopularityRecommender.from_state(document["fallback"], arrays("fallback.npz"))
        stored = arrays("groups.npz")
        groups = CustomerGroups(
            _id_index(stored["customer_ids"], "customer_id"),
            {kind: stored[f"{kind}_codes"] for kind in document["group_kinds"]},
            {kind: stored[f"{kind}_labels"] for kind in document["group_kinds"]},
        )
        training = document["training"]
        model = cls(
            next_best.name,
            seed=training.get("seed", 0),
            model_params={k: v for k, v in spec["config"].items() if k != "seed"},
            min_items=document["min_items"],
            trend_weight=document["trend_weight"],
            recent_window_days=fallback.window_days,
            min_group_customers=fallback.min_group_customers,
            buy_again=BuyAgain(**document["buy_again"]),
        )
        model._set_state(
            next_best,
            fallback,
            _id_index(catalogue["item_ids"], "item_id"),
            catalogue["item_names"],
            groups,
            as_of=None if document["as_of"] is None else pd.Timestamp(document["as_of"]),
            training=training,
            metrics=document["metrics"],
        )
        return model

    # -- scoring ----------------------------------------------------------- #

    def predict(
        self,
        customer_ids: Sequence[Any] | pd.Index,
        interactions: pd.DataFrame,
        k: int = 10,
        exclude_bought: bool = True,
        *,
        customers: pd.DataFrame | None = None,
        as_of: datetime | pd.Timestamp | None = None,
        buy_again_k: int | None = None,
        chunk_customers: int | None = None,
    ) -> pd.DataFrame:
        """Recommendations for ``customer_ids`` from their purchases in ``interactions``.

        Grain: one row per customer, list and rank. Columns ``customer_id``, ``list``
        (``next_best`` | ``buy_again``), ``rank`` (1..k), ``item_id``, ``item_name``,
        ``score`` (the model's score; 0 for filler bestsellers; buy-again:
        recency-decayed count of purchase days), ``reason`` and ``model`` (which model
        produced the list: the next-best model's name,
        ``<bestsellers>/<segment|country|global>`` for cold start, ``buy_again``). Text
        columns are categorical. Customers are processed in chunks
        (:meth:`predict_chunks`).

        Args:
            customer_ids: Customers to score (unique); those without purchases get
                bestsellers of their segment/country.
            interactions: Their purchase lines (other customers' lines are ignored,
                items outside the model's catalogue too).
            k: Length of the ``next_best`` list (0: none).
            exclude_bought: Leave out items the customer already bought.
            customers: Current ``customer_id, country[, segment]``, for the cold-start
                groups (default: the customers known at fit time).
            as_of: Recency reference; lines at or after it are ignored. Default: just
                after the latest line in ``interactions``.
            buy_again_k: Length of the ``buy_again`` list (default ``buy_again.k``;
                0: none).
            chunk_customers: Customers per chunk (default: a 64 MiB score block).

        Returns:
            The recommendations, sorted by the order of ``customer_ids``, list and rank.
        """
        return concat_recommendations(
            self.predict_chunks(
                customer_ids,
                interactions,
                k,
                exclude_bought,
                customers=customers,
                as_of=as_of,
                buy_again_k=buy_again_k,
                chunk_customers=chunk_customers,
            )
        )

    def predict_chunks(
        self,
        customer_ids: Sequence[Any] | pd.Index,
        interactions: pd.DataFrame,
        k: int = 10,
        exclude_bought: bool = True,
        *,
        customers: pd.DataFrame | None = None,
        as_of: datetime | pd.Timestamp | None = None,
        buy_again_k: int | None = None,
        chunk_customers: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """:meth:`predict`, one chunk of customers at a time (bounded memory).

        Yields frames with :meth:`predict`'s columns; the categories of the categorical
        columns differ between chunks
        (:func:`~cva_tasks.models.recommend.concat_recommendations` unites them).
        """
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        ids = pd.Index(customer_ids, name="customer_id")
        if ids.has_duplicates:
            raise ValueError(
                f"customer_ids must be unique, repeated: {ids[ids.duplicated()][:3].tolist()}"
            )
        check_interactions(interactions)
        if as_of is None:
            latest = interactions["occurred_at"].max() if len(interactions) else None
            as_of = (latest + pd.Timedelta(microseconds=1)) if latest is not None else self.as_of
        as_of = aware_timestamp(as_of, "as_of")
        purchases = purchase_log(interactions, self.item_ids, as_of, customer_ids=ids, check=False)
        groups = self.groups if customers is None else CustomerGroups.from_frame(customers)
        yield from self.predict_purchases(
            purchases, groups, k, exclude_bought, buy_again_k, chunk_customers
        )

    def predict_purchases(
        self,
        purchases: PurchaseLog,
        groups: CustomerGroups,
        k: int = 10,
        exclude_bought: bool = True,
        buy_again_k: int | None = None,
        chunk_customers: int | None = None,
    ) -> Iterator[pd.DataFrame]:
        """:meth:`predict_chunks` for the customers of an encoded purchase log."""
        buy_again_k = self.buy_again.k if buy_again_k is None else buy_again_k
        if buy_again_k < 0:
            raise ValueError(f"buy_again_k must be non-negative, got {buy_again_k}")
        ids = purchases.customer_ids
        table = self.fallback.group_table()
        group_rows = self.fallback.rows_for(ids, groups)
        step = chunk_rows(len(self.item_ids), chunk_customers)
        started = time.perf_counter()
        for start in range(0, len(ids), step):
            stop = min(start + step, len(ids))
            yield self._recommend_chunk(
                purchases, start, stop, k, exclude_bought, buy_again_k, group_rows, table
            )
            if (start // step) % 20 == 19 or stop == len(ids):
                log.info(
                    "recommended for %d/%d customers (%.0f s)",
                    stop,
                    len(ids),
                    time.perf_counter() - started,
                )

    def _recommend_chunk(
        self,
        purchases: PurchaseLog,
        start: int,
        stop: int,
        k: int,
        exclude_bought: bool,
        buy_again_k: int,
        group_rows: np.ndarray,
        table: tuple[np.ndarray, list[str], list[str]],
    ) -> pd.DataFrame:
        bought = purchases.bought(start, stop)
        warm = np.diff(bought.indptr) >= self.min_items
        parts = []
        if k > 0 and warm.any():
            parts.append(self._warm(purchases, start, stop, warm, bought, k, exclude_bought))
        if k > 0 and (~warm).any():
            parts.append(self._cold(~warm, bought, k, exclude_bought, group_rows, table))
        if buy_again_k > 0:
            parts.append(buy_again_lists(purchases, start, stop, buy_again_k, self.buy_again))
        name_codes, name_categories, _ = self._reason_texts()
        return chunk_frame(
            parts, purchases.customer_ids, start, self.item_ids, name_codes, name_categories
        )

    def _reason_texts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Name codes and categories, and "because you bought <name>" per item (cached)."""
        if not hasattr(self, "_texts"):
            codes, categories = pd.factorize(pd.Series(self.item_names, dtype=object))
            because = np.asarray([f"because you bought {name}" for name in self.item_names])
            self._texts = (codes, np.asarray(categories, dtype=object), because.astype(object))
        return self._texts

    def _warm(self, purchases, start, stop, warm, bought, k, exclude_bought):
        """The ``next_best`` lists of the customers ``warm`` of the chunk, by the model."""
        rows = np.flatnonzero(warm)
        excluded = bought[rows] if exclude_bought else None
        if isinstance(self.next_best, PopularityRecommender):
            # Everybody shares one ranking: no dense block of scores needed.
            ranking = self.next_best.ranking()
            items, values = top_k_ranked(ranking, np.zeros(len(rows), np.int64), excluded, k)
            reasons = np.full(items.shape, self.next_best.reason(), dtype=object)
            return flatten(rows, items, values, reasons, self.model_name, NEXT_BEST_CODE)
        profile = purchases.matrix(self.next_best.profile_weighting, start, stop)[rows]
        scores = self.next_best.score(profile)
        if self.trend_weight > 0:
            blend_trend(scores, self.fallback.scores_, self.trend_weight)
        mask_excluded(scores, excluded)
        items, values = top_k(scores, k)
        del scores
        explained = self.next_best.explain(profile, items)
        reasons = np.full(items.shape, self.fallback.reason(), dtype=object)
        has = explained >= 0
        reasons[has] = self._reason_texts()[2][explained[has]]
        # Positions the model has no evidence for get the recent bestsellers.
        short = (values <= 0).any(axis=1)
        if short.any():
            kept = items[short]
            keep_mask = values[short] > 0
            n_short = len(kept)
            taken = sparse.csr_matrix(
                (
                    np.ones(int(keep_mask.sum()), dtype=np.int8),
                    (np.repeat(np.arange(n_short), keep_mask.sum(axis=1)), kept[keep_mask]),
                ),
                shape=(n_short, len(self.item_ids)),
            )
            if excluded is not None:
                taken = taken + excluded[short]
            taken.sum_duplicates()
            taken.sort_indices()
            fill_items, _ = top_k_ranked(
                self.fallback.ranking(), np.zeros(n_short, np.int64), taken, k
            )
            n_kept = keep_mask.sum(axis=1)
            slot = np.arange(k)[None, :] - n_kept[:, None]
            from_fill = slot >= 0
            take = np.take_along_axis(fill_items, np.maximum(slot, 0), axis=1)
            items[short] = np.where(from_fill, take, kept)
            values[short] = np.where(from_fill, 0, values[short])
            short_reasons = reasons[short]
            short_reasons[from_fill] = self.fallback.reason()
            reasons[short] = short_reasons
            values[items < 0] = -np.inf
        return flatten(rows, items, values, reasons, self.model_name, NEXT_BEST_CODE)

    def _cold(self, cold, bought, k, exclude_bought, group_rows, table):
        """The ``next_best`` lists of the customers ``cold``: their group's bestsellers."""
        rows = np.flatnonzero(cold)
        _, table_reasons, scopes = table
        which = group_rows[rows]
        items, values = top_k_ranked(
            self.fallback.ranking(), which, bought[rows] if exclude_bought else None, k
        )
        reasons = np.broadcast_to(
            np.asarray(table_reasons, dtype=object)[which][:, None], items.shape
        ).copy()
        labels = np.asarray([f"{self.fallback.name}/{scope}" for scope in scopes], dtype=object)
        return flatten(rows, items, values, reasons, labels[which], NEXT_BEST_CODE)

"""The output of the recommender: its lists and columns, chunk frames and their union.

Grain: one row per customer, list and rank (see
:meth:`cva_tasks.models.recommend.Recommender.predict`). While scoring, each part of a
chunk (warm, cold, buy-again) is a dict of flat arrays (:func:`flatten`);
:func:`chunk_frame` sorts and names them. Text columns are categorical to stay small
at a million customers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

NEXT_BEST = "next_best"
BUY_AGAIN = "buy_again"
#: The lists, in the order of their codes in the flat arrays.
LISTS = (NEXT_BEST, BUY_AGAIN)
OUTPUT_COLUMNS = ("customer_id", "list", "rank", "item_id", "item_name", "score", "reason", "model")
_PART_COLUMNS = ("row", "list", "rank", "item", "score", "reason")


def flatten(rows, items, values, reasons, models, list_code) -> dict[str, np.ndarray]:
    """``(rows, k)`` blocks of items, scores and reasons as flat arrays, empty slots left out.

    Args:
        rows: Position of each block row within the chunk.
        items: ``(rows, k)`` item codes (-1: no item).
        values: ``(rows, k)`` scores.
        reasons: ``(rows, k)`` reason texts.
        models: The model name of each row (or one for all).
        list_code: Position of the list in :data:`LISTS`.
    """
    n, k = items.shape
    present = items >= 0
    return {
        "row": np.repeat(rows, k).reshape(n, k)[present],
        "list": np.full(int(present.sum()), list_code, dtype=np.int8),
        "rank": np.broadcast_to(np.arange(1, k + 1), (n, k))[present],
        "item": items[present],
        "score": values[present],
        "reason": reasons[present],
        "model": np.broadcast_to(np.asarray(models, dtype=object).reshape(-1, 1), (n, k))[present],
    }


def chunk_frame(
    parts: Sequence[dict[str, np.ndarray]],
    customer_ids: pd.Index,
    start: int,
    item_ids: pd.Index,
    name_codes: np.ndarray,
    name_categories: np.ndarray,
) -> pd.DataFrame:
    """The output rows of one chunk, sorted by customer, list and rank.

    Args:
        parts: Flat arrays of the chunk (:func:`flatten`); ``row`` counts from ``start``.
        customer_ids: All the customers scored.
        start: Position of the chunk's first customer in ``customer_ids``.
        item_ids: The catalogue (``item`` indexes it).
        name_codes: Per catalogue item, the code of its name in ``name_categories``.
        name_categories: The distinct item names.
    """
    if parts:
        merged = {c: np.concatenate([p[c] for p in parts]) for c in _PART_COLUMNS}
    else:
        merged = {
            c: np.zeros(0, dtype=object if c == "reason" else np.int64) for c in _PART_COLUMNS
        }
    models = np.concatenate([p["model"] for p in parts]) if parts else np.zeros(0, object)
    order = np.lexsort((merged["rank"], merged["list"], merged["row"]))
    rows = merged["row"][order]
    item = merged["item"][order]
    return pd.DataFrame(
        {
            "customer_id": customer_ids[start + rows],
            "list": pd.Categorical.from_codes(merged["list"][order], categories=list(LISTS)),
            "rank": merged["rank"][order].astype(np.int16),
            "item_id": item_ids[item],
            "item_name": pd.Categorical.from_codes(name_codes[item], categories=name_categories),
            "score": merged["score"][order].astype(np.float64),
            "reason": pd.Categorical(merged["reason"][order]),
            "model": pd.Categorical(models[order]),
        }
    )


def concat_recommendations(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate chunk frames, keeping the categorical columns categorical."""
    from pandas.api.types import union_categoricals

    chunks = list(frames)
    if not chunks:
        return _empty_output()
    out = {}
    for column in OUTPUT_COLUMNS:
        if isinstance(chunks[0][column].dtype, pd.CategoricalDtype) and column != "list":
            out[column] = union_categoricals([f[column] for f in chunks], sort_categories=True)
        else:
            out[column] = pd.concat([f[column] for f in chunks], ignore_index=True)
    return pd.DataFrame({c: pd.Series(v).reset_index(drop=True) for c, v in out.items()})


def _empty_output() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTPUT_COLUMNS})

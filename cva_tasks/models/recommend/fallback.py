"""The last resort: recent bestsellers for customers no recommender gives a list.

Used when the recommender declined to train (not enough data, so there is no
champion yet) and for any active customer the champion leaves without a
``next_best`` list. Marketing then still gets a list per active customer (model
``bestseller``) instead of none. Items are ranked by how many customers bought them
in the last ``window_days`` before the as-of instant (all history if nobody bought
in that window), ties by item id, so a rerun gives the same rows; items a customer
already bought are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

MODEL_NAME = "bestseller"
WINDOW_DAYS = 30
CHUNK_CUSTOMERS = 20_000


def bestseller_lists(
    customer_ids: Sequence[Any],
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    as_of: datetime,
    k: int = 10,
    window_days: int = WINDOW_DAYS,
) -> pd.DataFrame:
    """``next_best`` lists of the recent bestsellers for ``customer_ids``.

    Args:
        customer_ids: Customers to give a list (unique).
        interactions: Purchase lines (``customer_id``, ``item_id``, ``occurred_at``);
            lines at or after ``as_of`` are ignored.
        items: ``item_id`` and ``name`` (an item without a name shows its id).
        as_of: The instant the lists are for.
        k: Length of each list.
        window_days: Days before ``as_of`` whose buyers count.

    Returns:
        One row per customer and rank: ``customer_id``, ``list`` (``next_best``),
        ``rank`` (1..k), ``item_id``, ``item_name``, ``score`` (share of the window's
        buyers who bought the item), ``reason`` and ``model`` (``bestseller``).
        Empty when there are no purchase lines before ``as_of``.
    """
    import pandas as pd

    columns = ["customer_id", "list", "rank", "item_id", "item_name", "score", "reason", "model"]
    as_of_ts = pd.Timestamp(as_of)
    lines = interactions.loc[interactions["occurred_at"] < as_of_ts, ["customer_id", "item_id"]]
    if lines.empty or not len(customer_ids) or k < 1:
        return pd.DataFrame(columns=columns)
    recent = interactions.loc[
        (interactions["occurred_at"] < as_of_ts)
        & (interactions["occurred_at"] >= as_of_ts - timedelta(days=window_days)),
        ["customer_id", "item_id"],
    ]
    period = f"in the last {window_days} days"
    if recent.empty:
        recent, period = lines, "of all time"
    pairs = recent.drop_duplicates()
    buyers = pairs["customer_id"].nunique()
    counts = pairs.groupby("item_id").size().rename("buyers").reset_index()
    counts["item_id"] = counts["item_id"].astype(str)
    counts = counts.sort_values(["buyers", "item_id"], ascending=[False, True], kind="stable")
    wanted = pd.DataFrame({"customer_id": pd.Index(customer_ids).astype(str)})
    bought = lines.assign(
        customer_id=lines["customer_id"].astype(str), item_id=lines["item_id"].astype(str)
    ).drop_duplicates()
    bought = bought[bought["customer_id"].isin(wanted["customer_id"])]
    # Customers x candidates is materialised: in chunks, so a big shop without a
    # recommender (not in CVA_MODELS) stays within memory.
    chunks = []
    for start in range(0, len(wanted), CHUNK_CUSTOMERS):
        chunk = wanted.iloc[start : start + CHUNK_CUSTOMERS]
        seen = bought[bought["customer_id"].isin(chunk["customer_id"])]
        # A customer can only have bought this many of the candidates: take that many more.
        most_bought = int(seen.groupby("customer_id").size().max()) if len(seen) else 0
        candidates = counts.head(k + most_bought).reset_index(drop=True)
        candidates["order"] = range(len(candidates))
        chunk_rows = chunk.merge(candidates, how="cross")
        chunk_rows = chunk_rows.merge(
            seen.assign(seen=True), on=["customer_id", "item_id"], how="left"
        )
        chunk_rows = chunk_rows[chunk_rows["seen"].isna()].sort_values(
            ["customer_id", "order"], kind="stable"
        )
        chunk_rows["rank"] = chunk_rows.groupby("customer_id").cumcount() + 1
        chunks.append(chunk_rows[chunk_rows["rank"] <= k])
    rows = pd.concat(chunks, ignore_index=True)
    names = items.assign(item_id=items["item_id"].astype(str)).set_index("item_id")["name"]
    rows["item_name"] = rows["item_id"].map(names).fillna(rows["item_id"])
    rows["score"] = rows["buyers"] / buyers
    rows["reason"] = [f"bestseller: bought by {n:,} customers {period}" for n in rows["buyers"]]
    order = {c: i for i, c in enumerate(wanted["customer_id"])}
    rows = rows.assign(list="next_best", model=MODEL_NAME, position=rows["customer_id"].map(order))
    rows = rows.sort_values(["position", "rank"], kind="stable")
    return rows[columns].reset_index(drop=True)

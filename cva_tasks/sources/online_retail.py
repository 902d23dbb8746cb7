"""Invoice-line exports shaped like the UCI "Online Retail" file.

Columns ``InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
CustomerID, Country``; one file or a folder of ``*.csv`` / ``*.csv.gz`` exports
(``CVA_ONLINE_RETAIL_PATH``, default the shared evaluation copy). Rows are
picked by ``InvoiceDate`` (read as UTC) inside the interval.

Every quirk of the real export is mapped or rejected on purpose; a rejected row
goes to quarantine with its reason and does not count against the failing-share
threshold, because it is expected, not a defect of the day's data:

* ``InvoiceNo`` starting with ``C``: a cancellation (kind ``cancellation``,
  negative quantity kept); a ``C`` line with a positive quantity is rejected.
* no ``CustomerID`` (guest checkout): rejected, it cannot be attributed.
* non-product ``StockCode`` (postage, fees, manual lines, samples): kept with
  ``is_product = False`` so revenue stays complete while product models skip it.
* ``UnitPrice`` 0 (free items, stock corrections): rejected; negative prices
  (bad-debt adjustments): left to the suite, which quarantines them.
* a negative quantity outside a cancellation (stock write-off): rejected.
* exact duplicate lines: the first is kept, the repeats rejected.
* a date, quantity, price or customer id that does not parse: the line is invalid
  (quarantined with the value and its file and line; it counts against the threshold).

``transaction_id`` is ``<InvoiceNo>-<line position in the invoice>``, counted
before anything is dropped, so ids are stable across reruns.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from cva_tasks.sources.base import FileEntity, Interval, Source
from cva_tasks.sources.canonical import INVALID, REJECTED, first_reason, id_text, unparsed
from cva_tasks.sources.readers import read_csv_text
from cva_tasks.sources.timestamps import utc

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
NON_PRODUCT_CODES = frozenset(
    {"POST", "D", "M", "m", "DOT", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "B", "C2"}
)


def invoice_lines(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Typed invoice lines of the window, with ``transaction_id`` and the reasons.

    Grain: one row per line of the export whose ``InvoiceDate`` is in the interval
    (with its lookback). A value that does not parse marks its line invalid
    (``invalid_reason``). A line whose date does not parse belongs to the day of the
    line before it in the export (an export is in time order; the first lines take
    the next date), so that it is quarantined once, on one day.
    """
    import numpy as np
    import pandas as pd

    occurred = utc(frame["InvoiceDate"])
    quantity = pd.to_numeric(frame["Quantity"], errors="coerce")
    whole = quantity.where(quantity % 1 == 0)
    unit_price = pd.to_numeric(frame["UnitPrice"], errors="coerce")
    customer = pd.to_numeric(frame["CustomerID"], errors="coerce")
    lines = frame.assign(
        occurred_at=occurred,
        quantity=whole.astype("Int64"),
        unit_price=unit_price,
        customer_id=id_text(customer),
    )
    lines[INVALID] = first_reason(
        unparsed(frame["InvoiceDate"], occurred, "InvoiceDate", "a timestamp"),
        unparsed(frame["Quantity"], whole, "Quantity", "a whole number"),
        unparsed(frame["UnitPrice"], unit_price, "UnitPrice", "a number"),
        unparsed(frame["CustomerID"], customer, "CustomerID", "a number"),
    )
    lines["line_number"] = lines.groupby("InvoiceNo", sort=False).cumcount() + 1
    lines = lines.loc[interval.in_window(occurred.ffill().bfill())].copy()

    is_cancellation = lines["InvoiceNo"].str.startswith("C").fillna(False)
    duplicate = lines.duplicated(subset=list(COLUMNS), keep="first")
    reasons = [
        (duplicate, "exact duplicate of an earlier line"),
        (lines["customer_id"].isna(), "guest line without CustomerID"),
        (lines["unit_price"] == 0, "zero unit price (free item or stock correction)"),
        (is_cancellation & (lines["quantity"] > 0), "cancellation with a positive quantity"),
        (~is_cancellation & (lines["quantity"] < 0), "negative quantity outside a cancellation"),
    ]
    reason = pd.Series(None, index=lines.index, dtype="object")
    for mask, text in reversed(reasons):  # the first matching reason wins
        reason = reason.mask(mask.fillna(False).astype(bool), text)
    lines[REJECTED] = reason
    lines["is_cancellation"] = is_cancellation
    lines["is_product"] = ~(
        lines["StockCode"].isin(NON_PRODUCT_CODES)
        | lines["StockCode"].str.startswith("gift_").fillna(False)
    )
    lines["kind"] = np.where(is_cancellation, "cancellation", "purchase")
    return lines


def transactions(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Invoice lines -> canonical transactions (one row per invoice line)."""
    lines = invoice_lines(frame, interval)
    return lines.assign(
        transaction_id=lines["InvoiceNo"] + "-" + lines["line_number"].astype("string"),
        order_id=lines["InvoiceNo"],
        item_id=lines["StockCode"],
        updated_at=lines["occurred_at"],
    )


def customers(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Customers seen in the interval -> canonical customers (one row per customer).

    The export holds no PII and no signup date: ``email``, ``full_name`` and
    ``signup_at`` stay null; ``country`` is the one on their latest line.
    """
    import pandas as pd

    lines = invoice_lines(frame, interval)
    lines = lines.loc[lines["customer_id"].notna() & lines[INVALID].isna()].sort_values(
        "occurred_at", kind="stable"
    )
    latest = lines.groupby("customer_id", sort=True).agg(
        country=("Country", "last"), updated_at=("occurred_at", "max")
    )
    out = latest.reset_index()
    return out.assign(
        email=pd.Series(None, index=out.index, dtype="string"),
        full_name=pd.Series(None, index=out.index, dtype="string"),
        signup_at=pd.Series(pd.NaT, index=out.index, dtype="datetime64[us, UTC]"),
    )


def items(frame: pd.DataFrame, interval: Interval) -> pd.DataFrame:
    """Stock codes sold in the interval -> canonical items (one row per code).

    ``name`` is the code's most frequent description of the day, ``unit_price``
    its median positive price; the export has no categories.
    """
    import pandas as pd

    lines = invoice_lines(frame, interval)
    sold = lines.loc[(lines["unit_price"] > 0) & lines[INVALID].isna()]
    grouped = sold.groupby("StockCode", sort=True)
    out = pd.DataFrame(
        {
            "name": grouped["Description"].agg(
                lambda s: s.mode().iloc[0] if s.notna().any() else None
            ),
            "unit_price": grouped["unit_price"].median(),
            "updated_at": grouped["occurred_at"].max(),
        }
    ).reset_index(names="item_id")
    return out.assign(category=pd.Series(None, index=out.index, dtype="string"))


def _entity(name: str, mapper) -> FileEntity:
    return FileEntity(
        entity=name,
        suite=f"online_retail.{name}",
        pattern="*.csv*",
        reader=read_csv_text,
        required_columns=COLUMNS,
        to_canonical=mapper,
    )


SOURCE = Source(
    name="online_retail",
    description="Invoice-line exports shaped like UCI Online Retail",
    location_env="CVA_ONLINE_RETAIL_PATH",
    default_location="{project}/../shared/data/online_retail",
    start_date=date(2010, 12, 1),
    end_date=date(2011, 12, 9),
    # A fixed export: nothing arrives late, and its customers and items are summed up
    # from the day's lines (CVA_EXTRACT_LOOKBACK_HOURS_ONLINE_RETAIL for a live folder).
    lookback_hours=0,
    entities=(
        _entity("transactions", transactions),
        _entity("customers", customers),
        _entity("items", items),
    ),
    tags=("invoice-lines",),
)

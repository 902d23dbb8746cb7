"""The UCI Online Retail export as a staged lake, for the real-data evaluations.

The evaluations must judge the models on what the pipeline would really see, so
the export goes through the project's own ``online_retail`` source mapping (every
quirk mapped or rejected as documented in :mod:`cva_tasks.sources.online_retail`;
rejected rows and negative prices, which the suite quarantines, are dropped) and is
staged one partition per day, exactly as the daily DAG would have staged it. Then
:func:`cva_tasks.features.customer.build_customer_features` gives point-in-time
features for any as-of date and :mod:`cva_tasks.features.history` the orders and
purchase lines, with the production rules.

Mapping per day instead of through 305 DAG runs skips only the quality gates,
whose row-level rules are the rejections applied here.

The lake is built once per export and mapping code (keyed by the files' size and
modification time and the source of the modules that shape it) under
``$CVA_CACHE_DIR`` (default ``~/.cache/cva``): one to two minutes here, then reused
by every evaluation and test process. It is built in a temporary folder and renamed
into place, so processes racing to build it never see half a lake.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cva_tasks.days import as_of_instant, utc_midnight

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

COMPLETE_MARKER = "_COMPLETE"


def export_files(export: str | Path | None = None) -> list[Path]:
    """The export file(s): ``export``, else the ``online_retail`` source's location.

    Raises:
        FileNotFoundError: naming the location when it holds no ``*.csv*`` file.
    """
    from cva_tasks.settings import Settings
    from cva_tasks.sources.online_retail import SOURCE

    location = Path(export) if export else Path(SOURCE.location(Settings.from_env()))
    files = [location] if location.is_file() else sorted(location.glob("*.csv*"))
    if not files:
        raise FileNotFoundError(
            f"online_retail: no export at {location} (set CVA_ONLINE_RETAIL_PATH or "
            "put ../shared/data/online_retail beside the project)"
        )
    return files


def _digest(files: list[Path]) -> str:
    from cva_tasks import entities, staging
    from cva_tasks.sources import canonical, online_retail

    stamp = "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    code = "".join(
        Path(path).read_text()
        for path in (
            online_retail.__file__,
            canonical.__file__,
            staging.__file__,
            entities.__file__,
            __file__,
        )
    )
    return hashlib.sha256((stamp + code).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    """``$CVA_CACHE_DIR``, default ``~/.cache/cva``: derived data that is safe to delete."""
    from cva_tasks.settings import Settings

    return Settings.from_env().cache_dir


def read_export(export: str | Path | None = None) -> pd.DataFrame:
    """Every line of the export, all columns as text (as the source's extract reads it)."""
    import pandas as pd

    return pd.concat([_read(f) for f in export_files(export)], ignore_index=True)


def staged_lake(root: str | Path | None = None, export: str | Path | None = None) -> str:
    """Stage the whole export into a lake (once) and return the lake root.

    Args:
        root: Local folder of the lake; default ``<cache_dir()>/online_retail-<digest>``.
        export: Export file or folder; default the ``online_retail`` source's location.

    Returns:
        The root, holding ``staged/{transactions,customers,items,feedback}/ds=...`` for
        every day from the first to the last invoice day (empty partitions on days
        without invoices; feedback is always empty).
    """
    files = export_files(export)
    target = Path(root) if root else cache_dir() / f"online_retail-{_digest(files)}"
    if (target / COMPLETE_MARKER).exists():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        _build(str(building), files)
        try:
            building.rename(target)
        except OSError:  # another process finished first: keep its lake
            if not (target / COMPLETE_MARKER).exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return str(target)


def _build(root: str, files: list[Path]) -> None:
    import pandas as pd

    from cva_tasks import staging, storage
    from cva_tasks.lake import Lake
    from cva_tasks.sources import online_retail
    from cva_tasks.sources.base import Interval
    from cva_tasks.sources.canonical import REJECTED, to_table

    lake = Lake(root)
    marker = lake.file(COMPLETE_MARKER)

    started = time.perf_counter()
    frame = pd.concat([_read(f) for f in files], ignore_index=True)
    occurred = online_retail.utc(frame["InvoiceDate"])
    first, last = occurred.min().date(), occurred.max().date()
    whole = Interval(utc_midnight(first), as_of_instant(last))
    mapped = online_retail.transactions(frame, whole)
    kept = mapped[mapped[REJECTED].isna() & (mapped["unit_price"] > 0)]
    log.info(
        "online_retail: %d of %d lines kept after the source's rejections (%.1f s)",
        len(kept),
        len(frame),
        time.perf_counter() - started,
    )
    tx_day = kept["occurred_at"].dt.date
    raw_day = occurred.dt.date
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    tx_by_day = dict(tuple(kept.groupby(tx_day, sort=True)))
    raw_by_day = dict(tuple(frame.groupby(raw_day, sort=True)))
    empty_raw = frame.iloc[0:0]
    for number, day in enumerate(days, start=1):
        interval = Interval.for_day(day)
        raw = raw_by_day.get(day, empty_raw)
        tables = {
            "transactions": to_table(
                tx_by_day.get(day, kept.iloc[0:0]), "transactions", "online_retail.transactions"
            ),
            "customers": to_table(
                online_retail.customers(raw, interval), "customers", "online_retail.customers"
            ),
            "items": to_table(online_retail.items(raw, interval), "items", "online_retail.items"),
        }
        for entity in ("transactions", "customers", "items", "feedback"):
            sources = {"online_retail": tables[entity]} if entity in tables else {}
            storage.replace_partition(
                staging.stage_tables(entity, sources),
                lake.staged(entity, day),
            )
        if number % 50 == 0 or number == len(days):
            log.info(
                "online_retail: staged %d of %d days (%.1f s)",
                number,
                len(days),
                time.perf_counter() - started,
            )
    storage.write_json({"files": [str(f) for f in files], "days": len(days)}, marker)


def _read(path: Path) -> pd.DataFrame:
    from cva_tasks.sources.readers import read_csv_text

    return read_csv_text(str(path))


def features_as_of(day: date, lake: str) -> pd.DataFrame:
    """Customer features as of the end of ``day - 1``, i.e. using only events before ``day``.

    ``day`` is the as-of *date* of the evaluation protocols ("features as of
    2011-06-01" means everything before 2011-06-01 00:00 UTC).
    """
    from cva_tasks.features.customer import build_customer_features

    return build_customer_features(utc_midnight(day), lake).to_pandas()


def purchase_lines(export: str | Path | None = None) -> pd.DataFrame:
    """Every product purchase line of a counted order in the export, with item name and country.

    Grain: one row per invoice line kept by the source mapping. Columns
    ``customer_id, source, order_id, item_id, item_name, quantity, amount,
    occurred_at, country`` (the customer's latest country).
    """
    from cva_tasks.features.history import purchase_lines as lines_as_of
    from cva_tasks.features.history import visible_rows

    lake = staged_lake(export=export)
    end = utc_midnight(date(9999, 1, 1))
    lines = lines_as_of(end, lake)
    countries = visible_rows("customers", end, lake)[["customer_id", "country"]]
    return lines.merge(countries, on="customer_id", how="left", validate="many_to_one")

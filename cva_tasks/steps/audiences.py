"""Daily DAG step ``audiences``: evaluate the named audiences and publish them.

Runs after ``publish``. Reads the day's ``scores/customer_scores`` and
``scores/customer_recommendations`` from the lake (what ``publish`` has just loaded),
applies the definitions of ``CVA_AUDIENCES`` (:mod:`cva_tasks.audiences`) and writes
the export ``exports/audiences/ds=.../<audience>.parquet`` (one file per audience,
swapped in whole) and the warehouse tables ``audience_members`` and
``audience_sizes`` (each day replaced in one transaction). The definitions are checked
whole before anything is written, so a bad file changes nothing; a rerun of the day
gives the same rows.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from cva_tasks import storage
from cva_tasks.days import as_day
from cva_tasks.settings import Settings

log = logging.getLogger(__name__)


def publish_audiences(ds: date | datetime | str, run_id: str) -> dict[str, Any]:
    """Evaluate every audience on the day's scores; export and load it.

    Returns:
        ``sizes`` (customers per audience), the export folder and the warehouse.

    Raises:
        AudienceDefinitionError: the definitions file is unusable (names the file,
            audience and rule); nothing is written.
        FileNotFoundError: the day has no scores (``score`` has not run for it).
    """
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from cva_tasks.audiences.definitions import load_audiences
    from cva_tasks.audiences.evaluation import audience_members, audience_sizes
    from cva_tasks.warehouse import get_warehouse
    from cva_tasks.warehouse.schema import TABLES

    ds = as_day(ds)
    settings = Settings.from_env()
    audiences = load_audiences(settings.audiences)
    lake = settings.lake
    scores_uri = lake.scores("customer_scores", ds)
    if not storage.exists(scores_uri):
        raise FileNotFoundError(
            f"audiences for {ds}: no customer scores at {scores_uri}; "
            "run the day's score task first"
        )
    scores = storage.read_table(scores_uri).to_pandas()
    recommendations_uri = lake.scores("customer_recommendations", ds)
    recommendations = (
        storage.read_table(recommendations_uri).to_pandas()
        if storage.exists(recommendations_uri)
        else pd.DataFrame(columns=["customer_id", "list", "rank", "item_id", "item_name"])
    )
    members = audience_members(audiences, scores, recommendations).assign(as_of_date=ds)
    sizes = audience_sizes(audiences, members).assign(as_of_date=ds)
    member_spec, size_spec = TABLES["audience_members"], TABLES["audience_sizes"]
    member_rows = member_spec.table_from_frame(members)
    size_rows = size_spec.table_from_frame(sizes)

    def write_exports(fs: Any, folder: str) -> None:
        for audience in audiences:
            rows = member_rows.filter(pc.equal(member_rows["audience"], audience.name))
            with fs.open(f"{folder}/{audience.name}.parquet", "wb") as handle:
                pq.write_table(rows, handle, compression="zstd")

    export = lake.audience_exports(ds)
    storage.replace_folder(export, write_exports)
    warehouse = get_warehouse()
    loaded = {
        "audience_members": warehouse.replace_partition(
            "audience_members", member_rows, ds, run_id
        ),
        "audience_sizes": warehouse.replace_partition("audience_sizes", size_rows, ds, run_id),
    }
    counts = {a.name: int(n) for a, n in zip(audiences, sizes["customers"], strict=True)}
    log.info("audiences for ds=%s: %s (export %s)", ds, counts, export)
    return {"sizes": counts, "rows": loaded, "export": export, "warehouse": warehouse.location}

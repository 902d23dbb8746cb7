"""``cva forget CUSTOMER_ID...``: erase customers from the lake and the warehouse.

In this order:

1. the erasure register (``privacy/erased.json``) gets the ids' hashes first, so a
   staging run that starts meanwhile, or any later restaging, drops them too;
2. ``raw/`` and ``quarantine/`` of every registered source (the source's own ids);
3. ``staged/``, ``features/``, ``scores/`` and ``shards/`` (pseudonyms when ``CVA_PSEUDONYMISE_KEY``
   is set, and the plain ids, in case days were staged before the key was);
4. every warehouse table with a ``customer_id`` column, in one transaction.

Each partition that holds one of the customers is rewritten with the lake's atomic
partition swap, under its writer lock; partitions without them are not touched. A rerun
finds nothing left and removes nothing. What is not touched (Data Docs and ``dq/``
results already written, trained model files, backups) is listed in docs/privacy.md.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.entities import SCHEMAS
from cva_tasks.lake import STAGED_INPUTS_FILE, Lake
from cva_tasks.privacy.pseudonyms import pseudonym
from cva_tasks.privacy.register import add_to_register
from cva_tasks.shards import shard_folders

if TYPE_CHECKING:
    import pyarrow as pa

    from cva_tasks.settings import Settings
    from cva_tasks.warehouse.backends import Warehouse

log = logging.getLogger(__name__)

CUSTOMER_ID = "customer_id"
CUSTOMER_ENTITIES = tuple(e for e, schema in SCHEMAS.items() if CUSTOMER_ID in schema.names)


def _without(ids: Collection[str]) -> Callable[[pa.Table], pa.Table]:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(sorted(ids), type=pa.string())

    def keep(table: pa.Table) -> pa.Table:
        hit = pc.is_in(table[CUSTOMER_ID].cast(pa.string()), value_set=values)
        return table.filter(pc.invert(hit.fill_null(False)))

    return keep


def _holds(partition: str, ids: Collection[str]) -> bool:
    """Whether a partition has a customer id column holding one of ``ids``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        table = storage.read_table(partition, columns=[CUSTOMER_ID])
    except pa.ArrowInvalid:  # a table without customers (segment profiles, topics)
        return False
    values = pa.array(sorted(ids), type=pa.string())
    return bool(pc.any(pc.is_in(table[CUSTOMER_ID].cast(pa.string()), value_set=values)).as_py())


def _erase_folder(
    folder: str,
    ids: Collection[str],
    sidecars: Callable[[Any], Callable[[dict[str, Any]], dict[str, Any]] | None] | None = None,
) -> int:
    """Rows of ``ids`` removed from every day partition under ``folder``."""
    removed = 0
    for day in storage.list_partitions(folder):
        partition = f"{folder.rstrip('/')}/ds={day.isoformat()}"
        if not _holds(partition, ids):
            continue
        before, after = storage.rewrite_partition(
            partition, _without(ids), sidecars(day) if sidecars else None
        )
        removed += before - after
    return removed


def forget(
    customer_ids: Sequence[str], settings: Settings, warehouse: Warehouse | None = None
) -> dict[str, Any]:
    """Erase ``customer_ids`` (the sources' ids) everywhere; see the module docstring.

    Args:
        warehouse: default: the one the ``cva_warehouse`` connection names.

    Returns:
        ``{"customers", "registered", "removed"}``: how many ids, how many were new in
        the register, and rows removed per ``zone/name`` (``raw/demo_shop/customers``,
        ``warehouse/customer_scores``, ...).
    """
    from cva_tasks.sources.registry import all_sources

    ids = sorted({str(i).strip() for i in customer_ids if str(i).strip()})
    if not ids:
        raise ValueError("no customer id given")
    lake = settings.lake
    derived = set(ids)
    if settings.pseudonymise_key:
        derived |= {pseudonym(i, settings.pseudonymise_key) for i in ids}

    registered = add_to_register(lake, ids)
    removed: dict[str, int] = {}
    for source in all_sources(settings.source_modules):
        for spec in source.entities:
            if spec.entity not in CUSTOMER_ENTITIES:
                continue
            for zone, folder in (
                ("raw", lake.raw(source.name, spec.entity)),
                ("quarantine", lake.quarantine(source.name, spec.entity)),
            ):
                removed[f"{zone}/{source.name}/{spec.entity}"] = _erase_folder(folder, ids)
    for entity in CUSTOMER_ENTITIES:
        removed[f"staged/{entity}"] = _erase_folder(
            lake.staged(entity), derived, partial(_inputs_now, lake, entity)
        )
    for zone, root, folder_of in (
        ("features", lake.features_root(), lake.features),
        ("scores", lake.scores_root(), lake.scores),
    ):
        for name in storage.list_folders(root):
            removed[f"{zone}/{name}"] = _erase_folder(folder_of(name), derived)
    # The parts of sharded scoring (cva_tasks.shards) hold the same rows until a
    # publish with another shard count removes them.
    for folder in shard_folders(lake):
        removed[folder[len(lake.root) + 1 :]] = _erase_folder(folder, derived)

    if warehouse is None:
        from cva_tasks.warehouse.backends import get_warehouse

        warehouse = get_warehouse(auto_migrate=False, verify_schema=False)
    from cva_tasks.warehouse.erasure import erase_customers

    for table, rows in erase_customers(warehouse, derived).items():
        removed[f"warehouse/{table}"] = rows
    log.info(
        "forgot %d customer(s): %d rows removed (%s)",
        len(ids),
        sum(removed.values()),
        ", ".join(f"{k}: {v}" for k, v in removed.items() if v) or "none left",
    )
    return {"customers": len(ids), "registered": len(registered), "removed": removed}


def _inputs_now(lake: Lake, entity: str, day) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The staged record with the fingerprints of the raw partitions as rewritten: the
    staging check then finds the day up to date instead of restaging it."""

    def update(documents: dict[str, Any]) -> dict[str, Any]:
        record = documents.get(STAGED_INPUTS_FILE)
        if record is None:
            return documents
        inputs = {
            name: storage.partition_fingerprint(lake.raw(name, entity, day))
            for name in record.get("inputs", {})
            if storage.exists(lake.raw(name, entity, day))
        }
        return {**documents, STAGED_INPUTS_FILE: {**record, "inputs": inputs}}

    return update


# --- the command ------------------------------------------------------------------------


def command(args: argparse.Namespace) -> dict[str, Any]:
    from cva_tasks.settings import Settings

    result = forget(args.customer_ids, Settings.from_env())
    lines = [
        f"forgot {result['customers']} customer(s) "
        f"({result['registered']} new in the erasure register); rows removed:"
    ]
    lines += [f"  {where}: {rows}" for where, rows in result["removed"].items()]
    lines.append("later or rebuilt days are staged without them (privacy/erased.json)")
    result["text"] = "\n".join(lines)
    return result

"""Customer shards of the daily scoring: which part a customer is in, and the parts as one.

``score`` and ``recommend`` run as ``CVA_SCORE_SHARDS`` mapped tasks a day, so N
workers share the day. Part ``k`` of ``N`` holds the customers whose id hashes to
``k`` (:func:`shard_of`: BLAKE2b of the id's text, not Python's ``hash()``, which is
salted per process and would move customers between parts from one worker to the next).

Each part is its own lake partition (:meth:`cva_tasks.lake.Lake.shard`), replaced
whole and atomically by :func:`write_part`, with the id of the run that wrote it in a
hidden sidecar. ``publish`` then :func:`collect` s the day: it refuses unless all N
parts are there and come from its own run, writes them as the one partition
``scores/<table>/ds=...`` that the warehouse, the audiences and ``cva forget`` read, and
removes the day's parts of any other N. So a rerun of a day replaces each part, and
a change of N never leaves a customer in two parts that are read together.

With one shard (the default) there are no parts: the step writes the day's scores
partition itself, as it did before sharding, and :func:`collect` only clears parts a
run with another N left for that day.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.lake import join, shard_set_name

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from cva_tasks.lake import Lake

log = logging.getLogger(__name__)

#: The hidden sidecar of a part: which run wrote it, and which part of how many it is.
PART_FILE = "_shard.json"


class ShardsIncomplete(RuntimeError):
    """A day's parts are not all there, or come from different runs: nothing to publish.

    A retry of ``publish`` finds the same parts: the mapped tasks must run first.
    """

    retryable = False


def check_shard(shard: int, shards: int) -> None:
    if shards < 1 or not 0 <= shard < shards:
        raise ValueError(f"shard {shard} of {shards}: need 0 <= shard < shards and shards >= 1")


def shard_of(customer_id: Any, shards: int) -> int:
    """The part (``0 .. shards - 1``) of a customer: the same on every process and machine."""
    digest = hashlib.blake2b(str(customer_id).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def in_shard(customer_ids: Iterable[Any], shard: int, shards: int) -> np.ndarray:
    """A boolean mask: which of ``customer_ids`` are in part ``shard`` of ``shards``."""
    import numpy as np

    check_shard(shard, shards)
    ids = list(customer_ids)
    if shards == 1:
        return np.ones(len(ids), dtype=bool)
    return np.fromiter((shard_of(c, shards) == shard for c in ids), dtype=bool, count=len(ids))


def write_part(
    table: pa.Table, name: str, ds: date, shard: int, shards: int, run_id: str | None, lake: Lake
) -> str:
    """Replace part ``shard`` of ``shards`` of the day's ``name`` rows (atomically).

    Returns:
        The URI of the written file.
    """
    check_shard(shard, shards)
    target = lake.shard(name, shards, shard, ds)
    if shards == 1:
        return storage.replace_partition(table, target)
    record = {"run_id": run_id, "shard": shard, "shards": shards, "rows": table.num_rows}
    return storage.replace_partition(table, target, sidecars={PART_FILE: record})


def collect(
    name: str,
    ds: date,
    shards: int,
    run_id: str | None,
    lake: Lake,
    *,
    absent_when_empty: bool = False,
) -> dict[str, Any]:
    """Make the day's ``scores/<name>`` partition the ``shards`` parts read as one.

    Args:
        run_id: the publishing run; every part must have been written by it (a part
            left by an earlier run of the day is not this run's result).
        absent_when_empty: remove the day's partition when the parts hold no rows
            (``recommend``'s "no purchase lines yet") instead of writing an empty one.

    Returns:
        ``rows`` (in the day's partition; None with one shard: the step wrote it),
        ``shards`` and ``removed`` (parts of other shard counts cleared for the day).

    Raises:
        ShardsIncomplete: a part is missing or was written by another run.
    """
    import pyarrow as pa

    removed = _remove_other_sets(name, ds, shards, lake)
    if shards == 1:
        return {"rows": None, "shards": 1, "removed": removed}
    parts = [lake.shard(name, shards, k, ds) for k in range(shards)]
    missing = [k for k, part in enumerate(parts) if not storage.exists(part)]
    if missing:
        raise ShardsIncomplete(
            f"{name} ds={ds}: part(s) {missing} of {shards} are missing; "
            "run the day's mapped task for them first"
        )
    records = storage.read_json_files([join(part, PART_FILE) for part in parts])
    foreign = {
        k: (record or {}).get("run_id")
        for k, record in enumerate(records)
        if (record or {}).get("run_id") != run_id
    }
    if foreign:
        raise ShardsIncomplete(
            f"{name} ds={ds}: part(s) {sorted(foreign)} of {shards} were written by "
            f"{sorted(set(map(str, foreign.values())))}, not by run {run_id!r}: "
            "rerun those parts in this run"
        )
    tables = [storage.read_table(part) for part in parts]
    rows = pa.concat_tables(tables, promote_options="none")
    target = lake.scores(name, ds)
    if absent_when_empty and rows.num_rows == 0:
        if storage.exists(target):
            storage.remove(target)
    else:
        storage.replace_partition(rows, target)
    log.info("%s ds=%s: %d rows from %d parts", name, ds, rows.num_rows, shards)
    return {"rows": rows.num_rows, "shards": shards, "removed": removed}


def _remove_other_sets(name: str, ds: date, shards: int, lake: Lake) -> list[str]:
    """Remove the day's parts of every shard count other than ``shards``."""
    removed = []
    for other in shard_counts(name, lake):
        if other == shards:
            continue
        for k in range(other):
            part = lake.shard(name, other, k, ds)
            if storage.exists(part):
                storage.remove(part)
                removed.append(part)
    if removed:
        log.info("%s ds=%s: removed %d parts of other shard counts", name, ds, len(removed))
    return removed


def shard_counts(name: str, lake: Lake) -> list[int]:
    """The shard counts (above 1) that parts of ``name`` were written for."""
    counts = []
    for set_name in storage.list_folders(lake.shard_sets(name)):
        count = set_name.removeprefix("of-")
        if count.isdigit() and int(count) > 1 and set_name == shard_set_name(int(count)):
            counts.append(int(count))
    return sorted(counts)


def shard_folders(lake: Lake) -> list[str]:
    """Every part's folder of days (``shards/<table>/of-N/shard-K``): ``cva forget``
    erases customers from these as from the scores."""
    return [
        lake.shard(name, count, k)
        for name in storage.list_folders(lake.shards_root())
        for count in shard_counts(name, lake)
        for k in range(count)
    ]

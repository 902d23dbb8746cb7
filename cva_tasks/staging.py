"""Staging: one day's delta of every canonical entity, all sources of a pipeline together.

Layout::

    staged/<entity>/ds=YYYY-MM-DD/part-0.parquet
    staged/<entity>/ds=YYYY-MM-DD/_inputs.json     what it was built from

``_inputs.json`` records, per source, the raw partition's files with their size and
the store's version of each (:func:`cva_tasks.storage.partition_fingerprint`); it
swaps in with the data. :mod:`cva_tasks.restaging` compares it with the raw
partitions as they are now to restage a day whose inputs changed.

Grain: one row per ``(source, key)`` version landed on day ``ds``, where the key is
``transaction_id`` / ``customer_id`` / ``item_id`` / ``feedback_id``. Columns: ``source``
(the source the row was landed by) followed by the canonical columns of the entity
(:mod:`cva_tasks.entities`). Rows are sorted by ``(source, key)``.

A staged partition is the day's *delta*, not a snapshot: a SQL source extracts by its
``updated_at`` watermark, so the ``ds`` partition holds the rows that changed during
``[ds 00:00, ds+1 00:00)`` UTC, and a later partition may hold a newer version of a row
landed earlier. Readers (the feature builders) take, per key, the latest version across
all staged days up to their as-of day. Within one day and one source, exact-key
duplicates are dropped here, keeping the latest ``updated_at`` (``submitted_at`` for
feedback, which has no update time); ties keep the row landed last.

The sources feeding one pipeline share one customer id space: ``customer_id`` 42 of
the shop database and of the feedback drops (or of any other source staged with them)
is the same person, which is what lets the features join them. Order, item and
transaction ids stay per source (they are deduplicated and joined within ``source``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from cva_tasks import storage
from cva_tasks.entities import KEYS, SCHEMAS, VERSION_COLUMNS
from cva_tasks.lake import STAGED_INPUTS_FILE, Lake

if TYPE_CHECKING:
    import pyarrow as pa

    from cva_tasks.privacy.policy import StagingPrivacy

log = logging.getLogger(__name__)


class MissingPartition(FileNotFoundError):
    """A source has the entity but its raw partition of the day is not in the lake.

    Not retryable: the day has to be landed (its source DAG run), which a retry of the
    staging task minutes later does not do; the message says how.
    """

    retryable = False


def staged_schema(entity: str) -> pa.Schema:
    """Schema of a staged partition: ``source`` plus the canonical columns of ``entity``."""
    import pyarrow as pa

    return pa.schema([pa.field("source", pa.string()), *SCHEMAS[entity]])


def stage_tables(
    entity: str, tables: Mapping[str, pa.Table], privacy: StagingPrivacy | None = None
) -> pa.Table:
    """Union one day's raw tables of ``entity`` (one per source) and drop duplicate keys.

    Args:
        entity: Canonical entity name.
        tables: Raw table per source name, each in the canonical schema of ``entity``.
        privacy: erased customers to drop and the key that pseudonymises customer ids
            (:mod:`cva_tasks.privacy.policy`); None: rows as landed.

    Returns:
        The staged table (grain and columns as in the module docstring), sorted by
        ``(source, key)``; empty with the staged schema when there are no rows.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = staged_schema(entity)
    canonical = SCHEMAS[entity]
    parts = []
    for source in sorted(tables):
        table = tables[source].select(canonical.names).cast(canonical)
        if privacy is not None:
            table = privacy.apply(table)
        parts.append(
            table.add_column(0, schema.field("source"), pa.repeat(pa.scalar(source), len(table)))
        )
    if not parts:
        return schema.empty_table()
    union = pa.concat_tables(parts).combine_chunks()
    if union.num_rows == 0:
        return schema.empty_table()
    key, version = KEYS[entity], VERSION_COLUMNS[entity]
    position = "__position"
    union = union.append_column(position, pa.array(np.arange(union.num_rows, dtype=np.int64)))
    ordered = union.sort_by(
        [
            ("source", "ascending"),
            (key, "ascending"),
            (version, "descending"),
            (position, "descending"),
        ]
    )
    sources, keys = ordered["source"], ordered[key]
    # After the sort the latest version of a key is the first row of its run.
    first = pc.or_(
        pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1)),
        pc.not_equal(sources.slice(1), sources.slice(0, len(sources) - 1)),
    )
    keep = pa.concat_arrays([pa.array([True]), *first.fill_null(True).chunks])
    return ordered.filter(keep).drop_columns([position]).cast(schema)


def write_staged(
    lake: Lake, entity: str, ds: date, table: pa.Table, inputs: Mapping[str, list[list[Any]]]
) -> None:
    """Replace ``staged/<entity>/ds=...`` by ``table`` with the record of its ``inputs``.

    Args:
        inputs: per source, the fingerprint of the raw partition the table came from,
            taken before it was read (:func:`cva_tasks.storage.partition_fingerprint`).
    """
    record = {"entity": entity, "ds": ds.isoformat(), "inputs": dict(inputs)}
    storage.replace_partition(table, lake.staged(entity, ds), sidecars={STAGED_INPUTS_FILE: record})


def stage_day(
    ds: date,
    sources: Sequence[str],
    data_root: str,
    extra_modules: Sequence[str] = (),
    entities: Collection[str] | None = None,
    pseudonymise_key: str | None = None,
) -> dict[str, int]:
    """Stage day ``ds``: union the raw partitions of ``sources`` per canonical entity.

    For every canonical entity, the raw partitions
    ``raw/<source>/<entity>/ds=YYYY-MM-DD`` of the sources that have the entity are
    read, unioned with a ``source`` column, deduplicated (:func:`stage_tables`) and
    written whole to ``staged/<entity>/ds=YYYY-MM-DD/part-0.parquet`` (an empty
    table with the staged schema when no source had rows), with the record of the
    raw files it was built from (:func:`write_staged`). Sources that lack an
    entity are skipped for it. A rerun replaces the partitions.

    The sources of one call feed one pipeline and must share one customer id space.

    Args:
        ds: The day (of the data interval) to stage.
        sources: Registered source names.
        data_root: Lake root (local path or fsspec URI).
        extra_modules: source modules outside the package (``CVA_SOURCE_MODULES``).
        entities: only these entities (default: every canonical entity).
        pseudonymise_key: ``CVA_PSEUDONYMISE_KEY``: customer ids are staged as its
            keyed hash. Customers in the lake's erasure register are always dropped.

    Returns:
        Rows staged per entity.

    Raises:
        MissingPartition: naming the source, entity, day and URI of a raw partition
            that should exist but does not (the source's day has not been landed).
        KeyError: for an unknown source name.
    """
    from cva_tasks.privacy.policy import StagingPrivacy
    from cva_tasks.sources.registry import get_source

    lake = Lake(data_root)
    privacy = StagingPrivacy.for_lake(lake, pseudonymise_key)
    specs = {
        name: {spec.entity for spec in get_source(name, extra_modules).entities} for name in sources
    }
    counts: dict[str, int] = {}
    for entity in SCHEMAS:
        if entities is not None and entity not in entities:
            continue
        tables, inputs = {}, {}
        for name in sorted(specs):
            if entity not in specs[name]:
                continue
            uri = lake.raw(name, entity, ds)
            if not storage.exists(uri):
                raise MissingPartition(
                    f"staging ds={ds.isoformat()}: source {name!r} has entity {entity!r} "
                    f"but its raw partition {uri} is missing; land {name}.{entity} for "
                    f"{ds.isoformat()} first"
                )
            # Fingerprint first: a partition landed again while it is read is restaged.
            inputs[name] = storage.partition_fingerprint(uri)
            tables[name] = storage.read_table(uri)
        staged = stage_tables(entity, tables, privacy)
        write_staged(lake, entity, ds, staged, inputs)
        counts[entity] = staged.num_rows
    log.info("staged ds=%s from %s: %s", ds.isoformat(), ", ".join(sorted(specs)), counts)
    return counts

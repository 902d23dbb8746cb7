"""Reading and writing the lake: Parquet partitions and JSON reached through fsspec.

Paths come from :mod:`cva_tasks.lake`. A partition is replaced whole: the new files
are written to a hidden sibling folder first and swapped in afterwards, so a reader
never sees a half-written partition and a failed write leaves the previous one in
place. Hidden folders
(``.``/``_`` prefix) are skipped by pyarrow's dataset discovery.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import TYPE_CHECKING, Any

import fsspec

from cva_tasks.lake import PARTITION_RE, join

if TYPE_CHECKING:
    import pyarrow as pa


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def write_table(table: pa.Table, file_uri: str) -> None:
    """Write one Parquet file (parents created)."""
    import pyarrow.parquet as pq

    fs, path = filesystem(file_uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def read_table(uri: str) -> pa.Table:
    """Read a Parquet file or a partition folder."""
    import pyarrow.parquet as pq

    fs, path = filesystem(uri)
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if p.endswith(".parquet"))
        import pyarrow as pa

        return pa.concat_tables([pq.read_table(f, filesystem=fs) for f in files])
    return pq.read_table(path, filesystem=fs)


def replace_partition(table: pa.Table, partition: str) -> str:
    """Replace the partition folder ``partition`` by one file holding ``table``.

    Returns:
        The URI of the written file.
    """
    fs, path = filesystem(partition)
    parent, name = path.rsplit("/", 1)
    token = uuid.uuid4().hex[:12]
    staging = f"{parent}/.{name}.new-{token}"
    retired = f"{parent}/.{name}.old-{token}"
    fs.makedirs(staging, exist_ok=True)
    import pyarrow.parquet as pq

    with fs.open(f"{staging}/part-0.parquet", "wb") as handle:
        pq.write_table(table, handle, compression="zstd")
    had_previous = fs.exists(path)
    if had_previous:
        fs.mv(path, retired, recursive=True)
    try:
        fs.mv(staging, path, recursive=True)
    except Exception:
        if had_previous:
            fs.mv(retired, path, recursive=True)
        raise
    if had_previous:
        fs.rm(retired, recursive=True)
    return join(partition, "part-0.parquet")


def remove(uri: str) -> None:
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def write_json(obj: Any, file_uri: str) -> None:
    fs, path = filesystem(file_uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "w") as handle:
        json.dump(obj, handle, indent=1, default=str, sort_keys=True)


def read_json(file_uri: str) -> Any:
    fs, path = filesystem(file_uri)
    with fs.open(path, "r") as handle:
        return json.load(handle)


def list_partitions(entity_uri: str) -> list[date]:
    """Days that have a partition under ``entity_uri``, oldest first."""
    fs, path = filesystem(entity_uri)
    if not fs.exists(path):
        return []
    days = []
    for entry in fs.ls(path, detail=False):
        match = PARTITION_RE.search(entry.rstrip("/"))
        if match:
            days.append(date.fromisoformat(match.group(1)))
    return sorted(days)

"""Reading and writing the lake: Parquet partitions and JSON reached through fsspec.

Paths come from :mod:`cva_tasks.lake`. A folder (a partition, a model version) is
replaced whole, by one writer at a time (:mod:`cva_tasks.locks`):

1. under the folder's writer lock, put back or clean up what a killed writer left
   (:func:`recover`);
2. write the new files to the hidden sibling ``.<name>.new-<token>``;
3. move the live folder to ``.<name>.old-<token>``, the new one in, and remove the
   old one. A move onto an existing folder would move *into* it, so the move in is
   refused when the target exists.

A reader never sees a half-written folder and a failed write leaves the previous one
in place. A writer killed between the two moves of step 3 leaves no live folder,
only ``.old``: the next writer, or a reader of that partition (:func:`exists`,
:func:`read_table`, :func:`list_partitions`), puts it back when no writer holds the
lock. Hidden names (``.``/``_`` prefix) are never data: pyarrow's dataset discovery
and :func:`read_table` skip them, inside a partition too.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import fsspec

from cva_tasks import locks
from cva_tasks.lake import PARTITION_RE, join

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

#: ``.<name>.new-<token>`` (a write in progress) or ``.<name>.old-<token>`` (the live
#: folder moved away while the new one moves in).
SWAP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<state>new|old)-(?P<token>[0-9a-f]+)$")
LOCK_RE = re.compile(r"^\.(?P<name>.+)\.lock$")
PartitionBusy = locks.FolderBusy


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def exists(uri: str) -> bool:
    """Whether ``uri`` exists; a partition a killed writer took away is put back first."""
    fs, path = filesystem(uri)
    if fs.exists(path):
        return True
    if PARTITION_RE.search(path.rstrip("/")) and _restore_if_abandoned(fs, path):
        return fs.exists(path)
    return False


def write_table(table: pa.Table, file_uri: str) -> None:
    """Write one Parquet file (parents created)."""
    import pyarrow.parquet as pq

    fs, path = filesystem(file_uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def _is_hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def visible_files(fs: fsspec.AbstractFileSystem, folder: str) -> dict[str, dict[str, Any]]:
    """Parquet files of a folder a reader reads: relative name -> file info.

    Files in hidden folders (an unfinished or nested write) and hidden files are not
    data.
    """
    folder = folder.rstrip("/")
    found = {}
    for path, info in fs.find(folder, detail=True).items():
        relative = path[len(folder) :].strip("/")
        if not relative.endswith(".parquet"):
            continue
        if any(_is_hidden(part) for part in relative.split("/")):
            continue
        found[relative] = info
    return dict(sorted(found.items()))


def read_table(uri: str, columns: list[str] | None = None) -> pa.Table:
    """Read a Parquet file or a partition folder (its visible Parquet files).

    Args:
        columns: only these columns (default: all); a missing one is an error.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = filesystem(uri)
    if not fs.exists(path) and PARTITION_RE.search(path.rstrip("/")):
        _restore_if_abandoned(fs, path)
    if fs.isdir(path):
        files = [f"{path.rstrip('/')}/{name}" for name in visible_files(fs, path)]
        return pa.concat_tables([pq.read_table(f, filesystem=fs, columns=columns) for f in files])
    return pq.read_table(path, filesystem=fs, columns=columns)


def replace_partition(
    table: pa.Table, partition: str, sidecars: Mapping[str, Any] | None = None
) -> str:
    """Replace the partition folder ``partition`` by one file holding ``table``.

    Args:
        sidecars: JSON documents written next to the file, by hidden file name (e.g.
            what a staged partition was built from); they swap in with the data.

    Returns:
        The URI of the written file.
    """
    import pyarrow.parquet as pq

    for name in sidecars or {}:
        if not name.startswith("_") or "/" in name:
            raise ValueError(f"a sidecar file name starts with '_' (hidden from readers): {name!r}")

    def write(fs: fsspec.AbstractFileSystem, folder: str) -> None:
        with fs.open(f"{folder}/part-0.parquet", "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        for name, document in (sidecars or {}).items():
            _dump_json(fs, f"{folder}/{name}", document)

    replace_folder(partition, write)
    return join(partition, "part-0.parquet")


def rewrite_partition(
    partition: str,
    transform: Callable[[pa.Table], pa.Table],
    sidecars: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[int, int]:
    """Replace a partition by ``transform`` of its rows, read and written under one lock.

    Reading inside the swap (the writer lock held) means no other writer's version of
    the partition can land between the read and the write and be lost.

    Args:
        transform: the rows to keep or change, from the partition's rows.
        sidecars: the partition's hidden JSON files (``_name.json``) as they should be
            written back, from what they hold now; default: copied as they are.

    Returns:
        ``(rows before, rows after)``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    counts = [0, 0]

    def write(fs: fsspec.AbstractFileSystem, folder: str) -> None:
        live = filesystem(partition)[1].rstrip("/")
        files = [f"{live}/{name}" for name in visible_files(fs, live)]
        table = pa.concat_tables([pq.read_table(f, filesystem=fs) for f in files])
        kept = transform(table)
        counts[:] = [table.num_rows, kept.num_rows]
        with fs.open(f"{folder}/part-0.parquet", "wb") as handle:
            pq.write_table(kept, handle, compression="zstd")
        documents = {
            name: json.loads(fs.cat_file(f"{live}/{name}"))
            for name in (p.rsplit("/", 1)[1] for p in fs.ls(live, detail=False))
            if name.startswith("_") and name.endswith(".json")
        }
        for name, document in (sidecars(documents) if sidecars else documents).items():
            _dump_json(fs, f"{folder}/{name}", document)

    replace_folder(partition, write)
    return counts[0], counts[1]


def list_folders(uri: str) -> list[str]:
    """Names of the visible (not ``.``/``_``) subfolders of ``uri``, sorted."""
    fs, path = filesystem(uri)
    if not fs.exists(path):
        return []
    names = (p.rstrip("/").rsplit("/", 1)[1] for p in fs.ls(path, detail=False) if fs.isdir(p))
    return sorted(name for name in names if not _is_hidden(name))


def replace_folder(uri: str, write: Callable[[fsspec.AbstractFileSystem, str], None]) -> None:
    """Replace the folder ``uri`` whole by what ``write(fs, path)`` puts in ``path``.

    One writer at a time: a second writer waits for the first to finish. See the
    module docstring for the steps.
    """
    fs, path = filesystem(uri)
    path = path.rstrip("/")
    parent, name = path.rsplit("/", 1)
    with locks.holding(fs, path, timeout=None) as held:
        for action in _recover_locked(fs, path) if held.inherited else []:
            log.warning("before writing %s: %s", path, action)
        token = uuid.uuid4().hex[:12]
        staging = f"{parent}/.{name}.new-{token}"
        retired = f"{parent}/.{name}.old-{token}"
        try:
            fs.makedirs(staging, exist_ok=True)
            write(fs, staging)
            had_previous = fs.exists(path)
            if had_previous:
                _move(fs, path, retired)
            try:
                _move(fs, staging, path)
            except FileExistsError:
                raise  # written meanwhile by something that took no lock: leave it be
            except BaseException:
                # Under the lock, whatever is at ``path`` now is part of our own move
                # (on an object store a move is copy-then-delete): take it out.
                if fs.exists(path):
                    fs.rm(path, recursive=True)
                if had_previous:
                    _move(fs, retired, path)
                raise
            if had_previous:
                fs.rm(retired, recursive=True)
        finally:
            if fs.exists(staging):
                fs.rm(staging, recursive=True)


def _move(fs: fsspec.AbstractFileSystem, source: str, target: str) -> None:
    """Rename a folder; refused when ``target`` exists (a move would nest inside it)."""
    if fs.exists(target):
        raise FileExistsError(f"refusing to move {source} into the existing {target}")
    fs.mv(source, target, recursive=True)


@contextmanager
def writer_lock(uri: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the writer lock of the folder ``uri`` (what :func:`replace_folder` takes)."""
    fs, path = filesystem(uri)
    fs.makedirs(path.rstrip("/").rsplit("/", 1)[0], exist_ok=True)
    with locks.holding(fs, path, timeout=timeout):
        yield


def recover(uri: str) -> list[str]:
    """Put back or clean up what killed or racing writers left of the folder ``uri``.

    Restores the live folder from ``.old-*`` when it is missing, and removes leftover
    ``.new-*``/``.old-*`` siblings and swap folders nested inside it. Does nothing
    while a writer holds the folder.

    Returns:
        What was done, one sentence each.

    Raises:
        PartitionBusy: when a writer holds the folder.
    """
    fs, path = filesystem(uri)
    with locks.holding(fs, path, timeout=0):
        return _recover_locked(fs, path.rstrip("/"))


def _siblings(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    parent, name = path.rsplit("/", 1)
    if not fs.exists(parent):
        return []
    found = []
    for entry in fs.ls(parent, detail=False):
        match = SWAP_RE.match(entry.rstrip("/").rsplit("/", 1)[1])
        if match and match.group("name") == name:
            found.append(entry.rstrip("/"))
    return sorted(found)


def _recover_locked(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    actions = []
    leftovers = _siblings(fs, path)
    retired = [p for p in leftovers if ".old-" in p.rsplit("/", 1)[1]]
    if retired and not fs.exists(path):
        # A writer moves the live folder away only once its new one is complete; the
        # old one is what readers last saw, and the writer failed: put it back.
        back = retired[-1]
        fs.mv(back, path, recursive=True)
        leftovers.remove(back)
        actions.append(f"put back {path} from {back.rsplit('/', 1)[1]} (a writer was killed)")
    for leftover in leftovers:
        fs.rm(leftover, recursive=True)
        actions.append(f"removed {leftover.rsplit('/', 1)[1]} left by a killed writer")
    if fs.isdir(path):
        for entry in fs.ls(path, detail=False):
            if SWAP_RE.match(entry.rstrip("/").rsplit("/", 1)[1]):
                fs.rm(entry, recursive=True)
                actions.append(
                    f"removed {entry.rstrip('/').rsplit('/', 1)[1]} nested inside {path} "
                    "by two writers at once"
                )
    return actions


def recover_if_abandoned(uri: str) -> bool:
    """Put back the folder ``uri`` if a killed writer took it away; False if nothing to do."""
    fs, path = filesystem(uri)
    return _restore_if_abandoned(fs, path)


def _restore_if_abandoned(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """Put back a folder a killed writer took away (not while a writer holds it)."""
    path = path.rstrip("/")
    if not any(".old-" in p.rsplit("/", 1)[1] for p in _siblings(fs, path)):
        return False
    try:
        with locks.holding(fs, path, timeout=0):
            actions = _recover_locked(fs, path)
    except locks.FolderBusy:
        return False
    for action in actions:
        log.warning("%s", action)
    return bool(actions)


def remove(uri: str) -> None:
    fs, path = filesystem(uri)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def abandoned_partitions(folder_uri: str, older_than_seconds: float) -> list[str]:
    """Partition folders (``ds=...``) under ``folder_uri`` untouched for that long.

    "Untouched" is the newest modification time of the folder and anything in it, so a
    folder a task still writes to is never old.
    """
    import time

    fs, root = filesystem(folder_uri)
    if not fs.exists(root):
        return []
    newest: dict[str, float] = {}
    for path, info in fs.find(root, withdirs=True, detail=True).items():
        path = path.rstrip("/")
        parts = path.split("/")
        tops = [i for i, part in enumerate(parts) if PARTITION_RE.match(part)]
        if not tops:
            continue
        partition = "/".join(parts[: tops[0] + 1])
        stamp = _modified(info)
        newest[partition] = max(newest.get(partition, 0.0), stamp)
    cutoff = time.time() - older_than_seconds
    found = sorted(p for p, stamp in newest.items() if stamp < cutoff)
    return [p if locks.is_local(fs) else fs.unstrip_protocol(p) for p in found]


def _modified(info: Mapping[str, Any]) -> float:
    """A listing entry's modification time in seconds (0.0 when the store gives none)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, int | float):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return datetime.fromisoformat(str(value)).timestamp()
        except ValueError:
            continue
    return 0.0


def _dump_json(fs: fsspec.AbstractFileSystem, path: str, obj: Any) -> None:
    with fs.open(path, "w") as handle:
        json.dump(obj, handle, indent=1, default=str, sort_keys=True)


def write_json(obj: Any, file_uri: str) -> None:
    fs, path = filesystem(file_uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    _dump_json(fs, path, obj)


def write_json_atomic(obj: Any, file_uri: str) -> None:
    """Write a JSON file that readers see whole or not at all, never half-written.

    Locally a hidden sibling is written and renamed over the file (a rename replaces
    atomically); on an object store one ``put`` of an object is atomic already.
    """
    fs, path = filesystem(file_uri)
    parent, name = path.rsplit("/", 1)
    fs.makedirs(parent, exist_ok=True)
    if not locks.is_local(fs):
        _dump_json(fs, path, obj)
        return
    import os

    temporary = f"{parent}/.{name}.new-{uuid.uuid4().hex[:12]}"
    try:
        _dump_json(fs, temporary, obj)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def read_json(file_uri: str) -> Any:
    fs, path = filesystem(file_uri)
    with fs.open(path, "r") as handle:
        return json.load(handle)


def json_files(folder_uri: str) -> list[str]:
    """The visible ``.json`` files directly in a folder, sorted; none when it is missing."""
    fs, path = filesystem(folder_uri)
    if not fs.isdir(path):
        return []
    names = sorted(name.rstrip("/").rsplit("/", 1)[-1] for name in fs.ls(path, detail=False))
    return [
        f"{folder_uri.rstrip('/')}/{name}"
        for name in names
        if name.endswith(".json") and not _is_hidden(name)
    ]


def read_json_files(uris: list[str]) -> list[Any]:
    """Several JSON files of one file system at once (``None`` for a missing one).

    One batched request on object stores instead of one round trip per file.
    """
    if not uris:
        return []
    fs, _ = filesystem(uris[0])
    paths = [filesystem(uri)[1] for uri in uris]
    found = fs.cat(paths, on_error="omit")
    return [json.loads(found[path]) if path in found else None for path in paths]


def list_partitions(entity_uri: str) -> list[date]:
    """Days that have a partition under ``entity_uri``, oldest first.

    A partition a killed writer took away (only its ``.old-*`` copy is there) is put
    back first.
    """
    fs, path = filesystem(entity_uri)
    if not fs.exists(path):
        return []
    days = set()
    taken_away = set()
    for entry in fs.ls(path, detail=False):
        name = entry.rstrip("/").rsplit("/", 1)[1]
        match = PARTITION_RE.search(name)
        swap = SWAP_RE.match(name)
        if match and not name.startswith("."):
            days.add(date.fromisoformat(match.group(1)))
        elif swap and swap.group("state") == "old" and PARTITION_RE.search(swap.group("name")):
            taken_away.add(swap.group("name"))
    for name in sorted(taken_away):
        day = date.fromisoformat(name.split("=", 1)[1])
        if day not in days and _restore_if_abandoned(fs, f"{path.rstrip('/')}/{name}"):
            days.add(day)
    return sorted(days)


# --- what a partition holds: fingerprints of its files ----------------------------

#: The first of these a file's info has tells one version of the file from another.
_VERSION_KEYS = ("ETag", "etag", "generation", "mtime", "LastModified", "updated", "created")


def _fingerprint(relative: str, info: Mapping[str, Any]) -> list[Any]:
    version: Any = next((info[key] for key in _VERSION_KEYS if info.get(key) is not None), None)
    if isinstance(version, datetime):
        version = version.timestamp()
    return [relative, int(info.get("size") or 0), str(version)]


def partition_fingerprint(partition: str) -> list[list[Any]]:
    """``[file, size, version]`` of each visible file of a partition (sorted by file).

    The version is the store's own mark of a file's content or write (ETag,
    generation, modification time): a partition written again gets another one.
    """
    fs, path = filesystem(partition)
    return [_fingerprint(name, info) for name, info in visible_files(fs, path).items()]


def partition_fingerprints(entity_uri: str) -> dict[date, list[list[Any]]]:
    """:func:`partition_fingerprint` of every partition under ``entity_uri``, in one listing."""
    fs, path = filesystem(entity_uri)
    # Listing first puts back a partition a killed writer took away.
    found: dict[date, list[list[Any]]] = {day: [] for day in list_partitions(entity_uri)}
    if not found:
        return {}
    for relative, info in visible_files(fs, path).items():
        folder, _, name = relative.partition("/")
        match = PARTITION_RE.search(folder)
        if match and name:
            found.setdefault(date.fromisoformat(match.group(1)), []).append(
                _fingerprint(name, info)
            )
    return {day: sorted(files) for day, files in sorted(found.items())}


# --- what killed or racing writers left: the lake check ---------------------------


@dataclass(frozen=True)
class Leftover:
    """A hidden entry a writer left behind.

    Attributes:
        folder: URI of the live folder (partition or model version) it belongs to.
        entry: its path.
        state: ``taken_away`` (the live folder is missing; this is its last version),
            ``old`` / ``new`` (a swap a killed writer left), ``nested`` (a copy moved
            inside the live folder by two writers at once), ``lock`` (the lock file of
            a writer that is gone).
    """

    folder: str
    entry: str
    state: str

    def describe(self) -> str:
        what = {
            "taken_away": "missing; its last version is kept aside (repair puts it back)",
            "old": "has the previous version of a finished write left beside it",
            "new": "has an unfinished write of a killed writer beside it",
            "nested": "holds a second copy nested inside it by two writers at once "
            "(readers skip it; rerun the day that wrote it to be sure of its content)",
            "lock": "has the lock file of a writer that is gone",
        }[self.state]
        return f"{self.folder} {what} [{self.entry.rsplit('/', 1)[1]}]"


def find_leftovers(root_uri: str) -> list[Leftover]:
    """Every leftover of killed or racing writers under ``root_uri`` (one listing)."""
    fs, root = filesystem(root_uri)
    if not fs.exists(root):
        return []
    entries = fs.find(root, withdirs=True, detail=False)
    present = {p.rstrip("/") for p in entries}

    def uri(path: str) -> str:
        return path if locks.is_local(fs) else fs.unstrip_protocol(path)

    found = []
    for entry in sorted(present):
        parent, name = entry.rsplit("/", 1)
        if any(SWAP_RE.match(part) for part in parent.split("/")):
            continue  # inside a leftover: goes with it
        swap, lock = SWAP_RE.match(name), LOCK_RE.match(name)
        if swap:
            if parent.rsplit("/", 1)[-1] == swap.group("name"):
                state, folder = "nested", parent
            else:
                folder = f"{parent}/{swap.group('name')}"
                state = swap.group("state")
                if state == "old" and folder not in present:
                    state = "taken_away"
            found.append(Leftover(uri(folder), entry, state))
        elif lock and locks.abandoned(fs, entry):
            folder = f"{parent}/{lock.group('name')}"
            found.append(Leftover(uri(folder), entry, "lock"))
    order = ["taken_away", "nested", "new", "old", "lock"]
    return sorted(found, key=lambda item: (item.folder, order.index(item.state)))

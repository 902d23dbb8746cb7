"""One writer per lake folder: the lock a partition (or model version) writer holds.

The lock of ``<parent>/<name>`` is the hidden file ``<parent>/.<name>.lock``.

* On a local folder it is an ``flock`` on that file: the kernel releases it when its
  holder dies, so a killed writer never blocks the next one. The holder removes the
  file while it still holds the lock; a waiter that then locks the removed file sees
  the path now names another file (or none) and tries again.
* On an object store (or ``memory://``) it is the file itself, created only if absent
  (``open(..., "xb")``: a conditional write in s3fs, gcsfs and adlfs of 2025 on; a
  file system without it refuses the mode), holding who took it and when. A lock
  older than :data:`STALE_AFTER_SECONDS` is taken to belong to a writer that died,
  and is broken with a warning. Threads of one process also
  share an in-process lock per file, so they never rely on the store to separate them.

A reader that only wants to put back what a killed writer left asks with
``timeout=0``: if a writer holds the folder, it is that writer's business.

A writer leaves ``.new``/``.old`` folders only while it holds the lock, and a writer
that dies holding it leaves its lock file behind. So a lock taken on a file that was
already there (:attr:`Held.inherited`) is the one case where there can be something
to clean up; a fresh one needs no listing of the folder's siblings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec

log = logging.getLogger(__name__)

#: A partition write or a model upload takes seconds to minutes; an object-store lock
#: this old belongs to a writer that died.
STALE_AFTER_SECONDS = 30 * 60
_POLL_SECONDS = 0.05
_SAY_WAITING_EVERY = 60.0

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


class FolderBusy(TimeoutError):
    """Another writer holds the folder's lock."""


class Held:
    """A lock being held.

    Attributes:
        inherited: the lock file was already there: its last holder may have died
            holding it (and left a swap half-done).
    """

    def __init__(self, inherited: bool) -> None:
        self.inherited = inherited


def lock_path(path: str) -> str:
    parent, name = path.rstrip("/").rsplit("/", 1)
    return f"{parent}/.{name}.lock"


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


@contextmanager
def holding(fs: fsspec.AbstractFileSystem, path: str, timeout: float | None) -> Iterator[Held]:
    """Hold the writer lock of the folder ``path`` (file-system path, not a URI).

    Args:
        timeout: seconds to wait for it; ``None`` waits as long as it takes, ``0``
            does not wait.

    Raises:
        FolderBusy: when another writer still holds it after ``timeout``.
    """
    path = path.rstrip("/")
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    if is_local(fs):
        with _local_lock(lock_path(path), path, timeout) as held:
            yield held
    else:
        with _store_lock(fs, lock_path(path), path, timeout) as held:
            yield held


class _Waiting:
    """Deadline and the "still waiting" log line of one lock acquisition."""

    def __init__(self, folder: str, timeout: float | None) -> None:
        self.folder = folder
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.said = self.started

    def sleep_or_give_up(self, holder: str) -> None:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise FolderBusy(f"{self.folder} is being written by another writer ({holder})")
        if now - self.said >= _SAY_WAITING_EVERY:
            log.info(
                "waiting %.0f s for %s to finish writing %s",
                now - self.started,
                holder,
                self.folder,
            )
            self.said = now
        time.sleep(_POLL_SECONDS)


@contextmanager
def _local_lock(lock_file: str, folder: str, timeout: float | None) -> Iterator[Held]:
    import fcntl

    waiting = _Waiting(folder, timeout)
    while True:
        try:
            fd, inherited = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), False
        except FileExistsError:
            try:
                fd, inherited = os.open(lock_file, os.O_RDWR), True
            except FileNotFoundError:
                continue  # released and removed in between
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            waiting.sleep_or_give_up("a process on this machine")
            continue
        try:
            same_file = os.stat(lock_file).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the holder released and removed it in between: try the new one
    # Nothing is written into the file: the flock is the lock (and on ext4 a rewrite
    # before close costs a flush per partition).
    try:
        yield Held(inherited)
    finally:
        try:
            os.unlink(lock_file)
        finally:
            os.close(fd)


def _thread_lock(key: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


@contextmanager
def _store_lock(
    fs: fsspec.AbstractFileSystem, lock_file: str, folder: str, timeout: float | None
) -> Iterator[Held]:
    waiting = _Waiting(folder, timeout)
    in_process = _thread_lock(f"{fs.protocol}:{lock_file}")
    while not in_process.acquire(blocking=False):
        waiting.sleep_or_give_up("another thread of this process")
    inherited = False
    try:
        while True:
            try:
                with fs.open(lock_file, "xb") as handle:
                    handle.write(_owner().encode())
                break
            except FileExistsError:
                holder = _read_owner(fs, lock_file)
                age = time.time() - float(holder.get("acquired_at", time.time()))
                if age > STALE_AFTER_SECONDS:
                    log.warning(
                        "breaking the lock of %s taken %.0f min ago by %s (stale)",
                        folder,
                        age / 60,
                        holder,
                    )
                    with contextlib.suppress(FileNotFoundError):  # another waiter broke it
                        fs.rm(lock_file)
                    inherited = True
                    continue
                waiting.sleep_or_give_up(f"{holder.get('host')} pid {holder.get('pid')}")
        try:
            yield Held(inherited)
        finally:
            fs.rm(lock_file)
    finally:
        in_process.release()


def _owner() -> str:
    return json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "acquired_at": time.time()}
    )


def _read_owner(fs: fsspec.AbstractFileSystem, lock_file: str) -> dict:
    try:
        with fs.open(lock_file, "rb") as handle:
            owner = json.loads(handle.read() or b"{}")
    except (FileNotFoundError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def abandoned(fs: fsspec.AbstractFileSystem, lock_file: str) -> bool:
    """Whether the lock file ``lock_file`` is left by a writer that is gone."""
    if is_local(fs):
        import fcntl

        try:
            fd = os.open(lock_file, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # closing releases the probe's own lock
        return True
    owner = _read_owner(fs, lock_file)
    return time.time() - float(owner.get("acquired_at", 0)) > STALE_AFTER_SECONDS

"""A partition swap that is killed half-way, or raced by a second writer, loses nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake

DAY = date(2025, 1, 2)


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "lake")
        return
    import fsspec

    fs = fsspec.filesystem("memory")
    name = f"memory://swap-{id(request)}"
    yield name
    fs.rm(name.replace("memory://", "/"), recursive=True)


def names_in(uri: str) -> list[str]:
    fs, path = storage.filesystem(uri)
    return sorted(p.rstrip("/").rsplit("/", 1)[1] for p in fs.ls(path, detail=False))


def parent_of(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0]


def leave_a_killed_swap(partition: str) -> None:
    """The lake as a writer killed between its two renames leaves it (any store).

    Its lock file stays: unlocked on a local folder (the kernel drops a dead process's
    flock), on a store with the owner's time of long ago.
    """
    fs, path = storage.filesystem(partition)
    parent, name = path.rsplit("/", 1)
    local = "file" in fs.protocol
    fs.pipe(f"{parent}/.{name}.lock", b"" if local else b'{"acquired_at": 0}')
    fs.mv(path, f"{parent}/.{name}.old-0123456789ab", recursive=True)
    fs.makedirs(f"{parent}/.{name}.new-0123456789ab", exist_ok=True)
    with fs.open(f"{parent}/.{name}.new-0123456789ab/part-0.parquet", "wb") as handle:
        pq.write_table(pa.table({"x": [2]}), handle)


def test_a_reader_puts_back_the_partition_a_killed_writer_took_away(root):
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    leave_a_killed_swap(partition)

    assert storage.exists(partition)
    assert storage.read_table(partition).column("x").to_pylist() == [1]
    assert storage.list_partitions(Lake(root).raw("s", "e")) == [DAY]
    assert names_in(parent_of(partition)) == ["ds=2025-01-02"]


def test_a_lister_puts_back_the_partition_a_killed_writer_took_away(root):
    partition = Lake(root).staged("customers", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    leave_a_killed_swap(partition)

    assert storage.list_partitions(Lake(root).staged("customers")) == [DAY]
    assert storage.read_table(partition).column("x").to_pylist() == [1]


def test_the_next_writer_cleans_up_after_a_killed_one(root):
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    leave_a_killed_swap(partition)

    storage.replace_partition(pa.table({"x": [3]}), partition)

    assert storage.read_table(partition).column("x").to_pylist() == [3]
    assert names_in(parent_of(partition)) == ["ds=2025-01-02"]


def test_a_writer_killed_between_the_renames_loses_nothing(tmp_path):
    """A real kill (``os._exit``) between moving the live folder away and the new one in."""
    partition = Lake(str(tmp_path / "lake")).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    script = textwrap.dedent(
        f"""
        import os
        import pyarrow as pa
        from cva_tasks import storage

        real_rename = os.rename

        def rename(src, dst, *args, **kwargs):
            if ".new-" in os.path.basename(str(src)):
                os._exit(9)  # killed: the live folder is already moved away
            return real_rename(src, dst, *args, **kwargs)

        os.rename = rename
        storage.replace_partition(pa.table({{"x": [2]}}), {partition!r})
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert not (tmp_path / "lake/raw/s/e/ds=2025-01-02").exists(), "the kill hit the window"

    assert storage.read_table(partition).column("x").to_pylist() == [1]
    assert names_in(parent_of(partition)) == ["ds=2025-01-02"]


def test_a_reader_leaves_the_swap_of_a_live_writer_alone(root):
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    leave_a_killed_swap(partition)

    with storage.writer_lock(partition):
        assert not storage.exists(partition), "a writer holds it: its swap is not abandoned"
        assert ".ds=2025-01-02.old-0123456789ab" in names_in(parent_of(partition))
    assert storage.exists(partition)


def test_concurrent_writers_never_nest_a_copy_in_the_live_partition(root, monkeypatch):
    """Writer A moves the live folder away; B writes meanwhile; A then moves its copy in."""
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [0]}), partition)
    fs, path = storage.filesystem(partition)
    live_moved_away, other_moved_in = threading.Event(), threading.Event()
    real_mv = type(fs).mv

    def mv(self, src, dst, *args, **kwargs):
        result = real_mv(self, src, dst, *args, **kwargs)
        if str(src).rstrip("/") == path and not live_moved_away.is_set():
            live_moved_away.set()
            # Widen the window between A's two renames; a lock makes B wait instead.
            other_moved_in.wait(timeout=1)
        elif str(dst).rstrip("/") == path and live_moved_away.is_set():
            other_moved_in.set()
        return result

    monkeypatch.setattr(type(fs), "mv", mv)
    errors: list[BaseException] = []

    def write(value: int) -> None:
        try:
            storage.replace_partition(pa.table({"x": [value]}), partition)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    first = threading.Thread(target=write, args=(1,))
    first.start()
    assert live_moved_away.wait(timeout=10)
    second = threading.Thread(target=write, args=(2,))
    second.start()
    first.join(timeout=30)
    second.join(timeout=30)
    monkeypatch.undo()

    assert errors == []
    assert storage.read_table(partition).column("x").to_pylist() in ([1], [2])
    assert names_in(partition) == ["part-0.parquet"]
    assert names_in(parent_of(partition)) == ["ds=2025-01-02"]


def test_readers_skip_hidden_files_and_folders_inside_a_partition(root):
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    fs, path = storage.filesystem(partition)
    for hidden in (".ds=2025-01-02.new-0123456789ab/part-0.parquet", "_tmp/part-1.parquet"):
        fs.makedirs(f"{path}/{hidden.rsplit('/', 1)[0]}", exist_ok=True)
        with fs.open(f"{path}/{hidden}", "wb") as handle:
            pq.write_table(pa.table({"x": [9]}), handle)

    assert storage.read_table(partition).column("x").to_pylist() == [1]


def test_a_failed_write_leaves_no_hidden_folder(root, monkeypatch):
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        storage.replace_partition(pa.table({"x": [2]}), partition)
    monkeypatch.undo()

    assert storage.read_table(partition).column("x").to_pylist() == [1]
    assert names_in(parent_of(partition)) == ["ds=2025-01-02"]


def test_a_copy_nested_by_racing_writers_is_found_and_removed(root):
    """What the old code left after a race: a hidden copy inside the live partition."""
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    fs, path = storage.filesystem(partition)
    fs.makedirs(f"{path}/.ds=2025-01-02.new-0123456789ab", exist_ok=True)
    with fs.open(f"{path}/.ds=2025-01-02.new-0123456789ab/part-0.parquet", "wb") as handle:
        pq.write_table(pa.table({"x": [2]}), handle)

    [found] = storage.find_leftovers(root)
    assert found.state == "nested" and storage.filesystem(found.folder)[1] == path
    assert "two writers at once" in found.describe()

    [action] = storage.recover(found.folder)
    assert "nested" in action
    assert names_in(partition) == ["part-0.parquet"]
    assert storage.find_leftovers(root) == []


def test_a_move_in_that_fails_half_way_leaves_the_previous_partition(root, monkeypatch):
    """On an object store a move copies then deletes: a failure can leave part of a copy."""
    partition = Lake(root).raw("s", "e", DAY)
    storage.replace_partition(pa.table({"x": [1]}), partition)
    fs, path = storage.filesystem(partition)
    real_mv = type(fs).mv

    def mv(self, src, dst, *args, **kwargs):
        if str(dst).rstrip("/") == path and ".new-" in str(src):
            self.makedirs(path, exist_ok=True)
            self.pipe(f"{path}/part-0.parquet", b"PAR1 half a file")
            raise OSError("connection reset half-way through the copy")
        return real_mv(self, src, dst, *args, **kwargs)

    monkeypatch.setattr(type(fs), "mv", mv)
    with pytest.raises(OSError, match="half-way"):
        storage.replace_partition(pa.table({"x": [2]}), partition)
    monkeypatch.undo()

    assert storage.read_table(partition).column("x").to_pylist() == [1]
    assert names_in(parent_of(partition)) == ["ds=2025-01-02"]

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from cva_tasks import storage
from cva_tasks.lake import Lake, join


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    if request.param == "local":
        yield str(tmp_path / "lake")
        return
    import fsspec

    fs = fsspec.filesystem("memory")
    name = f"memory://cva-{id(request)}"
    yield name
    fs.rm(name.replace("memory://", "/"), recursive=True)


def test_replace_partition_swaps_whole_folder(root):
    partition = Lake(root).raw("s", "e", date(2025, 1, 2))
    storage.replace_partition(pa.table({"x": [1, 2, 3]}), partition)
    storage.replace_partition(pa.table({"x": [9]}), partition)
    assert storage.read_table(partition).column("x").to_pylist() == [9]
    fs, path = storage.filesystem(partition)
    parent = path.rsplit("/", 1)[0]
    assert [p.rsplit("/", 1)[1] for p in fs.ls(parent, detail=False)] == ["ds=2025-01-02"]


def test_failed_write_leaves_previous_partition(root, monkeypatch):
    partition = Lake(root).raw("s", "e", date(2025, 1, 2))
    storage.replace_partition(pa.table({"x": [1]}), partition)

    import pyarrow.parquet as pq

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        storage.replace_partition(pa.table({"x": [2]}), partition)
    monkeypatch.undo()
    assert storage.read_table(partition).column("x").to_pylist() == [1]


def test_list_partitions_sorted_and_ignores_hidden(root):
    entity = Lake(root).raw("s", "e")
    for day in (date(2025, 1, 3), date(2025, 1, 1)):
        storage.replace_partition(pa.table({"x": [1]}), Lake(root).raw("s", "e", day))
    storage.write_json({"a": 1}, join(entity, ".ds=2025-01-09.new-x", "f.json"))
    assert storage.list_partitions(entity) == [date(2025, 1, 1), date(2025, 1, 3)]


def test_json_round_trip(root):
    uri = Lake(root).file("dq", "x.json")
    storage.write_json({"n": 3, "d": date(2025, 1, 1)}, uri)
    assert storage.read_json(uri) == {"d": "2025-01-01", "n": 3}

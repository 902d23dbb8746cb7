"""Customer shards: a stable hash, parts written atomically, the parts read as one."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from cva_tasks import shards, storage
from cva_tasks.lake import Lake

DAY = date(2025, 11, 30)


def test_a_customer_keeps_its_shard_across_processes_and_python_hash_seeds():
    import subprocess
    import sys

    code = "from cva_tasks.shards import shard_of; print([shard_of(f'C{i}', 7) for i in range(50)])"
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1, "the shard of an id does not depend on the process"
    assert runs.pop().strip() == str([shards.shard_of(f"C{i}", 7) for i in range(50)])
    # BLAKE2b of the id's text: an int id and its text are the same customer.
    assert shards.shard_of(12345, 4) == shards.shard_of("12345", 4)
    assert shards.shard_of("C1", 1) == 0


def test_the_parts_split_the_customers_once_and_evenly():
    ids = [f"C{i:05d}" for i in range(4000)]
    masks = [shards.in_shard(ids, k, 4) for k in range(4)]
    assert (sum(m.astype(int) for m in masks) == 1).all(), "every customer in exactly one part"
    assert all(900 < m.sum() < 1100 for m in masks), [int(m.sum()) for m in masks]
    assert shards.in_shard(ids, 0, 1).all()
    with pytest.raises(ValueError, match="shard 4 of 4"):
        shards.in_shard(ids, 4, 4)


def rows(ids: list[str]) -> pa.Table:
    return pa.table({"customer_id": ids, "value": list(range(len(ids)))})


def write_day(lake: Lake, ids: list[str], n: int, run_id: str) -> None:
    for k in range(n):
        mine = shards.in_shard(ids, k, n)
        part = [c for c, m in zip(ids, mine, strict=True) if m]
        shards.write_part(rows(part), "customer_scores", DAY, k, n, run_id, lake)


def published_ids(lake: Lake) -> list[str]:
    return sorted(
        storage.read_table(lake.scores("customer_scores", DAY))["customer_id"].to_pylist()
    )


def test_collect_reads_all_parts_of_its_run_and_refuses_otherwise(tmp_path):
    lake = Lake(str(tmp_path))
    ids = [f"C{i}" for i in range(40)]
    write_day(lake, ids, 4, "run-1")
    assert lake.shard("customer_scores", 4, 2, DAY).endswith(
        "shards/customer_scores/of-4/shard-2/ds=2025-11-30"
    )
    assert shards.collect("customer_scores", DAY, 4, "run-1", lake)["rows"] == 40
    assert published_ids(lake) == sorted(ids)

    with pytest.raises(
        shards.ShardsIncomplete, match=r"written by \['run-1'\], not by run 'run-2'"
    ):
        shards.collect("customer_scores", DAY, 4, "run-2", lake)
    storage.remove(lake.shard("customer_scores", 4, 1, DAY))
    with pytest.raises(shards.ShardsIncomplete, match=r"part\(s\) \[1\] of 4 are missing"):
        shards.collect("customer_scores", DAY, 4, "run-1", lake)
    assert published_ids(lake) == sorted(ids), "a refused collect leaves the day as it was"


def test_a_rerun_or_a_change_of_the_shard_count_never_duplicates_rows(tmp_path):
    lake = Lake(str(tmp_path))
    ids = [f"C{i}" for i in range(40)]
    for n, run_id in ((4, "run-1"), (4, "run-2"), (2, "run-3"), (1, "run-4"), (3, "run-5")):
        write_day(lake, ids, n, run_id)
        shards.collect("customer_scores", DAY, n, run_id, lake)
        assert published_ids(lake) == sorted(ids), (n, run_id)
        # Only the parts of the last count are left for the day.
        left = [
            count
            for count in shards.shard_counts("customer_scores", lake)
            if storage.exists(lake.shard("customer_scores", count, 0, DAY))
        ]
        assert left == ([n] if n > 1 else []), (n, left)


def test_a_day_without_recommendations_has_no_partition(tmp_path):
    lake = Lake(str(tmp_path))
    target = lake.scores("customer_recommendations", DAY)
    storage.replace_partition(rows(["C1"]), target)
    for k in range(2):
        shards.write_part(rows([]), "customer_recommendations", DAY, k, 2, "run-1", lake)
    result = shards.collect(
        "customer_recommendations", DAY, 2, "run-1", lake, absent_when_empty=True
    )
    assert result["rows"] == 0 and not storage.exists(target)


def test_forget_reaches_the_parts(tmp_path):
    from cva_tasks.privacy.forget import _erase_folder

    lake = Lake(str(tmp_path))
    ids = [f"C{i}" for i in range(40)]
    write_day(lake, ids, 4, "run-1")
    folders = shards.shard_folders(lake)
    assert folders == [lake.shard("customer_scores", 4, k) for k in range(4)]
    assert sum(_erase_folder(folder, {"C7", "C8"}) for folder in folders) == 2
    shards.collect("customer_scores", DAY, 4, "run-1", lake)
    assert published_ids(lake) == sorted(set(ids) - {"C7", "C8"})

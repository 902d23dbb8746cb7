"""The loader's checks and its failure semantics on the embedded (DuckDB) warehouse.

customer_scores: one row per customer per as-of date, key (as_of_date, customer_id).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cva_tasks.warehouse import load
from cva_tasks.warehouse.backends import EmbeddedWarehouse, WarehouseUnavailable
from cva_tasks.warehouse.load import RowsError, prepare_rows
from cva_tasks.warehouse.sample import sample_rows
from cva_tasks.warehouse.schema import TABLES

DAY = date(2025, 12, 31)
OTHER_DAY = DAY - timedelta(days=1)
SPEC = TABLES["customer_scores"]


@pytest.fixture
def warehouse(tmp_path) -> EmbeddedWarehouse:
    return EmbeddedWarehouse(tmp_path / "warehouse.duckdb")


def _without_loaded_at(table: pa.Table) -> pa.Table:
    return table.drop_columns(["loaded_at"])


# --- checks ------------------------------------------------------------------------


def test_rows_of_another_day_are_refused_naming_the_value():
    rows = sample_rows(SPEC, DAY, 10)
    wrong = rows.set_column(0, "as_of_date", pa.array([DAY] * 9 + [date(2025, 12, 30)]))
    with pytest.raises(RowsError, match=r"1 rows are for another day, e.g. as_of_date=2025-12-30"):
        prepare_rows(SPEC, wrong, DAY)
    mixed = rows.set_column(
        0, "as_of_date", pa.array([DAY] * 7 + [date(2025, 1, 1), date(2025, 1, 2), DAY])
    )
    with pytest.raises(ValueError, match="2 rows are for another day") as info:
        prepare_rows(SPEC, mixed, DAY)
    assert "values found: 2025-01-01, 2025-01-02" in str(info.value)


def test_duplicate_keys_are_refused_naming_one():
    rows = sample_rows(SPEC, DAY, 10)
    ids = rows["customer_id"].to_pylist()
    ids[7] = ids[3]
    with pytest.raises(RowsError, match=r"customer_id='C0000003' appears 2 times"):
        prepare_rows(SPEC, rows.set_column(1, "customer_id", pa.array(ids)), DAY)


def test_null_keys_are_refused():
    rows = sample_rows(SPEC, DAY, 5)
    ids = pa.array(["a", None, "c", "d", "e"])
    with pytest.raises(RowsError, match="key column customer_id is null on 1 rows"):
        prepare_rows(SPEC, rows.set_column(1, "customer_id", ids), DAY)


def test_missing_and_extra_columns_are_named():
    rows = sample_rows(SPEC, DAY, 5).drop_columns(["segment", "r_score"])
    rows = rows.append_column("colour", pa.array(["x"] * 5))
    rows = rows.append_column("run_id", pa.array(["r"] * 5))
    with pytest.raises(RowsError) as info:
        prepare_rows(SPEC, rows, DAY)
    message = str(info.value)
    assert "missing columns ['r_score', 'segment']" in message
    assert "extra columns ['colour', 'run_id']" in message
    assert "run_id added by the loader" in message


def test_compatible_types_are_cast_and_others_named():
    rows = sample_rows(SPEC, DAY, 5)
    as_int64 = rows.set_column(4, "frequency", rows["frequency"].cast(pa.int64()))
    assert prepare_rows(SPEC, as_int64, DAY).schema == SPEC.arrow_schema()
    as_text = rows.set_column(4, "frequency", pa.array(["1", "2", "x", "4", "5"]))
    with pytest.raises(RowsError, match="column frequency of type string does not cast to int32"):
        prepare_rows(SPEC, as_text, DAY)


def test_column_order_does_not_matter():
    rows = sample_rows(SPEC, DAY, 5)
    shuffled = rows.select(list(reversed(rows.column_names)))
    assert prepare_rows(SPEC, shuffled, DAY).equals(rows)


# --- (a) reload replaces exactly the day ----------------------------------------------


def test_reload_replaces_exactly_the_day_and_reruns_are_identical(warehouse):
    other = sample_rows(SPEC, OTHER_DAY, 300, seed=1)
    first = sample_rows(SPEC, DAY, 300, seed=2)
    assert warehouse.replace_partition("customer_scores", other, OTHER_DAY, "run-0") == 300
    assert warehouse.replace_partition("customer_scores", first, DAY, "run-1") == 300
    other_before = warehouse.read_table("customer_scores", OTHER_DAY)

    # The rerun of the day has fewer customers and other values.
    second = sample_rows(SPEC, DAY, 200, seed=3)
    assert warehouse.replace_partition("customer_scores", second, DAY, "run-2") == 200
    day = warehouse.read_table("customer_scores", DAY)
    assert day.num_rows == 200
    assert day.drop_columns(["run_id", "loaded_at"]).equals(second)
    assert set(day["run_id"].to_pylist()) == {"run-2"}
    assert warehouse.read_table("customer_scores", OTHER_DAY).equals(other_before)

    assert warehouse.replace_partition("customer_scores", second, DAY, "run-2") == 200
    again = warehouse.read_table("customer_scores", DAY)
    assert _without_loaded_at(again).equals(_without_loaded_at(day))
    everything = warehouse.read_table("customer_scores")
    assert everything.num_rows == 500
    keys = pc.binary_join_element_wise(
        everything["as_of_date"].cast(pa.string()), everything["customer_id"], "|"
    )
    assert pc.count_distinct(keys).as_py() == 500


def test_empty_rows_empty_the_day(warehouse):
    warehouse.replace_partition("customer_scores", sample_rows(SPEC, DAY, 5), DAY, "r1")
    assert warehouse.replace_partition("customer_scores", sample_rows(SPEC, DAY, 0), DAY, "r2") == 0
    assert warehouse.read_table("customer_scores", DAY).num_rows == 0


def test_refused_rows_leave_the_day_alone(warehouse):
    good = sample_rows(SPEC, DAY, 50, seed=1)
    warehouse.replace_partition("customer_scores", good, DAY, "r1")
    before = warehouse.read_table("customer_scores", DAY)
    bad = sample_rows(SPEC, OTHER_DAY, 50, seed=2)
    with pytest.raises(RowsError):
        warehouse.replace_partition("customer_scores", bad, DAY, "r2")
    assert warehouse.read_table("customer_scores", DAY).equals(before)


# --- (b) failure mid-load keeps the previous state ----------------------------------------


@pytest.mark.parametrize("step", ["deleted", "copied"])
def test_failure_mid_load_keeps_the_previous_day_and_rerun_completes(warehouse, monkeypatch, step):
    """``deleted``: the day's rows deleted; ``copied``: new rows inserted; no COMMIT yet."""
    previous = sample_rows(SPEC, DAY, 300, seed=1)
    warehouse.replace_partition("customer_scores", previous, DAY, "run-1")
    before = warehouse.read_table("customer_scores", DAY)

    def fail(reached: str, **context) -> None:
        if reached == step:
            raise OSError(f"disk gone at {reached}")

    monkeypatch.setattr(load, "_reached", fail)
    new = sample_rows(SPEC, DAY, 250, seed=2)
    with pytest.raises(OSError, match=f"disk gone at {step}"):
        warehouse.replace_partition("customer_scores", new, DAY, "run-2")
    assert warehouse.read_table("customer_scores", DAY).equals(before)

    monkeypatch.undo()
    assert warehouse.replace_partition("customer_scores", new, DAY, "run-2") == 250
    after = warehouse.read_table("customer_scores", DAY)
    assert after.drop_columns(["run_id", "loaded_at"]).equals(new)


def test_process_killed_before_commit_keeps_the_previous_day(warehouse):
    previous = sample_rows(SPEC, DAY, 300, seed=1)
    warehouse.replace_partition("customer_scores", previous, DAY, "run-1")
    before = warehouse.read_table("customer_scores", DAY)
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import date
        from cva_tasks.warehouse import load
        from cva_tasks.warehouse.backends import EmbeddedWarehouse
        from cva_tasks.warehouse.sample import sample_rows
        from cva_tasks.warehouse.schema import TABLES

        def die(step, **context):
            if step == "copied":  # the day's rows are deleted and re-inserted, not committed
                os.kill(os.getpid(), signal.SIGKILL)

        load._reached = die
        day = date.fromisoformat("{DAY}")
        rows = sample_rows(TABLES["customer_scores"], day, 250, seed=2)
        EmbeddedWarehouse({str(warehouse.path)!r}).replace_partition(
            "customer_scores", rows, day, "run-2")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert warehouse.read_table("customer_scores", DAY).equals(before)
    new = sample_rows(SPEC, DAY, 250, seed=2)
    assert warehouse.replace_partition("customer_scores", new, DAY, "run-3") == 250


# --- the file lock -----------------------------------------------------------------------


def _hold_lock(path, seconds: float) -> subprocess.Popen:
    script = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "print('locked', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_locked_file_is_waited_for_then_reported(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    EmbeddedWarehouse(path).migrate()
    holder = _hold_lock(path, 1.5)
    try:
        started = time.monotonic()
        rows = sample_rows(SPEC, DAY, 10)
        assert (
            EmbeddedWarehouse(path, lock_timeout=30).replace_partition(
                "customer_scores", rows, DAY, "r1"
            )
            == 10
        )
        assert time.monotonic() - started > 0.5
    finally:
        holder.wait()

    holder = _hold_lock(path, 30)
    try:
        with pytest.raises(WarehouseUnavailable, match="Could not set lock"):
            EmbeddedWarehouse(path, lock_timeout=0.3).replace_partition(
                "customer_scores", rows, DAY, "r2"
            )
    finally:
        os.kill(holder.pid, signal.SIGTERM)
        holder.wait()

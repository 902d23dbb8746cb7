"""The loader: replace one day of a warehouse table with new rows, atomically.

Grain and key come from the table's spec (``schema.TABLES``); customer_scores is
one row per customer per as-of date, key (as_of_date, customer_id).

Both backends follow the same steps:

1. check the rows against the spec (:func:`prepare_rows`): exactly the spec's
   input columns, castable to their types, every ``as_of_date`` equal to the day
   being loaded, no null or duplicate key; then add ``run_id`` and ``loaded_at``
   (one instant per load) as columns of the Arrow table;
2. in ONE transaction: DELETE the day's rows, write the new ones, COMMIT.
   PostgreSQL takes an advisory lock per table and day first (two loads of the
   same day queue instead of colliding on the key), and writes with
   ``COPY <table> FROM STDIN (FORMAT csv)`` straight into the target, pyarrow
   writing the CSV batch by batch; DuckDB INSERTs from the registered Arrow table.

There is no staging table. An earlier version COPYed into an unlogged staging
table and swapped with INSERT ... SELECT, but inside the same transaction as the
swap, so it bought no safety, only a second pass over the data. Atomicity comes
from the transaction alone: until COMMIT, MVCC keeps every reader on the day's
old rows; if the process dies, the server goes away or anything fails before
COMMIT (mid-COPY included), PostgreSQL rolls back the DELETE and the rows COPYed
so far, and the day keeps its previous complete rows. A rerun replaces it whole.

``_reached`` is a no-op called at each step; tests replace it to inject a failure
or kill the process at that exact point.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
import time
import uuid
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from cva_tasks.warehouse.schema import LOADER_COLUMNS, TableSpec

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 50_000
_PROGRESS_EVERY_S = 5.0


class RowsError(ValueError):
    """The rows do not fit the table's spec or the day being loaded."""


def _reached(step: str, **context: Any) -> None:
    """Test seam: called at ``deleted``, ``copying`` (per batch) and ``copied``.

    All three are inside the load's transaction: ``deleted`` after the day's rows
    are deleted, ``copying`` each time a CSV batch is handed to COPY (PostgreSQL
    only), ``copied`` after the new rows are written and before COMMIT.
    """


# --- checks ------------------------------------------------------------------------


def prepare_rows(spec: TableSpec, rows: pa.Table, as_of_date: date) -> pa.Table:
    """Check ``rows`` against ``spec`` and the day; return them in spec order and types.

    Raises:
        RowsError: naming the missing/extra columns, the column that does not cast,
            an as_of_date that is not ``as_of_date``, or a duplicated/null key.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    where = f"{spec.name} as_of_date={as_of_date}"
    names = rows.column_names
    expected = [c.name for c in spec.input_columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    missing = [n for n in expected if n not in names]
    extra = [n for n in names if n not in expected]
    if repeated or missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {missing}")
        if extra:
            hint = [n for n in extra if n in LOADER_COLUMNS]
            parts.append(
                f"extra columns {extra}"
                + (f" ({', '.join(hint)} added by the loader, do not pass them)" if hint else "")
            )
        if repeated:
            parts.append(f"repeated columns {repeated}")
        raise RowsError(f"{where}: rows do not match the table spec: {'; '.join(parts)}")

    arrays = []
    for field in spec.arrow_schema():
        column = rows[field.name]
        if column.type != field.type:
            try:
                column = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise RowsError(
                    f"{where}: column {field.name} of type {column.type} does not cast to "
                    f"{field.type}: {exc}"
                ) from exc
        arrays.append(column)
    table = pa.Table.from_arrays(arrays, schema=spec.arrow_schema())

    for name in spec.key:
        nulls = table[name].null_count
        if nulls:
            raise RowsError(f"{where}: key column {name} is null on {nulls} rows")
    days = table[spec.partition]
    wrong = pc.fill_null(pc.not_equal(days, pa.scalar(as_of_date, days.type)), True)
    if table.num_rows and pc.any(wrong).as_py():
        offending = pc.filter(days, wrong, null_selection_behavior="emit_null")
        values = [str(v) for v in pc.unique(offending).to_pylist()[:5]]
        raise RowsError(
            f"{where}: {len(offending)} rows are for another day, e.g. {spec.partition}="
            f"{values[0]} (every row must have {as_of_date}); values found: {', '.join(values)}"
        )
    _check_unique(spec, table, where)
    return table


def _check_unique(spec: TableSpec, table: pa.Table, where: str) -> None:
    import pyarrow.compute as pc

    # The partition column is constant by now, so the rest of the key decides.
    rest = [k for k in spec.key if k != spec.partition] or list(spec.key)
    if len(rest) == 1:
        ids = table[rest[0]].combine_chunks()
        # Scores usually come sorted by customer: strictly increasing ids are unique
        # (3 ms on 1M ids); otherwise a hash of the ids (0.17 s), count_distinct being
        # slower still (0.8 s).
        if len(ids) < 2 or pc.all(pc.less(ids[:-1], ids[1:])).as_py():
            return
        if len(pc.unique(ids)) == len(ids):
            return
    counts = table.group_by(rest).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows:
        first = dup.slice(0, 1).to_pylist()[0]
        key = ", ".join(f"{k}={first[k]!r}" for k in rest)
        raise RowsError(
            f"{where}: key ({', '.join(spec.key)}) is not unique: {key} appears "
            f"{first['count_all']} times ({dup.num_rows} duplicated keys in all)"
        )


def with_loader_columns(
    spec: TableSpec, table: pa.Table, run_id: str, loaded_at: datetime
) -> pa.Table:
    """``table`` (checked rows) with ``run_id`` and ``loaded_at`` appended, same on every row."""
    import pyarrow as pa

    n = table.num_rows
    for name, value in zip(LOADER_COLUMNS, (run_id, loaded_at), strict=True):
        kind = spec.column(name).arrow_type
        table = table.append_column(pa.field(name, kind), pa.repeat(pa.scalar(value, kind), n))
    return table


# --- PostgreSQL ----------------------------------------------------------------------


def _csv_ready(table: pa.Table) -> pa.Table:
    """``table`` with timestamps made naive UTC, for a session whose TimeZone is UTC.

    pyarrow formats zoned timestamps about 20 times slower than naive ones (it
    resolves the zone per value); the loader sets ``TIME ZONE 'UTC'`` so PostgreSQL
    reads the naive text back as the same instant.
    """
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            naive = table.column(i).cast(pa.timestamp(field.type.unit))
            table = table.set_column(i, field.name, naive)
    return table


class _CsvStream:
    """A file-like ``read()`` over the CSV of an Arrow table, for ``copy_expert``.

    A thread encodes batch after batch (pyarrow releases the GIL) into a short
    queue while PostgreSQL parses the previous ones, so at most a few batches of
    CSV are in memory and encoding overlaps the COPY instead of adding to it.
    """

    _DONE = object()

    def __init__(self, table: pa.Table, batch_rows: int, on_batch) -> None:
        self._on_batch = on_batch
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._stop = threading.Event()
        self._buffer = memoryview(b"")
        self.rows_sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._encode, args=(_csv_ready(table), batch_rows), daemon=True
        )
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _encode(self, table: pa.Table, batch_rows: int) -> None:
        import pyarrow.csv as csv

        header = True
        try:
            for batch in table.to_batches(max_chunksize=batch_rows):
                sink = io.BytesIO()
                # Strings are always quoted and nulls written as nothing: exactly how
                # PostgreSQL's CSV format tells an empty string from NULL.
                csv.write_csv(batch, sink, csv.WriteOptions(include_header=header))
                header = False
                if not self._put((sink.getvalue(), batch.num_rows)):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the reader, which raises it in COPY
            self._put(exc)

    def read(self, size: int = -1) -> bytes:
        try:
            self._fill()
        except BaseException as exc:
            # psycopg2 turns it into "COPY from stdin failed"; the loader re-raises this.
            self.error = exc
            raise
        if size < 0 or size >= len(self._buffer):
            chunk, self._buffer = self._buffer, memoryview(b"")
        else:
            chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(chunk)

    def _fill(self) -> None:
        while not self._buffer:
            item = self._queue.get()
            if item is self._DONE:
                self._queue.put(item)  # later reads keep seeing the end
                return
            if isinstance(item, BaseException):
                raise item
            data, rows = item
            self._buffer = memoryview(data)
            self.rows_sent += rows
            self._on_batch(self.rows_sent)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def replace_partition_postgres(
    conn,
    spec: TableSpec,
    rows: pa.Table,
    as_of_date: date,
    run_id: str,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> int:
    """Replace ``as_of_date`` in ``spec.name`` with ``rows`` over a psycopg2 connection.

    One transaction: advisory lock (table, day), DELETE the day, COPY the rows into
    the table, COMMIT. Anything before COMMIT failing rolls it all back.

    Args:
        conn: an open psycopg2 connection (not in a transaction); left open.
        spec: the table; grain and key as declared there.
        rows: the day's rows, the spec's input columns (no run_id/loaded_at).
        as_of_date: the day replaced; every row's partition column must equal it.
        run_id: written to every row with ``loaded_at`` (one instant per load).
        batch_rows: rows per CSV batch streamed to COPY.

    Returns:
        Rows inserted.
    """
    import psycopg2

    started = time.monotonic()
    where = f"{spec.name} as_of_date={as_of_date}"
    table = prepare_rows(spec, rows, as_of_date)
    total = table.num_rows
    if total == 0:
        log.warning("%s: no rows given, the day will be emptied", where)
    log.info("loading %s: %d rows checked in %.2f s", where, total, time.monotonic() - started)
    table = with_loader_columns(spec, table, run_id, datetime.now(UTC))
    columns = ", ".join(table.column_names)
    conn.autocommit = False
    step = "delete"
    copy_started = last_log = 0.0

    def on_batch(sent: int) -> None:
        nonlocal last_log
        now = time.monotonic()
        if now - last_log >= _PROGRESS_EVERY_S:
            last_log = now
            log.info("%s: copied %d/%d rows (%.0f s)", where, sent, total, now - copy_started)
        _reached("copying", conn=conn, rows_sent=sent)

    try:
        with conn.cursor() as cur:
            # One transaction to COMMIT: until then readers keep seeing the day's old
            # rows, and a failure anywhere (mid-COPY included) rolls it all back.
            cur.execute("SET LOCAL TIME ZONE 'UTC'")  # see _csv_ready
            # Serialises loads of the same day (two reruns at once): the second waits,
            # then deletes what the first inserted instead of colliding with it.
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || %s))",
                (f".{spec.name}:{as_of_date}",),
            )
            cur.execute(f"DELETE FROM {spec.name} WHERE {spec.partition} = %s", (as_of_date,))
            deleted = cur.rowcount
            _reached("deleted", conn=conn, deleted=deleted)
            step = "copy"
            copy_started = last_log = time.monotonic()
            stream = _CsvStream(table, batch_rows, on_batch)
            try:
                cur.copy_expert(
                    f"COPY {spec.name} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)",
                    stream,
                    size=1 << 20,
                )
            except psycopg2.Error:
                if stream.error is not None:
                    raise stream.error from None
                raise
            finally:
                stream.close()
            inserted = cur.rowcount
            copied = time.monotonic() - copy_started
            log.info(
                "%s: copied %d rows in %.2f s (%.0f rows/s), committing",
                where,
                inserted,
                copied,
                inserted / copied if copied else 0.0,
            )
            _reached("copied", conn=conn, inserted=inserted)
            step = "commit"
        conn.commit()
    except BaseException as exc:
        rollback_quietly(conn)
        outcome = (
            "a COMMIT cut short may or may not have landed: rerun to be sure"
            if step == "commit"
            else "rolled back, the day is as it was"
        )
        log.warning(
            "%s: load failed during the %s after %.1f s (%s); %s",
            where,
            step,
            time.monotonic() - started,
            type(exc).__name__,
            outcome,
        )
        raise
    elapsed = time.monotonic() - started
    log.info(
        "%s: replaced %d rows with %d in %.2f s end to end (%.0f rows/s)",
        where,
        deleted,
        inserted,
        elapsed,
        inserted / elapsed if elapsed else 0.0,
    )
    return inserted


def rollback_quietly(conn) -> None:
    import psycopg2

    # When the connection is gone the server has already rolled the transaction back.
    with contextlib.suppress(psycopg2.Error):
        conn.rollback()


# --- DuckDB ---------------------------------------------------------------------------


def rollback_duckdb(con) -> None:
    import duckdb

    # Keep the original error: a ROLLBACK with no transaction open would replace it.
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def replace_partition_duckdb(
    con, spec: TableSpec, rows: pa.Table, as_of_date: date, run_id: str
) -> int:
    """Replace ``as_of_date`` in ``spec.name`` with ``rows`` over a DuckDB connection.

    Same contract as :func:`replace_partition_postgres`: the rows (with run_id and
    loaded_at added) are registered as a view of the Arrow table (no copy), then
    one transaction: DELETE the day, INSERT ... SELECT from the view, COMMIT.

    Returns:
        Rows inserted.
    """
    started = time.monotonic()
    where = f"{spec.name} as_of_date={as_of_date}"
    table = prepare_rows(spec, rows, as_of_date)
    if table.num_rows == 0:
        log.warning("%s: no rows given, the day will be emptied", where)
    log.info("loading %s: %d rows checked", where, table.num_rows)
    table = with_loader_columns(spec, table, run_id, datetime.now(UTC))
    columns = ", ".join(table.column_names)
    view = f"cva_rows_{uuid.uuid4().hex[:8]}"
    con.register(view, table)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            deleted = con.execute(
                f"DELETE FROM {spec.name} WHERE {spec.partition} = ?", [as_of_date]
            ).fetchone()[0]
            _reached("deleted", conn=con, deleted=deleted)
            inserted = con.execute(
                f"INSERT INTO {spec.name} ({columns}) SELECT {columns} FROM {view}"
            ).fetchone()[0]
            _reached("copied", conn=con, inserted=inserted)
            con.execute("COMMIT")
        except BaseException:
            rollback_duckdb(con)
            raise
    finally:
        con.unregister(view)
    elapsed = time.monotonic() - started
    log.info(
        "%s: replaced %d rows with %d in %.2f s (%.0f rows/s)",
        where,
        deleted,
        inserted,
        elapsed,
        inserted / elapsed if elapsed else 0.0,
    )
    return inserted

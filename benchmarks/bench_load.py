"""Benchmark: the warehouse loader against pandas ``to_sql`` and ``psql \\copy``.

``cva bench load [--rows 1000000] [--repeats 3] [--to-sql-rows N] [--json]``

One run, against the PostgreSQL of ``--dsn`` (env ``CVA_BENCH_PG_DSN``), in a
schema of its own that is dropped afterwards:

* rows: N deterministic, realistic customer_scores rows for one day (grain one
  row per customer per as-of date, key (as_of_date, customer_id)), built once;
* ``loader``: the pipeline's ``replace_partition`` into an empty customer_scores,
  timed end to end (checks, CSV encoding, then one transaction: advisory lock,
  DELETE the day, COPY straight into the table, COMMIT); ``loader_reload`` times
  replacing that same day again (the DELETE then removes n rows);
* ``to_sql``: ``DataFrame.to_sql(if_exists="append")`` with pandas' defaults
  (method None, chunksize None) into an empty table of the same DDL; only
  ``index=False`` is set, as the table has no column for the frame's index. The
  frame (with run_id and loaded_at) is built before the clock starts. It is slow
  (about 4,500 rows/s here), so ``--to-sql-rows`` can time it on fewer rows and
  the comparison is made on rows/s;
* ``psql_copy``: ``psql -c "\\copy ... from file csv"`` of the same rows, CSV
  written beforehand (not timed), into an empty regular table of the same DDL:
  the floor.

Every target is truncated and a CHECKPOINT taken before each timed step (not
timed), and the methods take turns within each repeat so drift hits all alike.
Figures are medians over the repeats. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

DAY = date(2025, 12, 31)
GOAL_VS_TO_SQL = 20.0  # loader rows/s at least this many times to_sql's
GOAL_VS_COPY = 2.0  # loader seconds at most this many times \copy's


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per load")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method")
    parser.add_argument(
        "--to-sql-rows",
        type=int,
        default=None,
        help="rows for to_sql (default: --rows; 0 skips it); compared on rows/s",
    )
    parser.add_argument(
        "--to-sql-repeats", type=int, default=None, help="runs of to_sql (default: --repeats)"
    )
    parser.add_argument(
        "--dsn",
        default=None,
        help="SQLAlchemy URL of the PostgreSQL to use (default: CVA_BENCH_PG_DSN)",
    )
    parser.add_argument("--seed", type=int, default=0)


def _progress(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} bench load: {message}", file=sys.stderr, flush=True)


def _summary(rows: int, runs: list[float], what: str) -> dict:
    median = statistics.median(runs)
    return {
        "rows": rows,
        "runs_s": [round(r, 3) for r in runs],
        "median_s": round(median, 3),
        "rows_per_s": round(rows / median) if median else None,
        "what": what,
    }


def _libpq_uri(url) -> str:
    """``postgresql://...`` for psql, from a SQLAlchemy URL, without its password.

    Any user can read another's command line (``ps``, ``/proc/PID/cmdline``): the
    password goes to psql through ``PGPASSWORD`` instead (:func:`psql_invocation`).
    """
    # ``URL.set(password=None)`` keeps the password; a NamedTuple replace drops it.
    return url.set(drivername="postgresql")._replace(password=None).render_as_string()


def psql_invocation(url, *psql_args: str) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of a psql run on ``url``: the password only in the env."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return ["psql", _libpq_uri(url), *psql_args], env


def masked(text: str, password: str | None) -> str:
    """``text`` with ``password`` (and its URL-quoted form) replaced by ``***``."""
    from urllib.parse import quote, quote_plus

    if not password:
        return text
    for form in {password, quote(password, safe=""), quote_plus(password)}:
        text = text.replace(form, "***")
    return text


def run_psql(url, *psql_args: str) -> None:
    """Run psql on ``url``; a failure raises RuntimeError whose text holds no password."""
    argv, env = psql_invocation(url, *psql_args)
    password = None if url.password is None else str(url.password)
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            masked(f"psql failed (exit {exc.returncode}): {exc.stderr.strip()}", password)
        ) from None


def command(args: argparse.Namespace) -> dict:
    import uuid

    import psycopg2
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from cva_tasks.warehouse.backends import PostgresWarehouse
    from cva_tasks.warehouse.sample import sample_rows
    from cva_tasks.warehouse.schema import TABLES

    spec = TABLES["customer_scores"]
    n = args.rows
    to_sql_rows = n if args.to_sql_rows is None else min(args.to_sql_rows, n)
    to_sql_repeats = args.repeats if args.to_sql_repeats is None else args.to_sql_repeats
    if not to_sql_rows:
        to_sql_repeats = 0
    from cva_tasks.settings import Settings

    base = make_url(args.dsn or Settings.from_env().bench_pg_dsn)
    schema = f"cva_bench_{uuid.uuid4().hex[:8]}"
    shown_dsn = base.render_as_string(hide_password=True)
    admin_params = base.translate_connect_args(username="user", database="dbname")
    try:
        admin = psycopg2.connect(**admin_params)
    except psycopg2.Error as exc:
        # Raised anew without the chained original: its text and frames may hold the DSN.
        password = None if base.password is None else str(base.password)
        raise RuntimeError(
            f"cannot connect to {shown_dsn}: {masked(str(exc).strip(), password)}"
        ) from None
    admin.autocommit = True

    def sql(statement: str) -> list[tuple]:
        with admin.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []

    server = {
        name: sql(f"SHOW {name}")[0][0]
        for name in ("server_version", "shared_buffers", "wal_level", "synchronous_commit")
    }
    load_before = os.getloadavg()
    _progress(f"PostgreSQL {server['server_version']} at {shown_dsn}, schema {schema}")
    started = time.monotonic()
    rows = sample_rows(spec, DAY, n, seed=args.seed)
    _progress(f"built {n:,} rows in {time.monotonic() - started:.1f} s")

    loaded_at = datetime.now(UTC)
    full = rows.append_column("run_id", pa.array(["bench"] * n, pa.string())).append_column(
        "loaded_at", pa.array([loaded_at] * n, pa.timestamp("us", tz="UTC"))
    )
    workdir = Path(tempfile.mkdtemp(prefix="cva-bench-load-"))
    csv_path = workdir / "customer_scores.csv"
    pa_csv.write_csv(full, str(csv_path))
    _progress(f"wrote the \\copy CSV ({csv_path.stat().st_size / 1e6:.0f} MB, not timed)")
    frame = full.slice(0, to_sql_rows).to_pandas() if to_sql_repeats else None

    from dataclasses import replace

    sql(f"CREATE SCHEMA {schema}")
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    engine = sa.create_engine(base)
    results: dict[str, list[float]] = {"loader": [], "loader_reload": [], "to_sql": [], "copy": []}
    try:
        warehouse = PostgresWarehouse(url.render_as_string(hide_password=False), "bench")
        warehouse.migrate()
        for table in ("bench_to_sql", "bench_copy"):
            latest = max(c.since for c in spec.columns)
            sql(f"SET search_path = {schema}; " + replace(spec, name=table).create_sql(latest))
        columns = ", ".join(full.column_names)  # the CSV's own order
        psql_args = (
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            f"\\copy {schema}.bench_copy ({columns}) from '{csv_path}' "
            "with (format csv, header true)",
        )

        def fresh(table: str) -> None:
            sql(f"TRUNCATE {schema}.{table}")
            sql("CHECKPOINT")

        for repeat in range(1, max(args.repeats, to_sql_repeats) + 1):
            if repeat <= args.repeats:
                fresh("customer_scores")
                t = time.monotonic()
                warehouse.replace_partition("customer_scores", rows, DAY, f"bench-{repeat}")
                results["loader"].append(time.monotonic() - t)
                _progress(f"run {repeat}: loader {n:,} rows in {results['loader'][-1]:.2f} s")

                sql("CHECKPOINT")
                t = time.monotonic()
                warehouse.replace_partition("customer_scores", rows, DAY, f"bench-{repeat}b")
                results["loader_reload"].append(time.monotonic() - t)
                _progress(f"run {repeat}: loader reload in {results['loader_reload'][-1]:.2f} s")

                fresh("bench_copy")
                t = time.monotonic()
                run_psql(base, *psql_args)
                results["copy"].append(time.monotonic() - t)
                _progress(f"run {repeat}: psql \\copy {n:,} rows in {results['copy'][-1]:.2f} s")

            if repeat <= to_sql_repeats:
                fresh("bench_to_sql")
                _progress(f"run {repeat}: to_sql of {to_sql_rows:,} rows started")
                t = time.monotonic()
                frame.to_sql("bench_to_sql", engine, schema=schema, if_exists="append", index=False)
                results["to_sql"].append(time.monotonic() - t)
                _progress(
                    f"run {repeat}: to_sql {to_sql_rows:,} rows in {results['to_sql'][-1]:.1f} s"
                )

        counts = {
            t: sql(f"SELECT count(*) FROM {schema}.{t}")[0][0]
            for t in ("customer_scores", "bench_copy", "bench_to_sql")
        }
    finally:
        sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.close()
        engine.dispose()
        csv_path.unlink(missing_ok=True)
        workdir.rmdir()
        _progress(f"dropped schema {schema}")

    methods = {
        "loader": _summary(n, results["loader"], "replace_partition into an empty table"),
        "loader_reload": _summary(
            n, results["loader_reload"], "replace_partition of a day already loaded (DELETE n rows)"
        ),
        "psql_copy": _summary(n, results["copy"], "psql \\copy from a CSV file (the floor)"),
    }
    if results["to_sql"]:
        methods["to_sql"] = _summary(
            to_sql_rows, results["to_sql"], "DataFrame.to_sql(if_exists='append', index=False)"
        )
    loader_rps = methods["loader"]["rows_per_s"]
    copy_rps = methods["psql_copy"]["rows_per_s"]
    ratios = {
        "loader_vs_copy_time": round(
            methods["loader"]["median_s"] / methods["psql_copy"]["median_s"], 2
        ),
        "loader_share_of_copy_rows_per_s": round(loader_rps / copy_rps, 2),
    }
    goals = {
        f"loader within {GOAL_VS_COPY:g}x of \\copy": ratios["loader_vs_copy_time"] <= GOAL_VS_COPY
    }
    if "to_sql" in methods:
        ratios["loader_vs_to_sql_rows_per_s"] = round(
            loader_rps / methods["to_sql"]["rows_per_s"], 1
        )
        goals[f"loader >= {GOAL_VS_TO_SQL:g}x to_sql"] = (
            ratios["loader_vs_to_sql_rows_per_s"] >= GOAL_VS_TO_SQL
        )
    result = {
        "ok": True,
        "rows": n,
        "repeats": args.repeats,
        "dsn": shown_dsn,
        "server": server,
        "cpus": os.cpu_count(),
        # Other work on the machine shows up in the runs' spread; this says how much.
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "methods": methods,
        "ratios": ratios,
        "goals": goals,
        "goals_met": all(goals.values()),
        "final_row_counts": counts,
    }
    result["text"] = _text(result)
    return result


def _text(result: dict) -> str:
    lines = [
        f"load benchmark: {result['rows']:,} customer_scores rows, median of "
        f"{result['repeats']} runs, PostgreSQL {result['server']['server_version']}",
        f"{'method':<15}{'rows':>11}{'median s':>11}{'rows/s':>11}  runs (s)",
    ]
    for name, m in result["methods"].items():
        runs = ", ".join(f"{r:g}" for r in m["runs_s"])
        lines.append(
            f"{name:<15}{m['rows']:>11,}{m['median_s']:>11.2f}{m['rows_per_s']:>11,}  {runs}"
        )
    r = result["ratios"]
    lines.append(f"loader time / \\copy time: {r['loader_vs_copy_time']:.2f}x")
    if "loader_vs_to_sql_rows_per_s" in r:
        lines.append(f"loader rows/s / to_sql rows/s: {r['loader_vs_to_sql_rows_per_s']:.1f}x")
    lines.extend(
        f"goal {name}: {'met' if ok else 'NOT met'}" for name, ok in result["goals"].items()
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(cli)
    cli.add_argument("--json", action="store_true")
    options = cli.parse_args()
    outcome = command(options)
    text = outcome.pop("text")
    print(json.dumps(outcome, indent=1, default=str) if options.json else text)

"""Benchmark of the customer features: DuckDB (the pipeline's engine) against pandas.

``cva bench features [--customers 100000 1000000] [--repeats 3] [--json]`` or
``python -m benchmarks.bench_features ...``. For each size it

1. generates the demo shop (about 10 orders per customer over 2024-2025) and writes it
   into a temporary lake, raw and staged, as the source DAGs would (not timed);
2. builds the features as of the end of the shop's last day with the pandas reference
   (:mod:`benchmarks.reference_pandas`) and with DuckDB
   (:mod:`cva_tasks.features.customer`), each run in a fresh Python process, the engines
   alternating, ``repeats`` times;
3. checks that both engines return the same table (floats to 1e-9) and reports the
   median of each engine's figures and the ratios.

What is measured, per run (see :mod:`benchmarks._measure`):

* ``seconds``: wall time of the build call inside the child (after the interpreter
  started and pandas/pyarrow/DuckDB were imported; reading the Parquet is included,
  writing the result for the comparison is not);
* ``cpu_seconds``: user + system CPU time of the whole child;
* ``peak_rss_mb``: the child's own peak resident memory (``VmHWM``) over the build
  and the writing of its result, interpreter and imports included (about 150 MB);
  ``peak_rss_mb_by_phase`` splits it into ``build`` and ``write``;
* ``load_avg``: the machine's 1-minute load average when the run ended.

Progress goes to stderr; the report (or JSON with ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._measure import PhasePeaks, rss_mb, run_child

log = logging.getLogger("cva.bench.features")

ENGINES = ("pandas", "duckdb")
DEFAULT_CUSTOMERS = (100_000, 1_000_000)
GOAL = {"speedup": 5.0, "memory_ratio": 0.5}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cva bench features``."""
    parser.add_argument(
        "--customers",
        type=int,
        nargs="+",
        default=list(DEFAULT_CUSTOMERS),
        help="demo shop sizes to measure (default: 100000 1000000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine and size")
    parser.add_argument("--seed", type=int, default=7, help="demo shop seed")
    parser.add_argument(
        "--work-dir", default=None, help="where the temporary lakes go (default: system temp)"
    )


def command(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark for parsed ``args`` (the ``cva bench features`` entry point).

    Returns:
        :func:`run`'s result plus ``text`` (the report as a table, printed unless
        ``--json``) and ``ok`` (both engines returned the same table; a difference
        raises instead).
    """
    result = run(args.customers, args.repeats, seed=args.seed, work_dir=args.work_dir)
    return {**result, "ok": True, "text": format_report(result)}


def run(
    customers: list[int],
    repeats: int,
    *,
    seed: int = 7,
    work_dir: str | None = None,
) -> dict[str, Any]:
    """Measure both engines at each size.

    Args:
        customers: Demo shop sizes.
        repeats: Runs per engine and size (the medians are reported).
        seed: Demo shop seed.
        work_dir: Parent folder of the temporary lakes.

    Returns:
        ``{"sizes": [...], "goal": {...}, "machine": {...}}``; per size: ``customers``,
        ``orders``, ``order_lines``, ``feature_rows``, ``setup_seconds``, per engine the
        ``runs`` and their ``median`` (``seconds``, ``cpu_seconds``, ``peak_rss_mb``),
        and ``speedup`` (pandas / DuckDB median time), ``cpu_speedup`` and
        ``memory_ratio`` (DuckDB / pandas median peak memory).

    Raises:
        AssertionError: when the engines disagree.
        RuntimeError: when a child process fails.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    sizes = [_measure_size(n, repeats, seed, work_dir) for n in customers]
    return {
        "sizes": sizes,
        "goal": GOAL,
        "repeats": repeats,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "timed": "the build call in a fresh process (imports excluded); memory: the whole child",
    }


def _measure_size(n: int, repeats: int, seed: int, work_dir: str | None) -> dict[str, Any]:
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import generate_frames

    tmp = Path(tempfile.mkdtemp(prefix=f"cva-bench-{n}-", dir=work_dir))
    try:
        started = time.perf_counter()
        log.info("[%d customers] generating the demo shop", n)
        frames = generate_frames(n_customers=n, seed=seed)
        counts = frames.counts()
        last_day = frames.end
        lake = tmp / "lake"
        log.info(
            "[%d customers] writing %d order lines into the lake %s (raw and staged)",
            n,
            counts["order_lines"],
            lake,
        )
        write_raw_from_frames(frames, str(lake))
        del frames
        gc.collect()
        setup = time.perf_counter() - started
        as_of = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(1)
        log.info("[%d customers] lake ready in %.0f s; features as of %s", n, setup, as_of)

        runs: dict[str, list[dict[str, Any]]] = {engine: [] for engine in ENGINES}
        outputs = {engine: tmp / f"features-{engine}.parquet" for engine in ENGINES}
        for r in range(repeats):
            for engine in ENGINES:
                log.info("[%d customers] %s run %d/%d ...", n, engine, r + 1, repeats)
                figures = _run_child(engine, str(lake), as_of, outputs[engine], tmp)
                runs[engine].append(figures)
                log.info(
                    "[%d customers] %s run %d/%d: %.1f s (%.1f s CPU), peak %.0f MB, load %.1f",
                    n,
                    engine,
                    r + 1,
                    repeats,
                    figures["seconds"],
                    figures["cpu_seconds"],
                    figures["peak_rss_mb"],
                    figures["load_avg"],
                )
        rows = _assert_same(outputs["duckdb"], outputs["pandas"])
        log.info("[%d customers] both engines return the same %d rows", n, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    medians = {
        engine: {
            key: round(statistics.median(run[key] for run in runs[engine]), 2)
            for key in ("seconds", "cpu_seconds", "peak_rss_mb")
        }
        for engine in ENGINES
    }
    pandas, duck = medians["pandas"], medians["duckdb"]
    return {
        "customers": n,
        "orders": counts["orders"],
        "order_lines": counts["order_lines"],
        "feature_rows": rows,
        "setup_seconds": round(setup, 1),
        "as_of": as_of.isoformat(),
        "engines": {
            engine: {"median": medians[engine], "runs": runs[engine]} for engine in ENGINES
        },
        "speedup": round(pandas["seconds"] / duck["seconds"], 2),
        "cpu_speedup": round(pandas["cpu_seconds"] / duck["cpu_seconds"], 2),
        "memory_ratio": round(duck["peak_rss_mb"] / pandas["peak_rss_mb"], 3),
    }


def _run_child(engine: str, lake: str, as_of: datetime, out: Path, tmp: Path) -> dict[str, Any]:
    result = tmp / f"result-{engine}.json"
    args = [engine, "--data-root", lake, "--as-of", as_of.isoformat(), "--out", str(out)]
    figures = run_child("benchmarks.bench_features", [*args, "--result", str(result)], result)
    return {**figures, "seconds": round(figures["seconds"], 3)}


def _assert_same(ours: Path, reference: Path) -> int:
    import pandas as pd
    import pyarrow.parquet as pq

    a, b = pq.read_table(ours), pq.read_table(reference)
    assert a.schema == b.schema, f"schemas differ:\n{a.schema}\n{b.schema}"
    pd.testing.assert_frame_equal(
        a.to_pandas(), b.to_pandas(), check_exact=False, rtol=1e-9, atol=1e-9
    )
    return a.num_rows


def _child(engine: str, data_root: str, as_of: str, out: str, result: str) -> None:
    """Build once with ``engine``; time the build call only."""
    import pyarrow.parquet as pq

    if engine == "duckdb":
        from cva_tasks.features.customer import build_customer_features as build
    elif engine == "pandas":
        from benchmarks.reference_pandas import build_customer_features_pandas as build
    else:
        raise ValueError(f"unknown engine {engine!r}")
    import duckdb  # noqa: F401  (both children pay the same imports)
    import pandas  # noqa: F401

    rss_imports = rss_mb("VmRSS")
    peaks = PhasePeaks()
    started = time.perf_counter()
    table = build(datetime.fromisoformat(as_of), data_root)
    seconds = time.perf_counter() - started
    peaks.end("build")
    pq.write_table(table, out)
    peaks.end("write")
    Path(result).write_text(
        json.dumps(
            {
                "seconds": seconds,
                "rows": table.num_rows,
                "rss_after_imports_mb": round(rss_imports, 1),
                **peaks.figures(),
            }
        )
    )


def format_report(result: dict[str, Any]) -> str:
    """The result as a small text table."""
    lines = [
        f"customer features, median of {result['repeats']} runs per engine ({result['timed']})",
        f"{'customers':>10} {'lines':>11} {'engine':>7} {'time s':>8} {'CPU s':>8} {'peak MB':>9}",
    ]
    for size in result["sizes"]:
        for engine in ENGINES:
            m = size["engines"][engine]["median"]
            lines.append(
                f"{size['customers']:>10,} {size['order_lines']:>11,} {engine:>7} "
                f"{m['seconds']:>8.1f} {m['cpu_seconds']:>8.1f} {m['peak_rss_mb']:>9,.0f}"
            )
        lines.append(
            f"{'':>10} pandas/DuckDB time {size['speedup']:.1f}x (CPU {size['cpu_speedup']:.1f}x), "
            f"DuckDB/pandas memory {size['memory_ratio']:.2f} "
            f"(goal: >= {GOAL['speedup']:.0f}x, <= {GOAL['memory_ratio']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m benchmarks.bench_features [--customers N ...] [--json]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        child = argparse.ArgumentParser()
        child.add_argument("--child", required=True)
        for name in ("--data-root", "--as-of", "--out", "--result"):
            child.add_argument(name, required=True)
        a = child.parse_args(argv)
        _child(a.child, a.data_root, a.as_of, a.out, a.result)
        return 0
    parser = argparse.ArgumentParser(prog="bench_features", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    result = command(args)
    text = result.pop("text")
    print(json.dumps(result, indent=1) if args.json else text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

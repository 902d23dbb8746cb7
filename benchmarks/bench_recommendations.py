"""Benchmark of the recommenders: train and score every customer of the demo shop.

``cva bench recommendations [--customers 1000000] [--json]`` or
``python -m benchmarks.bench_recommendations ...``. For each size it

1. generates the demo shop (:func:`cva_tasks.demo.shop.generate_frames`, about 10
   orders and 26 lines per customer over 2024-2025) and writes the inputs of the
   recommenders as Parquet (not timed): ``interactions`` (lines of placed orders:
   ``customer_id, item_id, quantity, occurred_at``), ``items`` (``item_id, name``) and
   ``customers`` (``customer_id, country``);
2. runs, each in a fresh Python process:

   * ``baseline``: the popularity baseline (last-30-days bestsellers, what a marketer
     would send) fitted and scored for every customer through the same
     :meth:`~cva_tasks.models.recommend.Recommender.predict_chunks` (top 10 +
     buy-again);
   * ``pipeline``: what the pipeline does: :func:`~cva_tasks.models.recommend.
     train_recommenders` (every candidate fitted before a 30-day validation window and
     scored on it, the best refitted on all data), then the top 10 and buy-again
     lists of every customer from the chosen model, streamed chunk by chunk into
     Parquet (:meth:`~cva_tasks.models.recommend.Recommender.predict_chunks`, the
     path of :meth:`~cva_tasks.models.recommend.Recommender.predict`).

What is measured, per child (see :mod:`benchmarks._measure`): wall time of each phase
(reading the Parquet inputs, training, scoring every customer with the chunks streamed
into a Parquet file), CPU time of the whole child and its own peak resident memory
(``VmHWM``), per phase and in all (``implicit``'s allocations included; the interpreter
and imports are about 200 MB of it, the interactions frame as read about 32 bytes per
line; Arrow's pool is released after reading the Parquet inputs). Also the machine's
load average at the end.

Progress goes to stderr; the report (or JSON with ``--json``) to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks._measure import PhasePeaks, rss_mb, run_child

log = logging.getLogger("cva.bench.recommendations")

MODES = ("baseline", "pipeline")
DEFAULT_CUSTOMERS = (1_000_000,)
GOAL = {"peak_rss_gib": 4.0, "minutes": 30.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cva bench recommendations``."""
    parser.add_argument(
        "--customers",
        type=int,
        nargs="+",
        default=list(DEFAULT_CUSTOMERS),
        help="demo shop sizes to measure (default: 1000000)",
    )
    parser.add_argument("--seed", type=int, default=7, help="demo shop seed")
    parser.add_argument("--model-seed", type=int, default=0, help="seed of the recommenders")
    parser.add_argument(
        "--work-dir", default=None, help="where the temporary inputs go (default: system temp)"
    )


def command(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark for parsed ``args`` (the ``cva bench recommendations`` entry point).

    Returns:
        :func:`run`'s result plus ``text`` (the report) and ``ok`` (every size within
        :data:`GOAL`: peak memory of the pipeline child and its total time).
    """
    result = run(args.customers, seed=args.seed, model_seed=args.model_seed, work_dir=args.work_dir)
    ok = all(
        size["modes"]["pipeline"]["peak_rss_mb"] / 1024 <= GOAL["peak_rss_gib"]
        and size["modes"]["pipeline"]["seconds"] / 60 <= GOAL["minutes"]
        for size in result["sizes"]
    )
    return {**result, "ok": ok, "text": format_report(result)}


def run(
    customers: list[int], *, seed: int = 7, model_seed: int = 0, work_dir: str | None = None
) -> dict[str, Any]:
    """Measure both children at each size.

    Returns:
        ``{"sizes": [...], "goal": {...}, "machine": {...}}``; per size: ``customers``,
        ``interactions``, ``items``, ``setup_seconds`` and per mode the child's figures
        (``seconds``, ``phases``, ``cpu_seconds``, ``peak_rss_mb``, ``rows``, ...).

    Raises:
        RuntimeError: when a child process fails.
    """
    return {
        "sizes": [_measure_size(n, seed, model_seed, work_dir) for n in customers],
        "goal": GOAL,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "timed": "each mode in a fresh process; memory: peak RSS of the whole child",
    }


def write_inputs(n: int, seed: int, folder: Path) -> dict[str, Any]:
    """Generate the demo shop and write the recommenders' inputs into ``folder``."""
    from cva_tasks.demo.shop import generate_frames

    log.info("[%d customers] generating the demo shop", n)
    frames = generate_frames(n_customers=n, seed=seed)
    placed = frames.orders.loc[
        frames.orders["status"] == "placed", ["order_id", "customer_id", "ordered_at"]
    ]
    lines = frames.order_lines[["order_id", "product_id", "quantity"]].merge(
        placed, on="order_id", how="inner"
    )
    interactions = lines[["customer_id", "product_id", "quantity", "ordered_at"]].rename(
        columns={"product_id": "item_id", "ordered_at": "occurred_at"}
    )
    del lines, placed
    items = frames.products[["product_id", "name"]].rename(columns={"product_id": "item_id"})
    customers = frames.customers[["customer_id", "country"]]
    end = frames.end
    del frames
    gc.collect()
    interactions.to_parquet(folder / "interactions.parquet", index=False)
    items.to_parquet(folder / "items.parquet", index=False)
    customers.to_parquet(folder / "customers.parquet", index=False)
    as_of = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return {
        "interactions": len(interactions),
        "items": len(items),
        "customers": len(customers),
        "as_of": as_of.isoformat(),
    }


def _measure_size(n: int, seed: int, model_seed: int, work_dir: str | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"cva-bench-rec-{n}-", dir=work_dir))
    try:
        started = time.perf_counter()
        inputs = write_inputs(n, seed, tmp)
        gc.collect()
        setup = time.perf_counter() - started
        log.info(
            "[%d customers] %d purchase lines of %d items ready in %.0f s",
            n,
            inputs["interactions"],
            inputs["items"],
            setup,
        )
        modes = {}
        for mode in MODES:
            log.info("[%d customers] %s ...", n, mode)
            figures = _run_child(mode, tmp, inputs["as_of"], model_seed)
            modes[mode] = figures
            log.info(
                "[%d customers] %s: %.0f s (%.0f s CPU), peak %.0f MB, %d rows, load %.1f",
                n,
                mode,
                figures["seconds"],
                figures["cpu_seconds"],
                figures["peak_rss_mb"],
                figures["rows"],
                figures["load_avg"],
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base, pipe = modes["baseline"], modes["pipeline"]
    return {
        "customers": n,
        **{key: inputs[key] for key in ("interactions", "items", "as_of")},
        "setup_seconds": round(setup, 1),
        "modes": modes,
        "time_ratio": round(pipe["seconds"] / base["seconds"], 2),
        "memory_ratio": round(pipe["peak_rss_mb"] / base["peak_rss_mb"], 2),
    }


def _run_child(mode: str, folder: Path, as_of: str, model_seed: int) -> dict[str, Any]:
    result = folder / f"result-{mode}.json"
    args = [mode, "--data", str(folder), "--as-of", as_of, "--model-seed", str(model_seed)]
    return run_child("benchmarks.bench_recommendations", [*args, "--result", str(result)], result)


def _child(mode: str, folder: str, as_of: str, model_seed: int, result: str) -> None:
    """Fit and score every customer with ``mode``; time each phase."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cva_tasks.models import recommend as rec

    rss_imports = rss_mb("VmRSS")
    phases: dict[str, float] = {}
    peaks = PhasePeaks()

    started = time.perf_counter()
    interactions = pd.read_parquet(Path(folder) / "interactions.parquet")
    items = pd.read_parquet(Path(folder) / "items.parquet")
    customers = pd.read_parquet(Path(folder) / "customers.parquet")
    # Arrow keeps the read buffers in its pool after the conversion to pandas: hand
    # them back so the figures are the recommenders', not the Parquet reader's.
    pa.default_memory_pool().release_unused()
    phases["read"] = time.perf_counter() - started
    rss_read = rss_mb("VmRSS")
    peaks.end("read")
    as_of_stamp = pd.Timestamp(as_of)

    mark = time.perf_counter()
    report: dict[str, Any] = {}
    if mode == "baseline":
        model = rec.Recommender("bestsellers_recent", seed=model_seed).fit(
            interactions, items, customers, as_of_stamp
        )
    elif mode == "pipeline":
        model, report = rec.train_recommenders(
            interactions, items, customers, as_of_stamp, seed=model_seed
        )
    else:
        raise ValueError(f"unknown mode {mode!r}")
    phases["train"] = time.perf_counter() - mark
    rss_after_train = rss_mb("VmRSS")
    peaks.end("train")

    # Score every customer chunk by chunk and stream the chunks into Parquet, as a
    # pipeline at this size would (the whole table never sits in memory).
    mark = time.perf_counter()
    out = Path(folder) / f"recommendations-{mode}.parquet"
    rows, per_list, with_next_best = 0, dict.fromkeys(rec.LISTS, 0), 0
    writer = None
    for chunk in model.predict_chunks(
        customers["customer_id"],
        interactions,
        k=10,
        customers=customers,
        as_of=as_of_stamp,
    ):
        table = pa.Table.from_pandas(_plain(chunk), preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
        rows += len(chunk)
        for name, count in chunk["list"].value_counts().items():
            per_list[str(name)] += int(count)
        with_next_best += chunk.loc[chunk["list"] == rec.NEXT_BEST, "customer_id"].nunique()
    if writer is not None:
        writer.close()
    phases["score_and_write"] = time.perf_counter() - mark
    peaks.end("score_and_write")
    summary = {
        "seconds": round(time.perf_counter() - started, 2),
        "phases": {name: round(value, 2) for name, value in phases.items()},
        "rows": rows,
        "rows_per_list": per_list,
        "customers_with_next_best": int(with_next_best),
        "model": model.model_name,
        "validation_ndcg_at_10": {
            name: round(figures["ndcg_at_10"], 4)
            for name, figures in report.get("models", {}).items()
        },
        "rss_after_imports_mb": round(rss_imports, 1),
        "rss_after_read_mb": round(rss_read, 1),
        "rss_after_train_mb": round(rss_after_train, 1),
        **peaks.figures(),
    }
    Path(result).write_text(json.dumps(summary))


def _plain(chunk):
    """Categorical columns as plain strings: each chunk has its own categories."""
    return chunk.astype({c: "str" for c in ("list", "item_name", "reason", "model")})


def format_report(result: dict[str, Any]) -> str:
    """The result as a small text table."""
    lines = [
        f"recommendations for every customer of the demo shop ({result['timed']})",
        f"{'customers':>10} {'lines':>11} {'mode':>9} {'read s':>7} {'train s':>8} "
        f"{'score+write s':>14} {'total s':>8} {'CPU s':>7} {'peak MB':>8} {'rows':>11}",
    ]
    for size in result["sizes"]:
        for mode in MODES:
            m = size["modes"][mode]
            p = m["phases"]
            lines.append(
                f"{size['customers']:>10,} {size['interactions']:>11,} {mode:>9} "
                f"{p['read']:>7.1f} {p['train']:>8.1f} {p['score_and_write']:>14.1f} "
                f"{m['seconds']:>8.1f} {m['cpu_seconds']:>7.0f} {m['peak_rss_mb']:>8,.0f} "
                f"{m['rows']:>11,}"
            )
        pipe = size["modes"]["pipeline"]
        lines.append(
            f"{'':>10} pipeline chose {pipe['model']} (validation NDCG@10: "
            + ", ".join(f"{k} {v:.4f}" for k, v in pipe["validation_ndcg_at_10"].items())
            + f"); pipeline/baseline time {size['time_ratio']:.1f}x, memory "
            f"{size['memory_ratio']:.2f}x (goal: <= {GOAL['peak_rss_gib']} GiB, "
            f"<= {GOAL['minutes']:.0f} min)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m benchmarks.bench_recommendations [--customers N ...]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        child = argparse.ArgumentParser()
        for name in ("--child", "--data", "--as-of", "--result"):
            child.add_argument(name, required=True)
        child.add_argument("--model-seed", type=int, default=0)
        a = child.parse_args(argv)
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )
        _child(a.child, a.data, a.as_of, a.model_seed, a.result)
        return 0
    parser = argparse.ArgumentParser(
        prog="bench_recommendations", description=__doc__.splitlines()[0]
    )
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

"""``cva run DAG --ds DAY``: run one of the project's DAGs for the data day DAY.

Airflow names a daily run by its *logical date*, the end of its data interval, so
``airflow dags test DAG 2025-06-10`` runs the interval ``[06-09, 06-10)`` and lands
2025-06-09. This command takes the day the data is for (the ``ds`` of the lake's
partitions, of the logs and of ``airflow tasks clear -s DAY``) and runs the DAG
in-process on the embedded setup (:func:`cva_tasks.airflow_runner.run_dag_for_day`).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date
from typing import Any

HELP = "run a DAG for one data day (the day whose partitions it writes)"
DESCRIPTION = (
    "Run DAG for the data interval [DAY, DAY + 1) UTC, in this process, with Airflow's "
    "dag.test() on the embedded metadata DB. DAY is the day the data is for: the ds of "
    "the partitions it writes and of `airflow tasks clear -s DAY`. Airflow's own "
    "`airflow dags test DAG DAY` takes the logical date, the END of the interval, and "
    "so lands the previous day; `cva run DAG --ds DAY` is `airflow dags test DAG DAY+1`. "
    "Airflow's task log goes to $CVA_HOME/logs/run-<DAG>.log; the exit code is 0 only "
    "when the run succeeded."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dag_id", metavar="DAG", help="e.g. cva_source_demo_shop")
    parser.add_argument(
        "--ds", required=True, type=parse_day, metavar="DAY", help="the data day, YYYY-MM-DD"
    )
    parser.add_argument("--json", action="store_true")


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from exc


def command(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.dag_id`` for ``args.ds``; a result with ``ok``, ``state`` and ``text``.

    A DAG that does not exist or a day outside its start and end dates gives
    ``ok: False`` with the reason, without running anything.
    """
    from cva_tasks.airflow_runner import prepare_airflow_home
    from cva_tasks.settings import Settings

    started = time.monotonic()
    settings = Settings.from_env()
    # The task processes read CVA_HOME from the environment: keep it this process's.
    os.environ["CVA_HOME"] = str(settings.home)
    prepare_airflow_home()
    from cva_tasks.airflow_runner import output_to, run_dag_for_day

    airflow_log = settings.home / "logs" / f"run-{args.dag_id}.log"
    result: dict[str, Any] = {
        "dag_id": args.dag_id,
        "ds": args.ds.isoformat(),
        "airflow_log": str(airflow_log),
    }
    try:
        with output_to(airflow_log):
            state = run_dag_for_day(args.dag_id, args.ds)
    except (KeyError, ValueError) as exc:
        reason = exc.args[0] if exc.args else str(exc)
        result.update(ok=False, state=None, error=str(reason))
        result["text"] = f"{args.dag_id} ds={args.ds}: not run: {reason}"
        return result
    seconds = round(time.monotonic() - started, 1)
    result.update(ok=state == "success", state=state, seconds=seconds)
    result["text"] = (
        f"{args.dag_id} ds={args.ds}: {state} in {seconds} s (Airflow's task log: {airflow_log})"
    )
    return result

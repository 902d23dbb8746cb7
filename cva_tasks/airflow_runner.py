"""Run the project's DAGs in-process with ``dag.test()`` on the embedded setup.

Used by ``cva demo`` and the integration tests: it prepares an Airflow home
with the SQLite metadata DB (created once with ``airflow db migrate``) and
points Airflow at this project's ``dags/`` folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from cva_tasks.settings import PROJECT_ROOT

log = logging.getLogger(__name__)
DAGS_FOLDER = PROJECT_ROOT / "dags"
PLUGINS_FOLDER = PROJECT_ROOT / "plugins"


def prepare_airflow_home(airflow_home: Path | None = None) -> Path:
    """Set Airflow's environment for this process and create its metadata DB once.

    Must run before the first ``import airflow`` of the process, since Airflow
    reads its configuration at import.
    """
    home = Path(airflow_home or os.environ.get("AIRFLOW_HOME") or Path.cwd() / ".airflow")
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(PLUGINS_FOLDER))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
    marker = home / ".cva-db-migrated"
    if not marker.exists():
        log.info("creating the Airflow metadata DB in %s (once)", home)
        airflow = Path(sys.executable).with_name("airflow")
        subprocess.run(
            [str(airflow), "db", "migrate"],
            check=True,
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
        )
        marker.touch()
    return home


def load_dag(dag_id: str):
    """The DAG ``dag_id`` as parsed from the project's DAG folder."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise KeyError(f"no DAG {dag_id!r}; found {sorted(bag.dag_ids)}")
    return dag


@contextlib.contextmanager
def output_to(log_file: Path):
    """Send everything written to stdout/stderr (file descriptors 1 and 2) to ``log_file``.

    Airflow's in-process task runner logs to the process's stdout; the ``cva``
    command keeps its own stdout for the summary (or the ``--json`` document).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_file, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield log_file
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_dag_for_day(dag_id: str, ds: date) -> str:
    """Run one DAG for the daily data interval starting at ``ds``; return its final state.

    Raises:
        ValueError: ``ds`` lies before the DAG's start date or after its end date, where
            Airflow would run no task and still report the run a success.
    """
    import pendulum

    dag = load_dag(dag_id)
    first = dag.start_date.date() if dag.start_date else None
    last = dag.end_date.date() if dag.end_date else None
    if first and ds < first:
        raise ValueError(
            f"{dag_id} starts on {first}: Airflow would run no task for ds={ds} and call the "
            "run a success; no registered source has data that early"
        )
    if last and ds > last:
        raise ValueError(
            f"{dag_id} ends on {last}: Airflow would run no task for ds={ds} and call the run "
            "a success; the source has no data after its end date"
        )
    # A manual run's data interval is the last complete one before its logical
    # date, so the run for day ds is triggered at the end of that day.
    run_at = pendulum.datetime(ds.year, ds.month, ds.day, tz="UTC").add(days=1)
    log.info("running %s for ds=%s", dag_id, ds)
    run = dag.test(logical_date=run_at)
    if run.data_interval_start.date() != ds:
        raise RuntimeError(f"{dag_id} ran for {run.data_interval_start}, not for ds={ds}")
    return str(getattr(run.state, "value", run.state))

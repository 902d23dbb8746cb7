"""A real Airflow 3 deployment for tests: API server, scheduler, DAG processor.

LocalExecutor on a PostgreSQL metadata database of its own; every port bound
to 127.0.0.1 (the scheduler's log server is skipped: it would listen on all
interfaces). Used by the backfill test; stops everything on exit.

With ``celery_workers`` (names), CeleryExecutor instead: one ``airflow celery worker``
per name, broker on this machine's Redis (a database number of its own, and a queue
of this cluster's own, so concurrent test runs never take each other's tasks), Celery
results in a schema of its own of the cluster's PostgreSQL database. Each worker
reports its name as the hostname of the tasks it runs (``task_instance.hostname``):
two workers on one machine would otherwise record the same host.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import date, datetime
from pathlib import Path

import sqlalchemy as sa

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
REDIS_URL = os.environ.get("CVA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: The Redis database of the Celery tests' brokers (the other tests use none).
REDIS_DB = 11
#: Read by :func:`worker_hostname` in a worker's task processes.
WORKER_NAME_ENV = "AIRFLOW_TEST_WORKER_NAME"


def worker_hostname() -> str:
    """``[core] hostname_callable`` of a test worker: the name it was started with."""
    return os.environ[WORKER_NAME_ENV]


def broker_url() -> str:
    """:data:`REDIS_URL` with the database :data:`REDIS_DB`."""
    return f"{REDIS_URL.rsplit('/', 1)[0]}/{REDIS_DB}"


def parse_json_output(out: str):
    """The JSON document of an ``airflow ... -o json`` call (log lines may precede it)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("[", "{")))
    return json.loads("\n".join(lines[start:]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowCluster:
    def __init__(
        self,
        home: Path,
        pg_dsn: str,
        extra_env: dict[str, str],
        celery_workers: tuple[str, ...] = (),
        worker_concurrency: int = 2,
    ):
        self.home = home
        self.celery_workers = celery_workers
        self.worker_concurrency = worker_concurrency
        self.queue = f"cva_test_{uuid.uuid4().hex[:8]}"
        self.admin = sa.create_engine(pg_dsn, isolation_level="AUTOCOMMIT")
        self.db = f"cva_airflow_{uuid.uuid4().hex[:8]}"
        base = pg_dsn.rsplit("/", 1)[0]
        port = free_port()
        self.env = {
            **os.environ,
            **extra_env,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{base}/{self.db}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        if celery_workers:
            db_url = self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
            results = db_url.split("://", 1)[1].split("?", 1)[0]
            self.env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__CELERY__BROKER_URL": broker_url(),
                    "AIRFLOW__CELERY__RESULT_BACKEND": (
                        f"db+postgresql://{results}?options=-csearch_path%3Dcelery_results"
                    ),
                    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                    # One task a worker at a time takes from the queue.
                    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                    "PYTHONPATH": os.pathsep.join(
                        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
                    ),
                }
            )
        self.processes: list[subprocess.Popen] = []

    def airflow(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stderr[-4000:]}")
        return result.stdout

    def __enter__(self) -> AirflowCluster:
        self.home.mkdir(parents=True, exist_ok=True)
        with self.admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {self.db}"))
        if self.celery_workers:
            own = sa.create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
            with own.begin() as conn:
                conn.execute(sa.text("CREATE SCHEMA celery_results"))
            own.dispose()
        self.airflow("db", "migrate", timeout=300)
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        parts = [
            ("api-server", ["api-server"], {}),
            ("scheduler", ["scheduler", "--skip-serve-logs"], {}),
            ("dag-processor", ["dag-processor"], {}),
        ]
        for name in self.celery_workers:
            # --skip-serve-logs: the worker's log server would listen on all interfaces;
            # the tasks' logs are files under this cluster's AIRFLOW_HOME.
            args = [
                "celery",
                "worker",
                "--celery-hostname",
                f"{name}@%h",
                "--concurrency",
                str(self.worker_concurrency),
                "--queues",
                self.queue,
                "--skip-serve-logs",
            ]
            # Only the workers report a name: the scheduler and API server keep the host's.
            hostname = {
                WORKER_NAME_ENV: name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_cluster.worker_hostname",
            }
            parts.append((name, args, hostname))
        for name, args, env in parts:
            out = open(logs / f"{name}.out", "wb")
            self.processes.append(
                subprocess.Popen(
                    [str(BIN / "airflow"), *args],
                    env={**self.env, **env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        with self.admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"))
        self.admin.dispose()
        if self.celery_workers:
            self._drop_queue()

    def _drop_queue(self) -> None:
        """Remove this cluster's keys from the broker's database (its queue and the
        workers' bindings): other clusters' keys there are left alone."""
        import redis

        client = redis.Redis.from_url(broker_url())
        try:
            keys = [k for k in client.scan_iter(match=f"*{self.queue}*")]
            if keys:
                client.delete(*keys)
        finally:
            client.close()

    def wait_for_workers(self, timeout: float = 120) -> None:
        """Wait until every Celery worker says it is ready (its log's ``ready.``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            logs = [self.home / "logs" / f"{name}.out" for name in self.celery_workers]
            if all(p.exists() and b" ready." in p.read_bytes() for p in logs):
                return
            time.sleep(2)
        raise TimeoutError(f"Celery workers {self.celery_workers} not ready in {timeout} s")

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            listed = {
                d["dag_id"] for d in parse_json_output(self.airflow("dags", "list", "-o", "json"))
            }
            if set(dag_ids) <= listed:
                return
            time.sleep(3)
        raise TimeoutError(f"DAGs {dag_ids} not parsed within {timeout} s")

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                log = (self.home / "logs").glob("*.out")
                tails = {p.name: p.read_text()[-2000:] for p in log}
                raise RuntimeError(f"an Airflow process exited: {process.args}\n{tails}")

    def runs(self, dag_id: str) -> list[dict]:
        return parse_json_output(self.airflow("dags", "list-runs", dag_id, "-o", "json"))

    def wait_for_runs(
        self,
        dag_id: str,
        count: int,
        *,
        run_type: str | None = None,
        timeout: float = 900,
        cleared: bool = False,
    ) -> list[dict]:
        """Wait until ``count`` runs (of ``run_type``) exist and all have finished.

        With ``cleared``, first wait for a cleared run to leave its final state.
        """
        deadline = time.monotonic() + timeout
        seen_unfinished = not cleared
        while time.monotonic() < deadline:
            self.check_alive()
            runs = [
                r
                for r in self.runs(dag_id)
                if run_type is None or r["run_id"].startswith(f"{run_type}__")
            ]
            finished = [r for r in runs if r["state"] in ("success", "failed")]
            if len(finished) < len(runs):
                seen_unfinished = True
            if seen_unfinished and len(runs) >= count and len(finished) == len(runs):
                return runs
            time.sleep(3)
        raise TimeoutError(f"{dag_id}: runs not finished in {timeout} s: {self.runs(dag_id)}")

    def task_spans(
        self, dag_id: str, task_id: str, *, run_type: str | None = None
    ) -> list[tuple[date, datetime, datetime]]:
        """``(day of the run's logical date, start, end)`` of each run's ``task_id``, by day.

        With ``run_type`` (e.g. ``backfill``), only runs of that type: an unpaused DAG
        also gets its latest scheduled run, which a backfill test must not count.
        """
        engine = sa.create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "select r.logical_date, t.start_date, t.end_date from task_instance t"
                        " join dag_run r on r.dag_id = t.dag_id and r.run_id = t.run_id"
                        " where t.dag_id = :dag and t.task_id = :task"
                        " and (cast(:run_type as varchar) is null or r.run_type = :run_type)"
                        " order by r.logical_date"
                    ),
                    {"dag": dag_id, "task": task_id, "run_type": run_type},
                ).all()
        finally:
            engine.dispose()
        return [(logical.date(), start, end) for logical, start, end in rows]

    def task_instances(self, dag_id: str, task_ids: tuple[str, ...], run_type: str) -> list[dict]:
        """The last try of each instance of ``task_ids`` (mapped ones per map index) in
        the runs of ``run_type`` (an unpaused DAG also gets its latest scheduled run):
        ``task_id``, ``map_index``, ``hostname``, ``state``, ``seconds`` (end - start)."""
        engine = sa.create_engine(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "select t.task_id, t.map_index, t.hostname, t.state,"
                        " extract(epoch from t.end_date - t.start_date) as seconds"
                        " from task_instance t"
                        " join dag_run r on r.dag_id = t.dag_id and r.run_id = t.run_id"
                        " where t.dag_id = :dag and t.task_id in :tasks"
                        " and r.run_type = :run_type order by t.task_id, t.map_index"
                    ).bindparams(sa.bindparam("tasks", expanding=True)),
                    {"dag": dag_id, "tasks": list(task_ids), "run_type": run_type},
                ).all()
        finally:
            engine.dispose()
        return [dict(row._mapping) for row in rows]

    def task_failures(self, dag_id: str) -> str:
        """The tail of the log of every failed task, for an assertion message."""
        logs = sorted((self.home / "logs").glob(f"dag_id={dag_id}/**/*.log"))
        failed = [p for p in logs if "ERROR" in p.read_text(errors="replace")]
        return "\n".join(f"{p}:\n{p.read_text(errors='replace')[-3000:]}" for p in failed[:3])

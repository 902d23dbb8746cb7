"""Shared fixtures: isolated homes per xdist worker, PostgreSQL, the demo shop."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pytest

PG_DSN = os.environ.get("CVA_TEST_PG_DSN", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("CVA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    # Airflow reads its configuration at import: point it at a private home per
    # worker before any test imports it, so tests never touch a user's Airflow.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    base = Path(tempfile.gettempdir()) / f"cva-tests-{os.getpid()}-{worker}"
    os.environ["AIRFLOW_HOME"] = str(base / "airflow")
    os.environ["CVA_HOME"] = str(base / "cva")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(
        Path(__file__).resolve().parents[1] / "plugins"
    )
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data root and CVA home for one test."""
    monkeypatch.setenv("CVA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CVA_DATA_ROOT", str(tmp_path / "lake"))
    return tmp_path / "lake"


def _require_pg(url: str):
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL not reachable at {url} ({exc.orig}); start it or set CVA_TEST_PG_DSN"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return engine


@pytest.fixture
def pg_schema():
    """A fresh PostgreSQL schema: yields ``(sqlalchemy_url, airflow_uri, schema)``."""
    import sqlalchemy as sa

    engine = _require_pg(PG_DSN)
    schema = f"cva_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    options = f"options=-csearch_path%3D{schema}"
    url = f"{PG_DSN}?{options}"
    airflow_uri = PG_DSN.replace("postgresql+psycopg2://", "postgres://") + f"?{options}"
    try:
        yield url, airflow_uri, schema
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture
def redis_server() -> str:
    """The Redis server of the Celery tests (``CVA_TEST_REDIS_URL``): its URL.

    Absent, it fails the test under CI (``CI`` set) and skips it otherwise.
    """
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        message = (
            f"Redis not reachable at {REDIS_URL} ({exc}); start it (`redis-server "
            "--daemonize yes`, or `apt-get install redis-server`) or set CVA_TEST_REDIS_URL"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def demo_frames():
    """The demo shop at test size (300 customers), generated once per worker."""
    from cva_tasks.demo.shop import generate_frames

    return generate_frames(n_customers=300, seed=11)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        message = f"{SHARED_DATA} is absent: the real-data tests need ../shared/data"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture
def webhook():
    """A local HTTP endpoint taking JSON POSTs (an alert webhook).

    Yields ``(url, bodies, handler)``: the decoded bodies in arrival order; set
    ``handler.status`` to answer with another status.
    """
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        status = 200

        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(self.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/alerts", bodies, Handler
    finally:
        server.shutdown()
        server.server_close()

"""The compose file's UI login, on a real Airflow API server (no Docker needed).

The API server starts with the auth settings of ``airflow-apiserver`` in
docker-compose.yaml and its very command (the passwords file is written from
``SIMPLE_AUTH_PASSWORD_<NAME>``, then ``airflow api-server`` runs); only the host,
port, metadata DB and file path are local. Each user logs in with the password
from the environment and gets its role; any other password, ``admin`` included,
is refused, and the API server generated no password of its own.
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
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PASSWORDS = {"admin": "Adm1n-from-env", "viewer": "V1ewer-from-env"}
#: Straight to 127.0.0.1, whatever proxy the environment names.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, method: str = "GET", body: dict | None = None, token: str | None = None):
    """(status, parsed JSON body or text) of one request; status 0: nothing listens."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with OPENER.open(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    except urllib.error.URLError:
        return 0, "not listening"
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


@pytest.mark.slow
def test_users_log_in_with_the_passwords_from_env(tmp_path):
    api = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"][
        "airflow-apiserver"
    ]
    auth = {k: v for k, v in api["environment"].items() if "AUTH_MANAGER" in k}
    passwords_file = tmp_path / "simple_auth_manager_passwords.json"
    port = free_port()
    env = {
        **os.environ,
        **auth,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "no-dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret",
        **{f"SIMPLE_AUTH_PASSWORD_{user.upper()}": pw for user, pw in PASSWORDS.items()},
    }
    assert auth["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin,viewer:viewer"
    (tmp_path / "no-dags").mkdir()
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, timeout=300
    )
    assert migrate.returncode == 0, migrate.stderr.decode()[-3000:]

    bash, flag, command = api["command"]
    command = command.replace("/opt/cva/docker/", f"{ROOT}/docker/")
    log = tmp_path / "api-server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [bash, flag, command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while call(f"{base}/api/v2/monitor/health")[0] != 200:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)

        tokens = {}
        for user, password in PASSWORDS.items():
            status, body = call(
                f"{base}/auth/token", "POST", {"username": user, "password": password}
            )
            assert status == 201, (user, body)
            tokens[user] = body["access_token"]
        for user, password in (("admin", "admin"), ("viewer", PASSWORDS["admin"])):
            status, _ = call(f"{base}/auth/token", "POST", {"username": user, "password": password})
            assert status == 401, user

        assert call(f"{base}/api/v2/dags", token=tokens["viewer"])[0] == 200
        variable = {"key": "cva_login_test", "value": "1"}
        assert call(f"{base}/api/v2/variables", "POST", variable, tokens["viewer"])[0] == 403
        assert call(f"{base}/api/v2/variables", "POST", variable, tokens["admin"])[0] == 201
        assert call(f"{base}/api/v2/dags")[0] == 401

        assert json.loads(passwords_file.read_text()) == PASSWORDS
        assert "Password for user" not in log.read_text(), "Airflow generated a password"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)

"""The "Customer value" plugin in a real ``airflow api-server``: auth, JSON, page, browser.

One API server for the module (SQLite metadata DB, the simple auth manager with two
users, the project's ``plugins/`` folder, bound to 127.0.0.1 on a free port) reads a
CVA home filled with nine published sample days (:mod:`cva_tasks.ui.sample`). The
browser test drives headless Chromium (``headless_chromium.py``): it skips when no
Chromium is installed, and fails instead under ``CI``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cva_tasks.lake import Lake
from cva_tasks.ui.sample import publish_sample_days
from cva_tasks.warehouse import EmbeddedWarehouse

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAYS = [date(2025, 12, 1) + timedelta(days=i) for i in range(9)]
LATEST = DAYS[-1].isoformat()
PASSWORDS = {"admin": "admin-secret", "viewer": "viewer-secret"}
PARTS = (
    "summary",
    "segments",
    "clusters",
    "churn-tiers",
    "clv",
    "model-runs",
    "quality",
    "drift",
    "audiences",
)
ROUTES = (
    "/cva/",
    f"/cva/?ds={DAYS[0].isoformat()}",
    "/cva/api/days",
    f"/cva/api/days/{LATEST}",
    *(f"/cva/api/days/{LATEST}/{part}" for part in PARTS),
    "/cva/data-docs/demo_shop/index.html",
)
CHARTS = 17  # every chart of a day with a drift check, like the latest sample day


def free_port() -> int:
    from airflow_cluster import free_port as port

    return port()


@dataclass
class ApiServer:
    base: str
    cva_home: Path
    written: dict[str, Any]
    jwt_secret: str

    def token(self, user: str = "viewer") -> str:
        reply = httpx.post(
            f"{self.base}/auth/token",
            json={"username": user, "password": PASSWORDS[user]},
            timeout=30,
        )
        assert reply.status_code == 201, reply.text
        return reply.json()["access_token"]

    def get(self, path: str, token: str | None = None, **options: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.base}{path}", headers=headers, timeout=60, **options)


@pytest.fixture(scope="module")
def api_server(tmp_path_factory) -> ApiServer:
    root = tmp_path_factory.mktemp("ui-plugin")
    cva_home = root / "cva"
    written = publish_sample_days(
        EmbeddedWarehouse(cva_home / "warehouse.duckdb"),
        Lake(str(cva_home / "lake")),
        DAYS,
        data_docs_dir=cva_home / "data_docs",
    )
    (root / "passwords.json").write_text(json.dumps(PASSWORDS))
    port = free_port()
    secret = os.urandom(16).hex()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW_CONN_", "AIRFLOW__", "CVA_"))
    }
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "AIRFLOW_HOME": str(root / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(root / "no-dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "CVA_HOME": str(cva_home),
        }
    )
    (root / "no-dags").mkdir()
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    log = open(root / "api-server.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"api-server exited:\n{(root / 'api-server.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"api-server not up:\n{(root / 'api-server.log').read_text()}")
            time.sleep(1)
        yield ApiServer(base, cva_home, written, secret)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()


def forged_token(claims: dict[str, Any]) -> str:
    """A well-formed JWT signed with a key the server does not know."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    body = part(json.dumps({**claims, "exp": int(time.time()) + 600}).encode())
    signature = hmac.new(b"not-the-secret", f"{header}.{body}".encode(), hashlib.sha512)
    return f"{header}.{body}.{part(signature.digest())}"


def test_the_plugin_is_registered_with_airflow(api_server):
    reply = api_server.get("/api/v2/plugins", api_server.token("admin"))
    assert reply.status_code == 200, reply.text
    (plugin,) = [p for p in reply.json()["plugins"] if p["name"] == "cva"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/cva"
    (view,) = plugin["external_views"]
    assert view["name"] == "Customer value" and view["destination"] == "nav"
    assert view["href"] == "cva/" and view["url_route"] == "customer-value"


@pytest.mark.parametrize("path", ROUTES)
def test_anonymous_and_forged_requests_are_refused(api_server, path):
    anonymous = api_server.get(path)
    assert anonymous.status_code == 401, anonymous.text
    assert "customers_scored" not in anonymous.text and "<svg" not in anonymous.text

    forged = forged_token({"sub": "admin", "role": "admin"})
    for token in ("not-a-token", forged):
        refused = api_server.get(path, token)
        assert refused.status_code == 403, (token, refused.text)
        cookie = httpx.get(f"{api_server.base}{path}", cookies={"_token": token}, timeout=60)
        assert cookie.status_code == 403, (token, cookie.text)


@pytest.mark.parametrize("user", ["viewer", "admin"])
def test_a_signed_in_user_gets_the_page(api_server, user):
    token = api_server.token(user)
    by_header = api_server.get("/cva/", token)
    by_cookie = httpx.get(f"{api_server.base}/cva/", cookies={"_token": token}, timeout=60)
    for reply in (by_header, by_cookie):
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in reply.headers["content-security-policy"]
        assert reply.text.count('<svg class="chart"') == CHARTS
        assert f'<span id="day">{LATEST}</span>' in reply.text
    customers = len(api_server.written["days"][DAYS[-1]]["customer_scores"])
    assert f"{customers:,}</div>" in by_header.text


def test_the_json_endpoints_give_the_figures_of_the_page(api_server):
    token = api_server.token()
    index = api_server.get("/cva/api/days", token).json()
    assert index == {"days": [d.isoformat() for d in reversed(DAYS)], "latest": LATEST}
    day = DAYS[3].isoformat()
    document = api_server.get(f"/cva/api/days/{day}", token).json()
    for part in PARTS:
        reply = api_server.get(f"/cva/api/days/{day}/{part}", token)
        assert reply.status_code == 200, reply.text
        assert reply.json() == document[part.replace("-", "_")]
    rows = api_server.written["days"][DAYS[3]]["customer_scores"]
    assert document["summary"]["customers_scored"] == len(rows)
    assert sum(s["customers"] for s in document["segments"]["segments"]) == len(rows)
    assert document["model_runs"]["on_day"][0]["kind"] == "churn"  # the drift retrain
    assert document["drift"]["on_day"]["over_threshold"] == ["tenure_days"]
    sizes = api_server.written["days"][DAYS[3]]["audience_sizes"]
    assert {r["audience"]: r["customers"] for r in document["audiences"]["on_day"]} == sizes
    page = api_server.get(f"/cva/?ds={day}", token).text
    assert f'<span id="day">{day}</span>' in page
    assert f"{document['summary']['customers_scored']:,}</div>" in page


def test_unknown_days_and_parts_are_404(api_server):
    token = api_server.token()
    assert api_server.get("/cva/api/days/2020-01-01", token).status_code == 404
    assert api_server.get(f"/cva/api/days/{LATEST}/nothing", token).status_code == 404
    page = api_server.get("/cva/?ds=2020-01-01", token)
    assert page.status_code == 404 and "<svg" not in page.text
    assert f"Show the latest day, {LATEST}" in page.text
    assert api_server.get("/cva/api/days/not-a-day", token).status_code == 422


def test_data_docs_are_served_from_their_folder_only(api_server):
    token = api_server.token()
    docs = api_server.get("/cva/data-docs/demo_shop/index.html", token)
    assert docs.status_code == 200 and "demo_shop Data Docs" in docs.text
    assert docs.headers["content-security-policy"].startswith("sandbox")
    (api_server.cva_home / "outside.txt").write_text("secret")
    for path in (
        "/cva/data-docs/demo_shop/..%2F..%2Foutside.txt",
        "/cva/data-docs/..%2F/outside.txt",
        "/cva/data-docs/demo_feedback/index.html",  # never built
        "/cva/data-docs/demo_shop/%2Fetc%2Fpasswd",
    ):
        reply = api_server.get(path, token)
        assert reply.status_code == 404, (path, reply.text)
        assert "secret" not in reply.text and "root:" not in reply.text


def test_the_apps_own_docs_and_schema_are_not_exposed(api_server):
    for path in ("/cva/docs", "/cva/redoc", "/cva/openapi.json"):
        assert api_server.get(path).status_code in (401, 404)
        assert api_server.get(path, api_server.token()).status_code == 404


def test_an_empty_warehouse_says_nothing_is_published(api_server):
    token = api_server.token()
    warehouse = api_server.cva_home / "warehouse.duckdb"
    aside = warehouse.with_suffix(".aside")
    warehouse.rename(aside)
    try:
        page = api_server.get("/cva/", token)
        assert page.status_code == 200
        assert 'id="nothing-published"' in page.text and "<svg" not in page.text
        assert api_server.get("/cva/api/days", token).json() == {"days": [], "latest": None}
        assert api_server.get(f"/cva/api/days/{LATEST}", token).status_code == 404
        assert not warehouse.exists()  # the page reads; it never creates the warehouse
    finally:
        aside.rename(warehouse)


# --- the page in a real browser ---------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    from headless_chromium import find_chromium

    found = find_chromium()
    if found is None:
        message = (
            "no Chromium found (set CVA_TEST_CHROMIUM or install chromium, e.g. "
            "`apt-get install -y chromium`); the browser check of the plugin page needs it"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def keep_screenshot(path: Path) -> None:
    """Copy to ``CVA_TEST_SCREENSHOT_DIR`` when set (to look at it after the run)."""
    print(f"screenshot: {path}")
    target = os.environ.get("CVA_TEST_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


CHART_BOXES = """JSON.stringify([...document.querySelectorAll('svg.chart')].map(s => {
  const box = s.getBoundingClientRect();
  return [s.dataset.chart, Math.round(box.width), Math.round(box.height),
          s.querySelectorAll('rect, circle, polyline').length];
}))"""


def test_the_page_in_headless_chromium(api_server, chromium, tmp_path):
    from headless_chromium import HeadlessChromium

    with HeadlessChromium(chromium, width=1280, height=900) as browser:
        assert browser.load(f"{api_server.base}/cva/") == 401  # no cookie yet
        assert browser.evaluate("document.querySelectorAll('svg').length") == 0

        browser.set_cookie(f"{api_server.base}/", "_token", api_server.token())
        assert browser.load(f"{api_server.base}/cva/") == 200
        boxes = json.loads(browser.evaluate(CHART_BOXES))
        assert len(boxes) == CHARTS
        for name, width, height, marks in boxes:
            assert width >= 300 and height >= 50, (name, width, height)
            assert marks > 0, f"chart {name} draws nothing"
        assert browser.evaluate("document.getElementById('day').textContent") == LATEST
        hosts = {
            event["params"]["request"]["url"].split("/")[2]
            for event in browser._events
            if event.get("method") == "Network.requestWillBeSent"
        }
        assert hosts == {api_server.base.split("/")[2]}, hosts  # nothing from elsewhere
        page = browser.screenshot(tmp_path / "customer-value.png")
        width, height = png_size(page)
        assert width == 1280 and height > 2000
        keep_screenshot(page)

        # The same page as Airflow's UI shows it: a navigation entry and the page in a frame.
        assert browser.load(f"{api_server.base}/plugin/customer-value") == 200
        in_frame = (
            "(() => { const f = document.querySelector('iframe[title=\"Customer value\"]');"
            " return f && f.contentDocument &&"
            " f.contentDocument.querySelectorAll('svg.chart').length; })()"
        )
        assert browser.wait_until(in_frame, timeout=60) == CHARTS
        links = browser.evaluate(
            "[...document.querySelectorAll('a, button')].map(a => a.textContent.trim())"
        )
        assert "Customer value" in links, links
        framed = browser.screenshot(tmp_path / "airflow-customer-value.png", full_page=False)
        keep_screenshot(framed)

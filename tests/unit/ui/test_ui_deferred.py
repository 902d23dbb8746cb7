"""The plugin's app is built at its first request; loading the plugin imports no web stack."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from cva_tasks.ui.deferred import DeferredApp

ROOT = Path(__file__).resolve().parents[3]
BUILT: list[str] = []


def build_app():
    BUILT.append("built")

    async def app(scope, receive, send):
        await send({"type": "seen", "path": scope["path"]})

    return app


def test_the_app_is_built_once_at_its_first_request():
    BUILT.clear()
    deferred = DeferredApp(f"{__name__}:build_app")
    assert BUILT == []
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {}

    for path in ("/", "/api/days"):
        asyncio.run(deferred({"type": "http", "path": path}, receive, send))
    assert BUILT == ["built"]
    assert sent == [{"type": "seen", "path": "/"}, {"type": "seen", "path": "/api/days"}]


def test_loading_the_plugin_imports_neither_fastapi_nor_the_page():
    code = (
        "import sys; sys.path.insert(0, 'plugins'); import cva_plugin; "
        "print(sorted(m for m in ('fastapi', 'duckdb', 'pyarrow', 'cva_tasks.ui.app', "
        "'airflow.api_fastapi.core_api.security') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"

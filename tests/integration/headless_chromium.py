"""Headless Chromium driven over the DevTools protocol, through a pipe (no extra package).

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from file
descriptor 3 and writes responses and events to descriptor 4, each message a JSON
document ended by a NUL byte. That is enough to set a cookie, load a page, wait for
it, evaluate JavaScript in it and take a screenshot, without a websocket client.

Finding the browser: ``CVA_TEST_CHROMIUM`` (a path), else ``chromium``,
``chromium-browser``, ``google-chrome`` or ``google-chrome-stable`` on ``PATH``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """The browser to use, or None when none is installed."""
    configured = os.environ.get("CVA_TEST_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class BrowserError(RuntimeError):
    """Chromium died, timed out or answered a command with an error."""


class HeadlessChromium:
    """One headless Chromium with one page (tab); use as a context manager.

    Args:
        binary: the browser executable.
        width, height: the page's viewport in CSS pixels.
        timeout: seconds any one command (or a page load) may take.
    """

    def __init__(
        self, binary: str, width: int = 1280, height: int = 900, timeout: float = 60.0
    ) -> None:
        self.binary = binary
        self.width, self.height = width, height
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []
        self.session: str | None = None

    def __enter__(self) -> HeadlessChromium:
        self._profile = tempfile.TemporaryDirectory(prefix="cva-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire_pipes() -> None:
            # In the child, before exec: the pipe ends become fds 3 and 4 (inheritable),
            # by way of copies above 10 so neither dup2 can overwrite the other's source.
            import fcntl

            high = [
                fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
                for fd in (to_browser_read, from_browser_write)
            ]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = open(Path(self._profile.name) / "chromium.log", "wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                *FLAGS,
                f"--user-data-dir={self._profile.name}",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=wire_pipes,
            close_fds=False,  # only inheritable fds pass exec: 0-2 and the two set up above
            start_new_session=True,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        self.send("Page.enable", session=True)
        self.send("Network.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
            session=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.log.close()
        self._profile.cleanup()

    # --- the protocol -------------------------------------------------------------------

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False
    ) -> dict[str, Any]:
        """Run one command and return its result (events meanwhile are kept)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from Chromium in {self.timeout} s")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium exited (code {self.process.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def wait_for_event(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(i)
            self._events.append(self._read(deadline))

    # --- what a test does ------------------------------------------------------------------

    def set_cookie(self, url: str, name: str, value: str) -> None:
        result = self.send(
            "Network.setCookie", {"url": url, "name": name, "value": value}, session=True
        )
        if not result.get("success", True):
            raise BrowserError(f"cookie {name} refused for {url}")

    def load(self, url: str) -> int | None:
        """Navigate and wait for the load event; returns the document's HTTP status."""
        self._events.clear()
        frame = self.send("Page.navigate", {"url": url}, session=True)
        if frame.get("errorText"):
            raise BrowserError(f"{url}: {frame['errorText']}")
        self.wait_for_event("Page.loadEventFired")
        status = None
        for event in self._events:
            if event.get("method") == "Network.responseReceived":
                params = event["params"]
                if params.get("type") == "Document" and params["response"]["url"].startswith(url):
                    status = params["response"]["status"]
        return status

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float | None = None) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise BrowserError(f"still false after {timeout or self.timeout} s: {expression}")
            time.sleep(0.25)

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (whole length with ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            height = self.evaluate("document.documentElement.scrollHeight")
            params["clip"] = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

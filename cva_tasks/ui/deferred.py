"""An ASGI app built at its first request, so loading the plugin costs nearly nothing.

Every Airflow process loads the plugins folder (a task process does, for the plugins'
macros), but only the API server serves the page. :class:`DeferredApp` is what the
plugin hands Airflow to mount: FastAPI, the page and Airflow's API modules are imported
when the first request (or the server's lifespan start-up) reaches it, in the API
server only.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class DeferredApp:
    """An ASGI app that calls ``factory`` once, at its first use, and delegates to it.

    Args:
        factory: ``module:function`` returning the ASGI app (imported when first needed).
    """

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    import importlib

                    module, name = self.factory.split(":")
                    self._app = getattr(importlib.import_module(module), name)()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

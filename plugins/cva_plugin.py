"""Airflow plugin: the "Customer value" page of the daily pipeline.

Wiring only, like a DAG file: the app and everything it shows live in
:mod:`cva_tasks.ui` (built at its first request, :mod:`cva_tasks.ui.deferred`, since
every Airflow process loads this module). The API server mounts the app at ``/cva``
(under ``[api] base_url``) and the UI lists "Customer value" in its navigation bar,
showing the page in a frame (``href`` is relative: the UI resolves it against its base
URL). Every route of the app requires an Airflow user allowed the custom view
"Customer value" (:func:`cva_tasks.ui.app.require_viewer`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from cva_tasks.ui import VIEW_NAME
from cva_tasks.ui.deferred import DeferredApp

URL_PREFIX = "/cva"


class CustomerValuePlugin(AirflowPlugin):
    name = "cva"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {
            "app": DeferredApp("cva_tasks.ui.app:create_app"),
            "url_prefix": URL_PREFIX,
            "name": VIEW_NAME,
        }
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": VIEW_NAME,
            "href": f"{URL_PREFIX.lstrip('/')}/",
            "url_route": "customer-value",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]

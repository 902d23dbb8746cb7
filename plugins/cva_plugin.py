"""Airflow plugin: the "Customer value" page of the daily pipeline.

Wiring only, like a DAG file: the app and everything it shows live in
:mod:`cva_tasks.ui`. The API server mounts the app at ``/cva`` (under ``[api]
base_url``) and the UI lists "Customer value" in its navigation, embedding the page
(``href`` is relative: the UI resolves it against its base URL). Every route of the
app requires an Airflow user allowed the custom view "Customer value".
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

from cva_tasks.ui.app import VIEW_NAME, create_app

URL_PREFIX = "/cva"


class CustomerValuePlugin(AirflowPlugin):
    name = "cva"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": VIEW_NAME}
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

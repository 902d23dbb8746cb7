"""The FastAPI app of the "Customer value" page, mounted by ``plugins/cva_plugin.py``.

Routes (relative to the mount point, ``/cva``):

* ``GET /``: the page of a day (``?ds=YYYY-MM-DD``; default the latest published day);
* ``GET /api/days``: the published days; ``GET /api/days/{ds}``: every figure of a
  day; ``GET /api/days/{ds}/<part>``: one part (``summary``, ``segments``,
  ``clusters``, ``churn-tiers``, ``clv``, ``model-runs``, ``quality``, ``drift``,
  ``audiences``);
* ``GET /data-docs/{source}/{path}``: Great Expectations' Data Docs of a source, from
  ``CVA_HOME/data_docs/<source>/`` and nothing outside that folder.

Access: Airflow does not protect a plugin's app, so every route here depends on
:func:`require_viewer`: the caller must carry a valid Airflow token (the UI's
``_token`` cookie or an ``Authorization: Bearer`` header; else 401, a bad token 403)
and the auth manager must allow them the custom view "Customer value" (else 403).
The OpenAPI and docs routes are switched off: they would not pass through it.

This module deliberately has no ``from __future__ import annotations``: FastAPI reads
the annotations of the routes at run time.
"""

import re
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from cva_tasks.settings import Settings
from cva_tasks.ui import VIEW_NAME, figures, page
from cva_tasks.ui.reader import WarehouseReader
from cva_tasks.warehouse import WarehouseUnavailable

SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
#: The page loads nothing: styles and charts are inline, the day picker is a plain form.
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)
#: Data Docs are GX's HTML (with its scripts and CDN styles): a sandbox without
#: same-origin keeps their scripts away from the Airflow session of the viewer.
DATA_DOCS_POLICY = "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox"


async def require_viewer(request: Request) -> None:
    """FastAPI dependency: an authenticated Airflow user allowed the view "Customer value".

    The user comes from Airflow's own ``get_user`` (the ``_token`` cookie or an
    ``Authorization: Bearer`` header: none gives 401, an invalid one 403); the auth
    manager then decides on the custom view (403 if not allowed). Airflow's API modules
    are imported at the first request, not when the plugin is loaded: every Airflow
    process loads plugins, and only the API server serves this app.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request=request, _oauth_token=None, bearer_credentials=credentials)
    allowed = get_auth_manager().is_authorized_custom_view(
        method="GET", resource_name=VIEW_NAME, user=user
    )
    if not allowed:
        raise HTTPException(status_code=403, detail=f"not allowed to view {VIEW_NAME!r}")


def create_app(settings_factory: Callable[[], Settings] = Settings.from_env) -> FastAPI:
    """The app; settings and the warehouse are resolved per request (no state kept)."""
    app = FastAPI(
        title=VIEW_NAME,
        dependencies=[Depends(require_viewer)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def report(source: WarehouseReader, ds: date, parts: Sequence[str] = figures.PARTS):
        settings = settings_factory()
        return figures.day_report(
            source,
            ds,
            lake=settings.lake,
            data_docs_dir=settings.data_docs_dir,
            psi_threshold=settings.churn_psi_threshold,
            max_failing_share=settings.max_failing_share,
            parts=parts,
        )

    @app.exception_handler(figures.DayNotPublished)
    async def not_published(request: Request, exc: figures.DayNotPublished) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(WarehouseUnavailable)
    async def unavailable(request: Request, exc: WarehouseUnavailable) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        is_docs = "/data-docs/" in request.url.path
        response.headers["Content-Security-Policy"] = DATA_DOCS_POLICY if is_docs else PAGE_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/", response_class=HTMLResponse)
    def day_page(ds: date | None = None) -> HTMLResponse:
        try:
            with WarehouseReader.from_connection().session() as source:
                days = figures.published_days(source)
                if not days:
                    return HTMLResponse(page.nothing_published_page(source.location))
                chosen = ds or days[0]
                if chosen not in days:
                    body = page.message_page(
                        f"Nothing published for {chosen.isoformat()}",
                        f"Published days run from {days[-1].isoformat()} to {days[0].isoformat()}.",
                        ("./", f"Show the latest day, {days[0].isoformat()}"),
                    )
                    return HTMLResponse(body, status_code=404)
                document = report(source, chosen)
        except WarehouseUnavailable as exc:
            body = page.message_page("Warehouse unavailable", f"{exc}. Reload in a moment.")
            return HTMLResponse(body, status_code=503)
        days_text = [d.isoformat() for d in days]
        return HTMLResponse(page.day_page(document, days_text, source.location))

    @app.get("/api/days")
    def days_index() -> dict[str, Any]:
        return figures.days_index(WarehouseReader.from_connection())

    @app.get("/api/days/{ds}")
    def day_document(ds: date) -> dict[str, Any]:
        with WarehouseReader.from_connection().session() as source:
            return report(source, ds)

    @app.get("/api/days/{ds}/{part}")
    def day_part(ds: date, part: str) -> dict[str, Any]:
        name = part.replace("-", "_")
        if name not in figures.PARTS or "_" in part:
            known = [p.replace("_", "-") for p in figures.PARTS]
            raise HTTPException(404, f"no part {part!r}; known: {known}")
        with WarehouseReader.from_connection().session() as source:
            return report(source, ds, [name])[name]

    @app.get("/data-docs/{source}/{path:path}")
    def data_docs(source: str, path: str) -> FileResponse:
        return FileResponse(data_docs_file(settings_factory().data_docs_dir, source, path))

    return app


def data_docs_file(root: Path, source: str, path: str) -> Path:
    """The file of ``<root>/<source>/<path>`` (a folder: its ``index.html``).

    Raises:
        HTTPException: 404 for a bad source name, a missing file, or any path that
            resolves outside ``<root>/<source>`` (``..``, absolute paths, symlinks out).
    """
    if not SOURCE_NAME.match(source) or source in (".", ".."):
        raise HTTPException(404, "no such Data Docs")
    site = (root / source).resolve()
    target = (site / path).resolve() if path else site
    if target.is_dir():
        target = target / "index.html"
    if not target.is_relative_to(site) or not site.is_relative_to(root.resolve()):
        raise HTTPException(404, "no such Data Docs")
    if not target.is_file():
        raise HTTPException(404, f"no Data Docs page {source}/{path}")
    return target

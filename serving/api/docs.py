"""``/docs``: Swagger UI from the ``swagger-ui-bundle`` package's files, never from a CDN."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/docs-static"

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    """The bundle's files, mounted at :data:`STATIC_PREFIX` next to the router."""
    from swagger_ui_bundle import swagger_ui_path

    return StaticFiles(directory=swagger_ui_path)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png",
    )

"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from local files, never from a CDN: both
bundles are vendored under ``serving/api/static`` with their licence files (swagger-ui-dist
5.35.0, Apache-2.0; redoc 2.5.4, MIT; both from npm). Swagger UI 5 is needed: FastAPI's schema
is OpenAPI 3.1, which the 3.x bundle of the ``swagger-ui-bundle`` package cannot render. Both
pages render with the network blocked (tests/serving/ui/test_docs_offline.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_PREFIX = "/docs-static"
REDOC_PREFIX = "/docs-static-redoc"
SWAGGER_DIR = Path(__file__).parent / "static" / "swagger-ui"
REDOC_DIR = Path(__file__).parent / "static" / "redoc"

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    """Swagger UI's vendored bundle, mounted at :data:`STATIC_PREFIX` next to the router."""
    return StaticFiles(directory=SWAGGER_DIR)


def redoc_files() -> StaticFiles:
    """ReDoc's vendored bundle, mounted at :data:`REDOC_PREFIX`."""
    return StaticFiles(directory=REDOC_DIR)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - API docs",
        swagger_js_url=f"{STATIC_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png",
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} - API reference",
        redoc_js_url=f"{REDOC_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{STATIC_PREFIX}/favicon-32x32.png",
        with_google_fonts=False,
    )

"""``mount_ui(app)`` adds the manager UI under ``/ui`` (one line in ``serving.app.create_app``):
the objects its dependencies read on ``app.state``, its routers and its static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from serving.api.handlers import add_page_handlers
from serving.monitoring import MonitorCache
from serving.ui import monitoring, pages, signin
from serving.ui.analytics import AnalyticsCache
from serving.ui.auth import SessionSigner
from serving.ui.context import UiData
from serving.ui.render import HERE, PREFIX


def mount_ui(app: FastAPI) -> None:
    """Add the UI to an app whose state holds ``settings``, ``runtime``, ``metrics`` and
    ``auth_throttle`` (``serving.app.create_app`` puts them there)."""
    state = app.state
    runtime = state.runtime
    if not hasattr(state, "signer"):
        state.signer = SessionSigner(state.settings)
    state.ui_data = UiData(state.settings, lambda: runtime)  # closed by whoever stops the server
    state.analytics = AnalyticsCache(state.settings)
    if not hasattr(state, "monitoring"):  # create_app shares one with GET /v1/monitoring
        state.monitoring = MonitorCache(state.settings)
    add_page_handlers(app)

    app.include_router(signin.router)
    app.include_router(pages.router)
    app.include_router(monitoring.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")

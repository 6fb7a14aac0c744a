"""``mount_workflows(app)`` adds the workflows (one line in ``serving.app.create_app``):
``/v1/workflows`` (API, X-API-Key; ``/workflows`` is an alias) and ``/ui/workflows`` (pages,
UI session)."""

from __future__ import annotations

from fastapi import FastAPI

from serving.api import include_versioned
from serving.api.handlers import add_page_handlers
from serving.ui.auth import SessionSigner
from serving.workflows import api, ui
from serving.workflows.service import Workflows


def mount_workflows(app: FastAPI, workflows: Workflows | None = None) -> Workflows:
    """Add the workflows to an app whose state holds ``settings`` and ``api_keys``;
    ``workflows`` defaults to the deployment's own, whose reports are computed in a worker
    process."""
    state = app.state
    state.workflows = workflows or Workflows.from_settings(state.settings).use_worker()
    if not hasattr(state, "signer"):
        state.signer = SessionSigner(state.settings)
    add_page_handlers(app)

    include_versioned(app, api.router)  # /v1/workflows, and /workflows as an alias
    app.include_router(ui.router)
    return state.workflows

"""One call adds the workflows to the app: ``mount_workflows(app, settings, auth)`` in
``serving.app.create_app`` (``auth`` = the app's ``api_key_check(settings)``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from churn_settings import Settings
from serving.workflows.api import workflows_router
from serving.workflows.service import Workflows
from serving.workflows.ui import workflows_ui


def mount_workflows(
    app: FastAPI,
    settings: Settings,
    auth: Callable[..., Any],
    workflows: Workflows | None = None,
) -> Workflows:
    """Add ``/workflows`` (API, X-API-Key) and ``/ui/workflows`` (pages, UI session)."""
    if workflows is None:  # the app's own: reports are computed in a worker process
        workflows = Workflows.from_settings(settings).use_worker()
    app.state.workflows = workflows
    app.include_router(workflows_router(workflows, auth))
    app.include_router(workflows_ui(workflows, settings))
    return workflows

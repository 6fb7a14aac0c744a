"""``mount_workflows(app)`` adds the workflows (one line in ``serving.app.create_app``):
``/v1/workflows`` (API, X-API-Key; ``/workflows`` is an alias) and ``/ui/workflows`` (pages,
UI session)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from serving.api import include_versioned
from serving.api.handlers import add_page_handlers
from serving.ui.auth import SessionSigner
from serving.workflows import api, ui
from serving.workflows.events import BODIES
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
    document_webhooks(app)
    app.include_router(ui.router)
    return state.workflows


SIGNATURE_HEADERS = [
    {"name": "Idempotency-Key", "in": "header", "required": True,
     "description": "Same on every retry of one event: process a key once.",
     "schema": {"type": "string"}},
    {"name": "X-Churn-Timestamp", "in": "header", "required": True,
     "description": "Unix seconds when this attempt was signed.", "schema": {"type": "string"}},
    {"name": "X-Churn-Signature", "in": "header", "required": True,
     "description": "v2= + hex HMAC-SHA256 of '{timestamp}.{idempotency key}.{raw body}' "
     "with the endpoint's secret (docs/crm-integration.md has a verifier).",
     "schema": {"type": "string"}},
]  # fmt: skip


def document_webhooks(app: FastAPI) -> None:
    """Each event as an OpenAPI webhook (``webhooks`` in ``/openapi.json``): what the service
    POSTs to a subscribed CRM endpoint, with the signature headers."""
    for name, body in BODIES.items():

        def receive(event: Any) -> None:  # documentation only: the CRM implements it
            """A receiver answers 2xx once it stored the event; anything else is retried."""

        receive.__annotations__["event"] = body
        app.webhooks.post(
            name,
            summary=(body.__doc__ or name).strip().splitlines()[0],
            openapi_extra={"parameters": SIGNATURE_HEADERS},
            tags=["webhooks"],
            responses={200: {"description": "Stored (or already stored under this key)."}},
        )(receive)

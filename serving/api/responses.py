"""What several routers document: the error responses of the API, and the ``k`` query."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from serving.schemas import ErrorBody

JSON = "application/json"
MAX_K = 100

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid X-API-Key."},
    429: {
        "model": ErrorBody,
        "description": "Too many failed authentications from this client; see Retry-After.",
    },
    422: {"model": ErrorBody, "description": "Invalid request; `fields` names each bad field."},
    400: {"model": ErrorBody, "description": "Body is not JSON."},
    413: {"model": ErrorBody, "description": "Body or batch too large."},
    503: {"model": ErrorBody, "description": "No model loaded yet."},
}
RELOAD_FAILED = {"model": ErrorBody, "description": "Reload failed; the old model serves."}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown customer id (named in the message)."}
}

KQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_K, description="Drivers per result (default: CHURN_TOP_K, 5)."),
]

"""Errors of the serving layer and the one table that maps every error to an HTTP status.

Each error says what was wrong, where (request field, customer id, file and line) and what to do;
``serving.app`` turns any :class:`ChurnError` into ``{"error", "message", "fields"}`` with the
status from :data:`HTTP_STATUS`, so a status code is decided here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from features.errors import ChurnError, ContractError, InsufficientDataError


@dataclass(frozen=True)
class FieldProblem:
    """One bad request field: its dotted path (``items.3.features.mrr``) and what is wrong."""

    field: str
    problem: str


class RequestError(ChurnError):
    """A request the API cannot act on (bad JSON, wrong shape)."""

    code = "bad_request"

    def __init__(self, message: str, fields: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class ConflictError(RequestError):
    """A request that contradicts the recorded state (closing a closed task)."""

    code = "conflict"


class FeatureValidationError(RequestError):
    """Live features that are missing, extra or mistyped; ``fields`` names each one."""

    code = "invalid_features"


class RecordValidationError(RequestError):
    """Well-formed input that contradicts what is known (an unknown customer, a day before
    signup, an exit interview for an active customer); ``fields`` names each field."""

    code = "invalid_record"


class UnknownCustomerError(ChurnError):
    """No customer with this id in the served snapshot."""

    code = "unknown_customer"


class BatchTooLargeError(ChurnError):
    """More items in one batch than ``batch_limit``."""

    code = "batch_too_large"


class BodyTooLargeError(ChurnError):
    """A request body over ``max_body_bytes``."""

    code = "body_too_large"


class AuthError(ChurnError):
    """Missing or wrong ``X-API-Key``."""

    code = "unauthorized"


class ScopeError(ChurnError):
    """A valid API key without the scope the route needs (the message names it)."""

    code = "forbidden"


class ThrottledError(ChurnError):
    """Too many failed authentications from one client; ``retry_after`` is in seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotReadyError(ChurnError):
    """No model loaded yet (or it failed to load at start)."""

    code = "not_ready"


class ReloadError(ChurnError):
    """A new model, snapshot, score store or playbook failed to load; the old state serves."""

    code = "reload_failed"


class PlaybookError(ChurnError):
    """``playbook.yaml`` is missing or invalid; the message names the key and line."""

    code = "invalid_playbook"


class ScoreStoreError(ChurnError):
    """The snapshot or score store cannot be read or does not fit the model."""

    code = "invalid_store"


# The one place an error becomes a status code; subclasses inherit their parent's entry.
HTTP_STATUS: dict[type[ChurnError], int] = {
    RequestError: 400,
    ConflictError: 409,
    FeatureValidationError: 422,
    RecordValidationError: 422,
    AuthError: 401,
    ScopeError: 403,
    ThrottledError: 429,
    UnknownCustomerError: 404,
    BodyTooLargeError: 413,
    BatchTooLargeError: 413,
    NotReadyError: 503,
    ReloadError: 503,
    PlaybookError: 500,
    ScoreStoreError: 500,
    ContractError: 500,
    InsufficientDataError: 500,
}


def http_status(error: ChurnError) -> int:
    """Status of ``error``: the entry of its nearest class in :data:`HTTP_STATUS`, else 500."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_code(error: ChurnError) -> str:
    """Machine-readable code of ``error`` (``unknown_customer``, ``invalid_features``, ...)."""
    return str(getattr(error, "code", "error"))

"""Errors of the retention workflows.

They derive from the serving errors so the app's one table (``serving.errors.HTTP_STATUS``) maps
them without a new entry: an unknown alert or task is a 404 like an unknown customer, a request
the workflows cannot act on is a 400, one that contradicts the recorded state (closing a closed
task) a 409.
"""

from __future__ import annotations

from features.errors import ChurnError
from serving.errors import (
    ConflictError,
    RecordValidationError,
    RequestError,
    UnknownCustomerError,
)


class RulesError(ChurnError):
    """``rules.yaml`` is missing or invalid, or a rule run cannot start; the message says where."""

    code = "invalid_rules"


class UnknownRecordError(UnknownCustomerError):
    """No alert, task, customer or outbox row with this id in the workflow database."""

    code = "unknown_record"


class WorkflowRequestError(RequestError):
    """A workflow request the service cannot act on."""

    code = "workflow_request"


class WorkflowConflictError(WorkflowRequestError, ConflictError):
    """A workflow request that contradicts the recorded state (a task already closed, ...)."""

    code = "workflow_conflict"


class InvalidRecordError(RecordValidationError):
    """What a person records contradicts the facts or the ledger (422, the field named)."""

    code = "invalid_record"

"""The webhook events a CRM can subscribe to, and their bodies.

Every event travels through the ledger's outbox (written in the transaction of what it reports,
signed and retried by :mod:`serving.workflows.webhooks`). An endpoint receives the events listed
in its ``events`` (``rules.yaml``, default ``[alert.opened]``); alert and task events go only to
endpoints that the alert's rule notifies (a ``webhook`` action), ``score.tier_changed`` to every
subscribed endpoint. Each body has ``event``, ``endpoint`` and ``occurred_at`` (ISO UTC) besides
its own fields; the OpenAPI schema documents each one (``serving.workflows.api``) and
``docs/crm-integration.md`` shows how a receiver verifies them.

- ``alert.opened``: a rule's episode began (customer, scores, drivers, next step, its task).
- ``alert.cleared``: the episode ended (the condition no longer holds, or the rule was removed).
- ``task.created``: a retention task was created for an alert (owner, due date fixed at creation).
- ``task.completed``: a person closed a task, with the outcome.
- ``score.tier_changed``: a customer's risk tier differs from their previous scoring's.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from serving.workflows.config import RulesConfig, WebhookAction
from serving.workflows.ledger import QueuedEvent

EventName = Literal[
    "alert.opened", "alert.cleared", "task.created", "task.completed", "score.tier_changed"
]
EVENTS: tuple[str, ...] = EventName.__args__  # type: ignore[attr-defined]


def event_key(event: str, subject: str, at: str, endpoint: str) -> str:
    """Stable per event, subject (alert, task, customer scoring) and endpoint: a re-run writes
    the same key, so the outbox keeps one row (``INSERT OR IGNORE``) and a CRM books once."""
    raw = f"{event}|{subject}|{at}|{endpoint}".encode()
    return "churn-" + hashlib.sha256(raw).hexdigest()[:32]


def subscribers(config: RulesConfig, event: str, rule_id: str | None) -> list[str]:
    """Endpoints that get ``event``: subscribed to it and, for an alert's or task's event,
    notified by that alert's rule (``rule_id`` None: every subscribed endpoint)."""
    wanted = [name for name, ep in config.webhooks.items() if event in ep.events]
    if rule_id is None:
        return wanted
    rule = config.rule(rule_id)
    if rule is None:
        return []
    hooked = {a.endpoint for a in rule.actions if isinstance(a, WebhookAction)}
    return [name for name in wanted if name in hooked]


def queued(
    config: RulesConfig,
    event: str,
    subject: str,
    at: str,
    body: dict[str, Any],
    rule_id: str | None = None,
    alert_id: int | None = None,
) -> list[QueuedEvent]:
    """One outbox row of ``event`` per subscribed endpoint, its body fixed now (a retry sends
    the same bytes)."""
    rows = []
    for endpoint in subscribers(config, event, rule_id):
        payload = {"event": event, "endpoint": endpoint, "occurred_at": at, **body}
        rows.append(QueuedEvent(
            alert_id, endpoint, event, event_key(event, subject, at, endpoint),
            json.dumps(payload, sort_keys=True, default=str),
        ))  # fmt: skip
    return rows


TASK_FIELDS = ("task_id", "owner", "title", "due_at", "created_at", "closed_at", "closed_by",
               "outcome", "status", "play")  # fmt: skip


def task_completed(config: RulesConfig, task: dict[str, Any]) -> list[QueuedEvent]:
    """``task.completed`` of a task just closed (``task``: its ledger row and its alert's
    ``rule_id``); none for a task without an alert."""
    rule_id = task.get("rule_id")
    if rule_id is None:
        return []
    body = {"alert_id": task["alert_id"], "rule_id": rule_id, "customer_id": task["customer_id"],
            "task": {k: task.get(k) for k in TASK_FIELDS}}  # fmt: skip
    return queued(config, "task.completed", f"task-{task['task_id']}", str(task["closed_at"]),
                  body, str(rule_id), task["alert_id"])  # fmt: skip


# ----- the bodies, as the OpenAPI schema documents them (``app.webhooks``) -----------------


class EventBase(BaseModel):
    event: str
    endpoint: str = Field(description="The rules.yaml endpoint name this was sent to.")
    occurred_at: str = Field(description="ISO 8601 UTC: the rule run or the closing.")
    customer_id: str


class EventTask(BaseModel):
    task_id: int | None
    status: str = Field(description="created / attached / waiting (alert.opened); open; closed")
    owner: str
    title: str
    due_at: str | None = Field(description="ISO UTC, fixed when the task was created.")


class ClosedTask(BaseModel):
    task_id: int
    owner: str
    title: str
    due_at: str | None
    created_at: str
    closed_at: str
    closed_by: str
    outcome: str
    status: Literal["closed"]
    play: str | None


class AlertOpened(EventBase):
    """A rule's episode began for a customer (once per episode and endpoint)."""

    event: Literal["alert.opened"]
    alert_id: int
    rule_id: str
    rule: str = Field(description="The rule's description.")
    customer_name: str | None
    csm_owner: str | None
    opened_at: str
    since: str | None = Field(description="When the condition began to hold.")
    detail: str
    tier: str | None
    health_score: float | None
    churn_probability: float | None
    mrr: float | None = Field(description="Monthly recurring revenue, in `currency`.")
    currency: str = Field(description="ISO 4217 code of `mrr` (CHURN_CURRENCY).")
    model_version: str | None
    top_drivers: list[dict[str, Any]]
    recommended_action: dict[str, Any] | None
    task: EventTask | None
    tags: list[str]


class AlertCleared(EventBase):
    """The episode ended: the condition no longer holds (or its rule was removed)."""

    event: Literal["alert.cleared"]
    alert_id: int
    rule_id: str
    cleared_at: str


class TaskCreated(EventBase):
    """A retention task was created for an alert."""

    event: Literal["task.created"]
    alert_id: int
    rule_id: str
    task: EventTask


class TaskCompleted(EventBase):
    """A person closed a task, with its outcome."""

    event: Literal["task.completed"]
    alert_id: int
    rule_id: str
    task: ClosedTask


class TierChanged(EventBase):
    """A customer's risk tier differs from their previous scoring's."""

    event: Literal["score.tier_changed"]
    as_of: date
    tier: str
    previous_tier: str
    previous_as_of: date
    health_score: float | None
    churn_probability: float | None


BODIES: dict[str, type[EventBase]] = {
    "alert.opened": AlertOpened,
    "alert.cleared": AlertCleared,
    "task.created": TaskCreated,
    "task.completed": TaskCompleted,
    "score.tier_changed": TierChanged,
}

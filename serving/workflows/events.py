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
from typing import Any, Literal

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

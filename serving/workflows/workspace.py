"""One customer's work, for the customer page: open tasks and alerts, and a timeline of what
happened to them (scores, alerts, tasks, interventions, exit interviews, webhooks sent).

Read from the ledger and the score history as they are; the timeline itself is a pure function
of those tables (:func:`timeline`), newest first. Times are UTC; a scoring is placed at its
``scored_at``, a record at the moment it was recorded (an intervention also shows its day).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from serving.workflows.api import records
from serving.workflows.service import Workflows

TIMELINE_LIMIT = 200


@dataclass(frozen=True)
class Workspace:
    open_tasks: list[dict[str, Any]]
    open_alerts: list[dict[str, Any]]
    exit_interviews: list[dict[str, Any]]
    timeline: list[dict[str, Any]]


def _iso(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    moment = pd.Timestamp(value)
    if moment.tzinfo is None:
        moment = moment.tz_localize("UTC")
    return str(moment.tz_convert("UTC").isoformat())


def timeline(
    scores: pd.DataFrame,
    alerts: pd.DataFrame,
    tasks: pd.DataFrame,
    interventions: pd.DataFrame,
    exits: pd.DataFrame,
    webhooks: pd.DataFrame,
    limit: int = TIMELINE_LIMIT,
) -> list[dict[str, Any]]:
    """Every event of one customer as ``{at, kind, title, detail, by}``, newest first."""
    events: list[dict[str, Any]] = []

    def add(at: Any, kind: str, title: str, detail: str = "", by: str = "") -> None:
        if _iso(at):
            events.append({"at": _iso(at), "kind": kind, "title": title, "detail": detail,
                           "by": by or ""})  # fmt: skip

    for r in scores.itertuples():
        add(r.scored_at, "score", f"Scored: health {r.health_score:.0f} ({r.tier})",
            f"churn probability {r.probability:.1%}, as of {str(r.as_of)[:10]}, "
            f"model v{r.model_version}")  # fmt: skip
    for r in alerts.itertuples():
        add(r.opened_at, "alert", f"Alert opened: {r.rule_id}", str(r.detail))
        if isinstance(r.cleared_at, str) and r.cleared_at:
            add(r.cleared_at, "alert", f"Alert cleared: {r.rule_id}")
    for r in tasks.itertuples():
        add(r.created_at, "task", f"Task opened: {r.title}", f"for {r.owner}, due {r.due_at}")
        if r.status == "closed":
            add(r.closed_at, "task", f"Task completed: {r.title}", str(r.outcome or ""),
                str(r.closed_by or ""))  # fmt: skip
    for r in interventions.itertuples():
        notes = f": {r.notes}" if isinstance(r.notes, str) and r.notes else ""
        add(r.recorded_at, "intervention", f"{str(r.type).replace('_', ' ').capitalize()} "
            f"on {r.date}", f"outcome {r.outcome}{notes}", str(r.owner))  # fmt: skip
    for r in exits.itertuples():
        add(r.recorded_at, "exit", f"Exit interview: {r.category}", str(r.main_reason),
            str(r.recorded_by))  # fmt: skip
    for r in webhooks.itertuples():
        add(r.delivered_at, "webhook", f"Webhook sent to {r.endpoint}", f"alert {r.alert_id}")
    events.sort(key=lambda e: e["at"], reverse=True)
    return events[:limit]


def customer_workspace(workflows: Workflows, customer_id: str) -> Workspace:
    """What the customer page shows of the workflows for ``customer_id``; its scores are the
    score history the rules read."""
    ledger = workflows.ledger
    one = ("customer_id = ?", [customer_id])
    tasks = ledger.table("tasks", order="task_id", where=one[0], params=one[1])
    alerts = ledger.alerts(None, None, customer_id, 1000, 0)
    interventions = ledger.table("interventions", order="intervention_id", where=one[0],
                                 params=one[1])  # fmt: skip
    exits = ledger.table("exit_interviews", order="interview_id", where=one[0], params=one[1])
    webhooks = ledger.frame(
        "SELECT o.endpoint, o.alert_id, o.delivered_at FROM outbox o JOIN alerts a "
        "USING (alert_id) WHERE a.customer_id = ? AND o.delivered_at IS NOT NULL",
        [customer_id],
    )
    history = workflows.history()
    scores = history[history["customer_id"].astype(str) == customer_id]
    open_tasks = tasks[tasks["status"] == "open"].sort_values("due_at")
    open_alerts = alerts[alerts["cleared_at"].isna()]
    return Workspace(
        records(open_tasks),
        records(open_alerts.drop(columns=["context"])),
        records(exits),
        timeline(scores, alerts, tasks, interventions, exits, webhooks),
    )

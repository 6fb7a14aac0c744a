"""One rule run: conditions -> episodes -> actions, written to the ledger in one transaction.

An alert fires **once per episode**: a (rule, customer) whose condition starts to hold gets a new
alert and its actions; while it keeps holding, later runs do nothing; when it stops holding the
episode is closed (``cleared_at``, and ``while_open`` tags are removed); if it holds again later,
that is a new episode with a new alert. Running twice with the same ``now`` changes nothing.

Hold-out: when ``holdout.share`` > 0, each new alert of a rule with ``holdout: true`` is drawn
into the hold-out with that probability, by a hash of (seed, rule, customer, opened_at) — the
same inputs always give the same draw, so a replay is reproducible. A held-out alert is
recorded (``holdout = 1``) but runs no action: no task, tag, draft or webhook. Comparing it with
the acted-on alerts measures what the actions change (``serving.workflows.loop``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import jinja2
import pandas as pd

from features.facts import utc
from serving.playbook import Playbook
from serving.workflows.conditions import evaluate
from serving.workflows.config import (
    EmailDraftAction,
    RulesConfig,
    RuleSpec,
    TagAction,
    TaskAction,
    WebhookAction,
)
from serving.workflows.events import queued
from serving.workflows.inputs import daily_scores, latest_scores
from serving.workflows.ledger import (
    Ledger,
    PlannedAlert,
    PlannedDraft,
    PlannedTask,
    QueuedEvent,
    TaskOutcome,
    WaitingTask,
    iso,
)


@dataclass(frozen=True)
class RunSummary:
    """What one run did, for the CLI and logs."""

    run_id: int
    now: str
    evaluated: int
    holding: int
    opened: int
    held_out: int
    cleared: int
    tasks: int
    webhooks: int
    attached: int = 0
    waiting: int = 0

    def line(self) -> str:
        return (
            f"rules run {self.run_id} at {self.now}: {self.holding} conditions hold over "
            f"{self.evaluated:,} customers; {self.opened} new alerts ({self.held_out} held out), "
            f"{self.cleared} cleared; {self.tasks} tasks created, {self.attached} alerts added "
            f"to open tasks, {self.waiting} waiting for capacity; {self.webhooks} webhooks queued"
        )


def in_holdout(seed: int, rule_id: str, customer_id: str, opened_at: str, share: float) -> bool:
    """The seeded, order-independent hold-out draw of one new alert."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{seed}|{rule_id}|{customer_id}|{opened_at}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def rules_digest(config: RulesConfig) -> str:
    """A short hash of the rules in force, stored with each run (which rules opened an alert)."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]


def email_environment(folder: Path) -> jinja2.Environment:
    """Plain-text templates; a missing variable is an error, not an empty string in an email."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain-text email drafts, never HTML
        keep_trailing_newline=True,
    )


def render_draft(
    env: jinja2.Environment, template: str, context: dict[str, Any]
) -> tuple[str, str]:
    """(subject, body) of a template whose first line is ``Subject: ...``."""
    text = env.get_template(f"{template}.txt.j2").render(**context)
    first, _, body = text.partition("\n")
    subject = first.removeprefix("Subject:").strip() if first.startswith("Subject:") else template
    return subject, body.lstrip("\n") if first.startswith("Subject:") else text


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _text(value: Any) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def alert_context(
    rule: RuleSpec,
    customer_id: str,
    detail: str,
    since: Any,
    score: pd.Series | None,
    fact: pd.Series | None,
    playbook: Playbook,
    now: datetime,
) -> dict[str, Any]:
    """Everything an alert's actions may use: who, how risky, why, and the playbook's step."""
    tier = str(score["tier"]) if score is not None else None
    drivers: list[dict[str, Any]] = list(score["top_drivers"]) if score is not None else []
    risk = [d for d in drivers if (d.get("contribution") or 0) > 0]
    recommended = None
    if tier in playbook.tiers:
        rec = playbook.recommend(tier, [d["feature"] for d in risk])
        deadline = iso(rec.play.sla.deadline(utc(now).to_pydatetime()))
        recommended = rec.as_dict(deadline or "")
    name = _text(fact["name"]) if fact is not None else None
    owner = _text(fact["csm_owner"]) if fact is not None else None
    return {
        "rule_id": rule.id,
        "rule": rule.description,
        "customer_id": customer_id,
        "customer_name": name or customer_id,
        "csm_owner": owner or "your customer success manager",
        "csm_owner_id": owner,
        "tier": tier,
        "health_score": _number(score["health_score"]) if score is not None else None,
        "probability": _number(score["probability"]) if score is not None else None,
        "model_version": str(score["model_version"]) if score is not None else None,
        "scored_as_of": iso(score["as_of"].date()) if score is not None else None,
        "mrr": _number(fact["mrr"]) if fact is not None else None,
        "detail": detail,
        "since": iso(since),
        "top_drivers": drivers,
        "risk_drivers": risk,
        "recommended_action": recommended or {"action": "", "refinement": None},
    }


def revenue_at_risk(mrr: float | None, probability: float | None) -> float:
    """MRR x churn probability (currency per month): what a customer's loss is expected to
    cost, the order in which owners at capacity get tasks."""
    if mrr is None or probability is None:
        return 0.0
    return float(mrr) * float(probability)


def plan_tasks(
    rule: RuleSpec, context: dict[str, Any], playbook: Playbook, now: datetime, risk: float
) -> list[PlannedTask]:
    """The tasks of ``rule``'s task actions: each resolves to a playbook tier play (its
    ``sla_tier`` or the customer's tier), owned by the customer's CSM (else the play's owner),
    due by the play's SLA from ``now``, the moment the task is created."""
    tasks = []
    moment = utc(now).to_pydatetime()
    for action in rule.actions:
        if isinstance(action, TaskAction):
            tier = action.sla_tier or context["tier"] or "low"
            play = playbook.tiers[tier]
            title = jinja2.Template(action.title, undefined=jinja2.StrictUndefined).render(
                **context
            )
            owner = context["csm_owner_id"] or play.owner
            tasks.append(
                PlannedTask(
                    title,
                    owner,
                    tier,
                    play.sla.describe(),
                    play.sla.deadline(moment),
                    play=tier,
                    revenue_at_risk=risk,
                )
            )
    return tasks


def plan_alert(
    rule: RuleSpec,
    context: dict[str, Any],
    holdout: bool,
    playbook: Playbook,
    emails: jinja2.Environment,
    now: datetime,
    risk: float | None = None,
) -> PlannedAlert:
    """A new alert and, unless held out, its tasks, tags, drafts and webhooks."""
    tags, drafts, hooks = [], [], []
    if risk is None:
        risk = revenue_at_risk(context["mrr"], context["probability"])
    tasks = [] if holdout else plan_tasks(rule, context, playbook, now, risk)
    for action in [] if holdout else rule.actions:
        if isinstance(action, TagAction):
            tags.append((action.tag, action.while_open))
        elif isinstance(action, EmailDraftAction):
            subject, body = render_draft(emails, action.template, context)
            drafts.append(PlannedDraft(action.template, context["csm_owner"], subject, body))
        elif isinstance(action, WebhookAction):
            hooks.append(action.endpoint)
    return PlannedAlert(
        rule_id=rule.id,
        customer_id=context["customer_id"],
        since=pd.Timestamp(context["since"]).to_pydatetime() if context["since"] else None,
        detail=context["detail"],
        holdout=holdout,
        tier=context["tier"],
        health_score=context["health_score"],
        probability=context["probability"],
        mrr=context["mrr"],
        customer_name=context["customer_name"],
        csm_owner=context["csm_owner_id"],
        context=context,
        tasks=tasks,
        tags=tags,
        drafts=drafts,
        webhooks=hooks,
    )


def webhook_payload(
    alert_id: int,
    planned: PlannedAlert,
    endpoint: str,
    opened_at: str,
    task: TaskOutcome | None = None,
    currency: str = "USD",
) -> str:
    """The JSON body a CRM receives for a new alert (fixed at enqueue time: a retry sends the
    same bytes). ``task`` is the task the alert created or was added to (``status``
    ``created`` / ``attached``), or the one waiting for its owner's capacity."""
    c = planned.context
    body = {
        "event": "alert.opened",
        "occurred_at": opened_at,
        "alert_id": alert_id,
        "endpoint": endpoint,
        "rule_id": planned.rule_id,
        "rule": c["rule"],
        "customer_id": planned.customer_id,
        "customer_name": c["customer_name"],
        "csm_owner": c["csm_owner_id"],
        "opened_at": opened_at,
        "since": c["since"],
        "detail": planned.detail,
        "tier": planned.tier,
        "health_score": planned.health_score,
        "churn_probability": planned.probability,
        "mrr": planned.mrr,
        "currency": currency,
        "model_version": c["model_version"],
        "top_drivers": c["top_drivers"],
        "recommended_action": c["recommended_action"],
        "task": None
        if task is None
        else {
            "task_id": task.task_id,
            "status": task.status,
            "owner": task.owner,
            "due_at": task.due_at,
            "title": task.title,
        },
        "tags": [t for t, _ in planned.tags],
    }
    return json.dumps(body, sort_keys=True, default=str)


def tier_changes(config: RulesConfig, daily: pd.DataFrame, at: str) -> list[QueuedEvent]:
    """``score.tier_changed`` for each customer whose newest scored day's tier differs from the
    previous scored day's (keyed by customer and day: a re-run over the same history queues
    nothing new)."""
    if not any("score.tier_changed" in ep.events for ep in config.webhooks.values()):
        return []
    previous = daily.groupby("customer_id", sort=False)["tier"].shift()
    changed = daily.assign(previous_tier=previous).drop_duplicates("customer_id", keep="last")
    moved = changed["previous_tier"].notna() & (changed["tier"] != changed["previous_tier"])
    changed = changed[moved]
    events = []
    for row in changed.itertuples(index=False):
        day = pd.Timestamp(str(row.as_of)).date().isoformat()
        body = {"customer_id": str(row.customer_id), "as_of": day, "tier": str(row.tier),
                "previous_tier": str(row.previous_tier),
                "previous_as_of": pd.Timestamp(str(row.prev_day)).date().isoformat(),
                "health_score": _number(row.health_score),
                "churn_probability": _number(row.probability)}  # fmt: skip
        events += queued(config, "score.tier_changed", f"{row.customer_id}@{day}", at, body)
    return events


def run_rules(
    config: RulesConfig,
    ledger: Ledger,
    history: pd.DataFrame,
    facts: pd.DataFrame,
    playbook: Playbook,
    now: datetime,
    known_at: datetime | None = None,
    capacity: int | None = None,
    currency: str = "USD",
) -> RunSummary:
    """Evaluate every rule at ``now`` and record new and cleared episodes (see module doc);
    ``known_at`` replays the history as it was then (``inputs.daily_scores``).

    Tasks: one open task per customer and play (a later alert is added to it); at most
    ``capacity`` open tasks per owner (None: no limit), given highest revenue at risk first;
    open episodes of earlier runs still without a task are offered again (backfill)."""
    daily = daily_scores(history, now, known_at)
    holds = evaluate(config, daily, facts, now)
    latest = latest_scores(daily)
    open_now = ledger.open_episodes()
    key = ["rule_id", "customer_id"]
    merged = holds.merge(open_now, on=key, how="outer", indicator=True)
    starting = merged[merged["_merge"] == "left_only"]
    ended = merged[merged["_merge"] == "right_only"]
    # an episode of a rule removed from rules.yaml or disabled ends too: nothing evaluates it
    opened_at = iso(now) or ""
    emails = email_environment(config.email_templates)
    planned = []

    def risk_of(cid: str, context: dict[str, Any]) -> float:
        """Revenue at risk today: latest probability x current MRR (the alert's if unknown)."""
        probability = _number(latest.at[cid, "probability"]) if cid in latest.index else None
        mrr = _number(facts.at[cid, "mrr"]) if cid in facts.index else None
        return revenue_at_risk(
            context["mrr"] if mrr is None else mrr,
            context["probability"] if probability is None else probability,
        )

    for row in starting.itertuples(index=False):
        rule = config.rule(str(row.rule_id))
        assert rule is not None
        cid = str(row.customer_id)
        score = cast(pd.Series, latest.loc[cid]) if cid in latest.index else None
        fact = cast(pd.Series, facts.loc[cid]) if cid in facts.index else None
        context = alert_context(rule, cid, str(row.detail), row.since, score, fact, playbook, now)
        held = rule.holdout and in_holdout(
            config.holdout.seed, rule.id, cid, opened_at, config.holdout.share
        )
        planned.append(
            plan_alert(rule, context, held, playbook, emails, now, risk_of(cid, context))
        )
    cleared = [int(a) for a in ended["alert_id"]]
    events = tier_changes(config, daily, opened_at)
    for episode in ended.itertuples(index=False):
        if bool(episode.held_out):  # a held-out alert told nobody it opened
            continue
        alert_id, rule_id = int(float(str(episode.alert_id))), str(episode.rule_id)
        body = {"alert_id": alert_id, "rule_id": rule_id, "cleared_at": opened_at,
                "customer_id": str(episode.customer_id)}  # fmt: skip
        events += queued(config, "alert.cleared", f"alert-{alert_id}", opened_at, body,
                         rule_id, alert_id)  # fmt: skip

    def task_events(o: TaskOutcome, rule_id: str, customer_id: str) -> list[QueuedEvent]:
        task = {"task_id": o.task_id, "status": "open", "owner": o.owner, "title": o.title,
                "due_at": o.due_at}  # fmt: skip
        body = {"alert_id": o.alert_id, "rule_id": rule_id, "task": task,
                "customer_id": customer_id}  # fmt: skip
        return queued(config, "task.created", f"task-{o.task_id}", opened_at, body, rule_id,
                      o.alert_id)  # fmt: skip

    waiting = []
    for episode in ledger.waiting_episodes().itertuples(index=False):
        rule = config.rule(str(episode.rule_id))
        if rule is None:
            continue
        context = json.loads(str(episode.context))
        cid = str(episode.customer_id)
        for task in plan_tasks(rule, context, playbook, now, risk_of(cid, context)):
            waiting.append(WaitingTask(int(str(episode.alert_id)), cid, task))
    run_id, outcomes = ledger.record_run(
        now,
        rules_digest(config),
        int(max(daily["customer_id"].nunique(), len(facts))),
        planned,
        cleared,
        lambda alert_id, p, endpoint, task: webhook_payload(
            alert_id, p, endpoint, opened_at, task, currency
        ),
        0.0,  # due at once: the sender runs on the wall clock, ``now`` may be a replayed day
        waiting,
        capacity,
        events,
        task_events,
    )
    done = {o.status: 0 for o in outcomes} | {"created": 0, "attached": 0}
    for o in outcomes:
        done[o.status] += 1
    still_waiting = {o.alert_id for o in outcomes if o.status == "waiting"}
    return RunSummary(
        run_id=run_id,
        now=opened_at,
        evaluated=int(max(daily["customer_id"].nunique(), len(facts))),
        holding=len(holds),
        opened=len(planned),
        held_out=sum(p.holdout for p in planned),
        cleared=len(cleared),
        tasks=done["created"],
        webhooks=sum(len(p.webhooks) for p in planned),
        attached=done["attached"],
        waiting=len(still_waiting),
    )

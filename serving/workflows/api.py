"""The workflows API under ``/workflows``: alerts, tasks, interventions, exit interviews, verdicts,
dead letters and the closed-loop report, for CRMs and scripts.

Same conventions as the scoring API: the ``X-API-Key`` dependency and the ledger, the service
and the clock as dependencies (``serving.api.deps``), errors as ``ChurnError`` subclasses (mapped
to HTTP by ``serving.errors``), request bodies validated by pydantic (422 naming each field).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal, get_args

import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from features.contract import EXIT_CATEGORIES
from serving.api.deps import ClockDep, WorkflowsDep, WorkflowsScopes
from serving.schemas import ErrorBody
from serving.workflows.config import DEFAULT_COSTS
from serving.workflows.ledger import Ledger, request_fingerprint

JSON = "application/json"
# SQLite rowids are signed 64-bit: a larger id is a 422, not an overflow deep in the ledger
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]
RowIdPath = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]
# the closed loop computes with pandas timestamps (years 1677-2262); keep recorded days plausible.
# An ISO date string only (``"date": 0`` is not 1970-01-01); the bounds are declared in
# the schema (pydantic does not emit them for dates) so clients and schemathesis see them.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2200, 12, 31)


def iso_date_only(value: Any) -> Any:
    """Refuse numbers (pydantic reads them as Unix times): a day is written YYYY-MM-DD."""
    if isinstance(value, bool | int | float):
        raise ValueError("write the date as a string YYYY-MM-DD, not a number")
    return value


Day = Annotated[
    date,
    BeforeValidator(iso_date_only),
    Field(
        ge=FIRST_DAY,
        le=LAST_DAY,
        description=f"ISO date (YYYY-MM-DD) from {FIRST_DAY} to {LAST_DAY}.",
        json_schema_extra={
            "formatMinimum": FIRST_DAY.isoformat(),
            "formatMaximum": LAST_DAY.isoformat(),
            "pattern": r"^(19[7-9][0-9]|2[01][0-9][0-9]|2200)-[0-9]{2}-[0-9]{2}$",
        },
    ),
]
# a goal is a plan for the coming years: its start is bounded tighter, so start + months stays
# a real month for the loop's monthly periods
GOAL_FIRST, GOAL_LAST = date(2000, 1, 1), date(2100, 12, 31)
InterventionType = Literal[
    "call",
    "meeting",
    "email",
    "training",
    "offer",
    "escalation",
    "executive_sponsor",
    "re_onboarding",
    "other",
]
Outcome = Literal["saved", "improving", "no_change", "no_response", "churned", "pending"]
INTERVENTION_TYPES: tuple[str, ...] = get_args(InterventionType)
assert set(INTERVENTION_TYPES) == set(DEFAULT_COSTS), "every intervention type has a cost"
OUTCOMES: tuple[str, ...] = get_args(Outcome)
ExitCategory = Literal["product", "price", "service", "competitor", "unavoidable"]
assert get_args(ExitCategory) == EXIT_CATEGORIES, "keep in step with features.contract"


class InterventionIn(BaseModel):
    """What a CSM did for a customer (optionally for an alert or a task)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=200)
    type: InterventionType
    date: Day
    owner: str = Field(min_length=1, max_length=200)
    outcome: Outcome
    notes: str | None = Field(None, max_length=5000)
    alert_id: RowId | None = None
    task_id: RowId | None = None


class TaskClose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=200)
    outcome: str = Field(min_length=1, max_length=2000)


class TaskReassign(BaseModel):
    """Give open tasks to another owner (a CSM on leave, a rebalanced book)."""

    model_config = ConfigDict(extra="forbid")

    task_ids: list[RowId] = Field(min_length=1, max_length=1000)
    owner: str = Field(min_length=1, max_length=200, description="The new owner.")
    by: str = Field(min_length=1, max_length=200, description="Who reassigns.")


OVERDUE = "Only open tasks past their stored due date (true), or only the others (false)."
TierFilter = Literal["healthy", "low", "medium", "high"]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="A retry with the same key returns the first response and writes nothing, "
        "also after a restart; a key sent with a different request is a 422.",
    ),
]


class ExitInterviewIn(BaseModel):
    """The five standard questions, a reason category and the avoidable flag."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=200)
    churned_at: Day
    main_reason: str = Field(min_length=1, max_length=5000, description="Main reason for leaving.")
    asked_for_help: Literal["yes", "no"] = Field(description="Did they ask us for help first?")
    help_experience: str | None = Field(None, max_length=5000, description="How did that go?")
    improve: str = Field(min_length=1, max_length=5000, description="What should we improve?")
    replacement: str = Field(min_length=1, max_length=500, description="What replaces us?")
    win_back: str = Field(min_length=1, max_length=5000, description="What would bring them back?")
    category: ExitCategory
    avoidable: bool
    recorded_by: str = Field(min_length=1, max_length=200)


class VerdictIn(BaseModel):
    """A CSM's judgement of one alert, so noisy rules are found."""

    model_config = ConfigDict(extra="forbid")

    useful: bool
    comment: str | None = Field(None, max_length=2000)
    by: str = Field(min_length=1, max_length=200)


class GoalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline: float = Field(gt=0, lt=1, description="Monthly churn today (0-1).")
    target: float = Field(gt=0, lt=1, description="Monthly churn to reach; below the baseline.")
    start: Annotated[
        date,
        BeforeValidator(iso_date_only),
        Field(
            ge=GOAL_FIRST,
            le=GOAL_LAST,
            description=f"First month of the plan, ISO date from {GOAL_FIRST} to {GOAL_LAST}.",
            json_schema_extra={
                "formatMinimum": GOAL_FIRST.isoformat(),
                "formatMaximum": GOAL_LAST.isoformat(),
                "pattern": r"^(20[0-9][0-9]|2100)-[0-9]{2}-[0-9]{2}$",
            },
        ),
    ]
    months: int = Field(ge=1, le=60)
    by: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def target_below_baseline(self) -> GoalIn:
        """The same rule as the UI's form: a goal lowers churn."""
        if self.target >= self.baseline:
            raise ValueError(
                f"target ({self.target}) must be below baseline ({self.baseline}): a goal "
                "lowers monthly churn"
            )
        return self


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts (NaN -> null)."""
    out = []
    for row in frame.to_dict(orient="records"):
        out.append(
            {
                str(k): (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in row.items()
            }
        )
    return out


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(
            body, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        ),
        status_code=status,
        media_type=JSON,
    )


WORKFLOW_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Body is not JSON, or a request the state forbids."},
    401: {"model": ErrorBody, "description": "Missing or invalid X-API-Key."},
    403: {"model": ErrorBody, "description": "The key lacks workflows:read (GET) or :write."},
    404: {"model": ErrorBody, "description": "Unknown alert, task, customer or webhook (named)."},
    409: {"model": ErrorBody, "description": "Conflicts with the current state (e.g. closed)."},
    413: {"model": ErrorBody, "description": "Body too large."},
    422: {"model": ErrorBody, "description": "Invalid request; `fields` names each bad field."},
}


def get_ledger(workflows: WorkflowsDep) -> Ledger:
    return workflows.ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def once(
    ledger: Ledger,
    key: str | None,
    path: str,
    body: BaseModel,
    act: Callable[[], tuple[int, dict[str, Any]]],
    now: datetime,
) -> Response:
    """``act`` at most once per ``Idempotency-Key`` (stored in the ledger)."""
    fingerprint = request_fingerprint("POST", path, body.model_dump(mode="json"))
    status, out, replayed = ledger.idempotent(key, fingerprint, act, now)
    response = _json(out, status)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


router = APIRouter(
    prefix="/workflows",
    tags=["workflows"],
    dependencies=[WorkflowsScopes],
    responses=WORKFLOW_ERRORS,
)


@router.get("/alerts", summary="Alerts, newest first (open, cleared or all)")
def list_alerts(
    ledger: LedgerDep,
    workflows: WorkflowsDep,
    status: Annotated[Literal["open", "cleared", "all"], Query()] = "open",
    rule_id: str | None = None,
    customer_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> Response:
    frame = ledger.alerts(None if status == "all" else status, rule_id, customer_id, limit, offset)
    items = records(frame.drop(columns=["context"]))
    return _json({"count": len(frame), "currency": workflows.currency, "items": items})


@router.get("/alerts/{alert_id}", summary="One alert with the context its actions used")
def get_alert(alert_id: RowIdPath, ledger: LedgerDep) -> Response:
    alert = ledger.alert(alert_id)
    alert["context"] = orjson.loads(alert["context"])
    return _json(alert)


@router.post(
    "/alerts/{alert_id}/verdict", status_code=201, summary="Mark an alert useful or not valid"
)
def verdict(
    alert_id: RowIdPath,
    body: VerdictIn,
    ledger: LedgerDep,
    now: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def act() -> tuple[int, dict[str, Any]]:
        verdict_id = ledger.add_verdict(alert_id, body.useful, body.comment, body.by, now)
        return 201, {"verdict_id": verdict_id, "alert_id": alert_id}

    return once(ledger, idempotency_key, f"/alerts/{alert_id}/verdict", body, act, now)


@router.get(
    "/tasks",
    summary="Tasks (open by default), soonest deadline first, then highest revenue at risk",
)
def list_tasks(
    ledger: LedgerDep,
    workflows: WorkflowsDep,
    now: ClockDep,
    status: Annotated[Literal["open", "closed", "all"], Query()] = "open",
    owner: Annotated[str | None, Query(max_length=200)] = None,
    tier: TierFilter | None = None,
    overdue: Annotated[bool | None, Query(description=OVERDUE)] = None,
    customer_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> Response:
    frame, total = ledger.tasks(
        now,
        None if status == "all" else status,
        owner or None,
        tier,
        overdue,
        customer_id or None,
        limit,
        offset,
    )
    return _json(
        {
            "count": len(frame),
            "total": total,
            "limit": limit,
            "offset": offset,
            "currency": workflows.currency,  # of revenue_at_risk
            "items": records(frame),
        }
    )


@router.post("/tasks/reassign", summary="Give open tasks to another owner (all or none)")
def reassign_tasks(
    body: TaskReassign, ledger: LedgerDep, now: ClockDep, idempotency_key: IdempotencyKey = None
) -> Response:
    def act() -> tuple[int, dict[str, Any]]:
        moved = ledger.reassign_tasks(body.task_ids, body.owner, body.by, now)
        return 200, {"owner": body.owner, "reassigned": moved}

    return once(ledger, idempotency_key, "/tasks/reassign", body, act, now)


@router.post("/tasks/{task_id}/close", summary="Close a task with its outcome")
def close_task(
    task_id: RowIdPath,
    body: TaskClose,
    ledger: LedgerDep,
    workflows: WorkflowsDep,
    now: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def act() -> tuple[int, dict[str, Any]]:
        workflows.close_task(task_id, body.by, body.outcome, now)
        return 200, {"task_id": task_id, "status": "closed"}

    return once(ledger, idempotency_key, f"/tasks/{task_id}/close", body, act, now)


@router.post("/interventions", status_code=201, summary="Record what was done for a customer")
def add_intervention(
    body: InterventionIn,
    workflows: WorkflowsDep,
    now: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def act() -> tuple[int, dict[str, Any]]:
        new_id = workflows.record_intervention(body.model_dump(), now)
        return 201, {"intervention_id": new_id}

    return once(workflows.ledger, idempotency_key, "/interventions", body, act, now)


@router.get("/interventions", summary="Recorded interventions, newest first")
def list_interventions(ledger: LedgerDep, customer_id: str | None = None) -> Response:
    where, params = ("customer_id = ?", [customer_id]) if customer_id else ("1 = 1", [])
    frame = ledger.table(
        "interventions", order="date DESC, intervention_id DESC", where=where, params=params
    )
    return _json({"count": len(frame), "items": records(frame)})


@router.post(
    "/exit-interviews", status_code=201, summary="Record a churned customer's exit interview"
)
def add_exit_interview(
    body: ExitInterviewIn,
    workflows: WorkflowsDep,
    now: ClockDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    def act() -> tuple[int, dict[str, Any]]:
        new_id = workflows.record_exit_interview(body.model_dump(), now)
        return 201, {"interview_id": new_id}

    return once(workflows.ledger, idempotency_key, "/exit-interviews", body, act, now)


@router.get("/exit-interviews", summary="Recorded exit interviews")
def list_exit_interviews(ledger: LedgerDep) -> Response:
    frame = ledger.table("exit_interviews", order="interview_id DESC")
    return _json({"count": len(frame), "items": records(frame)})


@router.get("/segments/{tag}", summary="Customers currently tagged with a segment")
def segment(tag: str, ledger: LedgerDep) -> Response:
    members = ledger.segment(tag)
    return _json({"tag": tag, "count": len(members), "customer_ids": members})


@router.get("/drafts", summary="Email drafts for CSMs (never sent by the service)")
def drafts(ledger: LedgerDep, customer_id: str | None = None) -> Response:
    where, params = ("customer_id = ?", [customer_id]) if customer_id else ("1 = 1", [])
    frame = ledger.table("drafts", order="draft_id DESC", where=where, params=params)
    return _json({"count": len(frame), "items": records(frame)})


@router.get("/webhooks/dead-letters", summary="Webhooks that failed max_attempts times")
def dead_letters(ledger: LedgerDep) -> Response:
    frame = ledger.table("outbox", order="outbox_id", where="status = 'dead'")
    return _json({"count": len(frame), "items": records(frame.drop(columns=["payload"]))})


@router.post("/webhooks/{outbox_id}/requeue", summary="Send a dead letter again (same key)")
def requeue(outbox_id: RowIdPath, ledger: LedgerDep, now: ClockDep) -> Response:
    ledger.requeue(outbox_id, now.timestamp())
    return _json({"outbox_id": outbox_id, "status": "pending"})


@router.put("/goal", summary="Set the retention goal (monthly churn from baseline to target)")
def set_goal(body: GoalIn, ledger: LedgerDep, now: ClockDep) -> Response:
    ledger.set_goal(body.baseline, body.target, body.start, body.months, body.by, now)
    return _json(ledger.latest_goal())


@router.get("/report", summary="The closed loop: effect of actions, exits, rule precision, goal")
def report(request: Request, workflows: WorkflowsDep) -> Response:
    loop, _ = workflows.closed_loop()
    cached = getattr(request.app.state, "workflow_report", None)
    if cached is None or cached[0] is not loop:  # one rendering per computed loop
        cached = (loop, bytes(_json(loop_json(loop) | {"currency": workflows.currency}).body))
        request.app.state.workflow_report = cached
    return Response(cached[1], media_type=JSON)


@router.get("/contact", summary="Who to contact: uplift ranking beside risk, with the reason")
def contact(
    workflows: WorkflowsDep,
    owner: Annotated[str | None, Query(description="Only this CSM's customers.")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 500,
) -> Response:
    """The closed loop's contact plan (docs/workflows.md, "Who to contact"), best first."""
    loop, _ = workflows.closed_loop()
    plan = loop.contact
    if owner is not None and not plan.empty:
        plan = plan[plan["csm_owner"] == owner]
    return _json(
        {"note": loop.contact_note, "count": len(plan), "items": records(plan.head(limit))}
    )


def loop_json(loop: Any) -> dict[str, Any]:
    """The closed loop as JSON (DataFrames as lists of rows, NaN as null); the contact plan,
    one row per customer, is ``GET /workflows/contact``."""
    out: dict[str, Any] = {}
    for name, value in vars(loop).items():
        if name == "contact":
            continue
        if isinstance(value, pd.DataFrame):
            out[name] = records(value.drop(columns=[c for c in ("opened",) if c in value.columns]))
        elif isinstance(value, float) and math.isnan(value):
            out[name] = None
        elif isinstance(value, dict):
            out[name] = {
                k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in value.items()
            }
        else:
            out[name] = value
    return out

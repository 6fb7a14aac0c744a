"""Workflow pages under ``/ui/workflows``: alerts, tasks, interventions, exit interviews and the
closed loop, in the manager UI's look (its ``base.html``, CSS and session sign-in).

Sign-in and CSRF are the UI's (``serving.ui.auth``), as dependencies: a page of a signed-in user
(``WorkflowPageDep``) redirects to ``/ui/signin`` without a session, and every form is read
through ``FormDep``, which refuses one without the session's CSRF token. What a form records is
recorded as the person signed in (never a typed name); a CSM's task and alert lists are their
own, a manager's everyone's. Forms post to these pages and redirect back (post/redirect/get),
to the customer page when they came from it (``next``), so a reload never records twice.
Handlers are plain ``def`` (FastAPI's thread pool): the ledger is SQLite and the closed loop
reads files.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Depends, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from pydantic import ValidationError

from features.errors import ChurnError
from serving.api.deps import ClockDep, CurrentUser, FormDep, WorkflowsDep
from serving.ui.auth import Session
from serving.workflows.api import (
    EXIT_CATEGORIES,
    GOAL_FIRST,
    GOAL_LAST,
    INTERVENTION_TYPES,
    OUTCOMES,
    ExitInterviewIn,
    InterventionIn,
    RowIdPath,
    records,
)
from serving.workflows.loop import quarterly_review
from serving.workflows.review import CORRELATIONAL, cell, review_markdown
from serving.workflows.service import Workflows

PREFIX = "/ui/workflows"
STATIC = {"workflows.css": "text/css", "workflows.js": "application/javascript"}
HERE = Path(__file__).parent
EXIT_QUESTIONS = (
    ("main_reason", "What was the main reason you decided to leave?"),
    ("asked_for_help", "Did you ask us for help before deciding?"),
    ("help_experience", "If you did, how did that go?"),
    ("improve", "What should we improve?"),
    ("replacement", "What are you using instead of us?"),
    ("win_back", "What would bring you back?"),
)


def environment() -> Environment:
    """The UI's environment (filters, globals, base.html) with our templates first."""
    from serving.ui.render import environment as ui_environment

    env = ui_environment()
    env.loader = ChoiceLoader([FileSystemLoader(HERE / "templates"), env.loader])  # type: ignore[list-item]
    env.filters["cell"] = cell
    return env


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


TEMPLATES = environment()


class WorkflowPage:
    """One request's workflow page for the signed-in ``user`` (forms carry its CSRF token)."""

    def __init__(self, request: Request, user: Session) -> None:
        self.request, self.user = request, user

    def __call__(self, template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
        html = TEMPLATES.get_template(template).render(
            request=self.request,
            prefix="/ui",
            wf=PREFIX,
            csrf=self.user.csrf,
            user=self.user,
            **values,
        )
        return HTMLResponse(html, status_code=http_status, headers={"Cache-Control": "no-store"})


def get_workflow_page(request: Request, user: CurrentUser) -> WorkflowPage:
    return WorkflowPage(request, user)


WorkflowPageDep = Annotated[WorkflowPage, Depends(get_workflow_page)]

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def back(path: str, **params: Any) -> RedirectResponse:
    query = f"?{urlencode(params)}" if params else ""
    return RedirectResponse(f"{PREFIX}{path}{query}", status_code=303)


CUSTOMER_PAGES = "/ui/customers/"


def done(form: dict[str, str], path: str, saved: str) -> RedirectResponse:
    """Back to the customer page the form was posted from (its ``next``), else to ``path``."""
    target = form.get("next", "")
    if target.startswith(CUSTOMER_PAGES) and "//" not in target and "\\" not in target:
        return RedirectResponse(f"{target}?{urlencode({'saved': saved})}", status_code=303)
    return back(path, saved=saved)


@router.get("")
def home() -> Response:
    return back("/alerts")


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return PlainTextResponse("Not found", status_code=404)
    return FileResponse(
        HERE / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=3600"},
    )


@router.get("/alerts")
def alerts_page(
    request: Request,
    page: WorkflowPageDep,
    workflows: WorkflowsDep,
    status: str = "open",
    rule_id: str = "",
) -> Response:
    chosen = status if status in ("open", "cleared", "all") else "open"
    mine = None if page.user.sees_everyone else page.user.name  # a CSM: their customers' alerts
    frame = workflows.ledger.alerts(
        None if chosen == "all" else chosen, rule_id or None, None, 500, 0, csm_owner=mine
    )
    return page(
        "wf_alerts.html",
        title="Alerts",
        tab="alerts",
        status=chosen,
        rule_id=rule_id,
        alerts=records(frame),
        rules=[r.id for r in workflows.config.rules],
        flash=request.query_params.get("saved"),
    )


@router.post("/alerts/{alert_id}/verdict")
def post_verdict(
    alert_id: RowIdPath, user: CurrentUser, form: FormDep, workflows: WorkflowsDep, now: ClockDep
) -> Response:
    workflows.ledger.add_verdict(
        alert_id, form.get("useful") == "1", form.get("comment") or None, user.name, now
    )
    return back("/alerts", status=form.get("status", "open"), saved=f"verdict on alert {alert_id}")


TASKS_SHOWN = 200


@router.get("/tasks")
def tasks_page(
    request: Request, page: WorkflowPageDep, workflows: WorkflowsDep, now: ClockDep,
    status: str = "open", owner: str = "", order: str = "revenue",
) -> Response:  # fmt: skip
    """A CSM's own tasks ("My tasks"), highest revenue at risk first; a manager sees every
    owner's, or one owner's with ``owner``."""
    chosen = status if status in ("open", "closed") else "open"
    user = page.user
    shown_owner = owner.strip() or None if user.sees_everyone else user.name
    frame, total = workflows.ledger.tasks(
        now, chosen, shown_owner, limit=TASKS_SHOWN, revenue_first=order != "due"
    )
    owners = workflows.ledger.frame(
        "SELECT owner, COUNT(*) AS open FROM tasks WHERE status = 'open' GROUP BY owner "
        "ORDER BY owner"
    )
    return page(
        "wf_tasks.html",
        title="My tasks" if not user.sees_everyone else "Tasks",
        tab="tasks",
        status=chosen,
        owner=shown_owner or "",
        order="due" if order == "due" else "revenue",
        owners=records(owners) if user.sees_everyone else [],
        tasks=records(frame),
        total=total,
        now=now.isoformat(),
        flash=request.query_params.get("saved"),
    )


@router.post("/tasks/{task_id}/close")
def post_close(
    task_id: RowIdPath, user: CurrentUser, form: FormDep, workflows: WorkflowsDep, now: ClockDep
) -> Response:
    workflows.close_task(task_id, user.name, form.get("outcome") or "done", now)
    return done(form, "/tasks", f"task {task_id} completed")


def interventions_view(
    page: WorkflowPage,
    workflows: Workflows,
    values: dict[str, Any],
    error: str | None,
    status: int = 200,
) -> Response:
    recent = workflows.ledger.table("interventions", order="intervention_id DESC").head(50)
    return page(
        "wf_interventions.html",
        status,
        title="Interventions",
        tab="interventions",
        values=values,
        error=error,
        types=INTERVENTION_TYPES,
        outcomes=OUTCOMES,
        recent=records(recent),
        flash=page.request.query_params.get("saved"),
    )


@router.get("/interventions")
def interventions_page(
    request: Request, page: WorkflowPageDep, workflows: WorkflowsDep, now: ClockDep
) -> Response:
    values = dict(request.query_params) | {"date": now.date().isoformat()}
    return interventions_view(page, workflows, values, None)


@router.post("/interventions")
def post_intervention(
    page: WorkflowPageDep, form: FormDep, workflows: WorkflowsDep, now: ClockDep
) -> Response:
    fields = {k: (v or None) for k, v in form.items() if k in InterventionIn.model_fields}
    fields["owner"] = page.user.name  # who is signed in did it, not a typed name
    try:
        body = InterventionIn.model_validate(fields)
        new_id = workflows.record_intervention(body.model_dump(), now)
    except ValidationError as exc:
        return interventions_view(page, workflows, form, _problems(exc), 400)
    except ChurnError as exc:
        return interventions_view(page, workflows, form, str(exc), 400)
    return done(form, "/interventions", f"intervention {new_id} recorded")


def churned_customers(workflows: Workflows, now: datetime) -> list[dict[str, Any]]:
    """Churned customers for the exit form (from the contract tables, if loaded)."""
    try:
        facts = workflows.facts(now)
    except ChurnError:
        return []
    lost = facts[facts["churned_at"].notna()].sort_values("churned_at", ascending=False)
    return [
        {
            "customer_id": i,
            "name": r["name"],
            "churned_at": pd.Timestamp(r["churned_at"]).date().isoformat(),
        }
        for i, r in lost.head(500).iterrows()
    ]


def exit_view(
    page: WorkflowPage,
    workflows: Workflows,
    now: datetime,
    values: dict[str, Any],
    error: str | None,
    status: int = 200,
) -> Response:
    recent = workflows.ledger.table("exit_interviews", order="interview_id DESC").head(50)
    return page(
        "wf_exit.html",
        status,
        title="Exit interviews",
        tab="exit",
        values=values,
        error=error,
        questions=EXIT_QUESTIONS,
        categories=EXIT_CATEGORIES,
        churned=churned_customers(workflows, now),
        recent=records(recent),
        flash=page.request.query_params.get("saved"),
    )


@router.get("/exit-interviews")
def exit_page(
    request: Request, page: WorkflowPageDep, workflows: WorkflowsDep, now: ClockDep
) -> Response:
    return exit_view(page, workflows, now, dict(request.query_params), None)


@router.post("/exit-interviews")
def post_exit(
    page: WorkflowPageDep, form: FormDep, workflows: WorkflowsDep, now: ClockDep
) -> Response:
    fields: dict[str, Any] = {
        k: (v or None) for k, v in form.items() if k in ExitInterviewIn.model_fields
    }
    fields["avoidable"] = form.get("avoidable") in ("yes", "true", "1", "on")
    fields["recorded_by"] = page.user.name
    try:
        body = ExitInterviewIn.model_validate(fields)
        new_id = workflows.record_exit_interview(body.model_dump(), now)
    except ValidationError as exc:
        return exit_view(page, workflows, now, form, _problems(exc), 400)
    except ChurnError as exc:
        return exit_view(page, workflows, now, form, str(exc), 422)
    return done(form, "/exit-interviews", f"exit interview {new_id} recorded")


@router.get("/closed-loop")
def closed_loop_page(request: Request, page: WorkflowPageDep, workflows: WorkflowsDep) -> Response:
    loop, _ = workflows.closed_loop()
    return page(
        "wf_loop.html",
        title="Closed loop",
        tab="loop",
        cl=loop,
        work=records(workflows.ledger.work_by_person()),
        recent_work=records(workflows.ledger.recent_work()),
        correlational=CORRELATIONAL,
        flash=request.query_params.get("saved"),
        quarter=str(pd.Timestamp(loop.now).tz_localize(None).to_period("Q")),
    )


@router.get("/contact")
def contact_page(
    page: WorkflowPageDep, workflows: WorkflowsDep, owner: str = "", limit: int = 200
) -> Response:
    """Who to contact this week: the plan of the closed loop (``serving.workflows.effects``);
    a CSM sees their own book, a manager everyone or one CSM's with ``owner``."""
    loop, _ = workflows.closed_loop()
    rows = loop.contact
    owner = owner.strip() if page.user.sees_everyone else page.user.name
    if owner and not rows.empty:
        rows = rows[rows["csm_owner"].astype("string").str.casefold() == owner.casefold()]
    return page("wf_contact.html", title="Who to contact", tab="contact", cl=loop,
                rows=rows.head(max(1, min(limit, 5000))), owner=owner)  # fmt: skip


@router.post("/goal")
def post_goal(user: CurrentUser, form: FormDep, workflows: WorkflowsDep, now: ClockDep) -> Response:
    if not user.sees_everyone:
        return PlainTextResponse("Only a manager sets the retention goal.", status_code=403)
    try:
        baseline = float(form["baseline"]) / 100
        target = float(form["target"]) / 100
        start = date.fromisoformat(form["start"])
        months = int(form["months"])
        if not (0 < target < baseline < 1 and 1 <= months <= 60):
            raise ValueError
        if not GOAL_FIRST <= start <= GOAL_LAST:
            raise ValueError
    except (KeyError, ValueError):
        return PlainTextResponse(
            "Goal: give baseline > target (percent), a start date from "
            f"{GOAL_FIRST} to {GOAL_LAST} and 1-60 months.",
            status_code=400,
        )
    workflows.ledger.set_goal(baseline, target, start, months, user.name, now)
    return back("/closed-loop", saved="goal updated")


@router.get("/review")
def review_page(
    page: WorkflowPageDep, workflows: WorkflowsDep, quarter: str = "", format: str = "html"
) -> Response:
    loop, inputs = workflows.closed_loop()
    chosen = quarter or str(pd.Timestamp(loop.now).tz_localize(None).to_period("Q"))
    try:
        review = quarterly_review(loop, inputs, chosen)
    except ValueError:
        return PlainTextResponse(
            f"Unknown quarter {chosen!r}; write it like 2025Q1.", status_code=400
        )
    if format == "md":
        return PlainTextResponse(
            review_markdown(review),
            media_type="text/markdown; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="review-{chosen}.md"'},
        )
    return page("wf_review.html", title=f"Review {chosen}", tab="loop", review=review)

"""Workflow pages under ``/ui/workflows``: alerts, tasks, interventions, exit interviews and the
closed loop, in the manager UI's look (its ``base.html``, CSS and session sign-in).

Sign-in and CSRF are the UI's (``serving.ui.auth``): a page without a valid session redirects to
``/ui/signin``; every form posts the session's CSRF token. Forms post to these pages and
redirect back (post/redirect/get), so a reload never records twice. Handlers are plain ``def``
(FastAPI's thread pool): the ledger is SQLite and the closed loop reads files.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from jinja2 import ChoiceLoader, Environment, FileSystemLoader
from pydantic import ValidationError

from churn.settings import Settings
from features.errors import ChurnError
from serving.ui.auth import SESSION_COOKIE, Session, SessionSigner, same_token
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
    from serving.ui.routes import environment as ui_environment

    env = ui_environment()
    env.loader = ChoiceLoader([FileSystemLoader(HERE / "templates"), env.loader])  # type: ignore[list-item]
    env.filters["cell"] = cell
    return env


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def workflows_ui(
    workflows: Workflows,
    settings: Settings,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> APIRouter:
    """The router of the workflow pages; include it in the app next to ``mount_ui``."""
    env = environment()
    signer = SessionSigner(settings)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    ledger = workflows.ledger

    def session_or_redirect(request: Request) -> Session | Response:
        session = signer.read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/signin?{urlencode({'next': target})}", status_code=303)
        return session

    def render(
        request: Request, template: str, session: Session, http_status: int = 200, **values: Any
    ) -> HTMLResponse:
        html = env.get_template(template).render(
            request=request, prefix="/ui", wf=PREFIX, csrf=session.csrf, **values
        )
        return HTMLResponse(html, status_code=http_status, headers={"Cache-Control": "no-store"})

    async def form_of(request: Request, session: Session) -> dict[str, str] | None:
        form = await request.form()
        values = {k: str(v) for k, v in form.items()}
        return values if same_token(values.pop("csrf", ""), session.csrf) else None

    def back(path: str, **params: Any) -> RedirectResponse:
        query = f"?{urlencode(params)}" if params else ""
        return RedirectResponse(f"{PREFIX}{path}{query}", status_code=303)

    bad_token = PlainTextResponse(
        "The form expired (invalid CSRF token); reload the page.", status_code=400
    )

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
    def alerts_page(request: Request, status: str = "open", rule_id: str = "") -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        chosen = status if status in ("open", "cleared", "all") else "open"
        frame = ledger.alerts(None if chosen == "all" else chosen, rule_id or None, None, 500, 0)
        return render(
            request,
            "wf_alerts.html",
            session,
            title="Alerts",
            tab="alerts",
            status=chosen,
            rule_id=rule_id,
            alerts=records(frame),
            rules=[r.id for r in workflows.config.rules],
            flash=request.query_params.get("saved"),
        )

    @router.post("/alerts/{alert_id}/verdict")
    async def post_verdict(request: Request, alert_id: RowIdPath) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        form = await form_of(request, session)
        if form is None:
            return bad_token
        ledger.add_verdict(
            alert_id,
            form.get("useful") == "1",
            form.get("comment") or None,
            form.get("by") or "csm",
            clock(),
        )
        return back(
            "/alerts", status=form.get("status", "open"), saved=f"verdict on alert {alert_id}"
        )

    @router.get("/tasks")
    def tasks_page(request: Request, status: str = "open") -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        chosen = status if status in ("open", "closed") else "open"
        frame = ledger.table("tasks", order="due_at, task_id", where="status = ?", params=[chosen])
        return render(
            request,
            "wf_tasks.html",
            session,
            title="Tasks",
            tab="tasks",
            status=chosen,
            tasks=records(frame),
            now=clock().isoformat(),
            flash=request.query_params.get("saved"),
        )

    @router.post("/tasks/{task_id}/close")
    async def post_close(request: Request, task_id: RowIdPath) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        form = await form_of(request, session)
        if form is None:
            return bad_token
        ledger.close_task(task_id, form.get("by") or "csm", form.get("outcome") or "done", clock())
        return back("/tasks", saved=f"task {task_id} closed")

    def interventions_view(
        request: Request,
        session: Session,
        values: dict[str, Any],
        error: str | None,
        status: int = 200,
    ) -> Response:
        recent = ledger.table("interventions", order="intervention_id DESC").head(50)
        return render(
            request,
            "wf_interventions.html",
            session,
            status,
            title="Interventions",
            tab="interventions",
            values=values,
            error=error,
            types=INTERVENTION_TYPES,
            outcomes=OUTCOMES,
            recent=records(recent),
            flash=request.query_params.get("saved"),
        )

    @router.get("/interventions")
    def interventions_page(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        values = dict(request.query_params) | {"date": clock().date().isoformat()}
        return interventions_view(request, session, values, None)

    @router.post("/interventions")
    async def post_intervention(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        form = await form_of(request, session)
        if form is None:
            return bad_token
        fields = {k: (v or None) for k, v in form.items() if k in InterventionIn.model_fields}
        try:
            body = InterventionIn.model_validate(fields)
            new_id = workflows.record_intervention(body.model_dump(), clock())
        except ValidationError as exc:
            return interventions_view(request, session, form, _problems(exc), 400)
        except ChurnError as exc:
            return interventions_view(request, session, form, str(exc), 400)
        return back("/interventions", saved=f"intervention {new_id} recorded")

    def churned_customers() -> list[dict[str, Any]]:
        """Churned customers for the exit form (from the contract tables, if loaded)."""
        try:
            facts = workflows.facts(clock())
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
        request: Request,
        session: Session,
        values: dict[str, Any],
        error: str | None,
        status: int = 200,
    ) -> Response:
        recent = ledger.table("exit_interviews", order="interview_id DESC").head(50)
        return render(
            request,
            "wf_exit.html",
            session,
            status,
            title="Exit interviews",
            tab="exit",
            values=values,
            error=error,
            questions=EXIT_QUESTIONS,
            categories=EXIT_CATEGORIES,
            churned=churned_customers(),
            recent=records(recent),
            flash=request.query_params.get("saved"),
        )

    @router.get("/exit-interviews")
    def exit_page(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        return exit_view(request, session, dict(request.query_params), None)

    @router.post("/exit-interviews")
    async def post_exit(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        form = await form_of(request, session)
        if form is None:
            return bad_token
        fields: dict[str, Any] = {
            k: (v or None) for k, v in form.items() if k in ExitInterviewIn.model_fields
        }
        fields["avoidable"] = form.get("avoidable") in ("yes", "true", "1", "on")
        try:
            body = ExitInterviewIn.model_validate(fields)
            new_id = workflows.record_exit_interview(body.model_dump(), clock())
        except ValidationError as exc:
            return exit_view(request, session, form, _problems(exc), 400)
        except ChurnError as exc:
            return exit_view(request, session, form, str(exc), 422)
        return back("/exit-interviews", saved=f"exit interview {new_id} recorded")

    @router.get("/closed-loop")
    def closed_loop_page(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        loop, _ = workflows.closed_loop()
        return render(
            request,
            "wf_loop.html",
            session,
            title="Closed loop",
            tab="loop",
            cl=loop,
            correlational=CORRELATIONAL,
            flash=request.query_params.get("saved"),
            quarter=str(pd.Timestamp(loop.now).tz_localize(None).to_period("Q")),
        )

    @router.post("/goal")
    async def post_goal(request: Request) -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
        form = await form_of(request, session)
        if form is None:
            return bad_token
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
        ledger.set_goal(baseline, target, start, months, form.get("by") or "csm", clock())
        return back("/closed-loop", saved="goal updated")

    @router.get("/review")
    def review_page(request: Request, quarter: str = "", format: str = "html") -> Response:
        session = session_or_redirect(request)
        if isinstance(session, Response):
            return session
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
        return render(
            request, "wf_review.html", session, title=f"Review {chosen}", tab="loop", review=review
        )

    return router

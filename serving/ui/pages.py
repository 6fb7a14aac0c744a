"""The manager UI's pages under ``/ui``: the at-risk list (and its CSV), a customer's page,
the retention analytics, and the plotly bundle they draw with.

Handlers are plain ``def``: FastAPI runs them in its thread pool, so building the UI data or the
analytics (seconds, once per data change) never blocks the API's event loop.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse

from features.errors import ChurnError
from serving.api.deps import AnalyticsDep, CurrentUser, UiDataDep
from serving.ui.auth import Session
from serving.ui.customer import customer_view
from serving.ui.portfolio import SORTS, ListQuery, iter_csv
from serving.ui.render import PREFIX, PageDep, currency_of, plotly_js_path
from serving.workflows.api import EXIT_CATEGORIES, INTERVENTION_TYPES, OUTCOMES
from serving.workflows.ui import EXIT_QUESTIONS
from serving.workflows.workspace import customer_workspace

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PLOTLY_JS = plotly_js_path()


def book_of(user: Session, query: ListQuery) -> ListQuery:
    """A CSM's list is their book of business (the customers whose ``csm_owner`` they are);
    a manager's is whatever they filter."""
    return query if user.sees_everyone else replace(query, csm_owner=user.name)


@router.get("", include_in_schema=False)
def ui_root() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get("/")
def at_risk_list(request: Request, page: PageDep, data: UiDataDep) -> Response:
    try:
        ctx = data.current()
    except ChurnError as exc:
        return page.unavailable(exc)
    query = book_of(page.user, ListQuery.from_params(request.query_params))
    mine = page.user.name
    listing = ctx.portfolio.page(query)
    tiers = ctx.portfolio.tier_counts

    def link(**changes: Any) -> str:
        return f"{PREFIX}/?{urlencode(query.params(**changes))}"

    def sort_link(column: str) -> str:
        same = query.sort == column
        descending = not query.descending if same else column not in ("name", "csm_owner")
        return link(sort=column, dir="desc" if descending else "asc", page=1)

    return page(
        "list.html",
        title="At-risk customers" if page.user.sees_everyone else f"My customers ({mine})",
        ctx=ctx, query=query, listing=listing, tiers=tiers,
        options=ctx.portfolio.options, link=link, sort_link=sort_link, sorts=SORTS,
        export_url=f"{PREFIX}/export.csv?{urlencode(query.params(page=1))}",
        horizon_days=ctx.horizon_days,
    )  # fmt: skip


@router.get("/export.csv")
def export_csv(request: Request, user: CurrentUser, data: UiDataDep) -> Response:
    ctx = data.current()
    frame = ctx.portfolio.export(book_of(user, ListQuery.from_params(request.query_params)))
    frame = frame.assign(currency=currency_of(request))  # the unit of every amount column
    name = f"at-risk-customers-{ctx.as_of.isoformat()}.csv"
    return StreamingResponse(
        iter_csv(frame),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def churned_fact(workflows: Any, customer_id: str, now: datetime) -> dict[str, Any] | None:
    """A customer who left (in the export's facts, with a churn date), else None."""
    try:
        facts = workflows.facts(now)
    except ChurnError:
        return None
    if customer_id not in facts.index or pd.isna(facts.at[customer_id, "churned_at"]):
        return None
    row = facts.loc[customer_id]
    return {
        "customer_id": customer_id,
        "name": row.get("name"),
        "csm_owner": row.get("csm_owner"),
        "churned_at": pd.Timestamp(row["churned_at"]).date().isoformat(),
    }


@router.get("/customers/{customer_id:path}")
def customer_page(request: Request, customer_id: str, page: PageDep, data: UiDataDep) -> Response:
    """The CSM's workspace for one customer: scores and drivers, open tasks and alerts, the
    timeline, and the forms to log an intervention, complete a task or record an exit interview
    (they post to the workflow pages, which validate once and come back here)."""
    try:
        ctx = data.current()
    except ChurnError as exc:
        return page.unavailable(exc)
    now = datetime.now(UTC)
    workflows = getattr(request.app.state, "workflows", None)  # the UI runs without them too
    space = (
        None if workflows is None
        else customer_workspace(workflows, customer_id)
    )  # fmt: skip
    here = f"{PREFIX}/customers/{quote(customer_id, safe='')}"
    forms: dict[str, Any] = {
        "here": here, "space": space, "types": INTERVENTION_TYPES, "outcomes": OUTCOMES,
        "today": now.date().isoformat(), "flash": request.query_params.get("saved"),
        "questions": EXIT_QUESTIONS, "categories": EXIT_CATEGORIES,
    }  # fmt: skip
    view = customer_view(ctx, customer_id, now, None if space is None else space.open_tasks)
    if view is None:
        gone = None if workflows is None else churned_fact(workflows, customer_id, now)
        if gone is not None:
            return page("customer_churned.html", title=gone["name"] or customer_id,
                        gone=gone, **forms)  # fmt: skip
        return page(
            "error.html", 404, title="Unknown customer",
            message=f"No customer '{customer_id}' in the snapshot as of "
            f"{ctx.as_of.isoformat()}. Search the list by name or id.",
        )  # fmt: skip
    back = request.headers.get("referer", "")
    back_url = back if f"{PREFIX}/?" in back or back.endswith(f"{PREFIX}/") else f"{PREFIX}/"
    return page(
        "customer.html", title=view["customer"]["name"] or customer_id, ctx=ctx, view=view,
        back_url=back_url, **forms,
    )  # fmt: skip


@router.get("/analytics")
def analytics_page(page: PageDep, data: UiDataDep, analytics: AnalyticsDep) -> Response:
    try:
        ctx = data.current()
    except ChurnError as exc:
        return page.unavailable(exc)
    result = analytics.get(ctx, lambda: pd.Timestamp.now(tz="UTC"))
    return page("analytics.html", title="Retention analytics", ctx=ctx, analytics=result)


@router.get("/static/plotly.min.js")
def plotly_bundle() -> Response:
    return FileResponse(
        PLOTLY_JS,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )

"""The manager UI's pages under ``/ui``: the at-risk list (and its CSV), a customer's page,
the retention analytics, and the plotly bundle they draw with.

Handlers are plain ``def``: FastAPI runs them in its thread pool, so building the UI data or the
analytics (seconds, once per data change) never blocks the API's event loop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.responses import StreamingResponse

from features.errors import ChurnError
from serving.api.deps import AnalyticsDep, CurrentUser, UiDataDep
from serving.ui.customer import customer_view
from serving.ui.portfolio import SORTS, ListQuery, iter_csv
from serving.ui.render import PREFIX, PageDep, currency_of, plotly_js_path

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PLOTLY_JS = plotly_js_path()


@router.get("", include_in_schema=False)
def ui_root() -> Response:
    return RedirectResponse(f"{PREFIX}/", status_code=307)


@router.get("/")
def at_risk_list(request: Request, page: PageDep, data: UiDataDep) -> Response:
    try:
        ctx = data.current()
    except ChurnError as exc:
        return page.unavailable(exc)
    query = ListQuery.from_params(request.query_params)
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
        title="At-risk customers", ctx=ctx, query=query, listing=listing, tiers=tiers,
        options=ctx.portfolio.options, link=link, sort_link=sort_link, sorts=SORTS,
        export_url=f"{PREFIX}/export.csv?{urlencode(query.params(page=1))}",
        horizon_days=ctx.horizon_days,
    )  # fmt: skip


@router.get("/export.csv")
def export_csv(request: Request, _: CurrentUser, data: UiDataDep) -> Response:
    ctx = data.current()
    frame = ctx.portfolio.export(ListQuery.from_params(request.query_params))
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


@router.get("/customers/{customer_id:path}")
def customer_page(request: Request, customer_id: str, page: PageDep, data: UiDataDep) -> Response:
    try:
        ctx = data.current()
    except ChurnError as exc:
        return page.unavailable(exc)
    now = datetime.now(UTC)
    workflows = getattr(request.app.state, "workflows", None)  # the UI runs without them too
    tasks = None if workflows is None else workflows.ledger.tasks(now, customer_id=customer_id)
    listed = None if tasks is None else tasks[0].to_dict(orient="records")
    view = customer_view(ctx, customer_id, now, listed)
    if view is None:
        return page(
            "error.html", 404, title="Unknown customer",
            message=f"No customer '{customer_id}' in the snapshot as of "
            f"{ctx.as_of.isoformat()}. Search the list by name or id.",
        )  # fmt: skip
    back = request.headers.get("referer", "")
    back_url = back if f"{PREFIX}/?" in back or back.endswith(f"{PREFIX}/") else f"{PREFIX}/"
    return page(
        "customer.html", title=view["customer"]["name"] or customer_id, ctx=ctx, view=view,
        back_url=back_url,
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

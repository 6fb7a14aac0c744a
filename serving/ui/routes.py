"""The manager UI under ``/ui``: at-risk list, customer page, retention analytics, sign-in.

``mount_ui(app, runtime_getter, settings)`` adds it to the API app (one line in
``serving.app.create_app``). Pages are rendered on the server (Jinja2) from the same served state
as ``/score``; charts are plotly figure JSON drawn by plotly.js, which is served from the plotly
package installed with the service: the UI works with no internet access. Handlers are plain
``def``: FastAPI runs them in its thread pool, so building the UI data or the analytics (seconds,
once per data change) never blocks the API's event loop.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pandas as pd
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import StreamingResponse

from churn.settings import Settings
from features.errors import ChurnError
from serving.metrics import ServingMetrics
from serving.monitoring import MonitorCache
from serving.state import Runtime
from serving.throttle import FailureThrottle
from serving.ui import charts
from serving.ui.analytics import AnalyticsCache
from serving.ui.auth import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    Session,
    SessionSigner,
    new_signin_token,
    same_token,
)
from serving.ui.context import UiData
from serving.ui.customer import customer_view
from serving.ui.monitoring import monitoring_charts
from serving.ui.portfolio import SEGMENTS, SORTS, VALUE_SEGMENTS, ListQuery, iter_csv
from training.monitoring.report import MonitorConfig

HERE = Path(__file__).parent
PREFIX = "/ui"


class SignInRequired(Exception):
    """Raised by a page without a valid session; answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def plotly_js_path() -> Path:
    """plotly.min.js as bundled in the plotly package (never a CDN)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def figure_json(figure: dict[str, Any]) -> Markup:
    """Figure JSON safe inside ``<script type="application/json">`` (no ``</script>``)."""
    text = orjson.dumps(figure, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _money(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{float(value):,.0f}"


def _pct(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{float(value) * 100:.{digits}f} %"


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{float(value):,.{digits}f}"


def _when(iso: str) -> str:
    """ISO UTC deadline -> 'Wed 12 Jun, 14:00 UTC'."""
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return moment.strftime("%a %d %b %Y, %H:%M UTC")


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {"money": _money, "pct": _pct, "num": _num, "when": _when,
                    "figure": figure_json}  # fmt: skip
    env.globals |= {
        "tier_colours": charts.TIER_COLOURS,
        "tier_labels": charts.TIER_LABELS,
        "segments": SEGMENTS,
        "value_segments": VALUE_SEGMENTS,
    }
    return env


def _safe_next(target: str | None) -> str:
    """Only paths inside the UI: no open redirect to another site."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


def mount_ui(
    app: FastAPI,
    runtime_getter: Callable[[], Runtime],
    settings: Settings,
    throttle: FailureThrottle | None = None,
    metrics: ServingMetrics | None = None,
) -> None:
    """Add the UI (pages, static files, sign-in) to ``app``; ``throttle`` is shared with the
    API so a client cannot switch surfaces to keep guessing keys."""
    env = environment()
    signer = SessionSigner(settings)
    backoff = throttle or FailureThrottle(free=settings.auth_failures_before_backoff)
    data = UiData(settings, runtime_getter)
    analytics_cache = AnalyticsCache(settings)
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    plotly_js = plotly_js_path()
    warming = threading.Lock()

    def warm_up() -> None:
        """Build the UI data while the manager types the key (first page is then instant)."""
        if not warming.acquire(blocking=False):
            return

        def run() -> None:
            try:
                ctx = data.current()
                analytics_cache.get(ctx, lambda: pd.Timestamp.now(tz="UTC"))
            except Exception:
                pass
            finally:
                warming.release()

        threading.Thread(target=run, name="ui-warm-up", daemon=True).start()

    def session_of(request: Request) -> Session:
        request.state.ui_started = time.perf_counter()  # for the Server-Timing header
        session = signer.read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target)
        return session

    def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = env.get_template(template).render(request=request, prefix=PREFIX, **values)
        headers = {"Cache-Control": "no-store"}
        started = getattr(request.state, "ui_started", None)
        if started is not None:  # server time of the page, read by benchmarks/ui.py
            headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return HTMLResponse(html, status_code=status, headers=headers)

    def page(request: Request, template: str, session: Session, **values: Any) -> HTMLResponse:
        state = runtime_getter().state
        model = state.model_info if state is not None else None
        return render(request, template, csrf=session.csrf, model=model, **values)

    def unavailable(request: Request, session: Session, exc: Exception) -> HTMLResponse:
        response = page(request, "error.html", session, title="Not ready", message=str(exc))
        response.status_code = 503
        return response

    async def _signin_needed(request: Request, exc: Exception) -> Response:
        target = exc.next_url if isinstance(exc, SignInRequired) else f"{PREFIX}/"
        return RedirectResponse(f"{PREFIX}/signin?{urlencode({'next': target})}", status_code=303)

    app.add_exception_handler(SignInRequired, _signin_needed)

    def signin_page(request: Request, next_url: str, error: str | None, status: int) -> Response:
        token = new_signin_token()
        response = render(request, "signin.html", status, token=token, next=next_url, error=error)
        response.set_cookie(SIGNIN_COOKIE, token, max_age=900, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=PREFIX)  # fmt: skip
        return response

    @router.get("/signin")
    def signin_form(request: Request, next: str = "") -> Response:
        if signer.read(request.cookies.get(SESSION_COOKIE)) is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        warm_up()
        return signin_page(request, _safe_next(next), None, 200)

    @router.post("/signin")
    def signin(
        request: Request,
        api_key: str = Form(""),
        csrf: str = Form(""),
        next: str = Form(""),
    ) -> Response:
        target = _safe_next(next)
        client = request.client.host if request.client is not None else "unknown"
        wait = backoff.retry_after(client)
        if wait > 0:
            if metrics is not None:
                metrics.auth_throttled.labels("ui").inc()
            seconds = max(1, math.ceil(wait))
            response = signin_page(
                request, target,
                f"Too many failed sign-ins from this address; wait {seconds} s and try again.",
                429,
            )  # fmt: skip
            response.headers["Retry-After"] = str(seconds)
            return response
        if not same_token(csrf, request.cookies.get(SIGNIN_COOKIE)):
            return signin_page(request, target, "The form expired; please sign in again.", 400)
        key = signer.check_key(api_key)
        if key is None:
            backoff.failed(client)
            if metrics is not None:
                metrics.auth_failures.labels("ui").inc()
            return signin_page(request, target, "That key is not one of this service's keys.", 401)
        backoff.succeeded(client)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, signer.issue(key), max_age=signer.max_age,
                            httponly=True, samesite="lax", secure=request.url.scheme == "https",
                            path=PREFIX)  # fmt: skip
        response.delete_cookie(SIGNIN_COOKIE, path=PREFIX)
        return response

    @router.post("/signout")
    def signout(request: Request, csrf: str = Form("")) -> Response:
        session = session_of(request)
        if not same_token(csrf, session.csrf):
            return Response("Invalid form token; reload the page and try again.", status_code=400)
        signer.revoke(session)
        response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @router.get("", include_in_schema=False)
    def ui_root() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    @router.get("/")
    def at_risk_list(request: Request) -> Response:
        session = session_of(request)
        try:
            ctx = data.current()
        except ChurnError as exc:
            return unavailable(request, session, exc)
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
            request, "list.html", session,
            title="At-risk customers", ctx=ctx, query=query, listing=listing, tiers=tiers,
            options=ctx.portfolio.options, link=link, sort_link=sort_link, sorts=SORTS,
            export_url=f"{PREFIX}/export.csv?{urlencode(query.params(page=1))}",
            horizon_days=ctx.horizon_days,
        )  # fmt: skip

    @router.get("/export.csv")
    def export_csv(request: Request) -> Response:
        session_of(request)
        ctx = data.current()
        frame = ctx.portfolio.export(ListQuery.from_params(request.query_params))
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
    def customer_page(request: Request, customer_id: str) -> Response:
        session = session_of(request)
        try:
            ctx = data.current()
        except ChurnError as exc:
            return unavailable(request, session, exc)
        view = customer_view(ctx, customer_id, datetime.now(UTC))
        if view is None:
            response = page(
                request, "error.html", session, title="Unknown customer",
                message=f"No customer '{customer_id}' in the snapshot as of "
                f"{ctx.as_of.isoformat()}. Search the list by name or id.",
            )  # fmt: skip
            response.status_code = 404
            return response
        back = request.headers.get("referer", "")
        back_url = back if f"{PREFIX}/?" in back or back.endswith(f"{PREFIX}/") else f"{PREFIX}/"
        return page(
            request, "customer.html", session, title=view["customer"]["name"] or customer_id,
            ctx=ctx, view=view, back_url=back_url,
        )  # fmt: skip

    @router.get("/analytics")
    def analytics_page(request: Request) -> Response:
        session = session_of(request)
        try:
            ctx = data.current()
        except ChurnError as exc:
            return unavailable(request, session, exc)
        result = analytics_cache.get(ctx, lambda: pd.Timestamp.now(tz="UTC"))
        return page(
            request, "analytics.html", session, title="Retention analytics", ctx=ctx,
            analytics=result,
        )  # fmt: skip

    monitoring = MonitorCache(settings)

    @router.get("/monitoring")
    def monitoring_page(request: Request) -> Response:
        session = session_of(request)
        config = MonitorConfig(alpha=settings.monitor_alpha, min_share=settings.monitor_min_share)
        try:
            report = monitoring.report(config)
        except ChurnError as exc:
            return unavailable(request, session, exc)
        return page(request, "monitoring.html", session, title="Model monitoring", report=report,
                    figures=monitoring_charts(report))  # fmt: skip

    @router.get("/static/plotly.min.js")
    def plotly_bundle() -> Response:
        return FileResponse(
            plotly_js,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.state.ui_data = data  # closed by whoever stops the server (serving.ui.demo.UiServer)
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")

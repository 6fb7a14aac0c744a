"""How the manager UI renders: the Jinja environment with its filters, and a page of a
signed-in user (:class:`Page`, a dependency of every page route).

Pages are rendered on the server (Jinja2) from the same served state as ``/score``; charts are
plotly figure JSON drawn by plotly.js, served from the plotly package installed with the
service: the UI works with no internet access.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup

from serving.api.deps import CurrentUser, RuntimeDep
from serving.state import Runtime
from serving.ui import charts
from serving.ui.auth import Session
from serving.ui.portfolio import SEGMENTS, VALUE_SEGMENTS

HERE = Path(__file__).parent
PREFIX = "/ui"


def plotly_js_path() -> Path:
    """plotly.min.js as bundled in the plotly package (never a CDN)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def figure_json(figure: dict[str, Any]) -> Markup:
    """Figure JSON safe inside ``<script type="application/json">`` (no ``</script>``)."""
    text = orjson.dumps(figure, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def currency_of(request: Request | None) -> str:
    """The ISO code of the served amounts (``Settings.currency_code``, read at load)."""
    app_state = None if request is None else request.app.state
    runtime = getattr(app_state, "runtime", None)
    if runtime is not None and runtime.state is not None:
        return str(runtime.state.currency)
    settings = getattr(app_state, "settings", None)
    return "USD" if settings is None else str(settings.currency_code())


@pass_context
def _money(context: Any, value: Any) -> str:
    """An amount with its currency: ``5,304 USD`` (CHURN_CURRENCY)."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return f"{float(value):,.0f} {currency_of(context.get('request'))}"


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
        "tier_css": charts.tier_stylesheet(),
        "tiers_riskiest_first": charts.TIERS_RISKIEST_FIRST,
        "segments": SEGMENTS,
        "value_segments": VALUE_SEGMENTS,
    }
    return env


TEMPLATES = environment()


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(request=request, prefix=PREFIX, **values)
    headers = {"Cache-Control": "no-store"}
    started = getattr(request.state, "ui_started", None)
    if started is not None:  # server time of the page, read by benchmarks/ui.py
        headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return HTMLResponse(html, status_code=status, headers=headers)


class Page:
    """One request's page for the signed-in ``user``: its forms carry the session's CSRF token
    and its header names the served model."""

    def __init__(self, request: Request, user: Session, runtime: Runtime) -> None:
        self.request, self.user, self.runtime = request, user, runtime

    def __call__(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        state = self.runtime.state
        model = state.model_info if state is not None else None
        user = self.user
        return render(self.request, template, status, csrf=user.csrf, user=user, model=model,
                      **values)  # fmt: skip

    def unavailable(self, exc: Exception) -> HTMLResponse:
        return self("error.html", 503, title="Not ready", message=str(exc))


def get_page(request: Request, user: CurrentUser, runtime: RuntimeDep) -> Page:
    request.state.ui_started = time.perf_counter()  # for the Server-Timing header
    return Page(request, user, runtime)


PageDep = Annotated[Page, Depends(get_page)]

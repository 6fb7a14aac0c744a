"""``/ui/signin`` and ``/ui/signout``: a person signs in with their name and password (or, as
an admin, with one of the keys in ``CHURN_API_KEYS``).

Failed sign-ins back off with the API's own throttle (one per app, so a client cannot switch
surfaces to keep guessing keys); the session cookie and CSRF tokens are ``serving.ui.auth``'s.
"""

from __future__ import annotations

import math
import threading
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from serving.api.deps import (
    AnalyticsDep,
    CurrentUser,
    MetricsDep,
    SessionDep,
    SignerDep,
    UiDataDep,
    client_of,
)
from serving.throttle import FailureThrottle
from serving.ui.analytics import AnalyticsCache
from serving.ui.auth import SESSION_COOKIE, SIGNIN_COOKIE, new_signin_token, same_token
from serving.ui.context import UiData
from serving.ui.render import PREFIX, render

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only paths inside the UI: no open redirect to another site."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


_warming = threading.Lock()


def warm_up(data: UiData, analytics: AnalyticsCache) -> None:
    """Build the UI data while the manager types the key (the first page is then instant)."""
    if not _warming.acquire(blocking=False):
        return

    def run() -> None:
        try:
            analytics.get(data.current(), lambda: pd.Timestamp.now(tz="UTC"))
        except Exception:
            pass
        finally:
            _warming.release()

    threading.Thread(target=run, name="ui-warm-up", daemon=True).start()


def get_throttle(request: Request) -> FailureThrottle:
    throttle: FailureThrottle = request.app.state.auth_throttle
    return throttle


ThrottleDep = Annotated[FailureThrottle, Depends(get_throttle)]


def signin_page(request: Request, next_url: str, error: str | None, status: int) -> Response:
    token = new_signin_token()
    response = render(request, "signin.html", status, token=token, next=next_url, error=error)
    response.set_cookie(SIGNIN_COOKIE, token, max_age=900, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path=PREFIX)  # fmt: skip
    return response


@router.get("/signin")
def signin_form(
    request: Request, session: SessionDep, data: UiDataDep, analytics: AnalyticsDep, next: str = ""
) -> Response:
    if session is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    warm_up(data, analytics)
    return signin_page(request, _safe_next(next), None, 200)


@router.post("/signin")
def signin(
    request: Request,
    signer: SignerDep,
    backoff: ThrottleDep,
    metrics: MetricsDep,
    name: str = Form("", max_length=200),
    password: str = Form("", max_length=1000),
    api_key: str = Form("", max_length=1000),
    csrf: str = Form(""),
    next: str = Form(""),
) -> Response:
    target = _safe_next(next)
    client = client_of(request)
    wait = backoff.retry_after(client)
    if wait > 0:
        metrics.auth_throttled.labels("ui").inc()
        seconds = max(1, math.ceil(wait))
        response = signin_page(
            request, target,
            f"Too many failed sign-ins from this address; wait {seconds} s and try again.", 429,
        )  # fmt: skip
        response.headers["Retry-After"] = str(seconds)
        return response
    if not same_token(csrf, request.cookies.get(SIGNIN_COOKIE)):
        return signin_page(request, target, "The form expired; please sign in again.", 400)
    if api_key:
        key = signer.check_key(api_key)
        cookie = None if key is None else signer.issue(key)
        problem = "That key is not one of this service's keys."
    else:
        user = signer.directory.authenticate(name, password) if name and password else None
        cookie = None if user is None else signer.issue_user(user)
        problem = "Unknown name or wrong password."
    if cookie is None:
        backoff.failed(client)
        metrics.auth_failures.labels("ui").inc()
        return signin_page(request, target, problem, 401)
    backoff.succeeded(client)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=signer.max_age,
                        httponly=True, samesite="lax", secure=request.url.scheme == "https",
                        path=PREFIX)  # fmt: skip
    response.delete_cookie(SIGNIN_COOKIE, path=PREFIX)
    return response


@router.post("/signout")
def signout(user: CurrentUser, signer: SignerDep, csrf: str = Form("")) -> Response:
    if not same_token(csrf, user.csrf):
        return Response("Invalid form token; reload the page and try again.", status_code=400)
    signer.revoke(user)
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response

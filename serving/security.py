"""Browser-facing protections for every response and every state-changing request.

- Headers: ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (and CSP
  ``frame-ancestors 'none'``), ``Referrer-Policy: same-origin`` (the UI's back link reads the
  referrer of its own pages; nothing leaves the site). A Content-Security-Policy without
  ``'unsafe-inline'`` scripts: the UI's scripts are local files (``/ui/static``) and chart data
  ride in ``<script type="application/json">`` blocks, which are data, not code. Styles may be
  inline because plotly.js sets them at run time. FastAPI's ``/docs`` page is built from inline
  script and CDN files, so it gets no CSP; it is off by default on a network
  (``CHURN_API_DOCS``).
- Origin check: a POST, PUT, PATCH or DELETE whose ``Origin`` (or, without one, whose
  ``Sec-Fetch-Site``) says it comes from another site is refused with 403 before any handler
  runs, even with a valid session and CSRF token. CRMs and curl send neither header and are
  unaffected; their ``X-API-Key`` is their proof.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
COMMON_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
CSP_HEADER = (b"content-security-policy", CSP.encode())
NO_CSP_PATHS = ("/docs",)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def cross_origin(headers: dict[bytes, bytes]) -> str | None:
    """Why a state-changing request is from another origin, or None when it is not (or the
    client is not a browser)."""
    host = headers.get(b"host", b"").decode("latin-1").lower()
    origin = headers.get(b"origin")
    if origin is not None:
        text = origin.decode("latin-1")
        if text == "null":
            return "Origin: null (a sandboxed or privacy-redirected page)"
        if urlsplit(text).netloc.lower() != host:
            return f"Origin {text} is not this service ({host})"
        return None
    site = headers.get(b"sec-fetch-site", b"").decode("latin-1")
    if site == "cross-site":
        return "Sec-Fetch-Site: cross-site"
    return None


class SecurityMiddleware:
    """Adds the security headers to every HTTP response; refuses cross-origin state changes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(COMMON_HEADERS)
        if not scope["path"].startswith(NO_CSP_PATHS):
            extra.append(CSP_HEADER)
        if scope["method"] in STATE_CHANGING:
            problem = cross_origin(dict(scope["headers"]))
            if problem is not None:
                body = orjson.dumps({
                    "error": "cross_origin",
                    "message": f"Refused a cross-origin {scope['method']}: {problem}. Submit "
                    "the form from the service's own pages.",
                    "fields": [],
                })  # fmt: skip
                await send({"type": "http.response.start", "status": 403, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), *extra,
                ]})  # fmt: skip
                await send({"type": "http.response.body", "body": body})
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)

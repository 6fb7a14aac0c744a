"""The one translation of errors to HTTP responses, installed by :func:`add_error_handlers`.

Every error of ours (``ChurnError``) becomes ``{"error", "message", "fields"}`` with the status
from ``serving.errors.HTTP_STATUS``; pydantic's request errors become 422 (400 for a body that
is not JSON) in the same shape, so a client never sees a 500 for bad input. The UI's pages get
a redirect to the sign-in instead (:func:`add_page_handlers`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from features.errors import ChurnError
from serving.api.deps import InvalidFormToken, SignInRequired, signin_url
from serving.errors import FieldProblem, ThrottledError, error_code, http_status

log = logging.getLogger("churn.serving")

JSON = "application/json"


def error_json(status: int, code: str, message: str, fields: list[FieldProblem]) -> Response:
    body = {"error": code, "message": message,
            "fields": [{"field": f.field, "problem": f.problem} for f in fields]}  # fmt: skip
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def churn_error_response(exc: ChurnError) -> Response:
    """The one translation of our errors to HTTP."""
    response = error_json(http_status(exc), error_code(exc), str(exc), getattr(exc, "fields", []))
    if isinstance(exc, ThrottledError):
        response.headers["Retry-After"] = str(int(exc.retry_after))
    return response


def _validation_fields(exc: RequestValidationError) -> list[FieldProblem]:
    fields = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        problem = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        fields.append(FieldProblem(".".join(loc) or "body", problem))
    return fields


def validation_response(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
        return error_json(
            400, "invalid_json",
            f"The body is not valid JSON ({detail}); send a JSON object with "
            "Content-Type: application/json.", [],
        )  # fmt: skip
    fields = _validation_fields(exc)
    not_object = {"model_type", "model_attributes_type", "dict_type", "missing"}
    if any(f.field == "body" for f in fields) and any(
        e.get("type") in not_object and [p for p in e.get("loc", ()) if p != "body"] == []
        for e in errors
    ):
        message = "The body must be a JSON object (Content-Type: application/json); see /docs."
    else:
        message = "Invalid request: " + "; ".join(f"{f.field}: {f.problem}" for f in fields[:5])
    return error_json(422, "invalid_request", message, fields)


async def _churn_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChurnError)
    return churn_error_response(exc)


async def _invalid(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI could not parse the body (e.g. nested too deep)
        return error_json(
            400, "invalid_json",
            f"The body could not be parsed as JSON ({exc.detail}); send a JSON object "
            "(nested at most a few levels) with Content-Type: application/json.", [],
        )  # fmt: skip
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_json(exc.status_code, code, str(exc.detail), [])


async def _bug(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_json(500, "internal_error", "Internal error; it is in the server log.", [])


def add_error_handlers(app: FastAPI) -> None:
    """Our errors, request validation, routing errors and bugs, each as one JSON shape."""
    handlers: dict[Any, Any] = {
        ChurnError: _churn_error,
        RequestValidationError: _invalid,
        StarletteHTTPException: _http,
        Exception: _bug,
    }
    for exc_class, handler in handlers.items():
        app.add_exception_handler(exc_class, handler)


async def _signin_needed(_: Request, exc: Exception) -> Response:
    target = exc.next_url if isinstance(exc, SignInRequired) else "/ui/"
    return RedirectResponse(signin_url(target), status_code=303)


async def _bad_form_token(_: Request, __: Exception) -> Response:
    return PlainTextResponse(
        "The form expired (invalid CSRF token); reload the page.", status_code=400
    )


def add_page_handlers(app: FastAPI) -> None:
    """Pages without a session redirect to the sign-in; a form without its token gets 400."""
    app.add_exception_handler(SignInRequired, _signin_needed)
    app.add_exception_handler(InvalidFormToken, _bad_form_token)

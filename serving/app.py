"""The HTTP API: a thin shell over :class:`serving.state.Runtime` (see ``docs/crm-integration.md``).

``create_app(settings)`` builds the app; at start it loads ``<model_name>@<model_alias>`` and the
latest snapshot, then polls for a new champion or snapshot every ``reload_poll_seconds``. Every
error of ours (``ChurnError``) becomes ``{"error", "message", "fields"}`` with the status from
``serving.errors.HTTP_STATUS``; pydantic's request errors become 422 (400 for a body that is not
JSON) in the same shape, so a client never sees a 500 for bad input.

Fast paths: handlers are ``async`` (no thread hop), auth is a constant-time compare, metrics and
the body limit are plain ASGI middleware, and responses are pre-rendered or orjson bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churn.settings import Settings
from features.errors import ChurnError
from serving.errors import (
    AuthError,
    BodyTooLargeError,
    FeatureValidationError,
    FieldProblem,
    ReloadError,
    ThrottledError,
    UnknownCustomerError,
    error_code,
    http_status,
)
from serving.history import recover_history
from serving.live import feature_problems, invalid_message
from serving.metrics import MetricsMiddleware, ServingMetrics
from serving.monitoring import MonitorCache
from serving.schemas import (
    BatchRequest,
    BatchResponse,
    CustomerPage,
    ErrorBody,
    Explanation,
    Health,
    Readiness,
    ReloadResult,
    ScoreRequest,
    ScoreResult,
    TierName,
    limited_batch,
)
from serving.security import SecurityMiddleware
from serving.state import ReloadOutcome, Runtime, ServingState, iso_utc
from serving.store import clean_stale_temporaries
from serving.throttle import FailureThrottle
from serving.ui import mount_ui
from serving.workflows.routes import mount_workflows
from serving.workflows.service import recover_rules_run
from training.monitoring.report import MonitorConfig

log = logging.getLogger("churn.serving")

JSON = "application/json"
LIVE_THREADPOOL_ROWS = 256  # live batches this large leave the event loop while LightGBM runs
MAX_K = 100
UNKNOWN_IDS_SHOWN = 20


def error_json(status: int, code: str, message: str, fields: list[FieldProblem]) -> Response:
    body = {"error": code, "message": message,
            "fields": [{"field": f.field, "problem": f.problem} for f in fields]}  # fmt: skip
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:;,'\"()]+/)+([^\s/:;,'\"()]+)")


def public_paths(value: Any) -> Any:
    """``value`` with every absolute path cut to its file name: open endpoints (``/readyz``)
    say which file is wrong without telling the network how the host is laid out."""
    if isinstance(value, str):
        return _ABSOLUTE_PATH.sub(r"\1", value)
    if isinstance(value, dict):
        return {k: public_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [public_paths(v) for v in value]
    return value


def churn_error_response(exc: ChurnError) -> Response:
    """The one translation of our errors to HTTP."""
    response = error_json(http_status(exc), error_code(exc), str(exc), getattr(exc, "fields", []))
    if isinstance(exc, ThrottledError):
        response.headers["Retry-After"] = str(int(exc.retry_after))
    return response


class BodyLimitMiddleware:
    """Reject bodies over ``limit`` bytes with 413 before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = BodyTooLargeError(
            f"The request body is larger than {self.limit:,} bytes; split the batch."
        )
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await churn_error_response(too_large)(scope, receive, send)
                return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await churn_error_response(too_large)(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def client_of(request: Request) -> str:
    """The caller's address as the server sees it (the unit of authentication backoff)."""
    return request.client.host if request.client is not None else "unknown"


def throttled(seconds: float, what: str) -> ThrottledError:
    wait = max(1, math.ceil(seconds))
    return ThrottledError(
        f"Too many failed {what} from this address; wait {wait} s before trying again.", wait
    )


def served_features(state: ServingState, row: int) -> dict[str, Any]:
    """A served customer's features as a live request sends them (categories as their names,
    missing values as null)."""
    model, x = state.model, state.X[row]
    out: dict[str, Any] = {}
    for j, name in enumerate(model.features):
        value = float(x[j])
        if value != value:
            out[name] = None
        elif name in model.categories:
            out[name] = model.categories[name][int(value)]
        else:
            out[name] = value
    return out


def served_features_schema(state: ServingState) -> dict[str, Any]:
    """The served model's ``features`` object as JSON Schema: every feature required, numbers
    or strings by kind, null for missing, nothing else (what :func:`feature_problems` checks)."""
    model = state.model
    kinds = {name: ["string", "null"] if name in model.categories else ["number", "null"]
             for name in model.features}  # fmt: skip
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in kinds.items()},
        "required": list(model.features),
        "additionalProperties": False,
    }


def api_key_check(
    settings: Settings,
    throttle: FailureThrottle | None = None,
    metrics: ServingMetrics | None = None,
) -> Callable[..., Awaitable[None]]:
    """The ``X-API-Key`` dependency: every configured key is compared in constant time; a
    client that keeps sending wrong keys backs off (:class:`serving.throttle.FailureThrottle`)."""
    keys = [key.encode() for key in settings.api_key_list()]
    header = APIKeyHeader(
        name="X-API-Key", auto_error=False, description="One of the keys in CHURN_API_KEYS."
    )
    backoff = throttle or FailureThrottle(free=settings.auth_failures_before_backoff)

    def failed(client: str, error: AuthError) -> AuthError:
        backoff.failed(client)
        if metrics is not None:
            metrics.auth_failures.labels("api").inc()
        return error

    async def require_api_key(request: Request, key: str | None = Security(header)) -> None:
        client = client_of(request)
        wait = backoff.retry_after(client)
        if wait > 0:
            if metrics is not None:
                metrics.auth_throttled.labels("api").inc()
            raise throttled(wait, "API key checks")
        if not keys:
            raise AuthError("No API keys are configured on the server: set CHURN_API_KEYS.")
        if not key:
            raise failed(
                client, AuthError("Missing X-API-Key header: send one of the service's API keys.")
            )
        given = key.encode("utf-8", "surrogateescape")
        matched = False
        for candidate in keys:  # no early exit: timing does not reveal which key matched
            matched |= hmac.compare_digest(given, candidate)
        if not matched:
            raise failed(client, AuthError("Invalid API key in X-API-Key."))

    return require_api_key


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


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid X-API-Key."},
    429: {
        "model": ErrorBody,
        "description": "Too many failed authentications from this client; see Retry-After.",
    },
    422: {"model": ErrorBody, "description": "Invalid request; `fields` names each bad field."},
    400: {"model": ErrorBody, "description": "Body is not JSON."},
    413: {"model": ErrorBody, "description": "Body or batch too large."},
    503: {"model": ErrorBody, "description": "No model loaded yet."},
}
RELOAD_FAILED = {"model": ErrorBody, "description": "Reload failed; the old model serves."}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown customer id (named in the message)."}
}


KQuery = Annotated[
    int | None,
    Query(ge=0, le=MAX_K, description="Drivers per result (default: CHURN_TOP_K, 5)."),
]


def mount_local_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the ``swagger-ui-bundle`` package, never from a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The API for one deployment; ``runtime`` may be pre-loaded (tests, benchmarks)."""
    runtime = runtime or Runtime(settings)
    metrics = ServingMetrics()
    docs_open = settings.api_docs is not False  # None: `churn serve` decides from the host

    def record(outcome: ReloadOutcome) -> None:
        metrics.reloads.labels(outcome.outcome).inc()
        state = runtime.state
        if state is not None:
            ref = state.ref
            metrics.served(ref.name, ref.version, ref.alias, len(state.customer_ids))

    async def reload(force: bool, allow_shrink: bool = False) -> ReloadOutcome:
        outcome = await asyncio.to_thread(runtime.reload, force, allow_shrink)
        record(outcome)
        return outcome

    async def poll() -> None:
        while True:
            await asyncio.sleep(settings.reload_poll_seconds)
            await reload(False)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for folder in {settings.store_dir, settings.features_path.parent}:
            for left in clean_stale_temporaries(folder):
                log.warning("removed %s, left by an interrupted write", left)
        try:
            recovered = recover_history(settings.store_dir, settings.score_store_path)
        except Exception as exc:  # the history is the workflows' input: serving goes on
            log.error("could not recover the score history: %s", exc)
        else:
            if recovered is not None:
                log.warning("recorded the score store in the history (%s): the scoring that "
                            "wrote it was interrupted before it did", recovered.name)  # fmt: skip
        try:
            owed = await asyncio.to_thread(recover_rules_run, settings)
        except Exception as exc:  # alerts are late, scores are not: serving goes on
            log.error("could not finish the rule run an interrupted score-all owed: %s", exc)
        else:
            if owed is not None:
                log.warning("ran the rules an interrupted score-all owed: %s", owed.line())
        if runtime.state is None:
            await reload(True)
        else:
            record(ReloadOutcome("reloaded", "pre-loaded"))
        poller = asyncio.create_task(poll()) if settings.reload_poll_seconds > 0 else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            workflows = getattr(app.state, "workflows", None)
            if workflows is not None:
                workflows.close()  # the report worker process

    app = FastAPI(
        title="Churn scoring API",
        version="1.0.0",
        summary="Calibrated churn probability, health score, tier, top drivers in plain language "
        "and the playbook's next step, for CRMs.",
        description=(
            "Authenticate with the `X-API-Key` header (all routes but `/healthz` and `/readyz`). "
            "Errors are `{error, message, fields}`. Walk-through with curl and Python: "
            "`docs/crm-integration.md`; how the numbers are made: `docs/scoring.md`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from local files: FastAPI's page loads a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs_open else None,
    )
    if docs_open:
        mount_local_docs(app)
    app.state.runtime = runtime
    app.state.metrics = metrics
    auth_throttle = FailureThrottle(free=settings.auth_failures_before_backoff)
    app.state.auth_throttle = auth_throttle
    require_key = api_key_check(settings, auth_throttle, metrics)
    secured = [Depends(require_key)]
    Batch = limited_batch(settings.batch_limit)
    default_k = settings.top_k

    @app.exception_handler(ChurnError)
    async def _churn_error(_: Request, exc: ChurnError) -> Response:
        return churn_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not parse the body (e.g. nested too deep)
            return error_json(
                400, "invalid_json",
                f"The body could not be parsed as JSON ({exc.detail}); send a JSON object "
                "(nested at most a few levels) with Content-Type: application/json.", [],
            )  # fmt: skip
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_json(exc.status_code, code, str(exc.detail), [])

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_json(500, "internal_error", "Internal error; it is in the server log.", [])

    def observe(source: str, health: Any, tiers: list[str]) -> None:
        metrics.scores(source, health, tiers)

    def as_of_text(request: ScoreRequest) -> str | None:
        return request.as_of.isoformat() if request.as_of is not None else None

    @app.post(
        "/score",
        response_model=ScoreResult,
        responses={**ERRORS, **NOT_FOUND},
        dependencies=secured,
        tags=["scoring"],
        summary="Score one customer, by id (stored) or by features (live)",
    )
    async def score(request: ScoreRequest, k: KQuery = None) -> Response:
        state = runtime.current()
        top = default_k if k is None else k
        deadlines = state.deadlines(datetime.now(UTC))
        if request.features is None:
            row = state.row(request.customer_id or "")
            observe("store", [state.scored.health_score[row]], [state.scored.tier[row]])
            return Response(state.stored_bytes(row, top, deadlines), media_type=JSON)
        problems = feature_problems(state.model, request.features, "features")
        if problems:
            raise FeatureValidationError(invalid_message(problems), problems)
        results, health = state.live_results(
            [request.features], [request.customer_id], [as_of_text(request)], top, deadlines
        )
        observe("live", health, [results[0]["tier"]])
        return Response(orjson.dumps(results[0]), media_type=JSON)

    def score_batch_sync(
        state: ServingState, items: list[ScoreRequest], top: int, deadlines: dict[str, str]
    ) -> bytes:
        live = [i for i, item in enumerate(items) if item.features is not None]
        parts: list[bytes] = [b""] * len(items)
        stored_rows = []
        for i, item in enumerate(items):
            if item.features is None:
                row = state.row_of[item.customer_id or ""]
                stored_rows.append(row)
                parts[i] = state.stored_bytes(row, top, deadlines)
        if stored_rows:
            observe("store", state.scored.health_score[stored_rows].tolist(),
                    state.scored.tier[stored_rows].tolist())  # fmt: skip
        if live:
            results, health = state.live_results(
                [items[i].features or {} for i in live],
                [items[i].customer_id for i in live],
                [as_of_text(items[i]) for i in live],
                top, deadlines, settings.scoring_threads,
            )  # fmt: skip
            observe("live", health.tolist(), [r["tier"] for r in results])
            for i, result in zip(live, results, strict=True):
                parts[i] = orjson.dumps(result)
        return b'{"count":%d,"results":[' % len(items) + b",".join(parts) + b"]}"

    async def score_batch(batch: BatchRequest, k: KQuery = None) -> Response:
        state = runtime.current()
        problems: list[FieldProblem] = []
        unknown: list[str] = []
        for i, item in enumerate(batch.items):
            if item.features is not None:
                problems += feature_problems(state.model, item.features, f"items.{i}.features")
            elif item.customer_id not in state.row_of:
                unknown.append(str(item.customer_id))
        if problems:
            raise FeatureValidationError(invalid_message(problems), problems[:200])
        if unknown:
            shown = ", ".join(f"'{cid}'" for cid in unknown[:UNKNOWN_IDS_SHOWN])
            more = f" and {len(unknown) - UNKNOWN_IDS_SHOWN} more" if len(unknown) > 20 else ""
            raise UnknownCustomerError(
                f"No customer {shown}{more} in the snapshot as of {state.as_of_label()}; "
                "nothing was scored. List known ids with GET /customers."
            )
        top = default_k if k is None else k
        deadlines = state.deadlines(datetime.now(UTC))
        live_rows = sum(item.features is not None for item in batch.items)
        if live_rows >= LIVE_THREADPOOL_ROWS:
            body = await run_in_threadpool(score_batch_sync, state, batch.items, top, deadlines)
        else:
            body = score_batch_sync(state, batch.items, top, deadlines)
        return Response(body, media_type=JSON)

    # the body model carries this deployment's batch limit (checked before items are validated)
    score_batch.__annotations__["batch"] = Batch
    app.post(
        "/score/batch",
        response_model=BatchResponse,
        responses={**ERRORS, **NOT_FOUND},
        dependencies=secured,
        tags=["scoring"],
        summary="Score many customers in one call (results in request order)",
    )(score_batch)

    @app.get(
        "/customers",
        response_model=CustomerPage,
        responses=ERRORS,
        dependencies=secured,
        tags=["customers"],
        summary="Latest scores of all customers, by page, for bulk CRM sync",
    )
    async def customers(
        tier: Annotated[TierName | None, Query(description="Only this tier.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
        k: KQuery = None,
    ) -> Response:
        state = runtime.current()
        top = default_k if k is None else k
        deadlines = state.deadlines(datetime.now(UTC))
        rows = state.listing[tier]
        page = rows[offset : offset + limit]
        items = b",".join(state.stored_bytes(int(row), top, deadlines) for row in page)
        head = orjson.dumps({"total": len(rows), "limit": limit, "offset": offset, "tier": tier})
        return Response(head[:-1] + b',"items":[' + items + b"]}", media_type=JSON)

    @app.get(
        "/customers/{customer_id:path}/explanation",
        response_model=Explanation,
        responses={**ERRORS, **NOT_FOUND},
        dependencies=secured,
        tags=["customers"],
        summary="Every feature's contribution, value and population percentile",
    )
    async def explanation(customer_id: str) -> Response:
        state = runtime.current()
        return Response(orjson.dumps(state.explanation(state.row(customer_id))), media_type=JSON)

    @app.get("/healthz", response_model=Health, tags=["operations"], summary="Process is up")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={
            503: {
                "model": Readiness,
                "description": "No model loaded, no customers served, or the snapshot is older "
                "than CHURN_READY_MAX_AGE_DAYS; `problem` says which.",
            }
        },
        tags=["operations"],
        summary="A model and customers are served (degraded: the last reload failed or was "
        "refused, the old state serves)",
    )
    async def readyz() -> Response:
        state, last = runtime.state, runtime.last
        body: dict[str, Any] = {
            "last_reload": None
            if last is None
            else {"outcome": last.outcome, "detail": last.detail, "at": iso_utc(last.at)},
            "problem": runtime.last_error,
        }
        if state is None:
            body |= {"ready": False, "status": "not ready"}
            return Response(orjson.dumps(public_paths(body)), status_code=503, media_type=JSON)
        body |= state.summary()
        unready = runtime.readiness_problem(datetime.now(UTC).date())
        if unready is not None:
            problem = "; ".join(p for p in (unready, runtime.last_error) if p)
            body |= {"ready": False, "status": "not ready", "problem": problem}
            return Response(orjson.dumps(public_paths(body)), status_code=503, media_type=JSON)
        body |= {"ready": True, "status": "degraded" if runtime.last_error else "ready"}
        return Response(orjson.dumps(public_paths(body)), media_type=JSON)

    @app.get(
        "/metrics",
        responses={200: {"content": {"text/plain": {}}}, 401: ERRORS[401], 429: ERRORS[429]},
        dependencies=secured,
        tags=["operations"],
        summary="Prometheus metrics",
    )
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    monitoring = MonitorCache(settings)

    async def monitoring_report() -> Response:
        config = MonitorConfig(alpha=settings.monitor_alpha, min_share=settings.monitor_min_share)
        report = await run_in_threadpool(monitoring.report, config)
        metrics.monitored(report)
        return Response(orjson.dumps(report.as_dict()), media_type=JSON)

    for path in ("/v1/monitoring", "/monitoring"):
        app.get(
            path,
            responses={**ERRORS, 503: {"description": "No champion, snapshot or score store."}},
            dependencies=secured,
            tags=["operations"],
            summary="Drift, freshness, estimated and realised quality of the champion",
        )(monitoring_report)

    @app.post(
        "/admin/reload",
        response_model=ReloadResult,
        responses={401: ERRORS[401], 429: ERRORS[429], 503: RELOAD_FAILED},
        dependencies=secured,
        tags=["operations"],
        summary="Load the current champion, snapshot, score store and playbook now",
    )
    async def admin_reload(
        allow_shrink: Annotated[
            bool,
            Query(description="Accept a snapshot with far fewer customers (or none) than served."),
        ] = False,
    ) -> Response:
        outcome = await reload(True, allow_shrink)
        if outcome.outcome == "failed":
            raise ReloadError(f"Reload failed: {outcome.detail}")
        state = runtime.current()
        summary = state.summary()
        body = {"outcome": outcome.outcome, "detail": outcome.detail, "model": summary["model"],
                "as_of": summary["as_of"], "customers": summary["customers"]}  # fmt: skip
        return Response(orjson.dumps(body), media_type=JSON)

    generic_openapi = app.openapi
    built_for: list[object] = [None]

    def openapi() -> dict[str, Any]:
        """The schema with examples from the served state (a real id, that customer's
        features), so every example the docs show is one the API accepts."""
        state = runtime.state
        if app.openapi_schema is not None and built_for[0] is state:
            return app.openapi_schema
        app.openapi_schema = None
        schema = generic_openapi()
        if state is not None and len(state.customer_ids):
            schemas = schema.get("components", {}).get("schemas", {})
            ids = [str(c) for c in state.customer_ids[:2]]
            live = {"customer_id": "crm-981", "features": served_features(state, 0)}
            if "ScoreRequest" in schemas:
                schemas["ScoreRequest"]["examples"] = [{"customer_id": ids[0]}, live]
                features = schemas["ScoreRequest"]["properties"]["features"]
                features["anyOf"] = [served_features_schema(state), {"type": "null"}]
            if "BatchRequest" in schemas:
                schemas["BatchRequest"]["examples"] = [
                    {"items": [{"customer_id": cid} for cid in ids] + [live]}
                ]
        app.openapi_schema, built_for[0] = schema, state
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    mount_ui(app, lambda: runtime, settings, auth_throttle, metrics)
    mount_workflows(app, settings, require_key)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(SecurityMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app

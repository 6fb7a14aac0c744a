"""The HTTP API: routers over :class:`serving.state.Runtime` (see ``docs/crm-integration.md``).

``create_app(settings)`` only wires: it puts the deployment's objects on ``app.state`` (what the
dependencies in ``serving.api.deps`` hand to the routes), includes one router per resource
(``serving.api.*``, the UI, the workflows) and adds the middleware. At start it loads
``<model_name>@<model_alias>`` and the latest snapshot, then polls for a new champion or
snapshot every ``reload_poll_seconds``. Errors are answered in one place
(``serving.api.handlers``).

Fast paths: handlers and their dependencies are ``async`` (no thread hop), auth is a
constant-time compare, metrics and the body limit are plain ASGI middleware, and responses are
pre-rendered or orjson bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from churn_settings import Settings
from serving.api import customers, docs, include_versioned, model, monitoring, operations, scoring
from serving.api.deps import ApiKeys, ScoreRead
from serving.api.handlers import add_error_handlers, churn_error_response
from serving.api.middleware import BodyLimitMiddleware
from serving.history import recover_history
from serving.metrics import MetricsMiddleware, ServingMetrics
from serving.monitoring import MonitorCache
from serving.security import SecurityMiddleware
from serving.state import ReloadOutcome, Runtime
from serving.store import clean_stale_temporaries
from serving.throttle import FailureThrottle
from serving.ui.routes import mount_ui
from serving.workflows.routes import mount_workflows
from serving.workflows.service import recover_rules_run

log = logging.getLogger("churn.serving")

__all__ = ["api_key_check", "churn_error_response", "create_app"]


def api_key_check(
    settings: Settings,
    throttle: FailureThrottle | None = None,
    metrics: ServingMetrics | None = None,
) -> ApiKeys:
    """The deployment's ``X-API-Key`` check, as ``app.state.api_keys`` holds it."""
    return ApiKeys(settings, throttle, metrics)


async def _poll(runtime: Runtime, metrics: ServingMetrics, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        await model.reload(runtime, metrics, False)


def freeze_startup_heap() -> None:
    """Move everything alive after start (imported modules, the first state: ~360 000 objects)
    out of the cycle collector's reach. A full collection walked them all with the GIL held,
    about 200 ms in which no ``/score`` was answered (the soak's reload stalls); later states
    are freed by reference counting as before. Only the served process does this (tests build
    many apps in one process)."""
    gc.collect()
    gc.freeze()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start: clean up interrupted writes, recover the history and an owed rule run, load the
    champion (unless pre-loaded), start polling. Stop: the poller and the report worker."""
    settings: Settings = app.state.settings
    runtime: Runtime = app.state.runtime
    metrics: ServingMetrics = app.state.metrics
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
        await model.reload(runtime, metrics, True)
    else:
        model.record(runtime, metrics, ReloadOutcome("reloaded", "pre-loaded"))
    seconds = settings.reload_poll_seconds
    poller = asyncio.create_task(_poll(runtime, metrics, seconds)) if seconds > 0 else None
    if getattr(app.state, "freeze_gc", False):
        freeze_startup_heap()
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


def create_app(settings: Settings, runtime: Runtime | None = None) -> FastAPI:
    """The API for one deployment; ``runtime`` may be pre-loaded (tests, benchmarks)."""
    docs_open = settings.api_docs is not False  # None: `churn serve` decides from the host
    app = FastAPI(
        title="Churn scoring API",
        version="1.0.0",
        summary="Calibrated churn probability, health score, tier, top drivers in plain language "
        "and the playbook's next step, for CRMs.",
        description=(
            "Every operation is under `/v1` (the unversioned paths of before still answer, as "
            "undocumented aliases). "
            "Authenticate with the `X-API-Key` header (all routes but `/healthz` and `/readyz`). "
            "Errors are `{error, message, fields}`. Walk-through with curl and Python: "
            "`docs/crm-integration.md`; how the numbers are made: `docs/scoring.md`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served by serving.api.docs from local files: FastAPI's page loads a CDN
        redoc_url=None,
        openapi_url="/openapi.json" if docs_open else None,
    )
    state = app.state
    state.settings, state.runtime, state.metrics = (
        settings,
        runtime or Runtime(settings),
        ServingMetrics(),
    )
    state.auth_throttle = FailureThrottle(free=settings.auth_failures_before_backoff)
    state.api_keys = api_key_check(settings, state.auth_throttle, state.metrics)
    state.monitoring = MonitorCache(settings)  # one report cache: the API and the UI page
    add_error_handlers(app)

    if docs_open:
        app.include_router(docs.router)
        app.mount(docs.STATIC_PREFIX, docs.static_files(), name="docs-static")
        app.mount(docs.REDOC_PREFIX, docs.redoc_files(), name="redoc-static")
    # scopes of named keys (serving.users): scores and customers need score:read
    for router in (scoring.router, scoring.batch_router(settings.batch_limit), customers.router):
        include_versioned(app, router, dependencies=[ScoreRead])
    include_versioned(app, model.router)  # its admin route needs the admin scope itself
    app.include_router(operations.router)  # /healthz, /readyz, /metrics: for orchestrators
    include_versioned(app, monitoring.router)  # /v1/monitoring, and /monitoring as an alias
    app.openapi = model.ServedOpenApi(app)  # type: ignore[method-assign]
    mount_ui(app)
    mount_workflows(app)

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(SecurityMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app

"""What a route may ask for, as FastAPI dependencies (``Annotated[..., Depends()]``).

A route module declares what it needs in its signature (``state: StateDep``,
``user: CurrentUser``) instead of closing over objects built in ``create_app``; the objects
live on ``app.state`` and are put there once, by the wiring (``serving.app``,
``serving.ui.routes.mount_ui``, ``serving.workflows.routes.mount_workflows``). Tests replace
one with ``app.dependency_overrides`` (e.g. :func:`get_clock`).

The dependencies of the scoring API are ``async``: they run on the event loop, with no hop to
the thread pool on the ``/score`` path.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from starlette.datastructures import State

from churn_settings import Settings
from serving.errors import AuthError, ScopeError, ThrottledError
from serving.metrics import ServingMetrics
from serving.monitoring import MonitorCache
from serving.state import Runtime, ServingState
from serving.throttle import FailureThrottle
from serving.ui.analytics import AnalyticsCache
from serving.ui.auth import SESSION_COOKIE, Session, SessionSigner, same_token
from serving.ui.context import UiData
from serving.users import ApiKey, directory_of, key_digest, settings_keys
from serving.workflows.service import Workflows

SIGNIN_PATH = "/ui/signin"
KEY_RECHECK_SECONDS = 1.0


def app_state(request: Request) -> State:
    return request.app.state


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_metrics(request: Request) -> ServingMetrics:
    metrics: ServingMetrics = request.app.state.metrics
    return metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]


async def get_state(request: Request) -> ServingState:
    """The state being served, for the whole request (503 ``not_ready`` before the first load);
    a reload swapping it meanwhile does not change what this request answers from. Read from
    the runtime directly, not through ``RuntimeDep``: each level costs ``/score`` time."""
    runtime: Runtime = request.app.state.runtime
    return runtime.current()


StateDep = Annotated[ServingState, Depends(get_state)]


@dataclass(frozen=True, slots=True)
class Scoring:
    """What a scoring request needs, as one dependency: each dependency FastAPI solves costs
    about as much as the dict lookup and byte join of a stored ``/score``
    (``docs/architecture.md``), so the hot path asks for one."""

    state: ServingState
    metrics: ServingMetrics
    threads: int


async def get_scoring(request: Request) -> Scoring:
    app_state = request.app.state
    runtime: Runtime = app_state.runtime
    settings: Settings = app_state.settings
    return Scoring(runtime.current(), app_state.metrics, settings.scoring_threads)


ScoringDep = Annotated[Scoring, Depends(get_scoring)]


def get_clock() -> datetime:
    """Now, in UTC: what the workflow ledger stamps records with (override it in tests)."""
    return datetime.now(UTC)


ClockDep = Annotated[datetime, Depends(get_clock)]


def get_workflows(request: Request) -> Workflows:
    workflows: Workflows = request.app.state.workflows
    return workflows


WorkflowsDep = Annotated[Workflows, Depends(get_workflows)]


# ----- the API's caller: X-API-Key -----------------------------------------------------------


def client_of(request: Request) -> str:
    """The caller's address as the server sees it (the unit of authentication backoff)."""
    return request.client.host if request.client is not None else "unknown"


def throttled(seconds: float, what: str) -> ThrottledError:
    wait = max(1, math.ceil(seconds))
    return ThrottledError(
        f"Too many failed {what} from this address; wait {wait} s before trying again.", wait
    )


class ApiKeys:
    """The deployment's API keys: those of ``CHURN_API_KEYS`` (every scope) and the named ones
    of the user directory (``churn keys add``), found by the SHA-256 of the key sent (the
    stored keys are re-read when the file changes; a lookup by digest reveals nothing of a key
    through its timing). A client that keeps sending wrong keys backs
    off (:class:`serving.throttle.FailureThrottle`, shared with the UI's sign-in so a client
    cannot switch surfaces to keep guessing)."""

    def __init__(
        self,
        settings: Settings,
        throttle: FailureThrottle | None = None,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.configured = settings_keys(settings)
        self.directory = directory_of(settings)
        self._stored: tuple[tuple[int, int] | None, dict[str, ApiKey]] = (None, {})
        self._looked = -math.inf
        self.throttle = throttle or FailureThrottle(free=settings.auth_failures_before_backoff)
        self.metrics = metrics

    def _failed(self, client: str, error: AuthError) -> AuthError:
        self.throttle.failed(client)
        if self.metrics is not None:
            self.metrics.auth_failures.labels("api").inc()
        return error

    def stored(self) -> dict[str, ApiKey]:
        """The directory's keys, its file looked at no more than once a second (a key added or
        removed with ``churn keys`` counts within a second; ``/score`` pays no stat call)."""
        now = time.monotonic()
        if now - self._looked < KEY_RECHECK_SECONDS:
            return self._stored[1]
        self._looked = now
        stamp = self.directory.stamp()
        if stamp != self._stored[0]:
            self._stored = (stamp, self.directory.stored_keys() if stamp is not None else {})
        return self._stored[1]

    def check(self, client: str, key: str | None) -> ApiKey:
        wait = self.throttle.retry_after(client)
        if wait > 0:
            if self.metrics is not None:
                self.metrics.auth_throttled.labels("api").inc()
            raise throttled(wait, "API key checks")
        stored = self.stored()
        if not self.configured and not stored:
            raise AuthError(
                "No API keys are configured on the server: set CHURN_API_KEYS or add one "
                "with `churn keys add`."
            )
        if not key:
            raise self._failed(
                client, AuthError("Missing X-API-Key header: send one of the service's API keys.")
            )
        digest = key_digest(key)
        found = self.configured.get(digest) or stored.get(digest)
        if found is None:
            raise self._failed(client, AuthError("Invalid API key in X-API-Key."))
        return found


API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="One of the keys in CHURN_API_KEYS (every scope) or made by `churn keys add`.",
)


async def require_api_key(
    request: Request, key: Annotated[str | None, Security(API_KEY_HEADER)]
) -> ApiKey:
    """The ``X-API-Key`` check every API router declares (``dependencies=[ApiKeyRequired]``)."""
    api_keys: ApiKeys = request.app.state.api_keys
    return api_keys.check(client_of(request), key)


ApiKeyRequired = Depends(require_api_key)


def refuse_without(found: ApiKey, scope: str) -> None:
    if not found.allows(scope):
        raise ScopeError(
            f"The API key {found.name!r} lacks the scope {scope!r} (it has "
            f"{', '.join(sorted(found.scopes))}); create a key with it: "
            f"`churn keys add --name ... --scope {scope}`."
        )


def scope_required(scope: str) -> Any:
    """A dependency refusing (403, naming the scope) a valid key that lacks ``scope``."""

    async def check(found: Annotated[ApiKey, Depends(require_api_key)]) -> None:
        refuse_without(found, scope)

    return Depends(check)


def read_write_scopes(read: str, write: str) -> Any:
    """``read`` for GET and HEAD, ``write`` for every other method (one router, two scopes)."""

    async def check(request: Request, found: Annotated[ApiKey, Depends(require_api_key)]) -> None:
        refuse_without(found, read if request.method in ("GET", "HEAD") else write)

    return Depends(check)


ScoreRead = scope_required("score:read")
WorkflowsRead = scope_required("workflows:read")
WorkflowsWrite = scope_required("workflows:write")
AdminScope = scope_required("admin")
WorkflowsScopes = read_write_scopes("workflows:read", "workflows:write")


# ----- the UI's user: a signed session cookie ------------------------------------------------


class SignInRequired(Exception):
    """A page without a valid session; answered with a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def signin_url(next_url: str) -> str:
    return f"{SIGNIN_PATH}?{urlencode({'next': next_url})}"


def get_signer(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.signer
    return signer


SignerDep = Annotated[SessionSigner, Depends(get_signer)]


def get_session(request: Request, signer: SignerDep) -> Session | None:
    """The session of the request's cookie, if it is valid; ``None`` otherwise."""
    return signer.read(request.cookies.get(SESSION_COOKIE))


SessionDep = Annotated[Session | None, Depends(get_session)]


def get_current_user(request: Request, session: SessionDep) -> Session:
    """The person signed in (name and role; what their actions are recorded as); without a
    session the page redirects to the sign-in, which comes back to the page afterwards."""
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return session


CurrentUser = Annotated[Session, Depends(get_current_user)]


class InvalidFormToken(Exception):
    """A form posted without the session's CSRF token; answered with 400."""


async def get_form(request: Request, user: CurrentUser) -> dict[str, str]:
    """A signed-in user's posted form, without its ``csrf`` field once that matched the
    session's token (every POST form of the UI carries it)."""
    form = await request.form()
    values = {k: str(v) for k, v in form.items()}
    if not same_token(values.pop("csrf", ""), user.csrf):
        raise InvalidFormToken
    return values


FormDep = Annotated[dict[str, str], Depends(get_form)]


# ----- the UI's data ------------------------------------------------------------------------


def get_ui_data(request: Request) -> UiData:
    data: UiData = request.app.state.ui_data
    return data


def get_analytics(request: Request) -> AnalyticsCache:
    analytics: AnalyticsCache = request.app.state.analytics
    return analytics


UiDataDep = Annotated[UiData, Depends(get_ui_data)]
AnalyticsDep = Annotated[AnalyticsCache, Depends(get_analytics)]


def get_monitoring(request: Request) -> MonitorCache:
    monitoring: MonitorCache = request.app.state.monitoring
    return monitoring


MonitoringDep = Annotated[MonitorCache, Depends(get_monitoring)]

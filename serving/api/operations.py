"""``/healthz``, ``/readyz`` and ``/metrics``: what an orchestrator and Prometheus read."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from serving.api.deps import ApiKeyRequired, MetricsDep, RuntimeDep
from serving.api.responses import ERRORS, JSON
from serving.schemas import Health, Readiness
from serving.state import iso_utc

router = APIRouter(tags=["operations"])

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


@router.get("/healthz", response_model=Health, summary="Process is up")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type=JSON)


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "No model loaded, no customers served, or the snapshot is older "
            "than CHURN_READY_MAX_AGE_DAYS; `problem` says which.",
        }
    },
    summary="A model and customers are served (degraded: the last reload failed or was "
    "refused, the old state serves)",
)
async def readyz(runtime: RuntimeDep) -> Response:
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


@router.get(
    "/metrics",
    responses={200: {"content": {"text/plain": {}}}, 401: ERRORS[401], 429: ERRORS[429]},
    dependencies=[ApiKeyRequired],
    summary="Prometheus metrics",
)
async def prometheus(metrics: MetricsDep) -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)

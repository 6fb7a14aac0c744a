"""``POST /score`` and ``POST /score/batch``: a customer by id (stored) or by features (live).

A stored score is a dict lookup and a byte concatenation around the deadline
(:class:`serving.state.ServingState`); live features are checked against the served model
(:func:`serving.live.feature_problems`) before LightGBM sees them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from serving.api.deps import ApiKeyRequired, Scoring, ScoringDep
from serving.api.responses import ERRORS, JSON, NOT_FOUND, KQuery
from serving.errors import FeatureValidationError, FieldProblem, UnknownCustomerError
from serving.live import feature_problems, invalid_message
from serving.metrics import ServingMetrics
from serving.schemas import BatchRequest, BatchResponse, ScoreRequest, ScoreResult, limited_batch
from serving.state import ServingState

LIVE_THREADPOOL_ROWS = 256  # live batches this large leave the event loop while LightGBM runs
UNKNOWN_IDS_SHOWN = 20

router = APIRouter(tags=["scoring"], dependencies=[ApiKeyRequired])


def as_of_text(request: ScoreRequest) -> str | None:
    return request.as_of.isoformat() if request.as_of is not None else None


@router.post(
    "/score",
    response_model=ScoreResult,
    responses={**ERRORS, **NOT_FOUND},
    summary="Score one customer, by id (stored) or by features (live)",
)
async def score(request: ScoreRequest, scoring: ScoringDep, k: KQuery = None) -> Response:
    state, metrics = scoring.state, scoring.metrics
    top = state.k if k is None else k
    deadlines = state.deadlines(datetime.now(UTC))
    if request.features is None:
        row = state.row(request.customer_id or "")
        metrics.scores("store", [state.scored.health_score[row]], [state.scored.tier[row]])
        return Response(state.stored_bytes(row, top, deadlines), media_type=JSON)
    problems = feature_problems(state.model, request.features, "features")
    if problems:
        raise FeatureValidationError(invalid_message(problems), problems)
    results, health = state.live_results(
        [request.features], [request.customer_id], [as_of_text(request)], top, deadlines
    )
    metrics.scores("live", health, [results[0]["tier"]])
    return Response(orjson.dumps(results[0]), media_type=JSON)


def score_batch_sync(
    state: ServingState,
    items: list[ScoreRequest],
    top: int,
    deadlines: dict[str, str],
    metrics: ServingMetrics,
    threads: int,
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
        metrics.scores("store", state.scored.health_score[stored_rows].tolist(),
                       state.scored.tier[stored_rows].tolist())  # fmt: skip
    if live:
        results, health = state.live_results(
            [items[i].features or {} for i in live],
            [items[i].customer_id for i in live],
            [as_of_text(items[i]) for i in live],
            top, deadlines, threads,
        )  # fmt: skip
        metrics.scores("live", health.tolist(), [r["tier"] for r in results])
        for i, result in zip(live, results, strict=True):
            parts[i] = orjson.dumps(result)
    return b'{"count":%d,"results":[' % len(items) + b",".join(parts) + b"]}"


async def batch_response(batch: BatchRequest, scoring: Scoring, k: int | None) -> Response:
    """Every item checked first (nothing is scored if one is wrong), then scored in order."""
    state = scoring.state
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
    top = state.k if k is None else k
    deadlines = state.deadlines(datetime.now(UTC))
    args: tuple[Any, ...] = (state, batch.items, top, deadlines, scoring.metrics, scoring.threads)
    if sum(item.features is not None for item in batch.items) >= LIVE_THREADPOOL_ROWS:
        body = await run_in_threadpool(score_batch_sync, *args)
    else:
        body = score_batch_sync(*args)
    return Response(body, media_type=JSON)


def batch_router(batch_limit: int) -> APIRouter:
    """``POST /score/batch`` for one deployment: its body model carries the deployment's
    ``batch_limit`` (counted on the raw list before any item is validated, and declared as
    ``maxItems`` in the schema), so this one route is built per app, from the settings."""
    limited = APIRouter(tags=["scoring"], dependencies=[ApiKeyRequired])

    async def score_batch(batch: BatchRequest, scoring: ScoringDep, k: KQuery = None) -> Response:
        return await batch_response(batch, scoring, k)

    score_batch.__annotations__["batch"] = limited_batch(batch_limit)
    limited.post(
        "/score/batch",
        response_model=BatchResponse,
        responses={**ERRORS, **NOT_FOUND},
        summary="Score many customers in one call (results in request order)",
    )(score_batch)
    return limited

"""``POST /v1/score`` and ``POST /v1/score/batch``: a customer by id (stored) or by features
(live); in a batch, an item that cannot be scored gets an error object and the rest are scored.

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
from serving.live import MAX_PROBLEMS, feature_problems, invalid_message
from serving.metrics import ServingMetrics
from serving.schemas import BatchRequest, BatchResponse, ScoreRequest, ScoreResult, limited_batch
from serving.state import ServingState

LIVE_THREADPOOL_ROWS = 256  # live batches this large leave the event loop while LightGBM runs

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


def item_error(index: int, customer_id: str | None, code: str, message: str,
               problems: list[FieldProblem]) -> bytes:  # fmt: skip
    error = {"code": code, "message": message,
             "fields": [{"field": p.field, "problem": p.problem} for p in problems]}  # fmt: skip
    return orjson.dumps({"index": index, "customer_id": customer_id, "error": error})


def item_errors(state: ServingState, items: list[ScoreRequest]) -> dict[int, bytes]:
    """The error object of each item that cannot be scored (bad features, unknown id), by
    position: those items fail alone, the others are scored."""
    errors: dict[int, bytes] = {}
    as_of: str | None = None  # the snapshot's dates, read once (a scan of every customer)
    for i, item in enumerate(items):
        if item.features is not None:
            problems = feature_problems(state.model, item.features, f"items.{i}.features")
            if problems:
                message = invalid_message(problems)
                errors[i] = item_error(i, item.customer_id, FeatureValidationError.code,
                                       message, problems[:MAX_PROBLEMS])  # fmt: skip
        elif item.customer_id not in state.row_of:
            field = f"items.{i}.customer_id"
            as_of = state.as_of_label() if as_of is None else as_of
            message = (f"{field}: no customer {item.customer_id!r} in the snapshot as of "
                       f"{as_of}; list known ids with GET /v1/customers")  # fmt: skip
            problem = FieldProblem(field, "unknown customer id")
            errors[i] = item_error(i, item.customer_id, UnknownCustomerError.code, message,
                                   [problem])  # fmt: skip
    return errors


def score_batch_sync(
    state: ServingState,
    items: list[ScoreRequest],
    top: int,
    deadlines: dict[str, str],
    metrics: ServingMetrics,
    threads: int,
) -> bytes:
    errors = item_errors(state, items)
    parts: list[bytes] = [errors.get(i, b"") for i in range(len(items))]
    live = [i for i, item in enumerate(items) if item.features is not None and i not in errors]
    stored_rows = []
    for i, item in enumerate(items):
        if item.features is None and i not in errors:
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
    head = b'{"count":%d,"scored":%d,"failed":%d,"results":[' % (
        len(items),
        len(items) - len(errors),
        len(errors),
    )
    return head + b",".join(parts) + b"]}"


async def batch_response(batch: BatchRequest, scoring: Scoring, k: int | None) -> Response:
    """Every item scored in order; an item with an unknown id or bad features gets an error
    object in its place and the rest are scored (200 either way)."""
    state = scoring.state
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
        responses=ERRORS,
        summary="Score many customers in one call (results in request order; an item that "
        "fails gets an error object, the others are scored)",
    )(score_batch)
    return limited

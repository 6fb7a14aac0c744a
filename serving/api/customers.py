"""``GET /v1/customers`` (latest scores by page, for bulk and incremental CRM sync) and a
customer's explanation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response

from serving.api.deps import ApiKeyRequired, StateDep
from serving.api.responses import ERRORS, JSON, NOT_FOUND, KQuery
from serving.schemas import CustomerPage, Explanation, TierName

router = APIRouter(prefix="/customers", tags=["customers"], dependencies=[ApiKeyRequired])


@router.get(
    "",
    response_model=CustomerPage,
    responses=ERRORS,
    summary="Latest scores of all customers, by page, for bulk CRM sync",
)
async def customers(
    state: StateDep,
    tier: Annotated[TierName | None, Query(description="Only this tier.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    updated_since: Annotated[
        date | None,
        Query(
            description="Only customers scored as of a later date than this one: pass the "
            "`as_of` of your last sync to fetch what changed since (incremental sync)."
        ),
    ] = None,
    k: KQuery = None,
) -> Response:
    top = state.k if k is None else k
    deadlines = state.deadlines(datetime.now(UTC))
    rows = state.listing[tier]
    if updated_since is not None:
        rows = rows[state.as_of[rows] > updated_since.isoformat()]  # ISO dates sort as text
    page = rows[offset : offset + limit]
    items = b",".join(state.stored_bytes(int(row), top, deadlines) for row in page)
    since = None if updated_since is None else updated_since.isoformat()
    head = orjson.dumps({"total": len(rows), "limit": limit, "offset": offset, "tier": tier,
                         "updated_since": since})  # fmt: skip
    return Response(head[:-1] + b',"items":[' + items + b"]}", media_type=JSON)


@router.get(
    "/{customer_id:path}/explanation",
    response_model=Explanation,
    responses={**ERRORS, **NOT_FOUND},
    summary="Every feature's contribution, value and population percentile",
)
async def explanation(customer_id: str, state: StateDep) -> Response:
    return Response(orjson.dumps(state.explanation(state.row(customer_id))), media_type=JSON)

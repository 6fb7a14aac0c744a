"""The served model: ``GET /v1/model`` (its inputs, horizon and training window, all a client
needs to score live), ``POST /admin/reload``, the reload every path shares (start, poll, admin),
and the OpenAPI schema's examples taken from the served state."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import Response

from serving.api.deps import AdminScope, ApiKeyRequired, MetricsDep, RuntimeDep, StateDep
from serving.api.responses import ERRORS, JSON, RELOAD_FAILED
from serving.errors import ReloadError
from serving.metrics import ServingMetrics
from serving.schemas import ModelDescription, ReloadResult
from serving.state import ReloadOutcome, Runtime, ServingState

router = APIRouter(tags=["operations"], dependencies=[ApiKeyRequired])


def record(runtime: Runtime, metrics: ServingMetrics, outcome: ReloadOutcome) -> None:
    """Count the reload and publish what is served now."""
    metrics.reloads.labels(outcome.outcome).inc()
    state = runtime.state
    if state is not None:
        ref = state.ref
        metrics.served(ref.name, ref.version, ref.alias, len(state.customer_ids))


async def reload(
    runtime: Runtime, metrics: ServingMetrics, force: bool, allow_shrink: bool = False
) -> ReloadOutcome:
    """A reload off the event loop (it reads the registry and files for seconds)."""
    outcome = await asyncio.to_thread(runtime.reload, force, allow_shrink)
    record(runtime, metrics, outcome)
    return outcome


@router.post(
    "/admin/reload",
    dependencies=[AdminScope],
    response_model=ReloadResult,
    responses={401: ERRORS[401], 429: ERRORS[429], 503: RELOAD_FAILED},
    summary="Load the current champion, snapshot, score store and playbook now",
)
async def admin_reload(
    runtime: RuntimeDep,
    metrics: MetricsDep,
    allow_shrink: Annotated[
        bool,
        Query(description="Accept a snapshot with far fewer customers (or none) than served."),
    ] = False,
) -> Response:
    outcome = await reload(runtime, metrics, True, allow_shrink)
    if outcome.outcome == "failed":
        raise ReloadError(f"Reload failed: {outcome.detail}")
    state = runtime.current()
    summary = state.summary()
    body = {"outcome": outcome.outcome, "detail": outcome.detail, "model": summary["model"],
            "as_of": summary["as_of"], "customers": summary["customers"]}  # fmt: skip
    return Response(orjson.dumps(body), media_type=JSON)


def describe_model(state: ServingState) -> dict[str, Any]:
    """The served model's contract: each input's type, unit and levels from the catalog and the
    champion's own encoding (so it lists exactly what ``feature_problems`` checks)."""
    model, meta = state.model, state.model.meta
    features = []
    for name in model.features:
        info, levels = model.info(name), model.categories.get(name)
        features.append({
            "name": name, "type": "number" if levels is None else "category",
            "unit": info.unit.replace("currency", state.currency) or None,
            "group": info.group, "description": info.description,
            "levels": None if levels is None else [str(level) for level in levels],
            "nullable": True,
        })  # fmt: skip
    until = meta.get("fitted_until")
    return {
        "model": state.model_info,
        "horizon_days": model.horizon_days,
        "label": model.label,
        "trained_on": {
            "until": until,
            "description": meta.get("fitted_on"),
            "split": meta.get("split"),
        },
        "currency": state.currency,
        "features": features,
        "top_k": state.k,
    }


@router.get(
    "/model",
    response_model=ModelDescription,
    responses=ERRORS,
    summary="The served model: every input with its type, unit and levels; horizon, version "
    "and training window",
)
async def model_description(state: StateDep) -> Response:
    return Response(orjson.dumps(describe_model(state)), media_type=JSON)


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
    or strings by kind, null for missing, nothing else (what ``feature_problems`` checks)."""
    model = state.model
    kinds = {name: ["string", "null"] if name in model.categories else ["number", "null"]
             for name in model.features}  # fmt: skip
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in kinds.items()},
        "required": list(model.features),
        "additionalProperties": False,
    }


class ServedOpenApi:
    """``app.openapi``: the schema with examples from the served state (a real id, that
    customer's features), so every example the docs show is one the API accepts; rebuilt
    when a reload swaps the state."""

    def __init__(self, app: FastAPI) -> None:
        self.app, self.generic = app, app.openapi
        self.built_for: ServingState | None = None

    def __call__(self) -> dict[str, Any]:
        app = self.app
        state = app.state.runtime.state
        if app.openapi_schema is not None and self.built_for is state:
            return app.openapi_schema
        app.openapi_schema = None
        schema = self.generic()
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
        app.openapi_schema, self.built_for = schema, state
        return schema

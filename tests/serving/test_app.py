"""``create_app`` only wires: a route is a module with a router plus one ``include_router`` line,
and what a route needs comes from dependencies, never from a closure in the wiring."""

from __future__ import annotations

import ast
import gc
import inspect
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from serving.api.deps import ApiKeyRequired, StateDep
from serving.app import create_app
from serving.server import app_from_env
from serving.ui.routes import mount_ui
from serving.workflows.routes import mount_workflows
from tests.serving.conftest import HEADERS, Deployment

# the module a new route is (docs/architecture.md shows the same one)
tiers = APIRouter(prefix="/tiers", tags=["customers"], dependencies=[ApiKeyRequired])


@tiers.get("/{customer_id}", summary="A customer's tier")
async def tier(customer_id: str, state: StateDep) -> dict[str, str]:
    return {"customer_id": customer_id, "tier": str(state.scored.tier[state.row(customer_id)])}


def test_a_new_route_is_one_router_and_one_include_line(deployment: Deployment) -> None:
    app = create_app(deployment.settings)
    app.include_router(tiers)
    cid = str(deployment.snapshot["customer_id"].iloc[0])
    with TestClient(app) as client:
        served = client.post("/score", json={"customer_id": cid}, headers=HEADERS).json()
        answer = client.get(f"/tiers/{cid}", headers=HEADERS)
        assert answer.status_code == 200
        assert answer.json() == {"customer_id": cid, "tier": served["tier"]}
        assert client.get(f"/tiers/{cid}").status_code == 401
        assert client.get("/tiers/nobody", headers=HEADERS).json()["error"] == "unknown_customer"
        assert "/tiers/{customer_id}" in client.get("/openapi.json").json()["paths"]


WIRING = [create_app, mount_ui, mount_workflows]


@pytest.mark.parametrize("wiring", WIRING, ids=lambda f: f.__name__)
def test_the_wiring_defines_no_route_or_function_of_its_own(wiring: Callable[..., Any]) -> None:
    tree = ast.parse(inspect.getsource(wiring).lstrip())
    inner = [
        node
        for node in ast.walk(tree.body[0])
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node is not tree.body[0]
    ]
    assert not [node.name for node in inner]


def test_the_served_process_freezes_its_startup_heap(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full cycle collection over the startup heap stalled /score ~200 ms (soak reloads)."""
    for key, value in deployment.settings.model_dump(mode="json").items():
        if value is not None:
            monkeypatch.setenv(
                f"CHURN_{key.upper()}", json.dumps(value) if isinstance(value, dict) else str(value)
            )
    served = app_from_env()
    assert served.state.freeze_gc is True
    gc.unfreeze()
    try:
        with TestClient(served):
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    with TestClient(create_app(deployment.settings)):
        assert gc.get_freeze_count() == 0, "apps built in tests leave the collector alone"

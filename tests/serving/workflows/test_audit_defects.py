"""The security and reliability audit's workflow defects (issue 16), one test each."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.serving.workflows.world import KEY, NOW, World, build_world

HEADERS = {"X-API-Key": KEY}
GOAL = {"baseline": 0.05, "target": 0.03, "start": "2025-01-01", "months": 12, "by": "lead"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("wf-audit"))


@pytest.fixture
def api(world: World) -> TestClient:
    return TestClient(world.app)


def test_a_goal_starting_9999_12_31_is_refused(api: TestClient) -> None:
    response = api.put("/workflows/goal", headers=HEADERS, json=GOAL | {"start": "9999-12-31"})
    assert response.status_code == 422 and "start" in response.text


def test_a_stored_goal_starting_9999_12_31_does_not_break_the_report(
    tmp_path: Path,
) -> None:
    world = build_world(tmp_path)
    world.workflows.ledger.set_goal(0.05, 0.03, date(9999, 12, 31), 12, "old ui", NOW)
    response = TestClient(world.app).get("/workflows/report", headers=HEADERS)
    assert response.status_code == 200
    assert "out of range" in response.json()["goal"]["status"]


def test_the_api_goal_refuses_a_target_above_the_baseline(api: TestClient) -> None:
    response = api.put("/workflows/goal", headers=HEADERS, json=GOAL | {"target": 0.08})
    assert response.status_code == 422
    assert "must be below baseline" in response.text
    assert api.put("/workflows/goal", headers=HEADERS, json=GOAL).status_code == 200


def test_date_0_is_rejected(api: TestClient) -> None:
    body = {"customer_id": "cust-001", "type": "call", "date": 0, "owner": "bob",
            "outcome": "saved"}  # fmt: skip
    response = api.post("/workflows/interventions", headers=HEADERS, json=body)
    assert response.status_code == 422 and "YYYY-MM-DD" in response.text


def test_date_bounds_are_declared_in_the_schema(api: TestClient) -> None:
    from fastapi.openapi.utils import get_openapi

    app = api.app
    schema = get_openapi(title="t", version="1", routes=app.routes)  # type: ignore[attr-defined]
    day = schema["components"]["schemas"]["InterventionIn"]["properties"]["date"]
    assert day["formatMinimum"] == "1970-01-01" and day["formatMaximum"] == "2200-12-31"
    start = schema["components"]["schemas"]["GoalIn"]["properties"]["start"]
    assert start["formatMaximum"] == "2100-12-31"


def test_closing_a_closed_task_is_409(api: TestClient, world: World) -> None:
    task = world.workflows.ledger.table("tasks", where="status = 'open'").iloc[-1]
    url = f"/workflows/tasks/{task['task_id']}/close"
    assert api.post(url, headers=HEADERS, json={"by": "bob", "outcome": "done"}).status_code == 200
    again = api.post(url, headers=HEADERS, json={"by": "bob", "outcome": "twice"})
    assert again.status_code == 409 and again.json()["error"] == "workflow_conflict"

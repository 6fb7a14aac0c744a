"""What people record is checked against the facts (a 422 naming the field, nothing written),
and a retry with the same ``Idempotency-Key`` returns the first result, also after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.errors import ChurnError
from serving.app import api_key_check, churn_error_response
from serving.workflows.ledger import Ledger
from serving.workflows.routes import mount_workflows
from tests.serving.workflows.world import KEY, CraftedWorkflows, World, build_world

HEADERS = {"X-API-Key": KEY}
ACTIVE, CHURNED = "cust-001", "cust-000"  # cust-000 churned on 2025-03-14 (world.py)
CALL = {"customer_id": ACTIVE, "type": "call", "date": "2025-05-20", "owner": "bob",
        "outcome": "improving"}  # fmt: skip
EXIT = {
    "customer_id": CHURNED,
    "churned_at": "2025-03-14",
    "main_reason": "too pricey",
    "asked_for_help": "no",
    "improve": "pricing",
    "replacement": "spreadsheet",
    "win_back": "a cheaper plan",
    "category": "price",
    "avoidable": True,
    "recorded_by": "carol",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("records-world"))


@pytest.fixture
def api(world: World) -> TestClient:
    return TestClient(world.app)


def refused(api: TestClient, path: str, body: dict[str, Any], field: str) -> str:
    """POST ``body``; assert a 422 naming ``field`` and return its problem."""
    response = api.post(path, headers=HEADERS, json=body)
    assert response.status_code == 422, response.text
    problems = {f["field"]: f["problem"] for f in response.json()["fields"]}
    assert field in problems, problems
    return problems[field]


def count(world: World, table: str) -> int:
    return len(world.workflows.ledger.table(table))


def test_an_intervention_for_an_unknown_customer_is_422(api: TestClient, world: World) -> None:
    before = count(world, "interventions")
    for unknown in ("NOPE", "C0024955"):
        problem = refused(api, "/workflows/interventions", CALL | {"customer_id": unknown},
                          "customer_id")  # fmt: skip
        assert unknown in problem
    assert count(world, "interventions") == before


def test_an_intervention_dated_in_the_future_is_422(api: TestClient) -> None:
    problem = refused(api, "/workflows/interventions", CALL | {"date": "2199-01-01"}, "date")
    assert "future" in problem


def test_an_intervention_before_signup_is_422(api: TestClient) -> None:
    problem = refused(api, "/workflows/interventions", CALL | {"date": "2023-04-30"}, "date")
    assert "before the customer signed up (2023-05-01)" in problem


def test_an_outcome_contradicting_the_customer_state_is_422(api: TestClient) -> None:
    assert "active" in refused(
        api, "/workflows/interventions", CALL | {"outcome": "churned"}, "outcome"
    )
    saved_after_churn = CALL | {"customer_id": CHURNED, "outcome": "saved", "date": "2025-04-01"}
    assert "churned on 2025-03-14" in refused(
        api, "/workflows/interventions", saved_after_churn, "outcome"
    )


def test_an_intervention_linked_to_another_customers_task_is_422(
    api: TestClient, world: World
) -> None:
    task = world.workflows.ledger.table("tasks", where="customer_id != ?", params=[ACTIVE])
    body = CALL | {"task_id": int(task["task_id"].iloc[0])}
    assert "belongs to customer" in refused(api, "/workflows/interventions", body, "task_id")


def test_an_exit_interview_for_an_active_customer_is_422(api: TestClient, world: World) -> None:
    before = count(world, "exit_interviews")
    problem = refused(api, "/workflows/exit-interviews", EXIT | {"customer_id": ACTIVE},
                      "customer_id")  # fmt: skip
    assert "active customer" in problem
    assert count(world, "exit_interviews") == before


def test_an_exit_interview_for_an_unknown_customer_or_day_is_422(api: TestClient) -> None:
    refused(api, "/workflows/exit-interviews", EXIT | {"customer_id": "NOPE"}, "customer_id")
    refused(api, "/workflows/exit-interviews", EXIT | {"churned_at": "2199-01-01"}, "churned_at")
    refused(api, "/workflows/exit-interviews", EXIT | {"churned_at": "2020-01-01"}, "churned_at")


def test_a_valid_record_is_written(api: TestClient, world: World) -> None:
    before = count(world, "interventions")
    assert api.post("/workflows/interventions", headers=HEADERS, json=CALL).status_code == 201
    assert count(world, "interventions") == before + 1


def restarted(world: World) -> FastAPI:
    """A new app over the same files: nothing kept in memory survives, only the ledger."""
    old = world.workflows
    fresh = CraftedWorkflows(
        settings=old.settings,
        config=old.config,
        ledger=Ledger(Path(old.ledger.path)),
        playbook=old.playbook,
        history_path=old.history_path,
    )
    fresh.base_facts, fresh.scores = old.base_facts, old.scores
    app = FastAPI()
    app.add_exception_handler(ChurnError, lambda _, exc: churn_error_response(exc))
    app.state.settings, app.state.api_keys = world.settings, api_key_check(world.settings)
    mount_workflows(app, fresh)
    return app


def test_a_retry_with_the_same_idempotency_key_survives_a_restart(world: World) -> None:
    keyed = HEADERS | {"Idempotency-Key": "crm-call-4711"}
    body = CALL | {"notes": "retry me"}
    first = TestClient(world.app).post("/workflows/interventions", headers=keyed, json=body)
    assert first.status_code == 201
    again = TestClient(restarted(world)).post("/workflows/interventions", headers=keyed, json=body)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    saved = world.workflows.ledger.table("interventions", where="notes = ?", params=["retry me"])
    assert len(saved) == 1


def test_an_idempotency_key_reused_for_another_request_is_422(api: TestClient) -> None:
    keyed = HEADERS | {"Idempotency-Key": "crm-close-1"}
    body = CALL | {"notes": "first"}
    assert api.post("/workflows/interventions", headers=keyed, json=body).status_code == 201
    response = api.post("/workflows/interventions", headers=keyed, json=CALL | {"notes": "another"})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "Idempotency-Key"


def test_a_refused_request_stores_no_key(api: TestClient, world: World) -> None:
    keyed = HEADERS | {"Idempotency-Key": "crm-bad-1"}
    bad = CALL | {"customer_id": "NOPE", "notes": "fixed"}
    assert api.post("/workflows/interventions", headers=keyed, json=bad).status_code == 422
    fixed = api.post("/workflows/interventions", headers=keyed, json=CALL | {"notes": "fixed"})
    assert fixed.status_code == 201  # nothing was written, so the corrected request goes through
    saved = world.workflows.ledger.table("interventions", where="notes = ?", params=["fixed"])
    assert len(saved) == 1


def test_the_task_list_filters_pages_and_reassigns_through_the_api(
    api: TestClient, world: World
) -> None:
    everyone = api.get("/workflows/tasks", headers=HEADERS).json()
    mine = api.get("/workflows/tasks?owner=alice&limit=2", headers=HEADERS).json()
    assert mine["count"] <= 2 and 0 < mine["total"] <= everyone["total"]
    assert all(t["owner"] == "alice" for t in mine["items"])
    overdue = api.get("/workflows/tasks?overdue=true", headers=HEADERS).json()
    assert all(t["overdue"] for t in overdue["items"])
    ids = [t["task_id"] for t in mine["items"]]
    keyed = HEADERS | {"Idempotency-Key": "rebalance-1"}
    body = {"task_ids": ids, "owner": "dana", "by": "manager"}
    moved = api.post("/workflows/tasks/reassign", headers=keyed, json=body)
    assert moved.status_code == 200 and moved.json()["reassigned"] == sorted(ids)
    again = api.post("/workflows/tasks/reassign", headers=keyed, json=body)
    assert again.json() == moved.json()
    assert len(world.workflows.ledger.table("reassignments")) == len(ids)
    dana = api.get("/workflows/tasks?owner=dana", headers=HEADERS).json()
    assert sorted(t["task_id"] for t in dana["items"]) == sorted(ids)
    bad = api.get("/workflows/tasks?tier=urgent", headers=HEADERS)
    assert bad.status_code == 422

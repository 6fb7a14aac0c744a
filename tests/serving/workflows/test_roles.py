"""Roles on the workflow pages: a CSM works their own tasks, a manager sees everyone's, and every
action is recorded as the person signed in; the customer workspace's timeline."""

from __future__ import annotations

import re
from datetime import timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.api.deps import get_clock
from serving.ui.auth import SESSION_COOKIE, SessionSigner
from serving.users import Directory
from serving.workflows.workspace import customer_workspace, timeline
from tests.serving.workflows.world import NOW, World, build_world

PASSWORD = "a long enough password"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    built = build_world(tmp_path_factory.mktemp("wf-roles"))
    built.app.dependency_overrides[get_clock] = lambda: NOW
    directory = Directory(built.settings.users_db_path)
    for name, role in (("alice", "csm"), ("bob", "csm"), ("Morgan Lee", "manager")):
        directory.add_user(name, role, PASSWORD, NOW)
    return built


def as_user(world: World, name: str) -> tuple[TestClient, str]:
    signer = SessionSigner(world.settings)
    user = signer.directory.authenticate(name, PASSWORD)
    assert user is not None
    cookie = signer.issue_user(user)
    session = signer.read(cookie)
    assert session is not None
    client = TestClient(world.app, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, cookie, path="/ui")
    return client, session.csrf


def shown_owners(html: str) -> set[str]:
    return set(re.findall(r'<tr data-task="\d+" data-customer="[^"]*" data-owner="([^"]*)"', html))


def test_a_csm_sees_my_tasks_and_a_manager_sees_everyones(world: World) -> None:
    ledger = world.workflows.ledger
    owners = set(ledger.table("tasks", where="status = 'open'")["owner"])
    assert owners == {"alice", "bob"}
    alice, _ = as_user(world, "alice")
    page = alice.get("/ui/workflows/tasks", params={"owner": "bob"})  # a CSM cannot look around
    assert page.status_code == 200 and "<h1>My tasks</h1>" in page.text
    assert shown_owners(page.text) == {"alice"}
    manager, _ = as_user(world, "Morgan Lee")
    everyone = manager.get("/ui/workflows/tasks")
    assert shown_owners(everyone.text) == {"alice", "bob"}
    assert shown_owners(manager.get("/ui/workflows/tasks?owner=bob").text) == {"bob"}


def test_a_csm_sees_the_alerts_of_their_customers(world: World) -> None:
    alerts = world.workflows.ledger.alerts("open")
    alice, _ = as_user(world, "alice")
    shown = set(re.findall(r'data-alert="(\d+)"', alice.get("/ui/workflows/alerts").text))
    assert shown == {str(i) for i in alerts.loc[alerts["csm_owner"] == "alice", "alert_id"]}
    assert shown and len(shown) < len(alerts)


def test_my_tasks_list_the_highest_revenue_at_risk_first(world: World) -> None:
    alice, _ = as_user(world, "alice")
    page = alice.get("/ui/workflows/tasks")
    shown = [int(i) for i in pd.Series(page.text.split('data-task="')[1:]).str.split('"').str[0]]
    frame, _ = world.workflows.ledger.tasks(NOW, "open", "alice", limit=1000)
    expected = frame.sort_values(["revenue_at_risk", "due_at", "task_id"],
                                 ascending=[False, True, True])["task_id"].tolist()  # fmt: skip
    assert shown == expected


def test_completing_a_task_records_the_signed_in_user_not_a_typed_name(world: World) -> None:
    alice, csrf = as_user(world, "alice")
    task = world.workflows.ledger.table("tasks", where="status = 'open' AND owner = 'alice'")
    task_id = int(task["task_id"].iloc[0])
    customer = str(task["customer_id"].iloc[0])
    done = alice.post(
        f"/ui/workflows/tasks/{task_id}/close",
        data={"csrf": csrf, "outcome": "called, renewal on track", "by": "someone else",
              "next": f"/ui/customers/{customer}"},
    )  # fmt: skip
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"/ui/customers/{customer}?saved=")
    closed = world.workflows.ledger.table("tasks", where="task_id = ?", params=[task_id])
    assert closed["closed_by"].tolist() == ["alice"]
    loop = as_user(world, "Morgan Lee")[0].get("/ui/workflows/closed-loop").text
    (completed,) = re.findall(r'<tr data-person="alice" data-tasks="(\d+)">', loop)
    assert int(completed) >= 1
    assert '<tr data-person="alice" data-action="completed task">' in loop


def test_an_intervention_and_a_verdict_are_recorded_as_the_signed_in_user(world: World) -> None:
    bob, csrf = as_user(world, "bob")
    ledger = world.workflows.ledger
    task = ledger.table("tasks", where="status = 'open' AND owner = 'bob'").iloc[0]
    posted = bob.post(
        "/ui/workflows/interventions",
        data={"csrf": csrf, "customer_id": task["customer_id"], "type": "call",
              "date": NOW.date().isoformat(), "outcome": "pending", "owner": "not bob",
              "task_id": str(task["task_id"]), "notes": "roles test call",
              "next": f"/ui/customers/{task['customer_id']}"},
    )  # fmt: skip
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"].startswith(f"/ui/customers/{task['customer_id']}?saved=")
    saved = ledger.table("interventions", where="notes = 'roles test call'")
    assert saved["owner"].tolist() == ["bob"]
    alert_id = int(ledger.alerts("open")["alert_id"].iloc[0])
    bob.post(f"/ui/workflows/alerts/{alert_id}/verdict",
             data={"csrf": csrf, "useful": "1", "by": "typed"})  # fmt: skip
    assert ledger.table("verdicts", where="alert_id = ?", params=[alert_id])["by"].iloc[-1] == "bob"


def test_an_invalid_intervention_from_the_customer_page_is_refused_once(world: World) -> None:
    bob, csrf = as_user(world, "bob")
    future = (NOW + timedelta(days=30)).date().isoformat()
    posted = bob.post(
        "/ui/workflows/interventions",
        data={"csrf": csrf, "customer_id": "NOPE", "type": "call", "date": future,
              "outcome": "pending", "next": "/ui/customers/NOPE"},
    )  # fmt: skip
    assert posted.status_code == 400 and "NOPE" in posted.text
    assert world.workflows.ledger.table("interventions", where="customer_id = 'NOPE'").empty


def test_only_a_manager_sets_the_goal(world: World) -> None:
    form = {"baseline": "5", "target": "3", "start": "2025-01-01", "months": "6"}
    alice, csrf = as_user(world, "alice")
    assert alice.post("/ui/workflows/goal", data=form | {"csrf": csrf}).status_code == 403
    manager, csrf = as_user(world, "Morgan Lee")
    assert manager.post("/ui/workflows/goal", data=form | {"csrf": csrf}).status_code == 303
    assert world.workflows.ledger.latest_goal()["set_by"] == "Morgan Lee"


def test_the_workspace_holds_a_customers_open_work_and_timeline(world: World) -> None:
    ledger = world.workflows.ledger
    tasks = ledger.table("tasks", where="status = 'open'")
    customer = str(tasks["customer_id"].iloc[0])
    space = customer_workspace(world.workflows, customer)
    assert space.open_alerts and all(a["customer_id"] == customer for a in space.open_alerts)
    assert {t["task_id"] for t in space.open_tasks} == set(
        tasks.loc[tasks["customer_id"] == customer, "task_id"]
    )
    kinds = {e["kind"] for e in space.timeline}
    assert {"alert", "task", "score"} <= kinds
    stamps = [e["at"] for e in space.timeline]
    assert stamps == sorted(stamps, reverse=True)


def test_the_timeline_puts_every_kind_of_event_in_time_order() -> None:
    empty = pd.DataFrame()
    scores = pd.DataFrame({"scored_at": [pd.Timestamp("2025-05-01T02:00Z")], "health_score": [41.0],
                           "tier": ["high"], "probability": [0.4], "as_of": ["2025-05-01"],
                           "model_version": ["3"]})  # fmt: skip
    alerts = pd.DataFrame({"opened_at": ["2025-05-02T06:00:00+00:00"], "rule_id": ["low-health"],
                           "detail": ["health 41"],
                           "cleared_at": ["2025-05-20T06:00:00+00:00"]})  # fmt: skip
    tasks = pd.DataFrame({"created_at": ["2025-05-02T06:00:00+00:00"], "title": ["Call"],
                          "owner": ["alice"], "due_at": ["2025-05-02T10:00:00+00:00"],
                          "status": ["closed"], "closed_at": ["2025-05-03T09:00:00+00:00"],
                          "outcome": ["done"], "closed_by": ["alice"]})  # fmt: skip
    interventions = pd.DataFrame({"recorded_at": ["2025-05-03T08:00:00+00:00"], "type": ["call"],
                                  "date": ["2025-05-03"], "outcome": ["saved"], "notes": [None],
                                  "owner": ["alice"]})  # fmt: skip
    webhooks = pd.DataFrame({"delivered_at": ["2025-05-02T06:00:01+00:00"], "endpoint": ["crm"],
                             "alert_id": [1]})  # fmt: skip
    events = timeline(scores, alerts, tasks, interventions, empty.assign(), webhooks)
    assert [e["title"].split(":")[0] for e in events] == [
        "Alert cleared", "Task completed", "Call on 2025-05-03", "Webhook sent to crm",
        "Alert opened", "Task opened", "Scored",
    ]  # fmt: skip
    assert events[1]["by"] == "alice"

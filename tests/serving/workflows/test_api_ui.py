"""The workflows API (X-API-Key) and pages (UI session) over a crafted deployment."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.ui.auth import SESSION_COOKIE, SessionSigner
from serving.workflows.ledger import Ledger
from serving.workflows.loop import quarterly_review
from serving.workflows.review import loop_markdown, review_markdown
from tests.serving.workflows.world import KEY, NOW, World, build_world

HEADERS = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("wf-world"))


@pytest.fixture
def api(world: World) -> TestClient:
    return TestClient(world.app)


def signed_in(world: World) -> tuple[TestClient, str]:
    signer = SessionSigner(world.settings)
    cookie = signer.issue(KEY.encode())
    session = signer.read(cookie)
    assert session is not None
    client = TestClient(world.app, follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, cookie, path="/ui")
    return client, session.csrf


def test_the_api_needs_a_key(api: TestClient) -> None:
    assert api.get("/workflows/alerts").status_code == 401
    assert api.get("/workflows/alerts", headers={"X-API-Key": "wrong"}).status_code == 401


def test_alerts_tasks_and_segments_through_the_api(api: TestClient, world: World) -> None:
    body = api.get("/workflows/alerts?status=all", headers=HEADERS).json()
    assert body["count"] == len(world.workflows.ledger.table("alerts"))
    assert body["currency"] == "USD"  # of every mrr; the /v1 path answers the same
    assert api.get("/v1/workflows/alerts?status=all", headers=HEADERS).json() == body
    first = body["items"][0]
    detail = api.get(f"/workflows/alerts/{first['alert_id']}", headers=HEADERS).json()
    assert detail["context"]["customer_id"] == first["customer_id"]
    listing = api.get("/workflows/tasks", headers=HEADERS).json()
    tasks = listing["items"]
    assert listing["currency"] == "USD"  # of revenue_at_risk
    assert tasks and all(t["owner"] in ("alice", "bob") for t in tasks)
    segment = api.get("/workflows/segments/at-risk", headers=HEADERS).json()
    assert segment["count"] > 0
    drafts = api.get("/workflows/drafts", headers=HEADERS).json()["items"]
    assert any("Company" in d["subject"] for d in drafts)


def test_recording_through_the_api(api: TestClient, world: World) -> None:
    alert = world.workflows.ledger.table("alerts", where="holdout = 0").iloc[0]
    task = world.workflows.ledger.table("tasks", where="status = 'open'").iloc[0]
    ok = api.post(
        "/workflows/interventions",
        headers=HEADERS,
        json={
            "customer_id": alert["customer_id"],
            "type": "meeting",
            "date": "2025-06-01",
            "owner": "bob",
            "outcome": "improving",
            "alert_id": int(alert["alert_id"]),
        },
    )
    assert ok.status_code == 201
    closed = api.post(
        f"/workflows/tasks/{task['task_id']}/close",
        headers=HEADERS,
        json={"by": "bob", "outcome": "called, training booked"},
    )
    assert closed.status_code == 200
    again = api.post(
        f"/workflows/tasks/{task['task_id']}/close",
        headers=HEADERS,
        json={"by": "bob", "outcome": "twice"},
    )
    assert again.status_code == 409 and "already closed" in again.json()["message"]
    verdict = api.post(
        f"/workflows/alerts/{alert['alert_id']}/verdict",
        headers=HEADERS,
        json={"useful": False, "comment": "seasonal dip", "by": "bob"},
    )
    assert verdict.status_code == 201
    assert (
        api.post(
            "/workflows/alerts/999999/verdict", headers=HEADERS, json={"useful": True, "by": "x"}
        ).status_code
        == 404
    )
    bad = api.post("/workflows/interventions", headers=HEADERS, json={"customer_id": "c"})
    assert bad.status_code == 422


def test_exit_interview_needs_all_five_answers(api: TestClient) -> None:
    answers = {
        "customer_id": "cust-000",
        "churned_at": "2025-03-13",
        "main_reason": "too pricey",
        "asked_for_help": "yes",
        "help_experience": "slow answers",
        "improve": "pricing",
        "replacement": "spreadsheet",
        "win_back": "a cheaper plan",
        "category": "price",
        "avoidable": True,
        "recorded_by": "carol",
    }
    assert api.post("/workflows/exit-interviews", headers=HEADERS, json=answers).status_code == 201
    missing = {k: v for k, v in answers.items() if k != "win_back"}
    response = api.post("/workflows/exit-interviews", headers=HEADERS, json=missing)
    assert response.status_code == 422


def test_report_json_and_markdown(api: TestClient, world: World) -> None:
    report = api.get("/workflows/report", headers=HEADERS).json()
    assert report["holdout"]["holdout_n"] > 0 and report["holdout"]["treated_n"] > 0
    assert {r["rule_id"] for r in report["rule_precision"]} == {"low-health", "tips"}
    loop, inputs = world.workflows.closed_loop(NOW)
    text = loop_markdown(loop)
    assert "only the hold-out comparison" in text.lower() and "95 % CI" in text
    review = review_markdown(quarterly_review(loop, inputs, "2025Q1"))
    assert "# Quarterly retention review 2025Q1" in review and "churned" in review


def test_pages_need_a_session(world: World) -> None:
    client = TestClient(world.app, follow_redirects=False)
    response = client.get("/ui/workflows/alerts")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/signin?next=%2Fui%2Fworkflows%2Falerts")


def test_pages_render_and_forms_need_the_csrf_token(world: World) -> None:
    client, _ = signed_in(world)
    for path in ("alerts", "tasks", "interventions", "exit-interviews", "closed-loop", "review",
                 "contact"):  # fmt: skip
        page = client.get(f"/ui/workflows/{path}")
        assert page.status_code == 200, path
        assert 'href="/ui/static/ui.css"' in page.text
    forged = client.post("/ui/workflows/tasks/1/close", data={"outcome": "x", "by": "y"})
    assert forged.status_code == 400
    assert client.get("/ui/workflows/review?format=md").text.startswith("# Quarterly")


def test_rules_file_errors_name_line_and_reason(tmp_path: Path) -> None:
    from serving.workflows.config import load_rules
    from serving.workflows.errors import RulesError

    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - id: ok\n"
        "    description: fine\n"
        "    when: {kind: health_below, threshold: 60, days: 7}\n"
        "  - id: broken\n"
        "    description: a typo in the kind\n"
        "    when:\n"
        "      kind: health_belw\n"
        "  - id: ok\n"
        "    description: duplicate id, unknown endpoint\n"
        "    when: {kind: inactive, days: 30}\n"
        "    actions: [{type: webhook, endpoint: nowhere}]\n"
    )
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    message = str(raised.value)
    assert "line 8, key rules.1.when" in message and "health_belw" in message
    path.write_text(
        path.read_text().replace("health_belw", "health_below\n      threshold: 60\n      days: 7")
    )
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    message = str(raised.value)
    assert "line 11, key rules.2.id: duplicate rule id 'ok'" in message
    assert "unknown webhook endpoint 'nowhere'" in message


def test_the_repository_rules_file_is_valid() -> None:
    from serving.workflows.config import load_rules
    from tests.serving.workflows.conftest import REPO

    config = load_rules(REPO / "rules.yaml")
    assert {r.when.kind for r in config.rules} == {
        "health_below",
        "tier_dropped",
        "score_drop",
        "value_at_risk",
        "days_since_signup",
        "inactive",
    }


def test_ledger_is_in_wal_mode(world: World) -> None:
    import sqlite3

    con = sqlite3.connect(Ledger(world.workflows.ledger.path).path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()

"""The workflow pages in real Chromium (Debian's, via Playwright) against a real uvicorn."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page

from serving.ui.auth import SESSION_COOKIE, SessionSigner
from tests.serving.workflows.world import World, build_world

pytestmark = pytest.mark.slow

LEAD = "Team Lead"  # the manager signed in for these tests; every action is recorded as them

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            "Debian's chromium is not installed (Playwright cannot download browsers "
            "here): run `make browser` or `apt-get install chromium`."
        )
    world = build_world(tmp_path_factory.mktemp("wf-browser"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(world.app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page(
    browser: Browser, served: tuple[str, World], request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Page]:
    base, world = served
    context = browser.new_context(base_url=base)
    signer = SessionSigner(world.settings)
    lead = signer.directory.user(LEAD) or signer.directory.add_user(
        LEAD, "manager", "team lead password", datetime.now(UTC)
    )
    cookie = signer.issue_user(lead)
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": f"{base}/ui"}])
    tab = context.new_page()
    yield tab
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        shot = tmp_path / "failure.png"
        tab.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failed page: {shot}")
    context.close()


def test_alerts_list_shows_open_alerts_and_takes_a_verdict(
    page: Page, served: tuple[str, World]
) -> None:
    _, world = served
    page.goto("/ui/workflows/alerts")
    rows = page.locator("#alerts tbody tr[data-alert]")
    open_alerts = world.workflows.ledger.alerts("open")
    assert rows.count() == len(open_alerts) > 0
    assert page.locator("#alerts .wf-holdout").count() > 0
    first = rows.first
    alert_id = int(first.get_attribute("data-alert"))
    first.locator("button.wf-judge").click()
    first.locator("input[name=comment]").fill("customer is on holiday")
    first.locator("button[name=useful][value='0']").click()
    page.wait_for_selector("#flash")
    verdicts = world.workflows.ledger.table("verdicts", where="alert_id = ?", params=[alert_id])
    assert verdicts["comment"].tolist() == ["customer is on holiday"]
    assert "not valid" in page.locator(f"tr[data-alert='{alert_id}'] td.verdict").inner_text()


def test_recording_an_intervention_from_an_alert(page: Page, served: tuple[str, World]) -> None:
    _, world = served
    page.goto("/ui/workflows/alerts")
    row = page.locator("#alerts tbody tr[data-alert]:not(:has(.wf-holdout))").first
    customer = row.get_attribute("data-customer")
    row.get_by_text("Record intervention").click()
    form = page.locator("#intervention-form")
    assert form.locator("input[name=customer_id]").input_value() == customer
    form.locator("select[name=type]").select_option("training")
    form.locator("select[name=outcome]").select_option("improving")
    form.locator("textarea[name=notes]").fill("one-to-one training booked")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#flash")
    assert "one-to-one training booked" in page.locator("#interventions").inner_text()
    saved = world.workflows.ledger.table(
        "interventions", where="notes = ?", params=["one-to-one training booked"]
    )
    assert saved["customer_id"].tolist() == [customer] and saved["alert_id"].notna().all()
    assert saved["owner"].tolist() == [LEAD]  # the person signed in, not a typed name


def test_closing_a_task(page: Page, served: tuple[str, World]) -> None:
    _, world = served
    page.goto("/ui/workflows/tasks")
    row = page.locator("#tasks tbody tr[data-task]").first
    task_id = int(row.get_attribute("data-task"))
    row.locator("input[name=outcome]").fill("called, booked a training")
    row.locator("button[type=submit]").click()
    page.wait_for_selector("#flash")
    task = world.workflows.ledger.table("tasks", where="task_id = ?", params=[task_id]).iloc[0]
    assert task["status"] == "closed" and task["closed_by"] == LEAD


def test_exit_interview_form(page: Page, served: tuple[str, World]) -> None:
    _, world = served
    page.goto("/ui/workflows/exit-interviews")
    form = page.locator("#exit-form")
    form.locator("button[type=submit]").click()  # the browser refuses: required answers missing
    assert world.workflows.ledger.table("exit_interviews").empty
    form.locator("input[name=customer_id]").fill("cust-003")
    form.locator("input[name=churned_at]").fill("2025-03-13")
    form.locator("textarea[name=main_reason]").fill("The team stopped using the reports")
    form.locator("input[name=asked_for_help][value=yes]").check()
    form.locator("textarea[name=help_experience]").fill("Support answered after a week")
    form.locator("textarea[name=improve]").fill("Faster support")
    form.locator("textarea[name=replacement]").fill("A competitor's dashboard")
    form.locator("textarea[name=win_back]").fill("A dedicated CSM")
    form.locator("select[name=category]").select_option("service")
    form.locator("input[name=avoidable][value=yes]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#flash")
    saved = world.workflows.ledger.table("exit_interviews").iloc[0]
    assert (saved["customer_id"], saved["category"], saved["avoidable"]) == (
        "cust-003",
        "service",
        1,
    )
    assert "A competitor's dashboard" in page.locator("#exit-interviews").inner_text()


def test_closed_loop_page(page: Page) -> None:
    page.goto("/ui/workflows/closed-loop")
    assert "95 % CI" in page.locator("#holdout-verdict").inner_text()
    assert "correlation" in page.locator("#correlational").inner_text()
    assert page.locator("#rule-precision-table tbody tr").count() == 2
    assert page.locator("#stated-vs-model tbody tr").count() >= 1
    assert page.locator(".wf-disagree").count() >= 1
    form = page.locator("#goal-form")
    form.locator("input[name=target]").fill("2.5")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("#flash")
    assert "2.5 %" in page.locator("#goal").inner_text()
    page.locator("#review-link").click()
    assert page.locator("h1").inner_text().startswith("Quarterly retention review")

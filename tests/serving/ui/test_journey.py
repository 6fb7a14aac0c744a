"""A CSM's day in real Chromium (Debian's, via Playwright) against a real uvicorn: sign in with
their own account, open their highest-revenue-at-risk customer from "My tasks", log a call on
the customer page, complete the task; a manager sees it in the closed loop under that CSM's name;
a form posted from another origin with the CSM's cookie is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from churn.demo import UiServer, build_scored_world
from serving.users import Directory
from serving.workflows.ledger import Ledger
from serving.workflows.service import Workflows
from tests.serving.ui.conftest import post_from_attacker, require_chromium

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui")]

PASSWORD = "renewal season 2025"
MANAGER = "Morgan Lee"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Ledger, str, str]]:
    """A scored world whose rules opened tasks, a CSM (the owner of most open tasks) and a
    manager with their own passwords, served by uvicorn."""
    require_chromium()
    world = build_scored_world(tmp_path_factory.mktemp("journey"), api_key="journey-key")
    workflows = Workflows.from_settings(world.settings)
    assert workflows.run().tasks > 0
    ledger = workflows.ledger
    owners = ledger.frame(
        "SELECT owner, COUNT(*) AS n FROM tasks WHERE status = 'open' GROUP BY owner "
        "ORDER BY n DESC, owner LIMIT 1"
    )
    csm = str(owners["owner"].iloc[0])
    directory = Directory(world.settings.users_db_path)
    now = datetime.now(UTC)
    directory.add_user(csm, "csm", PASSWORD, now)
    directory.add_user(MANAGER, "manager", PASSWORD, now)
    facts = workflows.facts(now)
    churned = str(facts[facts["churned_at"].notna()].sort_values("churned_at").index[-1])
    with UiServer(world.settings) as server:
        yield server.base_url, ledger, csm, churned


@pytest.fixture
def context(browser: Any, served: tuple[str, Ledger, str, str], tmp_path: Path) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=served[0])
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def sign_in(tab: Any, name: str) -> None:
    tab.goto("/ui/signin")
    tab.fill("#name", name)
    tab.fill("#password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url("**/ui/")
    assert name in tab.locator("#signed-in").inner_text()


def test_a_csm_works_their_top_task_and_the_manager_sees_it(
    context: Any, browser: Any, served: tuple[str, Ledger, str, str]
) -> None:
    base, ledger, csm, _ = served
    tab = context.new_page()
    sign_in(tab, csm)
    assert f"My customers ({csm})" in tab.locator("h1").inner_text()

    tab.click("nav a:has-text('My tasks')")
    tab.wait_for_url("**/ui/workflows/tasks")
    rows = tab.locator("#tasks tbody tr[data-task]")
    assert rows.count() > 0
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.owner)")) == {csm}
    mine, _ = ledger.tasks(datetime.now(UTC), "open", csm, limit=1000)
    top = mine.sort_values("revenue_at_risk", ascending=False).iloc[0]
    first = rows.first
    assert first.get_attribute("data-customer") == top["customer_id"]
    task_id = first.get_attribute("data-task")

    first.locator("td.who a").click()
    tab.wait_for_url(f"**/ui/customers/{top['customer_id']}")
    assert tab.locator(f"#open-tasks tr[data-task='{task_id}']").count() == 1
    form = tab.locator("#intervention-form")
    form.locator("select[name=type]").select_option("call")
    form.locator("select[name=outcome]").select_option("improving")
    form.locator("select[name=task_id]").select_option(task_id)
    form.locator("textarea[name=notes]").fill("Called the sponsor about the renewal")
    form.locator("button[type=submit]").click()
    tab.wait_for_selector("#flash, #form-error")
    assert tab.locator("#form-error").count() == 0, tab.locator("#form-error").inner_text()
    assert "intervention" in tab.locator("#flash").inner_text()
    call = tab.locator("#timeline li.tl-intervention").first
    assert "Call on" in call.inner_text() and csm in call.inner_text()
    logged = ledger.table("interventions", where="customer_id = ?", params=[top["customer_id"]])
    assert logged["owner"].tolist() == [csm] and logged["task_id"].tolist() == [int(task_id)]

    done = tab.locator(f"#open-tasks tr[data-task='{task_id}']")
    done.locator("input[name=outcome]").fill("sponsor confirmed the renewal")
    done.locator("button[type=submit]").click()
    tab.wait_for_selector("#flash")
    assert f"task {task_id} completed" in tab.locator("#flash").inner_text()
    assert tab.locator(f"#open-tasks tr[data-task='{task_id}']").count() == 0
    tab.click("nav a:has-text('My tasks')")
    tab.wait_for_url("**/ui/workflows/tasks")
    assert tab.locator(f"#tasks tr[data-task='{task_id}']").count() == 0
    assert rows.count() == min(len(mine) - 1, 200)

    boss = browser.new_context(base_url=base)
    boss.set_default_timeout(180_000)  # the closed loop's first computation, on a busy machine
    try:
        manager = boss.new_page()
        sign_in(manager, MANAGER)
        manager.click("nav a:has-text('Closed loop')")
        manager.wait_for_url("**/ui/workflows/closed-loop")
        person = manager.locator(f"#work-by-person tr[data-person='{csm}']")
        assert person.get_attribute("data-tasks") == "1"
        recent = manager.locator(f"#recent-work tr[data-person='{csm}']")
        assert "completed task" in recent.first.inner_text()
        assert "sponsor confirmed the renewal" in recent.first.inner_text()
    finally:
        boss.close()


def test_a_cross_origin_form_post_with_the_csms_cookie_is_refused(
    context: Any, served: tuple[str, Ledger, str, str]
) -> None:
    base, ledger, csm, _ = served
    tab = context.new_page()
    sign_in(tab, csm)
    tab.goto("/ui/workflows/tasks")
    row = tab.locator("#tasks tbody tr[data-task]").first
    task_id = row.get_attribute("data-task")
    token = row.locator("input[name=csrf]").input_value()  # the attacker even knows the token
    refused = post_from_attacker(
        tab, f"{base}/ui/workflows/tasks/{task_id}/close",
        {"csrf": token, "outcome": "closed by attacker"},
    )  # fmt: skip
    assert refused.status == 403 and "cross-origin" in refused.text()
    assert "churn_ui_session=" in refused.request.all_headers().get("cookie", "")
    still = ledger.table("tasks", where="task_id = ?", params=[int(task_id or 0)])
    assert still["status"].tolist() == ["open"]


def test_a_churned_customer_has_a_page_where_the_exit_interview_is_recorded(
    context: Any, served: tuple[str, Ledger, str, str]
) -> None:
    _, ledger, csm, churned = served
    tab = context.new_page()
    sign_in(tab, csm)
    answer = tab.goto(f"/ui/customers/{churned}")
    assert answer is not None and answer.status == 200
    assert "churned on" in tab.locator("#churned").inner_text()
    form = tab.locator("#exit-form")
    form.locator("input[name=asked_for_help][value=no]").check()
    answers = {"main_reason": "Moved to a cheaper tool", "improve": "Pricing tiers",
               "replacement": "A spreadsheet", "win_back": "A smaller plan"}  # fmt: skip
    for name, text in answers.items():
        form.locator(f"textarea[name={name}]").fill(text)
    form.locator("select[name=category]").select_option("price")
    form.locator("input[name=avoidable][value=yes]").check()
    form.locator("button[type=submit]").click()
    tab.wait_for_selector("#flash, #form-error")
    assert tab.locator("#form-error").count() == 0, tab.locator("#form-error").inner_text()
    assert "Moved to a cheaper tool" in tab.locator("#exit-recorded").inner_text()
    exit_event = tab.locator("#timeline li.tl-exit").first
    assert "Exit interview: price" in exit_event.inner_text() and csm in exit_event.inner_text()
    saved = ledger.table("exit_interviews", where="customer_id = ?", params=[churned])
    assert saved["recorded_by"].tolist() == [csm]

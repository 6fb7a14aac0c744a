"""One scored deployment with score history and a real uvicorn serving the API and the UI.

Built once per session by ``churn.demo.build_scored_world`` (generator -> labeled set ->
train and register in a temp MLflow store -> two snapshots scored with ``score_all`` and
appended to the history), served by uvicorn on 127.0.0.1 in a background thread. The browser is
Debian's Chromium driven by Playwright; when a test fails, a screenshot of its page is saved
under ``.pytest_cache/ui-screenshots/`` (or ``$CHURN_UI_SCREENSHOTS``) and named in the report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from churn.demo import ScoredWorld, UiServer, build_scored_world

KEY = "ui-test-key"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(os.environ.get("CHURN_UI_SCREENSHOTS", ".pytest_cache/ui-screenshots"))


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Debian's chromium is not installed (Playwright cannot download browsers here): "
            "run `make browser` or `apt-get install chromium`."
        )


@pytest.fixture(scope="session")
def ui_world(tmp_path_factory: pytest.TempPathFactory) -> ScoredWorld:
    require_chromium()
    return build_scored_world(tmp_path_factory.mktemp("ui"), api_key=KEY)


@pytest.fixture(scope="session")
def ui_server(ui_world: ScoredWorld) -> Iterator[str]:
    with UiServer(ui_world.settings) as server:
        yield server.base_url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item, for the screenshot-on-failure teardown."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser: Any, ui_server: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) per test; a screenshot is kept if the test fails."""
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, accept_downloads=True, base_url=ui_server
    )
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target = SCREENSHOTS / f"{request.node.name}.png"
        tab.screenshot(path=str(target), full_page=True)
        report.sections.append(("ui screenshot", f"saved {target.resolve()}"))
        print(f"\nscreenshot of the failed page: {target.resolve()}")
    context.close()


def sign_in(tab: Any, key: str = KEY) -> None:
    tab.goto("/ui/")
    tab.fill("#api_key", key)
    tab.click("button[type=submit]")


ATTACKER = "http://127.0.0.1:9/attack"  # same site (cookies go along), another origin (port)


def post_from_attacker(page: Any, action: str, fields: dict[str, str]) -> Any:
    """Submit a form to ``action`` from a page on :data:`ATTACKER` (the browser sends the
    signed-in user's cookie along) and return the response Playwright saw."""
    inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
    html = (f'<form method="post" action="{action}">{inputs}</form>'
            "<script>document.forms[0].submit()</script>")  # fmt: skip
    page.route(ATTACKER, lambda route: route.fulfill(body=html, content_type="text/html"))
    with page.expect_response(action) as answer:
        page.goto(ATTACKER)
    return answer.value

"""In a real Chromium: a page on another origin cannot change state with the manager's session,
even when it knows the session's CSRF token; the UI runs under its CSP without violations."""

from __future__ import annotations

from typing import Any

import pytest

from tests.serving.ui.conftest import post_from_attacker, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui")]


def test_a_cross_origin_post_with_a_valid_session_is_refused(page: Any, ui_server: str) -> None:
    sign_in(page)
    page.wait_for_url("**/ui/")
    token = page.locator("form.signout input[name=csrf]").input_value()
    refused = post_from_attacker(page, f"{ui_server}/ui/signout", {"csrf": token})
    assert refused.status == 403
    assert refused.request.headers.get("origin") == "http://127.0.0.1:9"
    assert "cross-origin" in refused.text()
    page.goto("/ui/")
    assert "/ui/signin" not in page.url, "the session survived: the sign-out was refused"
    page.locator("form.signout button").click()  # the same form from the UI itself works
    page.wait_for_url("**/ui/signin")


def test_the_ui_draws_its_charts_under_the_csp(page: Any) -> None:
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)
    sign_in(page)
    page.goto("/ui/analytics")
    page.wait_for_selector(".js-plotly-plot")
    assert page.locator(".js-plotly-plot").count() > 3
    assert violations == []

"""The API docs in a real Chromium with the network blocked: every request that does not go to
the local server is aborted, and Swagger UI and ReDoc still render the operations."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui")]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def offline(page: Any) -> list[str]:
    """Abort every request to a host other than the local server; returns the aborted URLs."""
    aborted: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        scheme, host = urlsplit(url).scheme, urlsplit(url).hostname
        if scheme in {"data", "blob"} or host in LOCAL_HOSTS:
            request_route.continue_()
        else:
            aborted.append(url)
            request_route.abort()

    page.context.route("**/*", route)
    return aborted


def test_swagger_ui_renders_every_v1_operation_with_the_network_blocked(page: Any) -> None:
    aborted = offline(page)
    page.goto("/docs")
    page.locator(".opblock").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    joined = " ".join(paths)
    for path in ("/v1/score", "/v1/score/batch", "/v1/model", "/v1/customers"):
        assert path in joined, paths
    assert aborted == []


def test_redoc_renders_the_operations_with_the_network_blocked(page: Any) -> None:
    aborted = offline(page)
    page.goto("/redoc")
    page.locator("h2", has_text="Score one customer").first.wait_for()
    operations = page.locator("[data-section-id*='/operation/']").count()
    assert operations >= 10, operations
    assert page.locator("h2", has_text="The served model").count() >= 1
    assert aborted == []

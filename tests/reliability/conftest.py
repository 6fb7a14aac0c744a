"""Fault injection reuses the serving tests' deployment: one trained champion and its store."""

from __future__ import annotations

import pytest

from tests.serving.conftest import deployment  # noqa: F401  (the session fixture, re-exported)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)

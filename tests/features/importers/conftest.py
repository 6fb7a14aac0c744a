"""Small slices of the public data sets, written into each test's temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from features.importers import shared_data_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared/data`` beside the repository (CI clones it there)."""
    folder = shared_data_dir()
    assert folder.is_dir(), f"public data sets expected in {folder} (set CHURN_SHARED_DATA)"
    return folder


@pytest.fixture
def head(tmp_path: Path) -> Callable[[Path, int], Path]:
    """Copy the first ``lines`` lines of a source file into the test's folder."""

    def copy(source: Path, lines: int, name: str | None = None) -> Path:
        target = tmp_path / "src" / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open(newline="") as handle:
            target.write_text("".join(handle.readline() for _ in range(lines)), newline="")
        return target

    return copy

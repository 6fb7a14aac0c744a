"""The score history appended from the store file equals the one appended from its frame."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from serving.history import append_history, append_store
from serving.store import ModelRef, score_all
from tests.serving.conftest import Deployment


def test_appending_the_store_file_column_by_column_equals_appending_its_frame(
    deployment: Deployment, tmp_path: Path
) -> None:
    store = tmp_path / "scores.parquet"
    score_all(deployment.model, ModelRef("churn-model", "7", "champion"),
              deployment.settings.snapshot_path, store, 5)  # fmt: skip
    frame = pd.read_parquet(store)
    at = datetime(2025, 3, 1, 2, tzinfo=UTC)
    from_frame = append_history(tmp_path / "a", frame, "7", str(frame["as_of"].max()), at)
    from_file = append_store(tmp_path / "b", store, "7", at)
    assert from_file.name == from_frame.name
    written = pd.read_parquet(from_file)
    pd.testing.assert_frame_equal(written, pd.read_parquet(from_frame), check_exact=True)
    assert written["customer_id"].is_monotonic_increasing
    assert len(written) == len(frame) and not any(c.startswith("survival.") for c in written)

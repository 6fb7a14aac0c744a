"""The score history the rules read, as ``serving.history`` writes it (customer facts:
tests/features/test_facts.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from serving.history import append_history, history_dir
from serving.workflows.inputs import read_score_history


def store_frame(ids: list[str], health: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ids,
            "as_of": "2025-05-01",
            "churn_probability": [1 - h / 100 for h in health],
            "health_score": health,
            "tier": ["high" if h < 40 else "healthy" for h in health],
            "base_value": -2.0,
            "contribution.logins_30d": [0.5, -0.1],
            "driver_1_feature": ["logins_30d", "tickets_30d"],
            "driver_1_contribution": [0.5, -0.1],
            "driver_1_sentence": ["12 logins in 30 days", "no tickets"],
        }
    )


def test_reads_the_history_that_score_all_appends(tmp_path: Path) -> None:
    frame = store_frame(["a", "b"], [30.0, 90.0])
    append_history(tmp_path, frame, "3", date(2025, 5, 1), datetime(2025, 5, 1, 2, tzinfo=UTC))
    append_history(tmp_path, frame, "4", date(2025, 5, 1), datetime(2025, 5, 1, 9, tzinfo=UTC))
    history = read_score_history(history_dir(tmp_path))
    assert len(history) == 4 and set(history["model_version"]) == {"3", "4"}
    first = history[history["customer_id"] == "a"].iloc[0]
    assert first["probability"] == 0.7 and first["tier"] == "high"
    assert first["top_drivers"] == [
        {"feature": "logins_30d", "contribution": 0.5, "sentence": "12 logins in 30 days"}
    ]
    early = read_score_history(history_dir(tmp_path), until=datetime(2025, 5, 1, 3, tzinfo=UTC))
    assert set(early["model_version"]) == {"3"}


def test_no_history_yet_is_an_empty_frame(tmp_path: Path) -> None:
    assert read_score_history(tmp_path / "missing").empty

"""Score history: appended per scoring, idempotent per (as_of, model), read with DuckDB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from serving.history import (
    HistoryError,
    ScoreHistory,
    append_history,
    history_files,
    read_history,
)


def scores(health: list[float], ids: tuple[str, ...] = ("B", "A")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": list(ids),
            "as_of": "2025-01-01",
            "churn_probability": [1 - h / 100 for h in health],
            "health_score": health,
            "tier": ["healthy" if h >= 80 else "high" for h in health],
            "base_value": -2.0,
            "contribution.logins_30d": [0.1, -0.3],
            "driver_1_feature": "logins_30d",
            "driver_1_sentence": ["3 logins", "9 logins"],
        }
    )


def test_appending_the_same_as_of_and_model_twice_keeps_one_scoring(tmp_path: Path) -> None:
    at = datetime(2025, 1, 1, 3, tzinfo=UTC)
    append_history(tmp_path, scores([90, 30]), "3", date(2025, 1, 1), at)
    append_history(tmp_path, scores([85, 35]), "3", date(2025, 1, 1), at)
    assert len(history_files(tmp_path)) == 1
    history = read_history(tmp_path)
    assert len(history) == 2
    assert history.set_index("customer_id")["health_score"].to_dict() == {"A": 35, "B": 85}


def test_previous_scoring_is_the_latest_before_the_served_as_of(tmp_path: Path) -> None:
    for day, health in ((date(2025, 1, 1), [90, 30]), (date(2025, 2, 1), [70, 40])):
        at = datetime.combine(day, datetime.min.time(), UTC)
        append_history(tmp_path, scores(health), "1", day, at)
    append_history(tmp_path, scores([50, 50]), "2", date(2025, 3, 1), datetime.now(UTC))
    history = ScoreHistory(tmp_path)
    previous = history.latest_before(date(2025, 3, 1)).set_index("customer_id")
    assert previous.loc["B", "health_score"] == 70
    assert str(previous.loc["B", "as_of"])[:10] == "2025-02-01"
    assert [s.model_version for s in history.scorings()] == ["1", "1", "2"]
    assert len(history.customer("A")) == 3
    moved = history.contributions(previous.loc["A", "filename"], "A")
    assert moved == pytest.approx({"logins_30d": -0.3, "base_value": -2.0})


def test_a_scores_frame_without_scores_is_refused_with_the_columns_named(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="health_score"):
        append_history(
            tmp_path, pd.DataFrame({"customer_id": ["A"]}), "1", "2025-01-01", datetime.now(UTC)
        )

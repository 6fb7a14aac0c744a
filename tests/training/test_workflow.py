"""Training end to end on a small generated company, with a real MLflow store in a temp dir."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from training.fit import FitConfig
from training.pipeline import TrainConfig, train
from training.registry import CHAMPION, configure, load_registered, promotion_gate
from training.workflow import oracle_probabilities, train_and_register

# the capacity search times TreeSHAP on this machine, so it is off where bytes must repeat
CONFIG = TrainConfig(valid_dates=2, capacity_search=False, fit=FitConfig(max_trees=150))


@pytest.fixture()
def tracking(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    configure(uri, tmp_path / "artifacts")
    return uri


def test_same_seed_same_data_gives_identical_metrics_and_model_file(
    small_labeled: pd.DataFrame, tmp_path: Path
) -> None:
    first = train(small_labeled, CONFIG)
    second = train(small_labeled, CONFIG)
    assert first.metrics == second.metrics
    a = first.model.save(tmp_path / "a")
    b = second.model.save(tmp_path / "b")
    assert (a / "model.txt").read_bytes() == (b / "model.txt").read_bytes()
    assert (a / "model.json").read_bytes() == (b / "model.json").read_bytes()


def test_model_beats_the_health_score_and_approaches_the_oracle_on_small_data(
    small_labeled: pd.DataFrame, small_world_dir: Path
) -> None:
    oracle = oracle_probabilities(small_labeled, small_world_dir / "truth", 90)
    result = train(small_labeled, CONFIG, oracle=oracle)
    m = result.metrics
    assert m["model"]["roc_auc"] >= 0.85 * m["oracle"]["roc_auc"]
    assert m["model"]["roc_auc"] >= m["health_score"]["roc_auc"] - 0.02
    assert m["model"]["ece"] <= 0.05


def test_first_model_is_promoted_and_an_identical_retrain_is_refused(
    small_labeled: pd.DataFrame, tracking: str, tmp_path: Path
) -> None:
    first = train_and_register(small_labeled, CONFIG, tracking_uri=tracking,
                               metrics_out=tmp_path / "metrics.json")  # fmt: skip
    assert first.decision.promoted, first.decision.reason
    assert (tmp_path / "metrics.json").exists()
    second = train_and_register(small_labeled, CONFIG, tracking_uri=tracking)
    assert not second.decision.promoted
    assert "inside the noise" in second.decision.reason
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("churn-model", CHAMPION).version) == first.version
    run = client.get_run(second.run_id)
    assert run.data.tags["promoted"] == "False"
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"metrics.json", "model_card.md", "plots"} <= artifacts


def test_a_model_that_loses_to_the_health_score_stays_a_challenger(
    small_labeled: pd.DataFrame, tracking: str
) -> None:
    result = train(small_labeled, CONFIG)
    result.metrics["model"] = {**result.metrics["model"], "roc_auc": 0.5}
    decision = promotion_gate("churn-model", "7", result, small_labeled)
    assert not decision.promoted and "health score" in decision.reason


def test_the_registered_pyfunc_scores_like_the_model(
    small_labeled: pd.DataFrame, tracking: str
) -> None:
    report = train_and_register(small_labeled, CONFIG, tracking_uri=tracking)
    model, version = load_registered("churn-model", CHAMPION)
    rows = small_labeled.head(20)
    pyfunc = mlflow.pyfunc.load_model(f"models:/churn-model@{CHAMPION}")
    scored = pyfunc.predict(rows[model.features])
    expected = model.probability(model.encode(rows))
    assert version == report.version
    assert scored["churn_probability"].to_numpy() == pytest.approx(expected)
    assert set(scored["tier"]) <= {"healthy", "low", "medium", "high"}

"""The promotion gate compares like with like and promotes only a real improvement.

Every refusal leaves the previous champion in place (what serving loads) and says why in one
sentence, on the decision and in MLflow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from features.engine import build_labeled_set
from features.labels import LabelSpec
from features.pipeline import default_as_of, label_record
from training.evaluation import evaluate
from training.fit import DEFAULT_PARAMS, FitConfig
from training.gate import paired_auc_gain
from training.pipeline import TrainConfig, TrainResult, train
from training.registry import CHAMPION, configure, load_registered, promotion_gate
from training.workflow import train_and_register

FAST = TrainConfig(valid_dates=2, capacity_search=False, fit=FitConfig(max_trees=150))
# a deliberately weak recipe: ten stumps (beats the health score, learns little)
WEAK = replace(FAST, fit=FitConfig(max_trees=10, params={**DEFAULT_PARAMS, "num_leaves": 2}))


@pytest.fixture(scope="module")
def larger_labeled(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A company large enough that a real gain is distinguishable from noise on its test rows."""
    from features.contract import parse_tables
    from features.generator import generate_world

    tables = parse_tables(generate_world(5000, 16, seed=5).tables)
    return build_labeled_set(tables, default_as_of(tables), LabelSpec())


@pytest.fixture()
def tracking(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    configure(uri, tmp_path / "artifacts")
    return uri


def champion_version() -> str:
    return str(MlflowClient().get_model_version_by_alias("churn-model", CHAMPION).version)


def refused(report: object, first: str) -> str:
    """The refusal's reason, after checking the old champion is still the one served."""
    decision = report.decision  # type: ignore[attr-defined]
    assert not decision.promoted
    assert champion_version() == first
    _served, version = load_registered("churn-model", CHAMPION)  # what serving loads
    assert version == first
    tags = MlflowClient().get_run(report.run_id).data.tags  # type: ignore[attr-defined]
    assert tags["promoted"] == "False" and tags["gate"] == decision.reason
    assert decision.reason.count(". ") == 0 and decision.reason.endswith(".")  # one sentence
    return str(decision.reason)


def test_a_real_improvement_is_promoted_over_a_weak_champion(
    larger_labeled: pd.DataFrame, tracking: str
) -> None:
    weak = train_and_register(larger_labeled, WEAK, tracking_uri=tracking)
    assert weak.decision.promoted, weak.decision.reason
    strong = train_and_register(larger_labeled, FAST, tracking_uri=tracking)
    assert strong.decision.promoted, strong.decision.reason
    assert "beats champion v1" in strong.decision.reason and "interval +" in strong.decision.reason
    assert champion_version() == strong.version


def test_a_different_horizon_is_refused_and_the_champion_keeps_serving(
    small_labeled: pd.DataFrame, small_tables: object, tracking: str
) -> None:
    first = train_and_register(small_labeled, FAST, tracking_uri=tracking)
    labeled_30 = build_labeled_set(small_tables, default_as_of(small_tables),  # type: ignore[arg-type]
                                   LabelSpec(horizon_days=30))  # fmt: skip
    record = label_record(LabelSpec(horizon_days=30), pd.Timestamp("2030-01-01").date(),
                          labeled_30)  # fmt: skip
    second = train_and_register(labeled_30, FAST, tracking_uri=tracking, record=record)
    reason = refused(second, first.version)
    assert "30 days" in reason and "90 days" in reason and "another model name" in reason


def test_a_model_of_another_export_is_refused(small_labeled: pd.DataFrame, tracking: str) -> None:
    first = train_and_register(small_labeled, FAST, tracking_uri=tracking)
    record = {**label_record(LabelSpec(), pd.Timestamp("2030-01-01").date(), small_labeled),
              "origin": "cdnow"}  # fmt: skip
    second = train_and_register(small_labeled, FAST, tracking_uri=tracking, record=record)
    reason = refused(second, first.version)
    assert "'cdnow' export" in reason and "'export'" in reason


def test_a_gain_inside_the_noise_is_refused(small_labeled: pd.DataFrame, tracking: str) -> None:
    first = train_and_register(small_labeled, FAST, tracking_uri=tracking)
    other_seed = replace(FAST, fit=replace(FAST.fit, seed=7))  # same recipe, another draw
    second = train_and_register(small_labeled, other_seed, tracking_uri=tracking)
    reason = refused(second, first.version)
    assert "inside the noise" in reason and "paired-bootstrap interval" in reason


def miscalibrated(result: TrainResult, factor: float) -> TrainResult:
    """The same challenger with its Platt intercept moved: odds ``factor`` times too high."""
    assert result.heldout is not None
    a, b = result.heldout.platt
    test = result.test.copy()
    logit = np.log(test["p_model"] / (1 - test["p_model"])) + np.log(factor)
    test["p_model"] = 1 / (1 + np.exp(-logit))
    result.model.platt = (a, b + float(np.log(factor)))
    metrics = {**result.metrics, "model": evaluate(test["churned"].to_numpy(),
                                                    test["p_model"].to_numpy(), None)}  # fmt: skip
    return replace(result, test=test, metrics=metrics)


def test_a_worse_calibrated_model_is_refused_even_when_it_ranks_better(
    larger_labeled: pd.DataFrame, tracking: str
) -> None:
    weak = train_and_register(larger_labeled, WEAK, tracking_uri=tracking)
    challenger = miscalibrated(train(larger_labeled, FAST), factor=3.0)
    decision = promotion_gate("churn-model", "2", challenger, larger_labeled, FAST)
    assert not decision.promoted
    assert "calibration error" in decision.reason and "tolerance" in decision.reason
    assert champion_version() == weak.version


def test_paired_bootstrap_sees_a_real_gain_and_not_a_tie() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.2).astype(int)
    good = y + rng.normal(0, 1.0, len(y))
    worse = y + rng.normal(0, 1.6, len(y))
    gain, lower, upper = paired_auc_gain(y, good, worse, replicates=400)
    assert lower > 0 and lower < gain < upper
    _, lower, upper = paired_auc_gain(y, good, good, replicates=400)
    assert lower == upper == 0

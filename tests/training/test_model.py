"""Explanations are exact TreeSHAP and add up to the calibrated probability the user sees."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import shap

from training.model import ChurnModel, ScoreMap


@pytest.fixture(scope="module")
def model() -> ChurnModel:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    logit = 1.5 * np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2]) - 2
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "max_depth": 5, "seed": 0,
              "deterministic": True, "verbosity": -1, "num_threads": 1}  # fmt: skip
    names = ["a", "b", "c", "d", "plan"]
    booster = lgb.train(params, lgb.Dataset(X, y, feature_name=names), num_boost_round=60)
    return ChurnModel(booster, names, {"plan": ["basic", "pro"]}, (0.8, -0.3),
                      ScoreMap((0.05, 0.1, 0.2)), 90, "contractual")  # fmt: skip


def test_contributions_match_shap_tree_explainer_to_1e_6(model: ChurnModel) -> None:
    X = np.random.default_rng(1).normal(size=(200, 5))
    raw = model.booster.predict(X, pred_contrib=True)
    explainer = shap.TreeExplainer(model.booster)
    expected = explainer.shap_values(X)
    expected = expected[1] if isinstance(expected, list) else expected
    np.testing.assert_allclose(raw[:, :-1], expected, atol=1e-6)
    np.testing.assert_allclose(raw[:, -1], np.ravel(explainer.expected_value)[-1], atol=1e-6)


def test_raw_contributions_sum_to_the_margin(model: ChurnModel) -> None:
    X = np.random.default_rng(2).normal(size=(100, 5))
    raw = model.booster.predict(X, pred_contrib=True)
    np.testing.assert_allclose(raw.sum(axis=1), model.margin(X), atol=1e-9)


def test_calibrated_contributions_plus_base_give_the_served_probability(model: ChurnModel) -> None:
    X = np.random.default_rng(3).normal(size=(100, 5))
    contrib = model.contributions(X)
    logit = contrib.sum(axis=1)
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), model.probability(X), atol=1e-12)


def test_encoding_maps_categories_to_codes_and_unknowns_to_missing(model: ChurnModel) -> None:
    frame = pd.DataFrame({"a": [1.0, None], "b": [2, 3], "c": [0, 0], "d": [0, 0],
                          "plan": ["pro", "gold"]})  # fmt: skip
    X = model.encode(frame)
    assert X[0, 4] == 1 and np.isnan(X[1, 4]) and np.isnan(X[1, 0])
    row = model.encode_row({"a": 1.0, "b": 2, "c": 0, "d": 0, "plan": "pro"})
    np.testing.assert_array_equal(row, X[:1])


def test_health_score_follows_the_anchors_and_tiers(model: ChurnModel) -> None:
    health = model.health(np.array([0.0, 0.05, 0.1, 0.2, 1.0]))
    np.testing.assert_allclose(health, [100, 80, 60, 40, 0])


def test_save_and_load_round_trip_gives_identical_scores(model: ChurnModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    X = np.random.default_rng(4).normal(size=(50, 5))
    loaded = ChurnModel.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.contributions(X), model.contributions(X))
    assert loaded.categories == model.categories and loaded.platt == model.platt


def test_health_is_whole_points_so_the_tier_matches_the_number_shown(model: ChurnModel) -> None:
    """A probability just past the 40-point anchor rounds to 40: shown as 40, tier medium."""
    from training.health_score import tier_of

    health = model.health(np.array([0.2001, 0.0501, 0.09]))
    np.testing.assert_array_equal(health, np.round(health))
    assert list(tier_of(health)) == ["medium", "healthy", "low"]

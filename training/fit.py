"""Fitting: LightGBM with early stopping, Platt calibration, and the logistic-regression baseline.

Seeds everywhere and LightGBM's deterministic mode: the same labeled set gives the same model file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import ConfigDict, with_config
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.catalog import BY_NAME

# Defaults; the tree shape (num_leaves, max_depth, min_child_samples) and the number of trees
# are chosen per data set on the validation window by training.capacity within an explanation
# budget. These shape values are used only when the search is off (capacity_search: false).
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "max_depth": 3,
    "min_child_samples": 40,
    "min_split_gain": 0.0,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "cat_smooth": 10.0,
    "max_cat_to_onehot": 8,
}
MAX_TREES = 2000  # a cap; early stopping on the validation log loss decides
EARLY_STOPPING = 50


@with_config(ConfigDict(extra="forbid"))  # read from the training config: no unknown keys
@dataclass
class FitConfig:
    """What a data scientist may tune; everything else is fixed for reproducibility."""

    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    max_trees: int = MAX_TREES
    early_stopping: int = EARLY_STOPPING
    seed: int = 42
    # one thread: measured on the 2-core CI machine shared by several jobs, 2 OpenMP threads
    # took 52 ms per boosting round against 23 ms for one (the threads spin waiting for a core)
    num_threads: int = 1
    # none | sqrt | balanced: weight of churners vs retained. Default none: measured on the demo
    # world, weighting lowered ROC-AUC (0.707 -> 0.703) and only distorts what Platt must undo.
    imbalance: Literal["none", "sqrt", "balanced"] = "none"


def categorical_levels(frame: pd.DataFrame, features: list[str]) -> dict[str, list[str]]:
    """Levels of every non-numeric feature, sorted so codes are stable across runs."""
    levels: dict[str, list[str]] = {}
    for name in features:
        column = frame[name]
        info = BY_NAME.get(name)
        if (info is not None and info.kind == "categorical") or not pd.api.types.is_numeric_dtype(
            column
        ):
            values = column.dropna().astype("string").unique()
            levels[name] = sorted(str(v) for v in values)
    return levels


def positive_weight(y: np.ndarray, imbalance: str) -> float:
    pos = max(float(y.sum()), 1.0)
    neg = max(float(len(y) - y.sum()), 1.0)
    if imbalance == "balanced":
        return neg / pos
    if imbalance == "sqrt":
        return float(np.sqrt(neg / pos))
    return 1.0


def _params(config: FitConfig, y: np.ndarray) -> dict[str, Any]:
    """The LightGBM parameters every fit shares: seeded, deterministic, quiet."""
    return {
        **config.params,
        "seed": config.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.num_threads,
        "verbosity": -1,
        "scale_pos_weight": positive_weight(y, config.imbalance),
    }


def fit_booster(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    features: list[str],
    categorical: list[str],
    config: FitConfig,
) -> lgb.Booster:
    """LightGBM with early stopping on the validation window's log loss."""
    params = {
        **_params(config, y_train),
        # weighted training inflates probabilities, so its log loss would stop too early;
        # the weighted variants early-stop on AUC (calibration happens afterwards anyway)
        "metric": "binary_logloss" if config.imbalance == "none" else "auc",
    }
    cat_idx = [features.index(c) for c in categorical]
    train = lgb.Dataset(
        X_train, y_train, feature_name=features, categorical_feature=cat_idx, free_raw_data=False
    )
    valid = lgb.Dataset(X_valid, y_valid, reference=train)
    booster = lgb.train(
        params,
        train,
        num_boost_round=config.max_trees,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(config.early_stopping, verbose=False)],
    )
    # keep only the trees up to the best iteration: smaller file, cheaper TreeSHAP
    best = booster.best_iteration or booster.num_trees()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def fit_fixed(
    X: np.ndarray,
    y: np.ndarray,
    features: list[str],
    categorical: list[str],
    config: FitConfig,
    trees: int,
) -> lgb.Booster:
    """LightGBM with a fixed number of trees (a refit of a recipe chosen elsewhere)."""
    params = _params(config, y)
    cat_idx = [features.index(c) for c in categorical]
    data = lgb.Dataset(X, y, feature_name=features, categorical_feature=cat_idx)
    return lgb.train(params, data, num_boost_round=max(int(trees), 1))


def fit_platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic calibration of the raw margin: P(churn) = sigmoid(a * margin + b)."""
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(margin.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def fit_logistic(
    train: pd.DataFrame, y: np.ndarray, features: list[str], categorical: list[str], seed: int
) -> Pipeline:
    """Baseline: logistic regression on standardized features (median-imputed + missing flags)."""
    numeric = [f for f in features if f not in categorical]
    transform = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                ),
                categorical,
            ),
        ]
    )
    model = Pipeline(
        [
            ("prep", transform),
            ("lr", LogisticRegression(C=0.5, max_iter=2000, random_state=seed)),
        ]
    )
    model.fit(logistic_frame(train, features, categorical), y)
    return model


def logistic_frame(
    frame: pd.DataFrame, features: list[str], categorical: list[str]
) -> pd.DataFrame:
    out = frame[features].copy()
    for name in categorical:
        out[name] = out[name].astype("object").where(out[name].notna(), "missing")
    return out

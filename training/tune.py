"""Optional hyper-parameter search with optuna (``churn train --tune N``).

Searches on the training and validation windows only (the test window is never seen), with a
seeded TPE sampler so the same data and trial count give the same parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss

from training.fit import categorical_levels, fit_booster
from training.model import ChurnModel, ScoreMap
from training.pipeline import TrainConfig, usable_features
from training.split import make_split


def tune_params(labeled: pd.DataFrame, config: TrainConfig, trials: int) -> dict[str, Any]:
    """Best LightGBM parameters by validation log loss over ``trials`` seeded trials."""
    labeled = labeled.reset_index(drop=True)
    split = make_split(labeled, config.horizon_days, config.lead_days,
                              config.test_dates, config.valid_dates, config.fit.seed)  # fmt: skip
    features, _ = usable_features(labeled, split.train)
    levels = categorical_levels(labeled.loc[split.train], features)
    encoder = ChurnModel(None, features, levels, (1.0, 0.0), ScoreMap((0.1, 0.2, 0.4)),  # type: ignore[arg-type]
                         config.horizon_days, config.label)  # fmt: skip
    X = encoder.encode(labeled)
    y = labeled["churned"].to_numpy(np.int64)

    def objective(trial: optuna.Trial) -> float:
        params = {
            **config.fit.params,
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 63, log=True),
            "max_depth": trial.suggest_int("max_depth", 2, 8),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
        }
        fit = type(config.fit)(**{**config.fit.__dict__, "params": params})
        booster = fit_booster(X[split.train], y[split.train], X[split.valid], y[split.valid],
                              features, list(levels), fit)  # fmt: skip
        margin = np.asarray(booster.predict(X[split.valid], raw_score=True))
        return float(log_loss(y[split.valid], 1 / (1 + np.exp(-margin)), labels=[0, 1]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=config.fit.seed))
    study.optimize(objective, n_trials=trials)
    return {**config.fit.params, **study.best_params}

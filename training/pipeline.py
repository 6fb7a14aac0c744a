"""Training end to end on a labeled set: split, fit, calibrate, compare with baselines, explain.

Pure: a labeled set and a config in, a :class:`TrainResult` out. Logging to MLflow and the
promotion gate live in ``training.registry``; the CLI and notebooks call both.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ConfigDict, with_config

from features.catalog import BY_NAME
from features.engine import catalog_of, feature_columns
from features.errors import ChurnError, InsufficientDataError
from features.pipeline import DEFAULT_ORIGIN, fingerprint
from training.capacity import OOF_FOLDS, Candidate, refit_calibrated, search_capacity, shap_cost_ms
from training.evaluation import evaluate
from training.fit import (
    FitConfig,
    categorical_levels,
    fit_booster,
    fit_logistic,
    fit_platt,
    logistic_frame,
)
from training.health_score import HealthScore, load_config
from training.model import ChurnModel, ScoreMap
from training.split import Split, make_split, usable_rows

LABEL_FIELDS = {"horizon_days": "horizon_days", "lead_days": "lead_days", "label": "kind"}
"""Config field -> label record key: the fields a labeled set decides (see ``resolve_label``)."""


@with_config(ConfigDict(extra="forbid"))  # read from the training config: no unknown keys
@dataclass
class TrainConfig:
    """Training options (``churn train --config FILE`` reads them from YAML).

    ``horizon_days``, ``lead_days`` and ``label`` belong to the labeled set, which carries them
    in its Parquet metadata; set here they only check that the set is what you expect.
    """

    horizon_days: int = 90
    lead_days: int = 0
    label: str = "contractual"
    test_dates: int = 1
    valid_dates: int = 2
    fit: FitConfig = field(default_factory=FitConfig)
    health_score_config: Path | None = None
    shap_sample: int = 2000
    capacity_search: bool = True
    explain_budget_ms: float = 0.3
    refit: bool = True
    gate_bootstrap: int = 1000
    gate_confidence: float = 0.95
    ece_tolerance: float = 0.01
    survival: bool = True  # fit the time-to-churn model beside the classifier (churn train)
    survival_cap_days: int = 365


@dataclass
class TrainResult:
    """Everything a run produces: the model, the split, the metrics and the test predictions."""

    model: ChurnModel
    split: Split
    metrics: dict[str, dict[str, float]]
    test: pd.DataFrame  # customer_id, as_of, churned, mrr?, p_model, risk_health, p_logistic
    importance: pd.DataFrame  # feature, group, mean |contribution| on the test window
    contributions: np.ndarray  # test sample x (k + 1), calibrated log-odds scale
    sample_values: pd.DataFrame  # feature values of that sample
    data_fingerprint: str
    dropped_features: list[str]
    heldout: ChurnModel | None = None  # the model scored on the test window (before the refit)
    candidates: list[Candidate] = field(default_factory=list)  # the capacity search, if run
    shap_ms: float = float("nan")  # measured TreeSHAP cost per customer (timing: not in the file)
    survival: Any = None  # training.survival.SurvivalResult when the time-to-churn model was fit
    survival_note: str = ""  # why there is none, when there is none


def resolve_label(
    config: TrainConfig, record: dict[str, Any] | None, explicit: set[str] | None = None
) -> TrainConfig:
    """``config`` with its label fields taken from the labeled set's ``record``.

    ``explicit``: the fields the user set (a config file's keys); one that contradicts the
    record is an error naming both values, since training a 90-day model on 30-day labels would
    stamp the wrong horizon on every score.
    """
    if record is None:
        return config
    values = {}
    for name, key in LABEL_FIELDS.items():
        ours, theirs = getattr(config, name), record[key]
        if explicit is not None and name in explicit and ours != theirs:
            raise ChurnError(
                f"The training config sets {name} = {ours!r} but the labeled set was built with "
                f"{key} = {theirs!r} (its Parquet metadata). Rebuild the set with `churn "
                f"features` for {ours!r}, or remove {name} from the config."
            )
        values[name] = theirs
    return replace(config, **values)


def record_of(config: TrainConfig, record: dict[str, Any] | None) -> dict[str, Any]:
    """The label spec a model was trained on: the set's record, else what the config says."""
    if record is not None:
        return dict(record)
    return {"kind": config.label, "horizon_days": config.horizon_days,
            "lead_days": config.lead_days}  # fmt: skip


def usable_features(frame: pd.DataFrame, train_mask: np.ndarray) -> tuple[list[str], list[str]]:
    """Features with information in the training rows, each once, in an order set by the data.

    Constant or empty columns are dropped. A column equal to another on the training rows is
    kept once (the hand-written catalog feature if one of them is, else the first by name):
    twins would split their credit in the explanations. The kept columns are ordered by a
    fingerprint of their training values, not by name or position, so an export whose columns
    are renamed or reordered trains the same model (the vocabulary-invariance test).
    """
    dropped: list[str] = []
    train = frame.loc[train_mask]
    by_content: dict[int, list[str]] = {}
    for name in feature_columns(frame):
        if train[name].nunique(dropna=True) <= 1:
            dropped.append(name)
            continue
        digest = int(pd.util.hash_pandas_object(train[name], index=False).to_numpy().sum())
        by_content.setdefault(digest, []).append(name)
    keep: list[str] = []
    for digest in sorted(by_content):
        twins = sorted(by_content[digest], key=lambda n: (n not in BY_NAME, n))
        keep.append(twins[0])
        dropped += twins[1:]
    return keep, dropped


def train(
    labeled: pd.DataFrame,
    config: TrainConfig | None = None,
    oracle: pd.Series | None = None,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Fit the calibrated LightGBM model and score it and both baselines on the test window.

    ``oracle`` (synthetic data only): the true churn probability of each labeled row, aligned
    with ``labeled``; its ROC-AUC on the test window is the best any model can reach.
    ``record``: the labeled set's label record (``features.pipeline.label_record``); its
    horizon, lead and kind win over ``config`` and travel with the model.
    """
    config = resolve_label(config or TrainConfig(), record)
    labeled = labeled.reset_index(drop=True)
    split = make_split(
        labeled,
        config.horizon_days,
        config.lead_days,
        config.test_dates,
        config.valid_dates,
        seed=config.fit.seed,
    )
    features, dropped = usable_features(labeled, split.train)
    if not features:
        raise InsufficientDataError("No feature varies in the training rows; nothing to learn.")
    # category levels from every row: a vocabulary of inputs, not of labels, so no leakage;
    # the held-out model and the refit then share one encoding
    levels = categorical_levels(labeled, features)
    categorical = list(levels)
    y = labeled["churned"].to_numpy(np.int64)
    train_rate = float(y[split.train].mean())
    heldout = ChurnModel(
        booster=None,  # type: ignore[arg-type]
        features=features,
        categories=levels,
        platt=(1.0, 0.0),
        score_map=ScoreMap.from_base_rate(train_rate),
        horizon_days=config.horizon_days,
        label=config.label,
        catalog={n: e for n, e in catalog_of(labeled).items() if n in features},
        vocabulary=dict(labeled.attrs.get("vocabulary", {})),
    )
    X = heldout.encode(labeled)
    fit = config.fit
    candidates: list[Candidate] = []
    if config.capacity_search:
        heldout.booster, chosen, candidates = search_capacity(
            X[split.train], y[split.train], X[split.valid], y[split.valid],
            features, categorical, config.fit, config.explain_budget_ms,
        )  # fmt: skip
        fit = replace(config.fit, params={**config.fit.params, **chosen.params})
    else:
        heldout.booster = fit_booster(
            X[split.train], y[split.train], X[split.valid], y[split.valid],
            features, categorical, config.fit,
        )  # fmt: skip
    heldout.platt = fit_platt(heldout.margin(X[split.valid]), y[split.valid])
    trees = int(heldout.booster.num_trees())  # cut to the best iteration when fitted
    shap_ms = shap_cost_ms(heldout.booster, X[split.valid])

    test = labeled.loc[split.test, ["customer_id", "as_of", "churned"]].copy()
    test["p_model"] = heldout.probability(X[split.test])
    health = HealthScore.fit(labeled.loc[split.train], load_config(config.health_score_config))
    test["risk_health"] = health.risk(labeled.loc[split.test]).to_numpy()
    logistic = fit_logistic(labeled.loc[split.train], y[split.train], features, categorical,
                            config.fit.seed)  # fmt: skip
    test["p_logistic"] = logistic.predict_proba(
        logistic_frame(labeled.loc[split.test], features, categorical)
    )[:, 1]
    mrr = labeled.loc[split.test, "mrr"].to_numpy() if "mrr" in labeled.columns else None
    if mrr is not None:
        test["mrr"] = mrr
    y_test = test["churned"].to_numpy()
    metrics = {
        "model": evaluate(y_test, test["p_model"].to_numpy(), mrr),
        "health_score": evaluate(y_test, test["risk_health"].to_numpy(), mrr, probability=False),
        "logistic": evaluate(y_test, test["p_logistic"].to_numpy(), mrr),
    }
    if oracle is not None:
        test["p_oracle"] = oracle.to_numpy()[split.test]
        metrics["oracle"] = evaluate(y_test, test["p_oracle"].to_numpy(), mrr)
        metrics["model"]["roc_auc_vs_oracle"] = (
            metrics["model"]["roc_auc"] / metrics["oracle"]["roc_auc"]
        )

    usable = usable_rows(labeled)
    dates = labeled.loc[usable, "as_of"]
    if config.refit:
        booster, platt = refit_calibrated(
            X[usable], y[usable], labeled.loc[usable, "customer_id"].to_numpy(),
            features, categorical, fit, trees,
        )  # fmt: skip
        model = ChurnModel(booster, features, levels, platt,
                           ScoreMap.from_base_rate(float(y[usable].mean())),
                           config.horizon_days, config.label,
                           catalog=heldout.catalog,
                           vocabulary=heldout.vocabulary)  # fmt: skip
        fitted_on = (
            f"refit on all {int(usable.sum()):,} complete labeled rows "
            f"({dates.min():%Y-%m-%d}..{dates.max():%Y-%m-%d}, {dates.nunique()} as-of dates) "
            f"with {trees} trees; Platt map from {OOF_FOLDS}-fold customer-grouped out-of-fold "
            "margins"
        )
        fitted_until = f"{dates.max():%Y-%m-%d}"
    else:
        model = heldout
        train_dates = labeled.loc[split.train, "as_of"]
        fitted_on = (
            f"the held-out model itself: fitted on the training set ({int(split.train.sum()):,} "
            "rows), Platt map on the validation set"
        )
        fitted_until = f"{max(train_dates.max(), labeled.loc[split.valid, 'as_of'].max()):%Y-%m-%d}"
    rng = np.random.default_rng(config.fit.seed)
    test_idx = np.flatnonzero(split.test)
    sample = np.sort(rng.choice(test_idx, min(config.shap_sample, len(test_idx)), replace=False))
    contributions = heldout.contributions(X[sample])
    importance = pd.DataFrame(
        {
            "feature": features,
            "group": [model.info(f).group for f in features],
            "mean_abs_contribution": np.abs(contributions[:, :-1]).mean(axis=0),
        }
    ).sort_values("mean_abs_contribution", ascending=False, kind="stable")
    model.meta.update(
        {
            "label_spec": record_of(config, record),
            "origin": (record or {}).get("origin", DEFAULT_ORIGIN),
            "split": split.description,
            "split_kind": split.kind,
            "train_rate": train_rate,
            "dropped_features": dropped,
            "trees": trees,
            "params": {k: v for k, v in fit.params.items()},
            "imbalance": fit.imbalance,
            "fitted_on": fitted_on,
            "fitted_until": fitted_until,
            "heldout": {k: metrics["model"][k] for k in ("roc_auc", "pr_auc", "ece")},
        }
    )
    return TrainResult(
        model=model,
        split=split,
        metrics=metrics,
        test=test.reset_index(drop=True),
        importance=importance.reset_index(drop=True),
        contributions=contributions,
        sample_values=labeled.loc[sample, features].reset_index(drop=True),
        data_fingerprint=fingerprint(labeled),
        dropped_features=dropped,
        heldout=heldout,
        candidates=candidates,
        shap_ms=shap_ms,
    )


def summary_row(result: TrainResult) -> dict[str, Any]:
    """The headline numbers of a run, for logs and notes."""
    m = result.metrics
    return {
        "split": result.split.description,
        "roc_auc": m["model"]["roc_auc"],
        "health_score_roc_auc": m["health_score"]["roc_auc"],
        "logistic_roc_auc": m["logistic"]["roc_auc"],
        "ece": m["model"]["ece"],
    }

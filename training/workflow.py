"""Retrain in one call: labeled set -> model -> plots, card, metrics -> MLflow run -> gate.

The CLI (``churn train``) and the notebooks both call :func:`train_and_register`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from features.errors import ChurnError
from features.io import atomic_path
from training import plots
from training.card import model_card
from training.evaluation import evaluate
from training.health_score import HealthScore, load_config
from training.pipeline import TrainConfig, TrainResult, resolve_label, train
from training.registry import GateDecision, configure, load_registered, log_and_register
from training.survival import TrueSurvival, fit_beside

matplotlib.use("Agg")


@dataclass(frozen=True)
class TrainingReport:
    result: TrainResult
    run_id: str
    version: str
    decision: GateDecision


def oracle_probabilities(labeled: pd.DataFrame, truth_dir: Path, horizon_days: int) -> pd.Series:
    """The generator's true churn probability for each labeled row (synthetic data only)."""
    from features.generator import oracle_scores

    hazard = pd.read_parquet(truth_dir / "hazard.parquet")
    out = pd.Series(np.nan, index=labeled.index)
    complete = labeled["label_complete"].to_numpy(dtype=bool)
    for as_of, rows in labeled[complete].groupby("as_of"):
        try:
            scores = oracle_scores(hazard, pd.Timestamp(str(as_of)).date(), horizon_days,
                                   rows["customer_id"].astype(str).tolist())  # fmt: skip
        except ChurnError:  # the horizon runs past the simulated period: no oracle there
            continue
        out.loc[rows.index] = scores.to_numpy()
    return out


def true_survival(truth_dir: Path) -> TrueSurvival | None:
    """The generator's true S(t) of labeled rows (synthetic data only), else None."""
    from features.generator import oracle_survival

    path = truth_dir / "hazard.parquet"
    if not path.exists():
        return None
    hazard = pd.read_parquet(path)

    def truth(rows: pd.DataFrame, days: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), len(days)))
        for as_of, index in rows.groupby("as_of").indices.items():
            ids = rows["customer_id"].astype(str).iloc[index].tolist()
            out[index] = oracle_survival(hazard, pd.Timestamp(str(as_of)).date(), days, ids)
        return out

    return truth


def figures(result: TrainResult) -> dict[str, Any]:
    """Plots logged with every run: ROC, PR, calibration, gains, lift, SHAP."""
    test = result.test
    y = test["churned"].to_numpy()
    ranking = {"model": test["p_model"].to_numpy(), "logistic": test["p_logistic"].to_numpy(),
               "health score": test["risk_health"].to_numpy()}  # fmt: skip
    probabilities = {"model": ranking["model"], "logistic": ranking["logistic"]}
    return {
        "roc": plots.plot_roc(y, ranking),
        "precision_recall": plots.plot_precision_recall(y, ranking),
        "calibration": plots.plot_calibration(y, probabilities),
        "cumulative_gains": plots.plot_gains(y, ranking),
        "lift": plots.plot_lift(y, ranking),
        "shap_beeswarm": plots.plot_shap_beeswarm(result.contributions, result.sample_values),
        "shap_dependence": plots.plot_shap_dependence(result.contributions, result.sample_values),
    }


def train_and_register(
    labeled: pd.DataFrame,
    config: TrainConfig,
    *,
    model_name: str = "churn-model",
    tracking_uri: str | None = None,
    artifact_root: Path | None = None,
    truth_dir: Path | None = None,
    data_description: str = "",
    label_description: str = "",
    metrics_out: Path | None = None,
    record: dict[str, Any] | None = None,
) -> TrainingReport:
    """Train, log everything to MLflow, register, and apply the promotion gate.

    ``record``: the labeled set's label record; its horizon, lead and kind are the model's.
    """
    configure(tracking_uri, artifact_root)  # first: a wrong store fails before minutes of training
    config = resolve_label(config, record)
    oracle = None
    if truth_dir is not None and (truth_dir / "hazard.parquet").exists():
        oracle = oracle_probabilities(labeled, truth_dir, config.horizon_days)
    result = train(labeled, config, oracle=oracle, record=record)
    if config.survival:
        fit_beside(result, labeled, config.fit, config.survival_cap_days,
                   true_survival(truth_dir) if truth_dir is not None else None)  # fmt: skip
    card = model_card(result, label_description or config.label, data_description)
    params = {
        "horizon_days": config.horizon_days,
        "lead_days": config.lead_days,
        "label": config.label,
        "test_dates": config.test_dates,
        "valid_dates": config.valid_dates,
        **{f"lgb.{k}": v for k, v in config.fit.params.items()},
        **{f"fit.{k}": v for k, v in asdict(config.fit).items() if k != "params"},
        "capacity_search": config.capacity_search,
        "explain_budget_ms": config.explain_budget_ms,
        "refit": config.refit,
        "features": len(result.model.features),
        "trees": result.model.meta.get("trees"),
        **{
            f"chosen.{k}": result.model.meta["params"].get(k)
            for k in ("num_leaves", "max_depth", "min_child_samples")
        },
        "shap_ms_per_customer": round(float(result.shap_ms), 4),
        "fitted_on": result.model.meta["fitted_on"][:500],
        "origin": result.model.meta.get("origin"),
    }
    figs = figures(result)
    try:
        run_id, version, decision = log_and_register(
            result, labeled, model_name, params, figs, card, config
        )
    finally:
        import matplotlib.pyplot as plt

        for fig in figs.values():
            plt.close(fig)
    if metrics_out is not None:
        with atomic_path(metrics_out) as tmp:
            tmp.write_text(json.dumps(all_metrics(result), indent=2, sort_keys=True) + "\n")
    return TrainingReport(result, run_id, version, decision)


def all_metrics(result: TrainResult) -> dict[str, dict[str, float]]:
    """The classifier's metrics and, when fitted, the time-to-churn models' (``survival.*``)."""
    metrics = dict(result.metrics)
    if result.survival is not None:
        metrics.update({f"survival.{k}": v for k, v in result.survival.metrics.items()})
    return metrics


def evaluate_registered(
    labeled: pd.DataFrame,
    model_ref: str,
    *,
    model_name: str = "churn-model",
    tracking_uri: str | None = None,
    health_score_config: Path | None = None,
    record: dict[str, Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Score a labeled set with a registered model and both baselines, side by side.

    The health score's scales are fitted on the rows before the evaluated window would be
    ideal; with only a labeled set at hand they are fitted on the rows of the earliest half of
    its as-of dates, and the metrics are computed on the latest as-of date with complete labels.
    """
    configure(tracking_uri)
    model, version = load_registered(model_name, model_ref)
    if record is not None:
        trained = model.meta.get("label_spec", {"horizon_days": model.horizon_days,
                                                "kind": model.label})  # fmt: skip
        for key in ("kind", "horizon_days", "lead_days"):
            if key in trained and trained[key] != record[key]:
                raise ChurnError(
                    f"{model_name} v{version} predicts {key} = {trained[key]!r} but the labeled "
                    f"set was built with {key} = {record[key]!r}; its metrics would measure a "
                    "different question. Build the set with the model's label spec."
                )
    complete = labeled[labeled["label_complete"].astype(bool)]
    if complete.empty:
        raise ChurnError("No rows with complete labels to evaluate on.")
    dates = np.sort(complete["as_of"].unique())
    test = complete[complete["as_of"] == dates[-1]]
    reference = complete[complete["as_of"] < dates[-1]]
    if reference.empty:
        reference = test
    y = test["churned"].to_numpy()
    mrr = test["mrr"].to_numpy() if "mrr" in test.columns else None
    health = HealthScore.fit(reference, load_config(health_score_config))
    from training.fit import categorical_levels, fit_logistic, logistic_frame

    features = [f for f in model.features if f in labeled.columns]
    categorical = list(categorical_levels(reference, features))
    logistic = fit_logistic(reference, reference["churned"].to_numpy(), features, categorical, 0)
    return {
        "model": evaluate(y, model.probability(model.encode(test)), mrr),
        "health_score": evaluate(y, health.risk(test).to_numpy(), mrr, probability=False),
        "logistic": evaluate(
            y, logistic.predict_proba(logistic_frame(test, features, categorical))[:, 1], mrr
        ),
    }

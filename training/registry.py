"""MLflow: log a training run, register the model, and move ``champion`` only through the gate.

The store is embedded: ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(``churn_settings.resolve_tracking_uri`` says what overrides it). The registered model is a
pyfunc that ``mlflow models serve`` can serve; serving loads the same files directly for its
fast path.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from churn_settings import resolve_tracking_uri
from features.catalog import CATALOG_VERSION
from features.errors import ChurnError
from features.tiers import tier_of
from training.model import ChurnModel

EXPERIMENT = "churn"
DEFAULT_ARTIFACT_ROOT = Path("mlruns/artifacts")
CHAMPION = "champion"


class ChurnPyfunc(PythonModel):
    """Feature columns in; calibrated probability, health score and tier out."""

    def load_context(self, context: Any) -> None:
        self.model = ChurnModel.load(Path(context.artifacts["churn_model"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        X = self.model.encode(model_input)
        probability = self.model.probability(X)
        health = self.model.health(probability)
        return pd.DataFrame(
            {"churn_probability": probability, "health_score": health, "tier": tier_of(health)}
        )


def configure(tracking_uri: str | None = None, artifact_root: Path | None = None) -> str:
    """Point MLflow at the store (:func:`churn_settings.resolve_tracking_uri`) and make sure the
    experiment exists.

    A new experiment keeps its artifacts in ``artifact_root`` (default ``mlruns/artifacts``). An
    existing one keeps the folder it was created with, which MLflow cannot move: asking for
    another folder is an error, never artifacts silently written somewhere else.
    """
    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    root = Path(artifact_root or DEFAULT_ARTIFACT_ROOT).resolve()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        root.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(EXPERIMENT, artifact_location=root.as_uri())
    elif artifact_root is not None and experiment.artifact_location != root.as_uri():
        raise ChurnError(
            f"The MLflow experiment '{EXPERIMENT}' in {uri} keeps its artifacts in "
            f"{experiment.artifact_location}, not {root} (CHURN_MLFLOW_ARTIFACT_ROOT); MLflow "
            "cannot move them. Unset CHURN_MLFLOW_ARTIFACT_ROOT to keep that folder, or point "
            "CHURN_MLFLOW_TRACKING_URI at a new store for the new one."
        )
    mlflow.set_experiment(EXPERIMENT)
    return uri


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    reason: str
    version: str
    champion_version: str | None


def load_registered(name: str, ref: str) -> tuple[ChurnModel, str]:
    """``ref`` is an alias (``champion``) or a version number; returns the model and its version."""
    client = MlflowClient()
    try:
        mv = (
            client.get_model_version(name, ref)
            if ref.isdigit()
            else client.get_model_version_by_alias(name, ref)
        )
    except mlflow.exceptions.MlflowException as exc:
        raise ChurnError(
            f"No model '{name}@{ref}' in the registry at {mlflow.get_tracking_uri()}: train one "
            "with `churn train` first."
        ) from exc
    local = mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}")
    return ChurnModel.load(Path(local) / "artifacts" / "churn_model"), str(mv.version)


SPEC_KEYS = ("kind", "lead_days", "gap_days", "free_is_churn")
"""Label-spec fields (besides the horizon) that must match for two models to be compared."""


def refusal_for_spec(model: ChurnModel, champion: ChurnModel, champion_version: str) -> str | None:
    """The one-sentence reason two models answer different questions, or ``None``."""
    if model.horizon_days != champion.horizon_days:
        return (
            f"It predicts churn within {model.horizon_days} days but champion "
            f"v{champion_version} serves {champion.horizon_days} days, and CRMs read the "
            "probability, tier and revenue at risk under that horizon: register it under "
            "another model name (churn train --name ...)."
        )
    ours, theirs = model.meta.get("label_spec", {}), champion.meta.get("label_spec", {})
    for key in SPEC_KEYS:
        if key in ours and key in theirs and ours[key] != theirs[key]:
            return (
                f"Its labels use {key} = {ours[key]!r} but champion v{champion_version}'s use "
                f"{theirs[key]!r}, so they predict different things: register it under another "
                "model name (churn train --name ...)."
            )
    origin, their_origin = model.meta.get("origin", "export"), champion.meta.get("origin", "export")
    if origin != their_origin:
        return (
            f"It was trained on the {origin!r} export but champion v{champion_version} on "
            f"{their_origin!r}, and a model of one export must not serve another's customers: "
            f"register it under another model name (the default for this export is its own)."
        )
    return None


def champion_predictions(
    champion: ChurnModel, labeled: pd.DataFrame, split: Any, reach_days: int, seed: int
) -> tuple[np.ndarray, str]:
    """The champion's probabilities on the challenger's test rows, and how they were made.

    A served champion refit on every complete row may have seen these very test rows; scoring it
    there would favour it unfairly. Then its recipe (shape, trees, features) is refit on the
    challenger's training rows and calibrated on its validation rows, like the challenger.
    """
    test = labeled.loc[split.test]
    fitted_until = champion.meta.get("fitted_until")
    test_start = pd.Timestamp(test["as_of"].min())
    seen = fitted_until is not None and (
        pd.Timestamp(fitted_until) + pd.Timedelta(days=reach_days) > test_start
    )
    if not seen or "params" not in champion.meta:
        return champion.probability(champion.encode(test)), "as served"
    from training.fit import FitConfig, categorical_levels, fit_fixed, fit_platt

    features = [f for f in champion.features if f in labeled.columns]
    levels = categorical_levels(labeled, features)
    recipe = ChurnModel(None, features, levels, (1.0, 0.0), champion.score_map,  # type: ignore[arg-type]
                        champion.horizon_days, champion.label)  # fmt: skip
    X, y = recipe.encode(labeled), labeled["churned"].to_numpy(np.int64)
    fit = FitConfig(params=dict(champion.meta["params"]), seed=seed,
                    imbalance=champion.meta.get("imbalance", "none"))  # fmt: skip
    recipe.booster = fit_fixed(X[split.train], y[split.train], features, list(levels), fit,
                               int(champion.meta["trees"]))  # fmt: skip
    recipe.platt = fit_platt(recipe.margin(X[split.valid]), y[split.valid])
    return recipe.probability(X[split.test]), "its recipe refit on this training window"


def promotion_gate(
    name: str,
    version: str,
    result: Any,
    labeled: pd.DataFrame,
    config: Any = None,
) -> GateDecision:
    """Move ``champion`` to ``version`` only when the two models are comparable and the
    challenger is better beyond noise on the same test rows; otherwise it stays a challenger.

    Refusals, each one sentence: it loses to the health score; it answers a different question
    (horizon, label spec, export); its ROC-AUC gain is inside the paired-bootstrap interval;
    its calibration (ECE) is worse than the champion's beyond ``ece_tolerance``.
    """
    from training.evaluation import evaluate
    from training.gate import paired_auc_gain
    from training.pipeline import TrainConfig

    config = config or TrainConfig()
    client = MlflowClient()
    metrics = result.metrics
    model: ChurnModel = result.model
    ours = metrics["model"]["roc_auc"]
    baseline = metrics["health_score"]["roc_auc"]
    if not ours > baseline:
        return GateDecision(
            False,
            f"Its ROC-AUC {ours:.4f} does not beat the hand-weighted health score "
            f"({baseline:.4f}) on the test window.",
            version,
            None,
        )
    try:
        client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        client.set_registered_model_alias(name, CHAMPION, version)
        return GateDecision(
            True, f"First champion; it beats the health score ({baseline:.4f}).", version, None
        )
    champion, champion_version = load_registered(name, CHAMPION)
    refusal = refusal_for_spec(model, champion, champion_version)
    if refusal is not None:
        return GateDecision(False, refusal, version, champion_version)
    reach = model.horizon_days + int(model.meta.get("label_spec", {}).get("lead_days", 0))
    theirs, how = champion_predictions(
        champion, labeled.reset_index(drop=True), result.split, reach, config.fit.seed
    )
    y = result.test["churned"].to_numpy()
    p_ours = result.test["p_model"].to_numpy()
    gain, lower, upper = paired_auc_gain(
        y, p_ours, theirs, config.gate_bootstrap, config.gate_confidence, config.fit.seed
    )
    their_metrics = evaluate(y, theirs, None)
    level = f"{config.gate_confidence:.0%}"
    if not lower > 0:
        return GateDecision(
            False,
            f"Its ROC-AUC gain of {gain:+.4f} over champion v{champion_version} ({how}) on the "
            f"same {len(y):,} test rows is inside the noise ({level} paired-bootstrap interval "
            f"{lower:+.4f} to {upper:+.4f}), so the champion stays.",
            version,
            champion_version,
        )
    ece, their_ece = metrics["model"]["ece"], their_metrics["ece"]
    if ece > their_ece + config.ece_tolerance:
        return GateDecision(
            False,
            f"Its calibration error (ECE {ece:.4f}) is worse than champion v{champion_version}'s "
            f"({their_ece:.4f}) by more than the tolerance {config.ece_tolerance:.3f}, so its "
            "probabilities and tiers would mislead.",
            version,
            champion_version,
        )
    client.set_registered_model_alias(name, CHAMPION, version)
    return GateDecision(
        True,
        f"Its ROC-AUC {ours:.4f} beats champion v{champion_version} ({how}: "
        f"{their_metrics['roc_auc']:.4f}) by {gain:+.4f} ({level} interval {lower:+.4f} to "
        f"{upper:+.4f}) with ECE {ece:.4f} vs {their_ece:.4f}.",
        version,
        champion_version,
    )


def log_and_register(
    result: Any,
    labeled: pd.DataFrame,
    name: str,
    params: dict[str, Any],
    figures: dict[str, Any],
    model_card: str,
    config: Any = None,
) -> tuple[str, str, GateDecision]:
    """Log a :class:`training.pipeline.TrainResult` as a run, register it, apply the gate.

    Returns (run id, model version, gate decision).
    """
    model: ChurnModel = result.model
    test_rows = labeled.loc[result.split.test]
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.set_tags(
            {
                "git_commit": git_commit(),
                "catalog_version": CATALOG_VERSION,
                "data_fingerprint": result.data_fingerprint,
                "split": result.split.description,
                "origin": str(model.meta.get("origin", "export")),
                "horizon_days": str(model.horizon_days),
            }
        )
        survival = getattr(result, "survival", None)
        metrics = dict(result.metrics)
        if survival is not None:  # the time-to-churn model and its baselines, beside
            metrics.update({f"survival.{k}": v for k, v in survival.metrics.items()})
            mlflow.set_tag("survival_split", survival.description)
        elif getattr(result, "survival_note", ""):
            mlflow.set_tag("survival", result.survival_note[:500])
        for model_name, values in metrics.items():
            mlflow.log_metrics(
                {f"{model_name}.{k}": v for k, v in values.items() if np.isfinite(v)}
            )
        model_dir = model.save(Path(tmp) / "churn_model")
        (Path(tmp) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (Path(tmp) / "model_card.md").write_text(model_card)
        mlflow.log_artifact(str(Path(tmp) / "metrics.json"))
        mlflow.log_artifact(str(Path(tmp) / "model_card.md"))
        result.importance.to_csv(Path(tmp) / "importance.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "importance.csv"))
        from training.monitoring.reference import REFERENCE_ARTIFACT, reference_window

        reference = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        reference_window(labeled, model.features).to_parquet(reference, index=False)
        mlflow.log_artifact(str(reference), str(Path(REFERENCE_ARTIFACT).parent))
        if result.candidates:
            pd.DataFrame([{**c.params, "trees": c.trees, "valid_log_loss": c.valid_log_loss,
                           "shap_ms": c.shap_ms, "within_budget": c.within_budget}
                          for c in result.candidates]).to_csv(Path(tmp) / "capacity.csv",
                                                              index=False)  # fmt: skip
            mlflow.log_artifact(str(Path(tmp) / "capacity.csv"))
        for fig_name, figure in figures.items():
            mlflow.log_figure(figure, f"plots/{fig_name}.png")
        example = test_rows[model.features].head(5)
        probe = ChurnPyfunc()  # only to infer the output schema; the logged one loads from files
        probe.model = model
        signature = infer_signature(example, probe.predict(None, example))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ChurnPyfunc(),
            artifacts={"churn_model": str(model_dir)},
            signature=signature,
            input_example=example,
            registered_model_name=name,
            pip_requirements=[f"lightgbm=={lgb.__version__}", "pandas", "numpy", "scikit-learn"],
        )
        version = str(info.registered_model_version)
        decision = promotion_gate(name, version, result, labeled, config)
        mlflow.set_tags({"promoted": str(decision.promoted), "gate": decision.reason})
        client = MlflowClient()
        client.set_model_version_tag(name, version, "gate", decision.reason)
        return run.info.run_id, version, decision

"""MLflow: log a training run, register the model, and move ``champion`` only through the gate.

The store is embedded: ``sqlite:///mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(``MLFLOW_TRACKING_URI`` overrides). The registered model is a pyfunc that ``mlflow models serve``
can serve; serving loads the same files directly for its fast path.
"""

from __future__ import annotations

import json
import os
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

from features.catalog import CATALOG_VERSION
from features.errors import ChurnError
from training.health_score import tier_of
from training.model import ChurnModel

EXPERIMENT = "churn"
DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
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
    """Point MLflow at the embedded store and make sure the experiment exists.

    An explicit ``tracking_uri`` wins, then ``MLFLOW_TRACKING_URI``, then the embedded default.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        root = Path(artifact_root or "mlruns/artifacts").resolve()
        root.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(EXPERIMENT, artifact_location=root.as_uri())
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


def roc_auc_on(model: ChurnModel, frame: pd.DataFrame) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(frame["churned"], model.probability(model.encode(frame))))


def promotion_gate(
    name: str,
    version: str,
    model: ChurnModel,
    test_rows: pd.DataFrame,
    metrics: dict[str, dict[str, float]],
) -> GateDecision:
    """Move ``champion`` to ``version`` only if it beats the current champion on the same test
    window and beats the hand-weighted health score; otherwise it stays a challenger."""
    client = MlflowClient()
    ours = metrics["model"]["roc_auc"]
    baseline = metrics["health_score"]["roc_auc"]
    if not ours > baseline:
        return GateDecision(
            False,
            f"ROC-AUC {ours:.4f} does not beat the hand-weighted health score ({baseline:.4f})",
            version,
            None,
        )
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        current = None
    if current is not None:
        champion, champion_version = load_registered(name, CHAMPION)
        theirs = roc_auc_on(champion, test_rows)
        if not ours > theirs:
            return GateDecision(
                False,
                f"ROC-AUC {ours:.4f} does not beat champion v{champion_version} ({theirs:.4f}) "
                "on the same test window",
                version,
                champion_version,
            )
        reason = (
            f"ROC-AUC {ours:.4f} beats champion v{champion_version} ({theirs:.4f}) and the health "
            f"score ({baseline:.4f})"
        )
    else:
        champion_version, reason = None, f"first champion; beats the health score ({baseline:.4f})"
    client.set_registered_model_alias(name, CHAMPION, version)
    return GateDecision(True, reason, version, champion_version)


def log_and_register(
    result: Any,
    labeled: pd.DataFrame,
    name: str,
    params: dict[str, Any],
    figures: dict[str, Any],
    model_card: str,
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
            }
        )
        for model_name, values in result.metrics.items():
            mlflow.log_metrics(
                {f"{model_name}.{k}": v for k, v in values.items() if np.isfinite(v)}
            )
        model_dir = model.save(Path(tmp) / "churn_model")
        (Path(tmp) / "metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
        (Path(tmp) / "model_card.md").write_text(model_card)
        mlflow.log_artifact(str(Path(tmp) / "metrics.json"))
        mlflow.log_artifact(str(Path(tmp) / "model_card.md"))
        result.importance.to_csv(Path(tmp) / "importance.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "importance.csv"))
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
        decision = promotion_gate(name, version, model, test_rows, result.metrics)
        mlflow.set_tags({"promoted": str(decision.promoted), "gate": decision.reason})
        client = MlflowClient()
        client.set_model_version_tag(name, version, "gate", decision.reason)
        return run.info.run_id, version, decision

"""Gather what one monitoring run compares, from where the deployment keeps it, and run it.

The champion and its promise come from the MLflow registry (the run's ``model.*`` metrics, its
``importance.csv`` and ``monitoring/reference.parquet``); the current inputs and scores from the
store (snapshot, score store); the past scorings from the score history; the labels of the
scorings whose horizon has closed, and the freshness of each source, from the export. The
computations are ``training.monitoring``'s; this module only reads.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from churn_settings import Settings
from features.errors import ChurnError
from features.labels import LabelSpec
from serving.errors import NotReadyError
from serving.history import read_history
from training.health_score import tier_of
from training.model import ChurnModel
from training.monitoring.drift import natural_tolerance
from training.monitoring.freshness import source_freshness
from training.monitoring.performance import closed_scorings, realised_performance
from training.monitoring.reference import REFERENCE_ARTIFACT, latest_rows
from training.monitoring.report import MonitorConfig, MonitoringReport, monitoring_report
from training.registry import configure, load_registered


@dataclass(frozen=True)
class Champion:
    """The served model with what its training run recorded."""

    name: str
    version: str
    model: ChurnModel
    promised: dict[str, float]
    importance: dict[str, float]
    window: pd.DataFrame


def load_champion(settings: Settings, name: str | None = None) -> Champion:
    """The registry's ``champion`` (``settings.model_alias``) and its run's promise and window."""
    configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    model_name = name or settings.model_name
    model, version = load_registered(model_name, settings.model_alias)
    client = MlflowClient()
    run_id = client.get_model_version(model_name, version).run_id
    if run_id is None:
        raise ChurnError(f"{model_name} v{version} has no training run to read its promise from.")
    metrics = client.get_run(run_id).data.metrics
    promised = {
        k.removeprefix("model."): float(v) for k, v in metrics.items() if k.startswith("model.")
    }
    with tempfile.TemporaryDirectory() as tmp:
        try:
            window_path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp
            )
        except (mlflow.exceptions.MlflowException, OSError):
            raise ChurnError(
                f"{model_name} v{version} was trained before runs logged their reference window "
                f"({REFERENCE_ARTIFACT}); retrain it (`churn train`) to monitor it."
            ) from None
        window = pd.read_parquet(window_path)
        importance_path = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="importance.csv", dst_path=tmp
        )
        table = pd.read_csv(importance_path)
    importance = dict(
        zip(table["feature"].astype(str), table["mean_abs_contribution"], strict=True)
    )
    return Champion(model_name, version, model, promised, importance, window)


def model_scores(model: ChurnModel, frame: pd.DataFrame) -> pd.DataFrame:
    """churn_probability and tier of the champion on ``frame`` (its reference window)."""
    probability = model.probability(model.encode(frame))
    return pd.DataFrame(
        {"churn_probability": probability, "tier": tier_of(model.health(probability))}
    )


def monitor_config(settings: Settings) -> MonitorConfig:
    """The levels of a run, from the deployment's ``monitoring`` section."""
    section = settings.monitoring
    return MonitorConfig(alpha=section.alpha, min_share=section.min_share)


def label_spec(model: ChurnModel, observed_until: date) -> LabelSpec:
    """The question the model answers, labelled up to ``observed_until``."""
    spec: dict[str, Any] = dict(model.meta.get("label_spec", {}))
    return LabelSpec(
        kind=spec.get("kind", model.label),
        horizon_days=int(spec.get("horizon_days", model.horizon_days)),
        lead_days=int(spec.get("lead_days", 0)),
        gap_days=int(spec.get("gap_days", 7)),
        free_is_churn=bool(spec.get("free_is_churn", True)),
        observed_until=observed_until,
    )


def monitor(
    settings: Settings, config: MonitorConfig | None = None, tables: Any = None
) -> MonitoringReport:
    """One monitoring run of the deployment ``settings`` describe.

    ``tables``: the export, if the caller has it loaded (else read and validated from
    ``settings.data_dir``; without an export there is no freshness and no realised quality).
    """
    from features.contract import load_valid_tables
    from features.engine import build_labels
    from features.pipeline import resolve_observed_until

    config = config or monitor_config(settings)
    champion = load_champion(settings)
    model = champion.model
    if not settings.snapshot_path.exists():
        raise NotReadyError(
            f"No snapshot at {settings.snapshot_path}: run `churn snapshot` (and `churn "
            "score-all`) before `churn monitor`."
        )
    snapshot = pd.read_parquet(settings.snapshot_path)
    if settings.score_store_path.exists():  # the scores as served
        scores = pd.read_parquet(settings.score_store_path)
        current = snapshot.merge(
            scores[["customer_id", "churn_probability", "tier"]], on="customer_id", how="inner"
        )
    else:  # no score-all yet: the service scores the snapshot with the champion, and so do we
        current = pd.concat(
            [snapshot, model_scores(model, snapshot).set_axis(snapshot.index)], axis=1
        )
    as_of = pd.Timestamp(snapshot["as_of"].max()).date() if len(snapshot) else None
    reference, reference_as_of = latest_rows(champion.window)
    lag = (as_of - reference_as_of).days if as_of else 0
    tolerance = natural_tolerance(champion.window, model.features, lag)

    if tables is None and Path(settings.data_dir).exists():
        tables, _ = load_valid_tables(settings.data_dir, now=pd.Timestamp.now(tz="UTC"))
    freshness = realised = realised_tiers = None
    export_date = None
    if tables is not None:
        export_date = resolve_observed_until(tables, Path(settings.data_dir))
        freshness = source_freshness(tables, export_date, config.freshness_alpha)
        history = read_history(settings.store_dir)
        spec = label_spec(model, export_date)
        dates = closed_scorings(
            [pd.Timestamp(d).date() for d in history["as_of"].unique()],
            spec.horizon_days,
            spec.lead_days,
            export_date,
        )
        if dates:
            labels = build_labels(tables, dates, spec)
            closed = history[pd.to_datetime(history["as_of"]).dt.date.isin(dates)]
            realised, realised_tiers = realised_performance(closed, labels, champion.promised)
    fitted_until = model.meta.get("fitted_until")
    age = None
    today = export_date or as_of
    if fitted_until and today is not None:
        age = (today - date.fromisoformat(str(fitted_until)[:10])).days
    return monitoring_report(
        model_name=champion.name,
        model_version=champion.version,
        reference=reference,
        current=current,
        features=model.features,
        reference_scores=model_scores(model, reference),
        current_scores=current,
        importance=champion.importance,
        requires={f: model.info(f).requires for f in model.features},
        freshness=freshness,
        realised=realised,
        realised_tiers=realised_tiers,
        promised=champion.promised,
        as_of=as_of,
        export_date=export_date,
        model_age_days=age,
        config=config,
        tolerance={str(k): float(v) for k, v in tolerance.items()},
    )


def headline(report: MonitoringReport) -> str:
    """One line for logs and the CLI."""
    if not report.alarms:
        return f"{report.model_name} v{report.model_version}: no alarm (estimate {report.trust})."
    kinds = sorted({a.kind for a in report.alarms})
    return (
        f"{report.model_name} v{report.model_version}: {len(report.alarms)} alarm(s) "
        f"({', '.join(kinds)})."
    )


class MonitorCache:
    """The latest report of a running service, recomputed only when its inputs changed.

    A run reads the registry, the export and the history (seconds), so ``GET /v1/monitoring``
    and the UI page (one cache per app, ``app.state.monitoring``) serve the cached report while
    the champion (the alias's version), the export, the snapshot, the score store and the
    history stay as they were. A promotion with no new file must not leave the page reporting
    on the model it replaced.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stamp: tuple[object, ...] | None = None
        self._report: MonitoringReport | None = None
        self._lock = threading.Lock()

    def _champion_version(self) -> str | None:
        """The alias's version now (one registry query); None if it cannot be read, which the
        report then explains."""
        from mlflow.exceptions import MlflowException

        configure(self.settings.mlflow_tracking_uri, self.settings.mlflow_artifact_root)
        try:
            return str(
                MlflowClient()
                .get_model_version_by_alias(self.settings.model_name, self.settings.model_alias)
                .version
            )
        except (MlflowException, OSError):
            return None

    def _inputs(self) -> tuple[object, ...]:
        from serving.history import history_stamp
        from serving.workflows.service import tree_stamp

        files = (self.settings.snapshot_path, self.settings.score_store_path)
        stats = tuple(p.stat().st_mtime_ns if p.exists() else None for p in files)
        return (
            self._champion_version(),
            tree_stamp(self.settings.data_dir),
            *stats,
            history_stamp(self.settings.store_dir),
        )

    def report(self) -> MonitoringReport:
        with self._lock:
            stamp = self._inputs()
            if self._report is None or stamp != self._stamp:
                self._report = monitor(self.settings, monitor_config(self.settings))
                self._stamp = stamp
            return self._report


__all__ = [
    "Champion",
    "MonitorCache",
    "headline",
    "load_champion",
    "model_scores",
    "monitor",
    "monitor_config",
]

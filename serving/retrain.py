"""The retraining loop as one command: monitor -> decide -> features -> train -> gate.

Suitable for cron: it reads the deployment's export, store and registry, retrains only when the
trigger (``training.monitoring.trigger``) calls for it, and appends what it decided and why,
and what the promotion gate said, to ``<store_dir>/retrain.jsonl``. The champion alias moves
only through the gate (``training.registry.promotion_gate``): until a new model is promoted the
old champion keeps serving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from churn_settings import Settings
from serving.monitoring import label_spec, monitor, monitor_config
from training.monitoring.report import MonitoringReport
from training.monitoring.trigger import RetrainDecision, RetrainTrigger, decide
from training.pipeline import TrainConfig
from training.workflow import TrainingReport

RETRAIN_LOG = "retrain.jsonl"


@dataclass(frozen=True)
class RetrainOutcome:
    """What one ``churn retrain`` did."""

    report: MonitoringReport
    decision: RetrainDecision
    training: TrainingReport | None

    def lines(self) -> list[str]:
        out = [self.decision.line()]
        if self.training is not None:
            gate = self.training.decision
            verdict = "promoted to champion" if gate.promoted else "kept as challenger"
            out.append(f"v{self.training.version} {verdict}: {gate.reason}")
        return out


def retrain_trigger(settings: Settings) -> RetrainTrigger:
    """The trigger of the deployment's ``monitoring`` section (``CHURN_MONITORING__RETRAIN_*``)."""
    section = settings.monitoring
    return RetrainTrigger(on=section.retrain_on, max_age_days=section.retrain_max_age_days)


def retrain(
    settings: Settings,
    config: TrainConfig | None = None,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> RetrainOutcome:
    """Monitor, decide and, when the trigger fires (or ``force``), rebuild the labeled set from
    the export with the champion's label spec, train, register and let the gate decide.

    A data incident blocks even ``force``: the export itself is broken.
    """
    from features.contract import load_valid_tables
    from features.engine import build_labeled_set
    from features.pipeline import (
        default_as_of,
        export_origin,
        label_record,
        resolve_observed_until,
    )
    from serving.monitoring import load_champion
    from training.workflow import train_and_register

    folder = Path(settings.data_dir)
    tables, _ = load_valid_tables(folder, now=pd.Timestamp.now(tz="UTC"))
    report = monitor(settings, monitor_config(settings), tables)
    decision = decide(report, retrain_trigger(settings))
    if force and not decision.retrain and decision.blocked is None:
        decision = RetrainDecision(True, ["forced (--force)", *decision.reasons])
    training = None
    if decision.retrain:
        until = resolve_observed_until(tables, folder)
        champion = load_champion(settings)
        spec = label_spec(champion.model, until)
        labeled = build_labeled_set(tables, default_as_of(tables, until=until), spec)
        record = label_record(spec, until, labeled, export_origin(folder))
        truth = folder / "truth"
        training = train_and_register(
            labeled,
            config or TrainConfig(),
            model_name=champion.name,
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifact_root,
            truth_dir=truth if truth.exists() else None,
            data_description=f"contract tables in {folder} (churn retrain)",
            record=record,
        )
    outcome = RetrainOutcome(report, decision, training)
    _log(settings, outcome, now or datetime.now(UTC))
    return outcome


def _log(settings: Settings, outcome: RetrainOutcome, now: datetime) -> Path:
    """Append one JSON line: when, why (or why not), and what the gate decided."""
    entry: dict[str, Any] = {
        "at": now.isoformat(),
        "champion": f"{outcome.report.model_name} v{outcome.report.model_version}",
        "retrained": outcome.decision.retrain,
        "reasons": outcome.decision.reasons,
        "blocked": outcome.decision.blocked,
    }
    if outcome.training is not None:
        entry["version"] = outcome.training.version
        entry["promoted"] = outcome.training.decision.promoted
        entry["gate"] = outcome.training.decision.reason
    path = Path(settings.store_dir) / RETRAIN_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:  # one line per run: an append is atomic
        handle.write(json.dumps(entry) + "\n")
    return path

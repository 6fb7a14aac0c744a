"""When to retrain: the configurable trigger ``churn retrain`` reads a monitoring report with.

Reasons to retrain (each can be switched off): the realised ROC-AUC of the latest closed scoring,
or the estimated one of the current scoring, is below what training promised beyond noise; a
feature carrying a real share of the explanation drifted; the model is older than
``max_age_days``. One reason blocks retraining whatever the others say: a data incident (a
stale source, collapsed features), since a model fitted on a broken export learns the outage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from churn_settings import RETRAIN_REASONS
from training.monitoring.report import MonitoringReport

REASONS = RETRAIN_REASONS  # defined with the setting that names them


@dataclass(frozen=True)
class RetrainTrigger:
    """Which reasons retrain (``CHURN_MONITORING__RETRAIN_ON``) and the age limit in days
    (0 = none)."""

    on: tuple[str, ...] = REASONS
    max_age_days: int = 365

    def __post_init__(self) -> None:
        unknown = sorted(set(self.on) - set(REASONS))
        if unknown:
            raise ValueError(
                f"Unknown retrain reason(s) {', '.join(unknown)}: use {', '.join(REASONS)}."
            )


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, every reason found, and what blocked it if something did."""

    retrain: bool
    reasons: list[str] = field(default_factory=list)
    blocked: str | None = None

    def line(self) -> str:
        if self.blocked:
            return f"not retraining: {self.blocked}"
        if not self.retrain:
            return "not retraining: " + ("; ".join(self.reasons) or "nothing calls for it")
        return "retraining: " + "; ".join(self.reasons)


def decide(report: MonitoringReport, trigger: RetrainTrigger | None = None) -> RetrainDecision:
    """The decision for one report (pure: the report and the trigger in, the decision out)."""
    trigger = trigger or RetrainTrigger()
    found: list[str] = []
    for alarm in report.alarms:
        if alarm.kind == "performance" and alarm.subject == "realised_roc_auc":
            if "realised_auc" in trigger.on:
                found.append(alarm.message)
        elif alarm.kind == "performance" and alarm.subject == "estimated_roc_auc":
            if "estimated_auc" in trigger.on:
                found.append(alarm.message)
        elif alarm.kind == "drift" and "drift" in trigger.on:
            found.append(alarm.message)
    age = report.model_age_days
    too_old = age is not None and trigger.max_age_days and age > trigger.max_age_days
    if "age" in trigger.on and too_old:
        found.append(
            f"the model's data ends {age} days before the export (limit {trigger.max_age_days})."
        )
    incident = [a.message for a in report.alarms if a.kind == "data"]
    if incident:
        return RetrainDecision(
            False,
            found,
            "a data incident: " + incident[0] + " Training on "
            "this export would teach the model the outage.",
        )
    if not found:
        parts = [f"no alarm on {report.model_name} v{report.model_version}"]
        parts.append(f"estimate {report.trust}")
        if age is not None:
            parts.append(f"model data {age} days old (limit {trigger.max_age_days})")
        return RetrainDecision(False, [", ".join(parts)])
    return RetrainDecision(True, found)

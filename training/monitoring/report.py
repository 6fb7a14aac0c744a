"""One monitoring run: drift, freshness, estimated and realised performance, and the alarms.

Pure: tables in, a :class:`MonitoringReport` out. Whoever holds the champion, its reference
window, the snapshot, the score store and the history (``serving.monitoring``, the benchmark,
the tests) calls :func:`monitoring_report`; the CLI, the API, the UI and the quarterly review
read the report.

The run's false-alarm budget ``alpha`` is split once: 80 % over the features (weighted by their
share of the explanation, ``training.monitoring.drift``), 10 % each for the score distribution
and the tier mix. Freshness has its own level (a stale source is a data incident, not a
statistical surprise about customers). When a source is stale, drift in the features that read
it and in the scores is reported as a data incident, never as customers becoming risky.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from training.monitoring.drift import DriftConfig, feature_drift, output_drift
from training.monitoring.freshness import stale_event_types
from training.monitoring.performance import Estimate, estimate_performance

FEATURE_BUDGET = 0.8
OUTPUT_BUDGET = 0.1  # each of: score distribution, tier mix
TRUSTED, SHIFTED, UNTRUSTED = "trustworthy", "covariate shift", "not trustworthy"
ALARM_KINDS = ("drift", "data", "score", "tier_mix", "performance")


@dataclass(frozen=True)
class MonitorConfig:
    """Levels of one run (the ``CHURN_MONITORING__*`` settings feed it)."""

    alpha: float = DriftConfig.alpha
    min_share: float = DriftConfig.min_share
    freshness_alpha: float = 0.01
    untrusted_share: float = 0.2  # drifted share of the explanation that voids the estimate

    def drift(self) -> DriftConfig:
        return DriftConfig(alpha=self.alpha, min_share=self.min_share)


@dataclass(frozen=True)
class Alarm:
    """Something a person should look at: ``kind`` is drift, data, score, tier_mix, performance."""

    kind: str
    subject: str
    message: str


@dataclass
class MonitoringReport:
    model_name: str
    model_version: str
    as_of: date | None
    export_date: date | None
    features: pd.DataFrame
    outputs: list[dict[str, Any]]
    freshness: pd.DataFrame
    estimate: Estimate | None
    trust: str
    trust_reasons: list[str]
    promised: dict[str, float]
    realised: pd.DataFrame = field(default_factory=pd.DataFrame)
    realised_tiers: pd.DataFrame = field(default_factory=pd.DataFrame)
    model_age_days: int | None = None
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def data_incident(self) -> bool:
        return bool(len(self.freshness)) and bool(self.freshness["stale"].any())

    @property
    def alarmed(self) -> bool:
        return bool(self.alarms)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO strings, NaN as None)."""
        return _jsonable(
            {
                "model": {
                    "name": self.model_name,
                    "version": self.model_version,
                    "age_days": self.model_age_days,
                },
                "as_of": self.as_of,
                "export_date": self.export_date,
                "alarm": self.alarmed,
                "data_incident": self.data_incident,
                "alarms": [a.__dict__ for a in self.alarms],
                "features": self.features.to_dict(orient="records"),
                "outputs": self.outputs,
                "freshness": self.freshness.to_dict(orient="records"),
                "estimate": self.estimate.as_dict() if self.estimate else None,
                "estimate_trust": {"level": self.trust, "reasons": self.trust_reasons},
                "promised": self.promised,
                "realised": self.realised.to_dict(orient="records"),
                "realised_tiers": self.realised_tiers.to_dict(orient="records"),
            }
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp | date):
        return value.isoformat()[:10]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else float(value)
    return value


def _tables_of(requires: tuple[str, ...]) -> set[str]:
    return {r.split(".", 1)[0] for r in requires}


def monitoring_report(
    *,
    model_name: str,
    model_version: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    reference_scores: pd.DataFrame,
    current_scores: pd.DataFrame,
    importance: Mapping[str, float] | None = None,
    requires: Mapping[str, tuple[str, ...]] | None = None,
    freshness: pd.DataFrame | None = None,
    realised: pd.DataFrame | None = None,
    realised_tiers: pd.DataFrame | None = None,
    promised: Mapping[str, float] | None = None,
    as_of: date | None = None,
    export_date: date | None = None,
    model_age_days: int | None = None,
    config: MonitorConfig | None = None,
    tolerance: Mapping[str, float] | None = None,
) -> MonitoringReport:
    """Compare ``current`` (snapshot features, ``current_scores`` with churn_probability and
    tier) with the champion's ``reference`` window and its scores there; add freshness and the
    realised metrics when given; name the alarms.

    ``requires``: feature -> ``table.column`` sources (the catalog), so drift in a feature that
    reads a stale source is reported as the data incident it is; ``tolerance``: per feature,
    the PSI of the natural changes in the reference window (``drift.natural_tolerance``).
    """
    config = config or MonitorConfig()
    drift = feature_drift(
        reference,
        current,
        features,
        importance,
        config.drift(),
        alpha=config.alpha * FEATURE_BUDGET,
        tolerance=tolerance,
    )
    fresh = (
        freshness
        if freshness is not None
        else pd.DataFrame(
            columns=[
                "source",
                "last_record",
                "silent_days",
                "active_day_share",
                "p_value",
                "level",
                "stale",
            ]
        )
    )
    stale_sources = list(fresh.loc[fresh["stale"].astype(bool), "source"]) if len(fresh) else []
    stale_tables = {s.split("[", 1)[0] for s in stale_sources}
    requires = requires or {}
    data_rows = drift["significant"] & (
        drift["kind"].isin(["missing", "collapsed"])
        | drift["feature"].map(lambda f: bool(_tables_of(requires.get(f, ())) & stale_tables))
    )
    drift.loc[data_rows, "kind"] = "data"

    level = config.alpha * OUTPUT_BUDGET
    outputs = [
        output_drift(
            reference_scores["churn_probability"],
            current_scores["churn_probability"],
            "churn_probability",
            level,
        ),
        output_drift(
            reference_scores["tier"].astype(str), current_scores["tier"].astype(str), "tier", level
        ),
    ]
    alarms: list[Alarm] = []
    for source in stale_sources:
        row = fresh[fresh["source"] == source].iloc[0]
        alarms.append(
            Alarm(
                "data",
                source,
                (
                    f"{source} has written nothing for {row['silent_days']} days (last record "
                    f"{row['last_record']}; it wrote on {row['active_day_share']:.0%} of recent "
                    "days): "
                    "a broken pipeline, not a change in customers. Fix the export before acting on "
                    "the scores of the features that read it."
                ),
            )
        )
    for row in drift[drift["alarm"]].itertuples():
        if row.kind == "data":
            reason = (
                f"collapsed to one value (missing {row.missing_current:.0%}, was "
                f"{row.missing_reference:.0%})"
                if not stale_tables
                else f"reads a stale source ({', '.join(sorted(stale_tables))})"
            )
            alarms.append(
                Alarm(
                    "data",
                    str(row.feature),
                    f"{row.feature}: {reason}; missing data, not customers becoming risky.",
                )
            )
            continue
        extra = f", new levels {row.new_levels!s}" if row.new_levels else ""
        alarms.append(
            Alarm(
                "drift",
                str(row.feature),
                (
                    f"{row.feature} drifted ({row.kind!s}{extra}; PSI {row.psi:.3f}, p = "
                    f"{row.p_value:.2g} < {row.level:.2g}); it carries {row.share:.0%} of the "
                    "model's explanation."
                ),
            )
        )
    incident = bool(stale_sources) or bool(data_rows.any())
    for output in outputs:
        if not output["significant"]:
            continue
        kind = (
            "data"
            if incident
            else ("score" if output["output"] == "churn_probability" else "tier_mix")
        )
        cause = (
            " while inputs are broken (see the data alarms): not customers becoming risky"
            if incident
            else ""
        )
        alarms.append(
            Alarm(
                kind,
                str(output["output"]),
                (
                    f"The {output['output']} distribution moved (PSI {output['psi']:.3f}, p = "
                    f"{output['p_value']:.2g}){cause}."
                ),
            )
        )

    estimate = None
    if len(current_scores):
        estimate = estimate_performance(current_scores["churn_probability"].to_numpy())
    drifted_share = float(drift.loc[drift["significant"], "share"].sum())
    reasons: list[str] = []
    if incident:
        trust = UNTRUSTED
        reasons.append(
            "inputs are broken (stale source or collapsed features): the scores, and "
            "so the estimate, do not describe the customers"
        )
    elif drifted_share >= config.untrusted_share:
        trust = UNTRUSTED
        reasons.append(
            f"features carrying {drifted_share:.0%} of the explanation drifted: the "
            "calibration learned on the reference cannot be assumed"
        )
    elif drifted_share > 0 or any(o["significant"] for o in outputs):
        trust = SHIFTED
        reasons.append(
            f"features carrying {drifted_share:.0%} of the explanation drifted: the "
            "estimate holds if the calibration holds on the shifted inputs"
        )
    else:
        trust = TRUSTED
        reasons.append("no significant drift: the reference's calibration applies")
    new_levels = drift[(drift["new_levels"] != "") & (drift["share"] > 0)]
    if len(new_levels):
        reasons.append(
            "levels the model never saw ("
            + "; ".join(f"{r.feature}: {r.new_levels}" for r in new_levels.itertuples())
            + ") are scored "
            "as unknown"
        )

    promised_metrics = {k: float(v) for k, v in (promised or {}).items()}
    promised_auc = promised_metrics.get("roc_auc", float("nan"))
    if estimate is not None and trust != UNTRUSTED and estimate.roc_auc_high < promised_auc:
        alarms.append(
            Alarm(
                "performance",
                "estimated_roc_auc",
                (
                    f"Estimated ROC-AUC {estimate.roc_auc:.3f} (95 % {estimate.roc_auc_low:.3f} to "
                    f"{estimate.roc_auc_high:.3f}) is below the promised {promised_auc:.3f}."
                ),
            )
        )
    real = realised if realised is not None else pd.DataFrame()
    if len(real) and "below_promised" in real.columns:
        latest = real.sort_values("as_of").iloc[-1]
        if bool(latest["below_promised"]):
            alarms.append(
                Alarm(
                    "performance",
                    "realised_roc_auc",
                    (
                        f"Realised ROC-AUC {latest['roc_auc']:.3f} on the scoring of "
                        f"{latest['as_of']} "
                        f"(95 % up to {latest['roc_auc_high']:.3f}) is below the promised "
                        f"{latest['promised_roc_auc']:.3f}."
                    ),
                )
            )
    return MonitoringReport(
        model_name,
        model_version,
        as_of,
        export_date,
        drift,
        outputs,
        fresh,
        estimate,
        trust,
        reasons,
        promised_metrics,
        real,
        realised_tiers if realised_tiers is not None else pd.DataFrame(),
        model_age_days,
        alarms,
    )


def stale_event_type_names(report: MonitoringReport) -> list[str]:
    """Event types whose stream stopped (for messages and tests)."""
    return stale_event_types(report.freshness) if len(report.freshness) else []

"""The retrain trigger: which alarms retrain, and the data incident that blocks it."""

from __future__ import annotations

import pandas as pd
import pytest

from training.monitoring.report import Alarm, MonitoringReport
from training.monitoring.trigger import RetrainTrigger, decide


def _report(*alarms: Alarm, age: int = 30) -> MonitoringReport:
    return MonitoringReport(
        "churn-model",
        "3",
        None,
        None,
        pd.DataFrame(),
        [],
        pd.DataFrame(),
        None,
        "trustworthy",
        [],
        {},
        model_age_days=age,
        alarms=list(alarms),
    )


def test_an_unchanged_world_does_not_retrain_and_says_why() -> None:
    decision = decide(_report())
    assert not decision.retrain and "no alarm on churn-model v3" in decision.line()


def test_drift_in_a_top_feature_retrains_unless_switched_off() -> None:
    drift = Alarm("drift", "logins_30d", "logins_30d drifted")
    assert decide(_report(drift)).retrain
    assert not decide(_report(drift), RetrainTrigger(on=("realised_auc",))).retrain


def test_age_and_realised_quality_are_reasons() -> None:
    assert decide(_report(age=400), RetrainTrigger(max_age_days=365)).retrain
    realised = Alarm("performance", "realised_roc_auc", "below")
    assert decide(_report(realised)).reasons == ["below"]


def test_a_data_incident_blocks_retraining() -> None:
    decision = decide(_report(Alarm("drift", "x", "x"), Alarm("data", "events[login]", "stale")))
    assert not decision.retrain and decision.blocked is not None and "stale" in decision.blocked


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown retrain reason"):
        RetrainTrigger(on=("vibes",))

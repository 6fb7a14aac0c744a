"""The monitoring run and the retraining loop on a real deployment: a champion trained on one
export, then later exports of the same generator, unchanged or drifted.

Everything real: the generator writes exports, training logs to a temp MLflow SQLite store, the
snapshot and the score store are written as ``churn snapshot`` / ``churn score-all`` do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churn_settings import Settings
from features.contract import load_valid_tables
from features.engine import build_labeled_set
from features.generator import generate_world, scenario, write_world
from features.io import write_parquet
from features.labels import LabelSpec
from features.pipeline import build_snapshot, default_as_of
from serving.history import append_history, read_history
from serving.monitoring import monitor
from serving.retrain import RETRAIN_LOG, retrain
from serving.store import ModelRef, score_all
from tests.serving.conftest import make_settings
from training.fit import FitConfig
from training.pipeline import TrainConfig
from training.registry import configure, load_registered
from training.workflow import train_and_register

pytestmark = pytest.mark.xdist_group("monitoring")
CUSTOMERS, SEED, TRAIN_MONTHS = 1500, 7, 16  # the champion's export ends 2025-04-30
FAST = TrainConfig(valid_dates=1, fit=FitConfig(max_trees=60))


@dataclass(frozen=True)
class Champion:
    root: Path
    settings: Settings


def _tables(folder: Path) -> object:
    tables, _ = load_valid_tables(folder, now=pd.Timestamp("2030-01-01", tz="UTC"))
    return tables


def serve_export(settings: Settings, folder: Path, as_of: date | None = None) -> Settings:
    """Point the deployment at ``folder``: snapshot, score-all and history, as the CLI does."""
    settings = settings.model_copy(update={"data_dir": folder})
    snapshot = build_snapshot(_tables(folder), as_of)  # type: ignore[arg-type]
    write_parquet(snapshot, settings.snapshot_path)
    configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    model, version = load_registered(settings.model_name, "champion")
    target, _ = score_all(model, ModelRef(settings.model_name, version, "champion"),
                          settings.snapshot_path, settings.score_store_path, 3)  # fmt: skip
    scores = pd.read_parquet(target)
    append_history(settings.store_dir, scores, version, str(scores["as_of"].max()),
                   datetime(2030, 1, 1, tzinfo=UTC))  # fmt: skip
    return settings


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    root = tmp_path_factory.mktemp("monitoring")
    write_world(generate_world(CUSTOMERS, TRAIN_MONTHS, SEED), root / "export0")
    tables = _tables(root / "export0")
    labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec())  # type: ignore[arg-type]
    settings = make_settings(root, data_dir=root / "export0")
    assert settings.mlflow_tracking_uri is not None
    report = train_and_register(labeled, FAST, tracking_uri=settings.mlflow_tracking_uri,
                                artifact_root=settings.mlflow_artifact_root)  # fmt: skip
    assert report.decision.promoted, report.decision.reason
    return Champion(root, settings)


def _private(champion: Champion, name: str) -> Settings:
    """A copy of the registry and an empty store, so each test has its own history."""
    import shutil

    target = champion.root / name
    target.mkdir()
    shutil.copy(champion.root / "mlflow.db", target / "mlflow.db")
    return make_settings(target, mlflow_artifact_root=champion.settings.mlflow_artifact_root)


def test_unchanged_world_raises_no_alarm_and_retrain_does_nothing(champion: Champion) -> None:
    settings = _private(champion, "unchanged")
    write_world(
        generate_world(CUSTOMERS, TRAIN_MONTHS + 1, SEED + 1), settings.store_dir.parent / "later"
    )
    settings = serve_export(settings, settings.store_dir.parent / "later")
    report = monitor(settings)
    assert not report.data_incident
    assert [a for a in report.alarms if a.kind != "performance"] == [], report.alarms
    outcome = retrain(settings, FAST)
    assert not outcome.decision.retrain and outcome.training is None
    assert "not retraining" in outcome.decision.line()
    logged = (settings.store_dir / RETRAIN_LOG).read_text().splitlines()
    assert len(logged) == 1 and '"retrained": false' in logged[0]


def test_product_change_retrains_through_the_gate(champion: Champion) -> None:
    settings = _private(champion, "drifted")
    folder = settings.store_dir.parent / "later"
    change = scenario("product_change", TRAIN_MONTHS)
    write_world(generate_world(CUSTOMERS, TRAIN_MONTHS + 1, SEED + 1, change=change), folder)
    settings = serve_export(settings, folder)
    _, before = load_registered(settings.model_name, "champion")
    outcome = retrain(settings, FAST)
    model, _ = load_registered(settings.model_name, before)
    drifted = {model.info(a.subject).group for a in outcome.report.alarms if a.kind == "drift"}
    assert drifted == {"usage"}, outcome.report.alarms
    assert outcome.decision.retrain and outcome.training is not None
    gate = outcome.training.decision
    _, after = load_registered(settings.model_name, "champion")
    assert after == (outcome.training.version if gate.promoted else before)
    logged = (settings.store_dir / RETRAIN_LOG).read_text()
    assert '"retrained": true' in logged and gate.reason.split(" ")[0] in logged


def test_tracking_outage_is_a_data_incident_that_blocks_retraining(champion: Champion) -> None:
    settings = _private(champion, "outage")
    folder = settings.store_dir.parent / "later"
    change = scenario("tracking_outage", TRAIN_MONTHS)
    write_world(generate_world(CUSTOMERS, TRAIN_MONTHS + 1, SEED + 1, change=change), folder)
    settings = serve_export(settings, folder)
    report = monitor(settings)
    stale = report.freshness[report.freshness["stale"]]
    assert list(stale["source"]) == ["events[feature_use]"]
    assert report.alarms and {a.kind for a in report.alarms} <= {"data"}, report.alarms
    assert report.trust == "not trustworthy"
    outcome = retrain(settings, FAST, force=True)
    assert not outcome.decision.retrain and "data incident" in str(outcome.decision.blocked)


def test_realised_metrics_of_two_scorings_match_an_independent_computation(
    champion: Champion,
) -> None:
    settings = _private(champion, "realised")
    folder = settings.store_dir.parent / "later"
    write_world(generate_world(CUSTOMERS, TRAIN_MONTHS + 4, SEED + 2), folder)
    scorings = [date(2025, 3, 1), date(2025, 4, 1)]
    for day in scorings:  # two exports' scorings (point in time: the same features as then)
        settings = serve_export(settings, folder, day)
    report = monitor(settings)
    realised = report.realised.set_index("as_of")
    assert sorted(realised.index) == scorings
    history = read_history(settings.store_dir)
    labels = build_labeled_set(_tables(folder), scorings, LabelSpec())  # type: ignore[arg-type]
    labels = labels[labels["label_complete"]]
    for day in scorings:
        mine = history[pd.to_datetime(history["as_of"]).dt.date == day]
        truth = labels[pd.to_datetime(labels["as_of"]).dt.date == day]
        joined = mine.merge(truth[["customer_id", "churned"]], on="customer_id")
        y, p = joined["churned"].to_numpy(), joined["churn_probability"].to_numpy()
        row = realised.loc[day]
        assert row["rows"] == len(joined)
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert row["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        assert row["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
        assert row["promised_roc_auc"] == pytest.approx(report.promised["roc_auc"])
        tiers = report.realised_tiers[report.realised_tiers["as_of"] == day]
        assert tiers["rows"].sum() == len(joined)
        high = joined[joined["tier"] == "high"]
        if len(high):
            got = tiers.set_index("tier").loc["high", "churn_rate"]
            assert got == pytest.approx(float(np.mean(high["churned"])))


def test_monitoring_is_served_as_json_prometheus_gauges_a_ui_page_and_a_review_section(
    champion: Champion,
) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.workflows.review import monitoring_markdown
    from tests.serving.conftest import HEADERS
    from tests.serving.test_security import signed_in

    settings = _private(champion, "served")
    folder = settings.store_dir.parent / "later"
    change = scenario("price_change", TRAIN_MONTHS)
    write_world(generate_world(CUSTOMERS, TRAIN_MONTHS + 1, SEED + 1, change=change), folder)
    settings = serve_export(settings, folder)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/monitoring").status_code == 401
        body = client.get("/v1/monitoring", headers=HEADERS).json()
        assert body == client.get("/monitoring", headers=HEADERS).json()
        drifted = {f["feature"] for f in body["features"] if f["significant"]}
        assert "mrr_change_90d" in drifted or "mrr" in drifted
        assert body["estimate"]["roc_auc"] > 0.5 and body["promised"]["roc_auc"] > 0.5
        metrics = client.get("/metrics", headers=HEADERS).text
        assert 'churn_monitoring_roc_auc{kind="estimated"}' in metrics
        assert 'churn_monitoring_feature_drifted{feature="mrr_change_90d"} 1.0' in metrics
        signed_in(client)
        page = client.get("/ui/monitoring")
        assert page.status_code == 200 and "Model monitoring" in page.text
        assert 'id="chart-mon-drift"' in page.text and 'id="chart-mon-auc"' in page.text
    section = monitoring_markdown(monitor(settings))
    assert section.startswith("## Model monitoring") and "mrr_change_90d" in section


def test_the_cached_report_follows_a_promotion_that_changed_no_file(champion: Champion) -> None:
    from mlflow.tracking import MlflowClient

    from serving.monitoring import MonitorCache

    settings = _private(champion, "promoted")
    settings = serve_export(settings, champion.settings.data_dir)
    cache = MonitorCache(settings)
    first = cache.report()
    assert cache.report() is first, "unchanged inputs serve the cached report"
    client = MlflowClient()
    served = client.get_model_version_by_alias(settings.model_name, settings.model_alias)
    again = client.create_model_version(settings.model_name, served.source, served.run_id)
    client.set_registered_model_alias(settings.model_name, settings.model_alias, again.version)
    second = cache.report()
    assert second is not first
    assert str(second.model_version) == str(again.version) != str(first.model_version)

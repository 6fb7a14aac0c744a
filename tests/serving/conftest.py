"""One small company, one trained and registered champion, one snapshot: built once per session.

Everything real: the generator writes contract files, training logs to a temp MLflow SQLite store,
``churn snapshot``'s library call writes the snapshot. Tests that change the registry or the
files work on a private copy (:func:`deployment_copy`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churn_settings import Settings
from features.contract import load_valid_tables
from features.engine import build_labeled_set
from features.generator import generate_world, write_world
from features.io import write_parquet
from features.labels import LabelSpec
from features.pipeline import build_snapshot, default_as_of
from serving.app import create_app
from training.fit import FitConfig
from training.model import ChurnModel
from training.pipeline import TrainConfig
from training.registry import configure
from training.workflow import train_and_register

KEY = "test-key"
HEADERS = {"X-API-Key": KEY}
REPO_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbook.yaml"


@dataclass(frozen=True)
class Deployment:
    """A trained champion in a registry plus the store folder serving reads."""

    root: Path
    settings: Settings
    model: ChurnModel
    snapshot: pd.DataFrame

    def with_settings(self, **changes: object) -> Settings:
        return self.settings.model_copy(update=changes)


def make_settings(root: Path, **changes: object) -> Settings:
    base = Settings(
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        mlflow_artifact_root=root / "artifacts",
        store_dir=root / "store",
        playbook_path=REPO_PLAYBOOK,
        api_keys=f"other-key,{KEY}",
        reload_poll_seconds=0,
        auth_failures_before_backoff=1_000_000,  # tests of bad keys share one client address
    )
    return base.model_copy(update=changes)


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    root = tmp_path_factory.mktemp("deployment")
    write_world(generate_world(1500, 14, seed=1), root / "data")
    tables, _ = load_valid_tables(root / "data", now=pd.Timestamp("2030-01-01", tz="UTC"))
    labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec())
    snapshot = build_snapshot(tables)
    settings = make_settings(root)
    write_parquet(snapshot, settings.snapshot_path)
    configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    assert settings.mlflow_tracking_uri is not None
    report = train_and_register(
        labeled,
        TrainConfig(valid_dates=1, fit=FitConfig(max_trees=60)),
        tracking_uri=settings.mlflow_tracking_uri,
    )
    assert report.decision.promoted, report.decision.reason
    return Deployment(root, settings, report.result.model, snapshot)


def deployment_copy(deployment: Deployment, target: Path) -> Settings:
    """A private registry and store to change (artifacts stay shared, read-only)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(deployment.root / "mlflow.db", target / "mlflow.db")
    shutil.copytree(deployment.settings.store_dir, target / "store")
    return make_settings(target, mlflow_artifact_root=deployment.settings.mlflow_artifact_root)


@pytest.fixture(scope="module")
def client(deployment: Deployment) -> Iterator[TestClient]:
    with TestClient(create_app(deployment.settings)) as test_client:
        yield test_client


def live_features(snapshot: pd.DataFrame, model: ChurnModel, row: int) -> dict[str, object]:
    """A snapshot row as the ``features`` object a CRM would send (NaN -> null)."""
    record = snapshot.iloc[row]
    return {name: (None if pd.isna(record[name]) else record[name]) for name in model.features}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Debian Chromium per test process, shared by the UI and workflow tests:
    Playwright's sync API refuses to start a second instance while one is running."""
    chromium_path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium_path).exists():
        pytest.skip(
            "Debian's chromium is not installed (Playwright cannot download browsers here): "
            "run `make browser` or `apt-get install chromium`."
        )
    from playwright.sync_api import sync_playwright

    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=args)
        yield chromium
        chromium.close()

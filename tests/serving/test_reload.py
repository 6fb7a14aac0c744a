"""Reload without downtime: a new champion or snapshot is picked up; a broken one is not."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from features.io import write_parquet
from serving.app import create_app
from serving.store import ModelRef, score_all, store_metadata
from tests.serving.conftest import HEADERS, Deployment, deployment_copy

pytestmark = pytest.mark.xdist_group("serving")
NAME = "churn-model"


def register_version(tracking_uri: str, source: str) -> str:
    """A new registry version from ``source`` (v1's artifacts, or a broken folder), made
    champion."""
    client = MlflowClient(tracking_uri=tracking_uri)
    version = client.create_model_version(NAME, source)
    client.set_registered_model_alias(NAME, "champion", version.version)
    return str(version.version)


def v1_source(tracking_uri: str) -> str:
    return str(MlflowClient(tracking_uri=tracking_uri).get_model_version(NAME, "1").source)


def served_version(client: TestClient, customer_id: str) -> str:
    response = client.post("/score", json={"customer_id": customer_id}, headers=HEADERS)
    assert response.status_code == 200, response.text
    return str(response.json()["model"]["version"])


def test_a_new_champion_is_served_after_reload(deployment: Deployment, tmp_path: Path) -> None:
    settings = deployment_copy(deployment, tmp_path)
    cid = str(deployment.snapshot["customer_id"].iloc[0])
    with TestClient(create_app(settings)) as client:
        assert served_version(client, cid) == "1"
        unchanged = client.post("/admin/reload", headers=HEADERS)
        assert unchanged.status_code == 200 and unchanged.json()["model"]["version"] == "1"
        version = register_version(
            str(settings.mlflow_tracking_uri), v1_source(str(settings.mlflow_tracking_uri))
        )
        reloaded = client.post("/admin/reload", headers=HEADERS)
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["outcome"] == "reloaded"
        assert served_version(client, cid) == version
        assert client.get("/readyz").json()["status"] == "ready"


def test_a_broken_model_leaves_the_old_one_serving_and_readyz_says_why(
    deployment: Deployment, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = deployment_copy(deployment, tmp_path / "deploy")
    cid = str(deployment.snapshot["customer_id"].iloc[0])
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "MLmodel").write_text("not: a model\n")
    with TestClient(create_app(settings)) as client:
        version = register_version(str(settings.mlflow_tracking_uri), broken.as_uri())
        with caplog.at_level(logging.ERROR, logger="churn.serving"):
            failed = client.post("/admin/reload", headers=HEADERS)
        assert failed.status_code == 503
        assert failed.json()["error"] == "reload_failed"
        assert "still serving churn-model v1" in failed.json()["message"]
        assert served_version(client, cid) == "1"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded" and body["model"]["version"] == "1"
        assert "still serving churn-model v1" in body["problem"]
        assert body["last_reload"]["outcome"] == "failed"
        assert any("reload failed" in r.getMessage() for r in caplog.records)
        assert version != "1"


def test_a_broken_snapshot_is_refused_and_a_fixed_one_is_picked_up(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    cid = str(deployment.snapshot["customer_id"].iloc[0])
    with TestClient(create_app(settings)) as client:
        settings.snapshot_path.write_bytes(b"PAR1 truncated")
        failed = client.post("/admin/reload", headers=HEADERS)
        assert failed.status_code == 503 and "snapshot" in failed.json()["message"]
        assert served_version(client, cid) == "1"
        assert client.get("/readyz").json()["status"] == "degraded"
        write_parquet(deployment.snapshot.head(10), settings.snapshot_path)
        assert client.post("/admin/reload?allow_shrink=true", headers=HEADERS).status_code == 200
        assert client.get("/readyz").json() | {"problem": None} == client.get("/readyz").json()
        assert client.get("/customers", headers=HEADERS).json()["total"] == 10


def test_polling_picks_up_a_new_snapshot_without_a_call(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path).model_copy(
        update={"reload_poll_seconds": 0.2, "reload_max_shrink": 1.0}
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["customers"] == len(deployment.snapshot)
        write_parquet(deployment.snapshot.head(25), settings.snapshot_path)
        deadline = time.monotonic() + 20
        while client.get("/readyz").json()["customers"] != 25:
            assert time.monotonic() < deadline, "the poll did not pick up the new snapshot"
            time.sleep(0.1)


def test_the_score_store_is_used_when_it_matches_and_gives_the_same_answers(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    ref = ModelRef(NAME, "1", "champion")
    path, count = score_all(
        deployment.model, ref, settings.snapshot_path, settings.score_store_path, 5
    )
    assert count == len(deployment.snapshot)
    meta = store_metadata(path)
    assert meta is not None and meta["version"] == "1" and meta["customers"] == count
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["scores_from"] == "score store"
        from_store = client.get("/customers?limit=200", headers=HEADERS).json()["items"]
    settings.score_store_path.unlink()
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["scores_from"].startswith("scored at load")
        computed = client.get("/customers?limit=200", headers=HEADERS).json()["items"]
    assert [r["top_drivers"] for r in from_store] == [r["top_drivers"] for r in computed]
    np.testing.assert_array_equal(
        [r["churn_probability"] for r in from_store], [r["churn_probability"] for r in computed]
    )


def test_a_score_store_from_another_snapshot_is_not_served(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    score_all(deployment.model, ModelRef(NAME, "1", "champion"), settings.snapshot_path,
              settings.score_store_path, 5)  # fmt: skip
    write_parquet(deployment.snapshot.head(40), settings.snapshot_path)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz").json()
        assert ready["customers"] == 40
        assert "another snapshot" in ready["scores_from"]


def test_without_a_champion_the_service_is_not_ready_and_says_so(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment.with_settings(
        mlflow_tracking_uri=f"sqlite:///{tmp_path}/empty.db", store_dir=tmp_path
    )
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and not ready.json()["ready"]
        assert "churn-model@champion" in ready.json()["problem"]
        score = client.post("/score", json={"customer_id": "C1"}, headers=HEADERS)
        assert score.status_code == 503 and score.json()["error"] == "not_ready"
        assert client.get("/healthz").status_code == 200

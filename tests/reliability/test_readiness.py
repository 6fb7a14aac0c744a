"""A damaged or emptied store never replaces the served one, and /readyz says what is wrong."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from features.io import write_parquet
from serving.app import create_app
from tests.serving.conftest import HEADERS, Deployment, deployment_copy

pytestmark = pytest.mark.xdist_group("serving")


def served_count(client: TestClient) -> int:
    return int(client.get("/customers?limit=1", headers=HEADERS).json()["total"])


def first_id(deployment: Deployment) -> str:
    return str(deployment.snapshot["customer_id"].iloc[0])


def test_a_deleted_snapshot_then_reload_keeps_the_old_customers(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        settings.snapshot_path.unlink()
        refused = client.post("/admin/reload", headers=HEADERS)
        assert refused.status_code == 503
        assert "snapshot.parquet is missing" in refused.json()["message"]
        assert served_count(client) == len(deployment.snapshot)
        score = client.post("/score", json={"customer_id": first_id(deployment)}, headers=HEADERS)
        assert score.status_code == 200
        ready = client.get("/readyz").json()
        assert ready["status"] == "degraded" and ready["customers"] == len(deployment.snapshot)
        assert "missing" in ready["problem"] and "refused" in ready["problem"]


def test_a_truncated_snapshot_is_reported_as_corrupt_not_missing(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        data = settings.snapshot_path.read_bytes()
        settings.snapshot_path.write_bytes(data[: len(data) // 2])
        assert client.post("/admin/reload", headers=HEADERS).status_code == 503
        ready = client.get("/readyz").json()
        assert "corrupt" in ready["problem"] and "missing" not in ready["problem"]
        assert served_count(client) == len(deployment.snapshot)


def test_a_snapshot_with_far_fewer_customers_is_refused_unless_allowed(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        write_parquet(deployment.snapshot.head(10), settings.snapshot_path)
        refused = client.post("/admin/reload", headers=HEADERS)
        assert refused.status_code == 503 and "CHURN_RELOAD_MAX_SHRINK" in refused.json()["message"]
        assert served_count(client) == len(deployment.snapshot)
        allowed = client.post("/admin/reload?allow_shrink=true", headers=HEADERS)
        assert allowed.status_code == 200 and allowed.json()["customers"] == 10


def test_a_truncated_score_store_is_reported_as_corrupt_and_scores_are_recomputed(
    deployment: Deployment, tmp_path: Path
) -> None:
    from serving.store import ModelRef, score_all

    settings = deployment_copy(deployment, tmp_path)
    score_all(deployment.model, ModelRef("churn-model", "1", "champion"), settings.snapshot_path,
              settings.score_store_path, 5)  # fmt: skip
    data = settings.score_store_path.read_bytes()
    settings.score_store_path.write_bytes(data[:100])
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz").json()
        assert ready["ready"] and "corrupt" in ready["scores_from"]
        assert "no score store" not in ready["scores_from"]
        assert served_count(client) == len(deployment.snapshot)


def test_the_poller_does_not_empty_the_service_when_the_snapshot_is_deleted(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path).model_copy(update={"reload_poll_seconds": 0.1})
    with TestClient(create_app(settings)) as client:
        settings.snapshot_path.unlink()
        deadline = time.monotonic() + 20
        while client.get("/readyz").json()["problem"] is None:
            assert time.monotonic() < deadline, "the poll never noticed the deleted snapshot"
            time.sleep(0.05)
        time.sleep(0.5)  # several more polls
        assert served_count(client) == len(deployment.snapshot)
        assert client.get("/readyz").json()["customers"] == len(deployment.snapshot)


def test_readyz_is_not_ready_when_no_customers_are_served(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    settings.snapshot_path.unlink()
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        assert "no customers" in ready.json()["problem"]


def test_readyz_is_not_ready_when_the_snapshot_is_stale(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path).model_copy(update={"ready_max_age_days": 1})
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503, "the test world's as_of is years in the past"
        assert "days old" in ready.json()["problem"]
        assert "CHURN_READY_MAX_AGE_DAYS" in ready.json()["problem"]


def test_readyz_shows_no_absolute_paths(deployment: Deployment, tmp_path: Path) -> None:
    settings = deployment_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        settings.snapshot_path.unlink()
        client.post("/admin/reload", headers=HEADERS)
        text = client.get("/readyz").text
        assert "snapshot.parquet" in text and str(tmp_path) not in text

"""A registry file replaced under a running server is read afresh, not through old handles."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from serving.app import create_app
from tests.serving.conftest import HEADERS, Deployment, deployment_copy

pytestmark = pytest.mark.xdist_group("serving")


def test_the_registry_handle_is_reopened_after_the_file_is_replaced(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    db = tmp_path / "mlflow.db"
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["model"]["version"] == "1"
        # a deploy copies in a registry where v2 is champion: a new file, a new inode
        staged = tmp_path / "staged.db"
        shutil.copy(db, staged)
        staged_client = MlflowClient(tracking_uri=f"sqlite:///{staged}")
        source = staged_client.get_model_version("churn-model", "1").source
        v2 = staged_client.create_model_version("churn-model", source)
        staged_client.set_registered_model_alias("churn-model", "champion", v2.version)
        os.replace(staged, db)
        reloaded = client.post("/admin/reload", headers=HEADERS)
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["model"]["version"] == str(v2.version)

"""What a killed writer leaves behind is cleaned up by the next start."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from features.io import atomic_path
from serving.app import create_app
from tests.serving.conftest import Deployment, deployment_copy

pytestmark = pytest.mark.xdist_group("serving")


def leftover(folder: Path, name: str, age_seconds: float) -> Path:
    """A temporary as ``atomic_path`` makes it, abandoned ``age_seconds`` ago (a kill -9)."""
    with pytest.raises(KeyboardInterrupt), atomic_path(folder / name) as tmp:
        kept = tmp.parent.with_name(tmp.parent.name + "x")  # survive the cleanup of the block
        tmp.write_bytes(b"half a parquet file")
        os.rename(tmp.parent, kept)
        raise KeyboardInterrupt
    real = kept.with_name(kept.name[:-1])
    os.rename(kept, real)
    stamp = time.time() - age_seconds
    for path in (real / name, real):
        os.utime(path, (stamp, stamp))
    return real


def test_temp_folders_are_cleaned_on_start(deployment: Deployment, tmp_path: Path) -> None:
    settings = deployment_copy(deployment, tmp_path)
    stale = leftover(settings.store_dir, "scores.parquet", 3600)
    fresh = leftover(settings.store_dir, "snapshot.parquet", 0)  # a write in progress
    assert stale.name.startswith(".scores.parquet.") and stale.exists()
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["ready"]
    assert not stale.exists(), "a temporary left by a killed write is removed at start"
    assert fresh.exists(), "a temporary younger than the threshold may be a write in progress"


def test_a_kill_between_the_store_write_and_the_history_append_is_recovered_on_start(
    deployment: Deployment, tmp_path: Path
) -> None:
    from serving.history import history_files
    from serving.store import ModelRef, score_all

    settings = deployment_copy(deployment, tmp_path)
    # what `churn score-all` had done when it was killed: the store written, no history yet
    score_all(deployment.model, ModelRef("churn-model", "1", "champion"), settings.snapshot_path,
              settings.score_store_path, 5)  # fmt: skip
    assert history_files(settings.store_dir) == []
    with TestClient(create_app(settings)):
        pass
    files = history_files(settings.store_dir)
    assert len(files) == 1 and files[0].name.endswith("_v1.parquet")
    with TestClient(create_app(settings)):  # idempotent: the next start adds nothing
        pass
    assert history_files(settings.store_dir) == files


def test_a_kill_before_the_rule_run_is_finished_on_start(
    deployment: Deployment, tmp_path: Path
) -> None:
    from serving.store import ModelRef, score_all
    from serving.workflows.service import PENDING_RULES, Workflows, mark_rules_pending

    settings = deployment_copy(deployment, tmp_path)
    # `churn score-all` killed after the store and before the rules: the run is still owed
    mark_rules_pending(settings.store_dir)
    score_all(deployment.model, ModelRef("churn-model", "1", "champion"), settings.snapshot_path,
              settings.score_store_path, 5)  # fmt: skip
    ledger = Workflows.from_settings(settings).ledger
    runs_before = int(ledger.frame("SELECT count(*) AS n FROM runs")["n"].iloc[0])
    with TestClient(create_app(settings)):
        pass
    runs = int(ledger.frame("SELECT count(*) AS n FROM runs")["n"].iloc[0])
    assert runs == runs_before + 1, "the owed rule run is recorded at start"
    assert not (settings.store_dir / PENDING_RULES).exists()
    with TestClient(create_app(settings)):  # nothing owed any more: no second run
        pass
    assert int(ledger.frame("SELECT count(*) AS n FROM runs")["n"].iloc[0]) == runs

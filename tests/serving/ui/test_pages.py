"""The customer page's "Due by" is the due date stored with the customer's open task, the same
on every reload (not now + SLA), and says so when the rules have created no task yet."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churn_settings import WorkflowPaths
from serving.app import create_app
from serving.history import append_history
from serving.store import ModelRef, score_all
from serving.ui.auth import SESSION_COOKIE, SessionSigner
from serving.ui.render import environment
from tests.serving.conftest import KEY, Deployment, deployment_copy

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.xdist_group("deployment")


def test_due_by_is_the_stored_due_date_of_the_open_task_on_every_reload(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path / "copy").model_copy(
        update={
            "data_dir": deployment.root / "data",
            "workflows": WorkflowPaths(rules_path=REPO / "rules.yaml", task_capacity=None),
        }
    )
    as_of = snapshot_as_of_day(deployment)
    out, _ = score_all(
        deployment.model, ModelRef("churn", "1", "champion"), settings.snapshot_path,
        tmp_path / "scores.parquet", 3,
    )  # fmt: skip
    scored_at = datetime.combine(as_of, time(2), UTC)
    append_history(settings.store_dir, pd.read_parquet(out), "1", as_of, scored_at)
    with TestClient(create_app(settings)) as client:
        workflows = client.app.state.workflows  # type: ignore[attr-defined]
        workflows.run(scored_at + timedelta(hours=4))
        tasks = workflows.ledger.table("tasks", where="status = 'open'")
        scores = pd.read_parquet(out).set_index("customer_id")["tier"].astype(str)
        same_play = tasks[tasks["play"] == tasks["customer_id"].map(scores)]
        assert not same_play.empty, "the rules created no task for a customer's own tier"
        task = same_play.iloc[0]
        shown = environment().filters["when"](str(task["due_at"]))
        cookies = {SESSION_COOKIE: SessionSigner(settings).issue(KEY.encode())}
        pages = []
        for _ in range(2):
            page = client.get(f"/ui/customers/{task['customer_id']}", cookies=cookies)
            assert page.status_code == 200
            pages.append(page.text)
        # created years before the test runs: a deadline of now + SLA would show today's date
        assert all(shown in text for text in pages)
        untasked = sorted(set(scores.index) - set(tasks["customer_id"]))[0]
        page = client.get(f"/ui/customers/{untasked}", cookies=cookies)
        assert page.status_code == 200 and "no open task yet" in page.text


def snapshot_as_of_day(deployment: Deployment) -> date:
    """The as-of day of the deployment's snapshot (what its scores are as of)."""
    return pd.Timestamp(pd.to_datetime(deployment.snapshot["as_of"]).max()).date()


def test_amounts_on_the_pages_and_in_the_export_carry_the_currency_setting(
    deployment: Deployment,
) -> None:
    settings = deployment.with_settings(currency="eur")
    with TestClient(create_app(settings)) as client:
        cookies = {SESSION_COOKIE: SessionSigner(settings).issue(KEY.encode())}
        listing = client.get("/ui/", cookies=cookies)
        assert listing.status_code == 200
        assert " EUR</b> revenue at risk" in listing.text and " USD" not in listing.text
        export = client.get("/ui/export.csv", cookies=cookies)
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert rows and {r["currency"] for r in rows} == {"EUR"}

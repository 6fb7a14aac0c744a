"""A small crafted deployment for the API, UI and browser tests: 40 customers scored over 150
days, a rule run 120 days ago (with a hold-out) and one today, interventions, churn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi import FastAPI

from churn_settings import Settings
from features.errors import ChurnError
from features.facts import facts_frame
from serving.app import api_key_check, churn_error_response
from serving.playbook import load_playbook
from serving.workflows.config import parse_rules
from serving.workflows.ledger import Ledger
from serving.workflows.routes import mount_workflows
from serving.workflows.service import Workflows
from tests.serving.workflows.conftest import REPO, history, scorings

KEY = "wf-test-key"
NOW = datetime(2025, 6, 2, 6, tzinfo=UTC)
RULES = """
holdout: {share: 0.3, seed: 7}
outcome_days: 90
goal: {baseline: 0.05, target: 0.03, start: 2025-01-01, months: 6}
rules:
  - id: low-health
    description: Health below 60 for 7 days
    when: {kind: health_below, threshold: 60, days: 7}
    actions:
      - {type: task, title: "{{ customer_name }}: health {{ '%.0f' % health_score }}"}
      - {type: email_draft, template: risk_checkin}
      - {type: tag, tag: at-risk}
  - id: tips
    description: 7 days after signup
    when: {kind: days_since_signup, days: 7}
    holdout: false
    actions: [{type: email_draft, template: onboarding_tips}]
"""


class CraftedWorkflows(Workflows):
    """Workflows over in-memory facts and history instead of an export and Parquet files."""

    base_facts: pd.DataFrame
    scores: pd.DataFrame

    def history(self) -> pd.DataFrame:
        return self.scores

    def facts(self, now: datetime) -> pd.DataFrame:
        facts = self.base_facts.copy()
        day = pd.Timestamp(now).tz_convert(None).normalize()
        gone = facts["churned_at"].notna() & (facts["churned_at"] <= day)
        facts["active"] = ~gone
        facts.loc[~gone, "churned_at"] = pd.NaT
        facts.loc[gone, "mrr"] = 0.0
        return facts

    def tables(self) -> None:
        return None

    def contract_exits(self) -> pd.DataFrame | None:
        lost = self.base_facts[self.base_facts["churned_at"].notna()].reset_index()
        return pd.DataFrame(
            {
                "customer_id": lost["customer_id"],
                "churned_at": lost["churned_at"].dt.strftime("%Y-%m-%dT00:00:00Z"),
                "category": ["price" if i % 2 else "product" for i in range(len(lost))],
                "avoidable": [i % 3 != 0 for i in range(len(lost))],
            }
        )


@dataclass
class World:
    workflows: CraftedWorkflows
    settings: Settings
    app: FastAPI


def build_world(root: Path) -> World:
    rng = np.random.default_rng(5)
    rows, fact_rows = [], []
    start = NOW - timedelta(days=150)
    for i in range(40):
        cid = f"cust-{i:03d}"
        risky = i < 24
        health = [
            float(np.clip((45 if risky else 82) + rng.normal(0, 4), 5, 99)) for _ in range(150)
        ]
        churned_at = None
        if risky and i % 3 == 0:  # a third of the risky ones leave 40 days after the first run
            churned_at = (start + timedelta(days=70)).date()
        fact_rows.append(
            {
                "customer_id": cid,
                "name": f"Company {i}",
                "csm_owner": ["alice", "bob"][i % 2],
                "plan": ["starter", "pro"][i % 2],
                "signup_date": (NOW - timedelta(days=8)).date() if i == 39 else "2023-05-01",
                "mrr": 100.0 + 10 * i,
                "churned_at": churned_at,
            }
        )
        last_day = 69 if churned_at else 149
        rows += scorings(cid, [(n, health[n]) for n in range(0, last_day + 1)])
    scores = history(rows)
    # the crafted timeline is anchored at start, not at the conftest's DAY0
    shift = pd.Timestamp(start.date()) - scores["as_of"].min()
    scores["as_of"] += shift
    scores["scored_at"] += shift
    settings = Settings(
        api_keys=KEY, store_dir=root / "store", data_dir=root / "none",
        auth_failures_before_backoff=1_000_000,
    )  # fmt: skip
    config = parse_rules(RULES, "<world rules>")
    wf = CraftedWorkflows(
        settings=settings,
        config=config,
        ledger=Ledger(root / "store" / "workflows.db"),
        playbook=load_playbook(REPO / "playbook.yaml"),
        history_path=root / "store" / "history",
    )
    wf.base_facts = facts_frame(fact_rows)
    wf.scores = scores
    wf.run(start + timedelta(days=30))
    alerts = wf.ledger.table("alerts", order="alert_id")
    for row in alerts[alerts["holdout"] == 0].head(10).itertuples():
        wf.ledger.add_intervention(
            {
                "customer_id": row.customer_id,
                "alert_id": row.alert_id,
                "type": "call",
                "date": (start + timedelta(days=32)).date(),
                "owner": "alice",
                "outcome": "saved",
            },
            start + timedelta(days=32),
        )
    wf.run(NOW)
    app = FastAPI()
    app.add_exception_handler(ChurnError, lambda _, exc: churn_error_response(exc))  # type: ignore[arg-type,return-value]
    app.state.settings, app.state.api_keys = settings, api_key_check(settings)
    mount_workflows(app, wf)
    return World(wf, settings, app)

"""Crafted score histories and customer facts for the workflow tests, built in each test."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from features.facts import facts_frame
from serving.playbook import Playbook, load_playbook
from serving.workflows.config import RulesConfig, parse_rules
from serving.workflows.inputs import normalise_history
from serving.workflows.ledger import Ledger
from training.health_score import tier_of

REPO = Path(__file__).resolve().parents[3]
DAY0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday


def day(n: int) -> datetime:
    """Day ``n`` of a test timeline, 06:00 UTC (after the nightly scoring at 02:00)."""
    return DAY0 + timedelta(days=n, hours=6)


def scorings(customer_id: str, points: Iterable[tuple[int, float]], **extra: object) -> list[dict]:
    """History rows: (day, health score) -> scored at 02:00 that day, as_of that day."""
    rows = []
    for n, health in points:
        rows.append(
            {
                "customer_id": customer_id,
                "scored_at": DAY0 + timedelta(days=n, hours=2),
                "as_of": (DAY0 + timedelta(days=n)).date(),
                "probability": round(1 - health / 100, 3),
                "health_score": float(health),
                "tier": tier_of(float(health)),
                "top_drivers": [
                    {
                        "feature": "logins_change_30d",
                        "contribution": 0.8,
                        "sentence": "Logins down 60 % in 30 days",
                    },
                    {
                        "feature": "high_priority_open",
                        "contribution": 0.3,
                        "sentence": "2 high-priority tickets open",
                    },
                    {
                        "feature": "tenure_days",
                        "contribution": -0.2,
                        "sentence": "Customer for 3 years",
                    },
                ],
                "model_version": "1",
                **extra,
            }
        )
    return rows


def history(*groups: list[dict]) -> pd.DataFrame:
    return normalise_history(pd.DataFrame([row for group in groups for row in group]))


def facts(*rows: dict) -> pd.DataFrame:
    defaults = {
        "name": None,
        "csm_owner": "alice",
        "signup_date": "2023-01-01",
        "mrr": 100.0,
        "active": True,
        "last_activity_at": day(0),
        "last_purchase_at": day(0),
    }
    filled = []
    for row in rows:
        merged = defaults | row
        merged["name"] = merged["name"] or f"{row['customer_id']} Ltd"
        filled.append(merged)
    return facts_frame(filled)


def rules(body: str, **top: object) -> RulesConfig:
    """A rules file with the given ``rules:`` body (YAML list) and top-level keys."""
    head = "".join(f"{k}: {v}\n" for k, v in top.items())
    return parse_rules(head + "rules:\n" + body, "<test rules>")


@pytest.fixture
def playbook() -> Playbook:
    return load_playbook(REPO / "playbook.yaml")


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "workflows.db")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the test item, so the browser fixture can screenshot a
    failed test."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)

"""Tasks people can work: one open task per customer and play, due dates fixed at creation,
per-owner capacity filled by revenue at risk, filters, paging and bulk reassign."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from serving.playbook import Playbook
from serving.workflows.errors import UnknownRecordError, WorkflowConflictError
from serving.workflows.ledger import Ledger
from serving.workflows.run import run_rules
from tests.serving.workflows.conftest import day, facts, history, rules, scorings

# two rules that fire for the same customer: both resolve to the customer's tier play
TWO_RULES = """
  - id: low-health
    description: health below 60 for 3 days
    when: {kind: health_below, threshold: 60, days: 3}
    actions: [{type: task, title: "{{ customer_name }} needs a call"}]
  - id: fell
    description: health fell 20 points in 14 days
    when: {kind: score_drop, points: 20, days: 14}
    actions: [{type: task, title: "{{ customer_name }} fell"}]
"""
LOW_HEALTH = """
  - id: low-health
    description: health below 60 for 3 days
    when: {kind: health_below, threshold: 60, days: 3}
    actions: [{type: task, title: "{{ customer_name }} needs a call"}]
"""


def test_a_later_alert_for_the_same_customer_and_play_joins_the_open_task(
    ledger: Ledger, playbook: Playbook
) -> None:
    # health 50 from day 0 (low-health holds on day 2); a fall from 90 to 50 only on day 5
    points = [(n, 50.0) for n in range(0, 3)] + [(3, 90.0), (4, 90.0)]
    points += [(n, 50.0) for n in range(5, 12)]
    hist, fx = history(scorings("c1", points)), facts({"customer_id": "c1"})
    config = rules(TWO_RULES)
    first = run_rules(config, ledger, hist, fx, playbook, day(5))
    second = run_rules(config, ledger, hist, fx, playbook, day(8))
    alerts = ledger.table("alerts", order="alert_id")
    tasks = ledger.table("tasks", where="status = 'open'")
    assert len(alerts[alerts["cleared_at"].isna()]) == 2
    assert len(tasks) == 1 and (first.tasks + second.tasks) == 1
    links = ledger.table("task_alerts")
    assert set(links["alert_id"]) == set(alerts["alert_id"])
    assert links["task_id"].nunique() == 1


def test_the_due_date_is_fixed_when_the_task_is_created(ledger: Ledger, playbook: Playbook) -> None:
    hist = history(scorings("c1", [(n, 50.0) for n in range(0, 20)]))
    fx, config = facts({"customer_id": "c1"}), rules(LOW_HEALTH)
    run_rules(config, ledger, hist, fx, playbook, day(3))
    due = ledger.table("tasks")["due_at"].tolist()
    for n in (4, 9, 15):
        run_rules(config, ledger, hist, fx, playbook, day(n))
        assert ledger.table("tasks")["due_at"].tolist() == due
        assert ledger.alerts("open")["due_at"].tolist() == due


def test_a_task_whose_alerts_all_cleared_is_resolved_by_the_rules(
    ledger: Ledger, playbook: Playbook
) -> None:
    points = [(n, 50.0) for n in range(0, 5)] + [(n, 80.0) for n in range(5, 8)]
    hist, fx = history(scorings("c1", points)), facts({"customer_id": "c1"})
    config = rules(LOW_HEALTH)
    run_rules(config, ledger, hist, fx, playbook, day(4))
    run_rules(config, ledger, hist, fx, playbook, day(6))
    task = ledger.table("tasks").iloc[0]
    assert (task["status"], task["closed_by"]) == ("closed", "rules")


def risky_book(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` customers of one CSM, all below 60; c00 has the highest revenue at risk."""
    rows, fact_rows = [], []
    for i in range(n):
        cid = f"c{i:02d}"
        rows += scorings(cid, [(d, 40.0) for d in range(0, 30)])
        fact_rows.append({"customer_id": cid, "csm_owner": "alice", "mrr": 1000.0 - 10 * i})
    return history(rows), facts(*fact_rows)


def test_capacity_gives_tasks_to_the_highest_revenue_at_risk_and_the_rest_wait(
    ledger: Ledger, playbook: Playbook
) -> None:
    hist, fx = risky_book(8)
    config = rules(LOW_HEALTH)
    summary = run_rules(config, ledger, hist, fx, playbook, day(3), capacity=3)
    tasks = ledger.table("tasks", order="task_id")
    assert (summary.tasks, summary.waiting) == (3, 5)
    assert tasks["customer_id"].tolist() == ["c00", "c01", "c02"]
    assert tasks["revenue_at_risk"].is_monotonic_decreasing
    # c00 closes its task: the next run backfills the richest waiting episode, due from then
    ledger.close_task(int(tasks["task_id"].iloc[0]), "alice", "called", day(4))
    later = run_rules(config, ledger, hist, fx, playbook, day(5), capacity=3)
    opened = ledger.table("tasks", where="status = 'open'", order="task_id")
    assert later.tasks == 1 and later.opened == 0
    assert opened["customer_id"].tolist() == ["c01", "c02", "c03"]
    assert opened["created_at"].iloc[-1].startswith(day(5).date().isoformat())


def test_listing_filters_pages_and_counts_overdue_tasks(ledger: Ledger, playbook: Playbook) -> None:
    hist, fx = risky_book(6)
    fx.loc[["c04", "c05"], "csm_owner"] = "bob"
    run_rules(rules(LOW_HEALTH), ledger, hist, fx, playbook, day(3))
    page, total = ledger.tasks(day(3), owner="alice", limit=2, offset=0)
    rest, _ = ledger.tasks(day(3), owner="alice", limit=2, offset=2)
    assert total == 4 and len(page) == 2 and len(rest) == 2
    assert set(page["task_id"]).isdisjoint(rest["task_id"])
    assert ledger.tasks(day(3), tier="high")[1] == 0
    assert ledger.tasks(day(3), tier=str(page["tier"].iloc[0]))[1] == 6
    assert ledger.tasks(day(3), overdue=True)[1] == 0
    late, count = ledger.tasks(day(20), overdue=True)
    assert count == 6 and late["overdue"].all()


def test_bulk_reassign_moves_open_tasks_and_records_who(ledger: Ledger, playbook: Playbook) -> None:
    hist, fx = risky_book(4)
    run_rules(rules(LOW_HEALTH), ledger, hist, fx, playbook, day(3))
    ids = ledger.table("tasks", order="task_id")["task_id"].astype(int).tolist()
    assert ledger.reassign_tasks(ids[:3], "bob", "manager", day(4)) == ids[:3]
    assert ledger.tasks(day(4), owner="bob")[1] == 3
    assert ledger.table("reassignments")["by"].tolist() == ["manager"] * 3
    with pytest.raises(UnknownRecordError, match="No task 999"):
        ledger.reassign_tasks([ids[3], 999], "bob", "manager", day(4))
    ledger.close_task(ids[3], "alice", "done", day(4))
    with pytest.raises(WorkflowConflictError, match="closed"):
        ledger.reassign_tasks([ids[3]], "bob", "manager", day(4))
    assert ledger.tasks(day(4), owner="alice")[1] == 0  # nothing half-moved


def test_an_old_ledger_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE tasks (task_id INTEGER PRIMARY KEY, alert_id INTEGER, customer_id TEXT "
        "NOT NULL, title TEXT NOT NULL, owner TEXT NOT NULL, tier TEXT, sla TEXT, due_at TEXT "
        "NOT NULL, created_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open', closed_at "
        "TEXT, closed_by TEXT, outcome TEXT);"
        "INSERT INTO tasks (alert_id, customer_id, title, owner, due_at, created_at) VALUES "
        "(7, 'c1', 't', 'alice', '2025-01-02', '2025-01-01');"
    )
    con.close()
    ledger = Ledger(path)
    assert {"play", "revenue_at_risk"} <= set(ledger.table("tasks").columns)
    assert ledger.table("task_alerts")[["task_id", "alert_id"]].values.tolist() == [[1, 7]]

"""What a new alert does: tasks due by the playbook SLA, drafts from templates, tags that follow
the episode, and a seeded hold-out that runs no action."""

from __future__ import annotations

from datetime import timedelta

from serving.playbook import Playbook
from serving.workflows.ledger import Ledger
from serving.workflows.run import in_holdout, run_rules
from tests.serving.workflows.conftest import day, facts, history, rules, scorings

ACTING = """
  - id: low
    description: health below 60
    when: {kind: health_below, threshold: 60, days: 1}
    actions:
      - {type: task, title: "Call {{ customer_name }} ({{ tier }})"}
      - {type: email_draft, template: risk_checkin}
      - {type: tag, tag: at-risk}
"""


def test_tasks_are_due_by_the_playbook_sla_of_the_tier(ledger: Ledger, playbook: Playbook) -> None:
    hist = history(scorings("high", [(0, 20)]), scorings("medium", [(0, 50)]))
    run_rules(rules(ACTING), ledger, hist, facts({"customer_id": "high", "csm_owner": "dana"},
              {"customer_id": "medium", "csm_owner": None}), playbook, day(0))  # fmt: skip
    tasks = ledger.table("tasks").set_index("customer_id")
    opened = day(0)
    assert tasks.loc["high", "owner"] == "dana"
    assert tasks.loc["high", "due_at"] == (opened + timedelta(hours=4)).isoformat()
    assert tasks.loc["medium", "owner"] == playbook.tiers["medium"].owner  # no CSM on record
    assert tasks.loc["medium", "due_at"] == (opened + timedelta(hours=24)).isoformat()
    assert tasks.loc["high", "title"] == "Call high Ltd (high)"


def test_low_risk_tasks_are_due_in_working_days(ledger: Ledger, playbook: Playbook) -> None:
    config = rules(ACTING.replace("threshold: 60", "threshold: 70"))
    friday = 4  # DAY0 is a Monday
    run_rules(config, ledger, history(scorings("c", [(friday, 65)])), facts({"customer_id": "c"}),
              playbook, day(friday))  # fmt: skip
    due = ledger.table("tasks")["due_at"].iloc[0]
    assert due == (day(friday) + timedelta(days=5)).isoformat()  # Fri + 3 working days = Wed


def test_the_draft_names_the_customer_drivers_and_offer(ledger: Ledger, playbook: Playbook) -> None:
    run_rules(rules(ACTING), ledger, history(scorings("c", [(0, 50)])),
              facts({"customer_id": "c", "name": "Acme Foods"}), playbook, day(0))  # fmt: skip
    draft = ledger.table("drafts").iloc[0]
    assert draft["status"] == "draft" and "Acme Foods" in draft["subject"]
    assert "Logins down 60 % in 30 days" in draft["body"]
    assert playbook.tiers["medium"].action.split(";")[0] in draft["body"]
    assert "Customer for 3 years" not in draft["body"]  # risk-lowering drivers are left out


def test_tags_follow_the_episode(ledger: Ledger, playbook: Playbook) -> None:
    hist = history(scorings("c", [(0, 50), (1, 80)]))
    config, fx = rules(ACTING), facts({"customer_id": "c"})
    run_rules(config, ledger, hist, fx, playbook, day(0))
    assert ledger.segment("at-risk") == ["c"]
    run_rules(config, ledger, hist, fx, playbook, day(1))
    assert ledger.segment("at-risk") == []


def test_the_holdout_is_seeded_recorded_and_runs_no_action(
    ledger: Ledger, playbook: Playbook
) -> None:
    ids = [f"c{i:02d}" for i in range(60)]
    config = rules(ACTING, holdout="{share: 0.25, seed: 11}")
    hist = history(*[scorings(c, [(0, 50)]) for c in ids])
    run_rules(config, ledger, hist, facts(*[{"customer_id": c} for c in ids]), playbook, day(0))
    alerts = ledger.table("alerts").set_index("customer_id")
    held = set(alerts.index[alerts["holdout"] == 1])
    opened = alerts["opened_at"].iloc[0]
    assert held == {c for c in ids if in_holdout(11, "low", c, opened, 0.25)}
    assert 5 <= len(held) <= 25
    assert held.isdisjoint(ledger.table("tasks")["customer_id"])
    assert held.isdisjoint(ledger.table("drafts")["customer_id"])
    assert held.isdisjoint(ledger.segment("at-risk"))
    assert len(ledger.table("tasks")) == 60 - len(held)

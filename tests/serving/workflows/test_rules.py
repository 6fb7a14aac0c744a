"""Rule engine over crafted score histories: consecutive days with gaps, same-day rescoring,
episodes that clear and come back, and every condition kind."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from serving.playbook import Playbook
from serving.workflows.conditions import evaluate
from serving.workflows.inputs import daily_scores
from serving.workflows.ledger import Ledger
from serving.workflows.run import run_rules
from tests.serving.workflows.conftest import DAY0, day, facts, history, rules, scorings

HEALTH_7D = """
  - id: low-health
    description: health below 60 for 7 days
    when: {kind: health_below, threshold: 60, days: 7}
    actions: [{type: task, title: "{{ customer_name }} needs a call"}]
"""


def holding(config, hist, fx, now) -> set[tuple[str, str]]:
    found = evaluate(config, daily_scores(hist, now, known_at=now), fx, now)
    return set(zip(found["rule_id"], found["customer_id"], strict=True))


def test_health_below_needs_seven_consecutive_days() -> None:
    config = rules(HEALTH_7D)
    hist = history(scorings("c1", [(n, 55) for n in range(7)]))
    fx = facts({"customer_id": "c1"})
    assert holding(config, hist, fx, day(5)) == set()
    assert holding(config, hist, fx, day(6)) == {("low-health", "c1")}


def test_a_day_at_or_above_the_threshold_restarts_the_count() -> None:
    config = rules(HEALTH_7D)
    points = [(n, 55) for n in range(10)]
    points[4] = (4, 60)  # exactly the threshold is not below it
    hist = history(scorings("c1", points))
    assert holding(config, hist, facts({"customer_id": "c1"}), day(9)) == set()
    assert holding(config, hist, facts({"customer_id": "c1"}), day(11)) == {("low-health", "c1")}


def test_gaps_between_scorings_carry_the_last_score_unless_limited() -> None:
    hist = history(scorings("c1", [(0, 55), (3, 50), (7, 58)]))
    fx = facts({"customer_id": "c1"})
    assert holding(rules(HEALTH_7D), hist, fx, day(7)) == {("low-health", "c1")}
    limited = rules(HEALTH_7D.replace("days: 7}", "days: 7, max_gap_days: 2}"))
    assert holding(limited, hist, fx, day(7)) == set()


def test_rescoring_on_the_same_day_replaces_that_days_score() -> None:
    rescored = scorings("c1", [(3, 75)], model_version="2")
    for row in rescored:
        row["scored_at"] += timedelta(hours=12)  # 14:00, after the nightly 02:00 scoring
    hist = history(scorings("c1", [(n, 55) for n in range(8)]), rescored)
    fx = facts({"customer_id": "c1"})
    assert holding(rules(HEALTH_7D), hist, fx, day(7)) == set()
    # a run before the rescoring happened still sees the first score of day 3
    before = DAY0 + timedelta(days=3, hours=6)
    replayed = daily_scores(hist, day(7), known_at=before)
    assert replayed["health_score"].tolist() == [55.0] * 4  # days 0-3, rescoring not yet made
    assert (
        daily_scores(hist, day(7))
        .set_index("as_of")
        .loc[pd.Timestamp(DAY0.date()) + timedelta(days=3), "health_score"]
        == 75
    )


def test_an_alert_fires_once_per_episode_and_again_after_recovery(
    ledger: Ledger, playbook: Playbook
) -> None:
    points = [(n, 50) for n in range(8)] + [(8, 72)] + [(n, 45) for n in range(9, 17)]
    hist = history(scorings("c1", points))
    fx = facts({"customer_id": "c1"})
    config = rules(HEALTH_7D)
    opened = [run_rules(config, ledger, hist, fx, playbook, day(n)).opened for n in range(6, 17)]
    # day 6: first alert; days 7: still holds, nothing; day 8: recovered, cleared; day 15: new
    assert opened == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    alerts = ledger.table("alerts", order="alert_id")
    assert alerts["cleared_at"].notna().tolist() == [True, False]
    assert alerts["cleared_at"].iloc[0].startswith("2025-03-11")
    assert len(ledger.table("tasks")) == 2


def test_a_second_run_at_the_same_now_changes_nothing(ledger: Ledger, playbook: Playbook) -> None:
    hist = history(scorings("c1", [(n, 50) for n in range(8)]))
    config, fx = rules(HEALTH_7D), facts({"customer_id": "c1"})
    first = run_rules(config, ledger, hist, fx, playbook, day(7))
    second = run_rules(config, ledger, hist, fx, playbook, day(7))
    assert (first.opened, second.opened, second.cleared) == (1, 0, 0)


def test_a_run_older_than_the_last_one_is_refused(ledger: Ledger, playbook: Playbook) -> None:
    from serving.workflows.errors import RulesError

    hist = history(scorings("c1", [(0, 90)]))
    config, fx = rules(HEALTH_7D), facts({"customer_id": "c1"})
    run_rules(config, ledger, hist, fx, playbook, day(5))
    with pytest.raises(RulesError, match="older than the last run"):
        run_rules(config, ledger, hist, fx, playbook, day(4))


def test_tier_drop_holds_until_the_better_tier_leaves_the_window() -> None:
    config = rules("""
  - id: dropped
    description: tier dropped
    when: {kind: tier_dropped, window_days: 10}
""")
    hist = history(scorings("c1", [(n, 85) for n in range(5)] + [(n, 50) for n in range(5, 20)]))
    fx = facts({"customer_id": "c1"})
    assert holding(config, hist, fx, day(4)) == set()
    assert holding(config, hist, fx, day(5)) == {("dropped", "c1")}
    assert holding(config, hist, fx, day(14)) == {("dropped", "c1")}
    assert holding(config, hist, fx, day(15)) == set()


def test_score_drop_compares_with_the_peak_of_the_window() -> None:
    config = rules("""
  - id: fell
    description: fell 20 in 14 days
    when: {kind: score_drop, points: 20, days: 14}
""")
    hist = history(scorings("c1", [(0, 85), (7, 70), (10, 62), (20, 62)]))
    fx = facts({"customer_id": "c1"})
    assert holding(config, hist, fx, day(10)) == {("fell", "c1")}
    assert holding(config, hist, fx, day(20)) == set()


def test_value_at_risk_only_for_the_top_mrr_share_in_the_tiers() -> None:
    config = rules("""
  - id: key-account
    description: top MRR at medium risk
    when: {kind: value_at_risk, top_share: 0.1, tiers: [medium]}
""")
    ids = [f"c{i}" for i in range(10)]
    hist = history(*[scorings(c, [(0, 50)]) for c in ids])  # all medium
    fx = facts(*[{"customer_id": c, "mrr": 100.0 * (i + 1)} for i, c in enumerate(ids)])
    assert holding(config, hist, fx, day(0)) == {("key-account", "c9")}


def test_lifecycle_touch_fires_once_after_signup(ledger: Ledger, playbook: Playbook) -> None:
    config = rules("""
  - id: tips
    description: 7 days after signup
    when: {kind: days_since_signup, days: 7, window_days: 3}
    actions: [{type: email_draft, template: onboarding_tips}]
""")
    fx = facts({"customer_id": "new", "signup_date": DAY0.date()}, {"customer_id": "old"})
    empty = history(scorings("old", [(0, 90)]))
    opened = [run_rules(config, ledger, empty, fx, playbook, day(n)).opened for n in range(5, 14)]
    assert opened == [0, 0, 1, 0, 0, 0, 0, 0, 0]
    drafts = ledger.table("drafts")
    assert drafts["customer_id"].tolist() == ["new"]
    assert "new Ltd" in drafts["subject"].iloc[0]


def test_inactivity_by_source() -> None:
    config = rules("""
  - id: idle
    description: no activity for 30 days
    when: {kind: inactive, days: 30, source: activity}
  - id: no-purchase
    description: no purchase for 30 days
    when: {kind: inactive, days: 30, source: purchase}
  - id: dormant
    description: neither for 30 days
    when: {kind: inactive, days: 30, source: any}
""")
    fx = facts(
        {"customer_id": "idle", "last_activity_at": day(-40), "last_purchase_at": day(-1)},
        {"customer_id": "buyer", "last_activity_at": day(-2), "last_purchase_at": day(-60)},
        {"customer_id": "gone", "last_activity_at": day(-45), "last_purchase_at": day(-50)},
        {
            "customer_id": "never",
            "last_activity_at": None,
            "last_purchase_at": None,
            "signup_date": day(-31).date(),
        },
    )
    found = holding(config, history(scorings("idle", [(0, 90)])), fx, day(0))
    assert found == {
        ("idle", "idle"),
        ("idle", "gone"),
        ("idle", "never"),
        ("no-purchase", "buyer"),
        ("no-purchase", "gone"),
        ("no-purchase", "never"),
        ("dormant", "gone"),
        ("dormant", "never"),
    }


def test_churned_and_stale_customers_do_not_trigger_risk_rules() -> None:
    config = rules(HEALTH_7D, max_score_age_days=3)
    hist = history(
        scorings("churned", [(n, 40) for n in range(10)]),
        scorings("stale", [(n, 40) for n in range(8)]),
        scorings("live", [(n, 40) for n in range(12)]),
    )
    fx = facts(
        {"customer_id": "churned", "active": False},
        {"customer_id": "stale"},
        {"customer_id": "live"},
    )
    assert holding(config, hist, fx, day(11)) == {("low-health", "live")}


def test_filters_restrict_a_rule_to_tiers_mrr_and_segments() -> None:
    config = rules("""
  - id: big-high
    description: high risk, big, enterprise
    when: {kind: health_below, threshold: 60, days: 1}
    only: {tiers: [high], min_mrr: 500, segments: {plan: [enterprise]}}
""")
    hist = history(*[scorings(c, [(0, 30)]) for c in ("a", "b", "c")], scorings("d", [(0, 50)]))
    fx = facts(
        {"customer_id": "a", "mrr": 900, "plan": "enterprise"},
        {"customer_id": "b", "mrr": 100, "plan": "enterprise"},
        {"customer_id": "c", "mrr": 900, "plan": "starter"},
        {"customer_id": "d", "mrr": 900, "plan": "enterprise"},
    )
    assert holding(config, hist, fx, day(0)) == {("big-high", "a")}

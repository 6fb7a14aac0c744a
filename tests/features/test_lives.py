"""A customer's paid lives (``definitions/lives.sql``) are defined once: the churn labels, the
retention metrics and the workflow facts all read them, so a change to the rule reaches all three.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

import features.engine
from features import metrics
from features.contract import RawTables
from features.engine import build_labeled_set, definition, load_lives
from features.facts import customer_facts
from features.labels import LabelSpec

# "late" renews 10 days after its subscription ended; "steady" renews on the day.
SUBSCRIPTIONS = [
    ("late", date(2024, 1, 1), date(2024, 3, 1), 100.0),
    ("late", date(2024, 3, 11), None, 100.0),
    ("steady", date(2024, 1, 1), date(2024, 3, 1), 100.0),
    ("steady", date(2024, 3, 1), None, 100.0),
]
CHAINING = "o.start_day > o.prev_end + p.gap_days"


def company() -> RawTables:
    subs = pd.DataFrame(
        {
            "subscription_id": [f"s{i}" for i in range(len(SUBSCRIPTIONS))],
            "customer_id": [s[0] for s in SUBSCRIPTIONS],
            "start_date": pd.Series([s[1] for s in SUBSCRIPTIONS], dtype="object"),
            "end_date": pd.Series([s[2] for s in SUBSCRIPTIONS], dtype="object"),
            "mrr": [s[3] for s in SUBSCRIPTIONS],
            "plan": "pro",
        }
    )
    customers = pd.DataFrame({"customer_id": ["late", "steady"], "signup_date": date(2023, 12, 1)})
    return RawTables(customers=customers, subscriptions=subs)


def churn_seen_by_everyone(gap_days: int) -> dict[str, set[str]]:
    """Who churned at the 1 March renewal, according to labels, metrics and facts."""
    tables = company()
    spec = LabelSpec(horizon_days=31, gap_days=gap_days, observed_until=date(2024, 12, 1))
    labels = build_labeled_set(tables, [date(2024, 2, 1)], spec)
    months = metrics.customer_months(tables, date(2024, 3, 1), date(2024, 4, 1), gap_days)
    # 9 March: more than gap_days after the end, before the late renewal
    facts = customer_facts(tables, datetime(2024, 3, 9, 12, tzinfo=UTC), gap_days)
    return {
        "labels": set(labels.loc[labels["churned"] == 1, "customer_id"]),
        "metrics": set(months.loc[months["lost"] == 1, "customer_id"]),
        "facts": set(facts.index[facts["churned_at"] == pd.Timestamp("2024-03-01")]),
    }


def test_lives_chain_renewals_within_the_gap_and_split_later_ones() -> None:
    engine = load_lives(company(), LabelSpec(gap_days=7, observed_until=date(2024, 12, 1)))
    lives = engine.fetch("SELECT * FROM lives ORDER BY customer_id, life")
    assert lives["customer_id"].tolist() == ["late", "late", "steady"]
    assert lives["life"].tolist() == [1, 2, 1]
    assert (lives["life_end"] == 99_999_999).tolist() == [False, True, True]


@pytest.mark.parametrize(("gap_days", "churned"), [(7, {"late"}), (14, set())])
def test_the_renewal_gap_reaches_labels_metrics_and_facts_alike(
    gap_days: int, churned: set[str]
) -> None:
    seen = churn_seen_by_everyone(gap_days)
    assert seen == {"labels": churned, "metrics": churned, "facts": churned}


def test_an_edit_of_lives_sql_reaches_labels_metrics_and_facts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Edit the one definition ("a renewal up to twice the gap continues the life"): all three
    readers follow, so no copy of the rule is left anywhere else."""
    original = definition("lives")
    assert CHAINING in original
    edited = original.replace(CHAINING, "o.start_day > o.prev_end + 2 * p.gap_days")

    def patched(name: str) -> str:
        return edited if name == "lives" else definition(name)

    assert churn_seen_by_everyone(7) == {"labels": {"late"}, "metrics": {"late"}, "facts": {"late"}}
    monkeypatch.setattr(features.engine, "definition", patched)
    assert churn_seen_by_everyone(7) == {"labels": set(), "metrics": set(), "facts": set()}

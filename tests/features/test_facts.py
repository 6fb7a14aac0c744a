"""Today's customer facts (``features.facts``) from real contract tables and tiny hand-made ones."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from features.contract import RawTables
from features.facts import customer_facts, facts_frame
from features.pipeline import snapshot_as_of


def company(
    subs: list[tuple[str, date, date | None, float]],
    signups: dict[str, date] | None = None,
    invoices: list[tuple[str, str]] | None = None,
) -> RawTables:
    """Customers ``a``, ``b``, ... with the given subscriptions (customer, start, end, mrr)."""
    ids = sorted({s[0] for s in subs} | set(signups or {}))
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": [(signups or {}).get(i, date(2024, 1, 1)) for i in ids],
            "name": [f"Company {i}" for i in ids],
        }
    )
    subscriptions = pd.DataFrame(
        {
            "subscription_id": [f"s{i}" for i in range(len(subs))],
            "customer_id": [s[0] for s in subs],
            "start_date": pd.Series([s[1] for s in subs], dtype="object"),
            "end_date": pd.Series([s[2] for s in subs], dtype="object"),
            "mrr": [s[3] for s in subs],
            "plan": "pro",
        }
    )
    paid = None
    if invoices is not None:
        paid = pd.DataFrame(
            {
                "invoice_id": [f"i{k}" for k in range(len(invoices))],
                "customer_id": [c for c, _ in invoices],
                "issued_at": pd.to_datetime([t for _, t in invoices], utc=True),
                "paid_at": pd.to_datetime([t for _, t in invoices], utc=True),
                "amount": 100.0,
            }
        )
    return RawTables(customers=customers, subscriptions=subscriptions, invoices=paid)


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=15, tzinfo=UTC)


def test_customer_facts_agree_with_the_subscriptions(small_tables: RawTables) -> None:
    now = datetime.combine(snapshot_as_of(small_tables), datetime.min.time(), UTC)
    facts = customer_facts(small_tables, now)
    assert len(facts) == len(small_tables.customers)
    assert not facts.loc[facts["churned_at"].notna(), "active"].any()
    assert (facts.loc[facts["mrr"] > 0, "active"]).all()
    assert (facts["last_activity_at"].dropna() < pd.Timestamp(now).tz_localize(None)).all()
    subs = small_tables.subscriptions
    open_ended = subs[subs["end_date"].isna() & (subs["mrr"] > 0)]["customer_id"].astype(str)
    assert facts.loc[sorted(set(open_ended)), "active"].all()
    assert 0 < facts["active"].mean() < 1


def test_a_renewal_within_the_gap_is_not_churn_and_a_later_one_is() -> None:
    tables = company(
        [
            ("a", date(2024, 1, 1), date(2024, 3, 1), 100.0),
            ("a", date(2024, 3, 5), None, 120.0),  # 4 days late: the life continues
            ("b", date(2024, 1, 1), date(2024, 3, 1), 100.0),
            ("b", date(2024, 3, 20), None, 80.0),  # 19 days late: a new life
        ]
    )
    in_gap = customer_facts(tables, at("2024-03-03"))
    assert in_gap["active"].all() and in_gap["churned_at"].isna().all()
    assert in_gap["mrr"].tolist() == [0.0, 0.0]  # nothing covers the day, yet nobody churned
    between = customer_facts(tables, at("2024-03-12"))
    assert between.loc["a", "active"] and between.loc["a", "mrr"] == 120.0
    assert not between.loc["b", "active"]
    assert between.loc["b", "churned_at"] == pd.Timestamp("2024-03-01")
    back = customer_facts(tables, at("2024-03-25"))
    assert back.loc["b", "active"] and pd.isna(back.loc["b", "churned_at"])
    assert back.loc["b", "last_purchase_at"] == pd.Timestamp("2024-03-20")


def test_free_plans_do_not_keep_a_customer_and_late_signups_have_no_row() -> None:
    tables = company(
        [
            ("a", date(2024, 1, 1), date(2024, 2, 1), 100.0),
            ("a", date(2024, 2, 1), None, 0.0),  # downgraded to free
            ("c", date(2024, 6, 1), None, 50.0),
        ],
        signups={"c": date(2024, 6, 1)},
        invoices=[("a", "2024-01-15T10:00:00")],
    )
    facts = customer_facts(tables, at("2024-03-01"))
    assert list(facts.index) == ["a"]
    assert not facts.loc["a", "active"] and facts.loc["a", "mrr"] == 0.0
    assert facts.loc["a", "churned_at"] == pd.Timestamp("2024-02-01")
    assert facts.loc["a", "last_purchase_at"] == pd.Timestamp("2024-01-15 10:00")
    assert facts.loc["a", "name"] == "Company a"


def test_facts_from_plain_rows_fill_what_is_missing() -> None:
    facts = facts_frame([{"customer_id": 7, "mrr": None}])
    assert facts.loc["7", "mrr"] == 0.0 and facts.loc["7", "active"]
    assert pd.isna(facts.loc["7", "churned_at"]) and facts.loc["7", "plan"] is None

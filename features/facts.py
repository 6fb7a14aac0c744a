"""Today's facts about each customer, from the contract tables: what the workflow rules, the exit
forms and the closed loop read (``serving.workflows``).

Per customer, as of an explicit ``now``: name, ``csm_owner``, segment attributes, signup, current
MRR, last activity, last purchase and whether the customer has churned. Churn is the labels' and
the retention metrics' own: the paid lives of ``definitions/lives.sql``, so a renewal within
``gap_days`` is not churn here either (``definitions/facts.sql``).

Timestamps are UTC; days are calendar dates held as naive midnights.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from features.contract import RawTables
from features.engine import definition, load_lives, prepare
from features.labels import LabelSpec

SEGMENT_COLUMNS = ("industry", "company_size", "region", "plan", "acquisition_channel")
FACT_COLUMNS = (
    "customer_id",
    "name",
    "csm_owner",
    *SEGMENT_COLUMNS,
    "signup_date",
    "mrr",
    "active",
    "churned_at",
    "last_activity_at",
    "last_purchase_at",
)
TIME_FACTS = ("signup_date", "churned_at", "last_activity_at", "last_purchase_at")
EPOCH = pd.Timestamp("1970-01-01")


def utc(moment: datetime | pd.Timestamp | str) -> pd.Timestamp:
    """A UTC timestamp; a naive value is taken as UTC (the project's convention)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def day_of(now: datetime | pd.Timestamp) -> pd.Timestamp:
    """The calendar day of ``now`` as a naive midnight, comparable with ``as_of``."""
    return utc(now).tz_localize(None).normalize()


def clock(now: datetime | pd.Timestamp) -> pd.DataFrame:
    """The one-row ``clock`` table ``facts.sql`` reads: the instant and its UTC day number."""
    today = day_of(now)
    return pd.DataFrame(
        {
            "now_at": pd.Series([utc(now).tz_localize(None)], dtype="datetime64[us]"),
            "today_day": [(today - EPOCH).days],
        }
    )


def customer_facts(
    tables: RawTables, now: datetime, gap_days: int = LabelSpec().gap_days
) -> pd.DataFrame:
    """Per customer signed up by ``now``'s day (see the module docstring), indexed by
    ``customer_id``.

    ``mrr`` is the MRR of the paid subscriptions covering ``now``'s day (0 once churned);
    ``churned_at`` is the end of the customer's latest paid life once ``gap_days`` have passed
    without a renewal; ``active`` is false from then on, and for customers who never paid.
    """
    today = day_of(now)
    engine = load_lives(tables, LabelSpec(gap_days=gap_days, observed_until=today.date()))
    prepared = prepare(tables)
    engine.register("customers", prepared["customers"][["customer_id", "signup_date"]])
    empty_events = pd.DataFrame(
        {"customer_id": pd.Series(dtype="string"), "ts": pd.Series(dtype="datetime64[us]")}
    )
    engine.register("events", prepared.get("events", empty_events)[["customer_id", "ts"]])
    empty_invoices = pd.DataFrame(
        {"customer_id": pd.Series(dtype="string"), "paid_at": pd.Series(dtype="datetime64[us]")}
    )
    invoices = prepared.get("invoices", empty_invoices)[["customer_id", "paid_at"]]
    engine.register("invoices", invoices)
    engine.register("clock", clock(now))
    facts = engine.fetch(definition("facts"))
    customers = tables.customers
    attributes = customers.set_index(customers["customer_id"].astype(str))
    facts["customer_id"] = facts["customer_id"].astype(str)
    facts = facts.set_index("customer_id")
    for column in ("name", "csm_owner", *SEGMENT_COLUMNS):
        if column in attributes.columns:
            facts[column] = attributes[column].reindex(facts.index).astype("object")
        else:
            facts[column] = None
    facts["active"] = facts["active"].astype(bool)
    for column in TIME_FACTS:
        facts[column] = pd.to_datetime(facts[column])
    return facts[list(FACT_COLUMNS[1:])]


def facts_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Customer facts from plain rows (tests, imports): missing columns become empty."""
    frame = pd.DataFrame(list(rows))
    for column in FACT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame["mrr"] = pd.to_numeric(frame["mrr"]).fillna(0.0).astype("float64")
    frame["active"] = frame["active"].astype("boolean").fillna(True).astype(bool)
    for column in TIME_FACTS:
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame.set_index("customer_id")[list(FACT_COLUMNS[1:])]


__all__ = [
    "FACT_COLUMNS",
    "SEGMENT_COLUMNS",
    "clock",
    "customer_facts",
    "day_of",
    "facts_frame",
    "utc",
]

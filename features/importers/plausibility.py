"""Plausibility warnings: data that passes the contract but is probably not what was meant.

The contract checks types and rules; these checks look at the numbers as a whole, for the
mistakes a first import makes: amounts in cents taken as MRR, a median MRR no 200-person SaaS
company bills, dates exported as midnight timestamps, an event log cut off before the
subscriptions end, one account (a test account, or an unresolved identity) holding most of the
usage, sign-ins under a name the features do not count. They are warnings: each message says
what looks wrong and how to fix it if it is wrong. ``churn validate`` adds them to its report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import COLUMN_KINDS, Finding, RawTables

MAX_MEDIAN_MRR = 50_000.0
"""Above this median MRR per subscription the amounts are more likely in the wrong unit."""
MIN_ROWS = 20  # fewer rows say nothing about a whole column
LOGIN = "login"
_SIGN_IN_WORDS = ("sign", "log", "session", "auth")


def _warning(
    rule: str, table: str, column: str | None, message: str, fix: str, rows: int = 0
) -> Finding:
    return Finding("warning", table, column, rule, message, fix, row_count=rows)


def minor_units(values: pd.Series) -> bool:
    """Amounts that look like cents: whole numbers, mostly multiples of 100, median of 1,000+.

    Prices in major units end in 9 or are small (29, 99, 149.5); the same prices in cents are
    whole hundreds (2900, 9900) and a hundred times larger.
    """
    amounts = values.dropna()
    amounts = amounts[amounts > 0]
    if len(amounts) < MIN_ROWS:
        return False
    whole = np.isclose(amounts, np.round(amounts)).mean()
    hundreds = np.isclose(np.mod(amounts, 100), 0).mean()
    return bool(whole >= 0.95 and hundreds >= 0.5 and amounts.median() >= 1_000)


def _money_findings(tables: RawTables, max_median_mrr: float) -> list[Finding]:
    findings = []
    mrr = tables.subscriptions["mrr"]
    if minor_units(mrr):
        findings.append(_warning(
            "mrr_in_minor_units", "subscriptions", "mrr",
            f"MRR looks like it is in minor units (cents): {_share_hundreds(mrr):.0%} of the "
            f"amounts are whole hundreds and the median is {mrr.median():,.0f}. Every revenue "
            "number (MRR churn, revenue at risk) would be 100 times too large.",
            "Divide the amounts by 100 before exporting, or import with a mapping file that "
            "says `units: minor` (docs/bring-your-own-data.md). Ignore this if your prices "
            "really are whole hundreds.",
            int(mrr.notna().sum()),
        ))  # fmt: skip
    elif len(mrr.dropna()) >= MIN_ROWS and mrr.median() > max_median_mrr:
        findings.append(_warning(
            "median_mrr_above_bound", "subscriptions", "mrr",
            f"The median MRR is {mrr.median():,.0f}, above {max_median_mrr:,.0f} per month. "
            "That is rare for one subscription; the amounts may be yearly, in cents, or summed "
            "over many seats twice.",
            "Check the unit and the billing interval of mrr: it is the monthly amount in the "
            "company's currency (a yearly price divided by 12).",
            int(mrr.notna().sum()),
        ))  # fmt: skip
    if tables.invoices is not None and minor_units(tables.invoices["amount"]):
        findings.append(_warning(
            "amount_in_minor_units", "invoices", "amount",
            "Invoice amounts look like minor units (cents): whole hundreds with a median of "
            f"{tables.invoices['amount'].median():,.0f}.",
            "Divide by 100, or import with `units: minor` in the mapping file.",
            len(tables.invoices),
        ))  # fmt: skip
    return findings


def _share_hundreds(values: pd.Series) -> float:
    amounts = values.dropna()
    amounts = amounts[amounts > 0]
    return float(np.isclose(np.mod(amounts, 100), 0).mean()) if len(amounts) else 0.0


def _midnight_findings(tables: RawTables) -> list[Finding]:
    findings = []
    for name, frame in tables.present().items():
        for column in frame.columns:
            if COLUMN_KINDS.get(column) != "timestamp":
                continue
            values = frame[column].dropna()
            if len(values) < MIN_ROWS:
                continue
            if (values.dt.tz_convert("UTC") == values.dt.tz_convert("UTC").dt.normalize()).all():
                findings.append(_warning(
                    "timestamps_all_midnight", name, column,
                    f"Every {column} of {name} is at midnight UTC: they look like dates, or "
                    "local times cut to the day. Features still work by day, but times of day "
                    "and recency within a day are lost, and a local date can land a day off.",
                    "Export the full timestamp with its offset (ISO 8601) if the source has it; "
                    "ignore this if the source only records days.",
                    len(values),
                ))  # fmt: skip
    return findings


def _coverage_findings(tables: RawTables, now: pd.Timestamp) -> list[Finding]:
    """The event log should run as long as the subscriptions have news (starts, past ends)."""
    events = tables.events
    if events is None or len(events) < MIN_ROWS:
        return []
    subs = tables.subscriptions
    today = now.tz_convert("UTC").tz_localize(None) if now.tzinfo else now
    ends = subs["end_date"][subs["end_date"] <= today]
    news = pd.concat([subs["start_date"], ends]).dropna()
    last_event = events["timestamp"].max()
    if news.empty or pd.isna(last_event):
        return []
    subs_until = pd.Timestamp(news.max()).tz_localize("UTC")
    gap = (subs_until - last_event).days
    if gap <= 14:
        return []
    return [_warning(
        "events_stop_early", "events", "timestamp",
        f"The event log ends on {last_event:%Y-%m-%d}, but subscriptions start or end until "
        f"{subs_until:%Y-%m-%d} ({gap} days later). Every customer would look inactive in "
        "those last days, and the model would learn that inactivity means nothing.",
        "Export the event log up to the same day as the subscriptions.",
    )]  # fmt: skip


def _concentration_findings(tables: RawTables) -> list[Finding]:
    events = tables.events
    if events is None or len(events) < MIN_ROWS:
        return []
    counts = events["customer_id"].value_counts()
    if len(counts) < 3:
        return []
    share = counts.iloc[0] / counts.sum()
    if share <= 0.5:
        return []
    return [_warning(
        "one_customer_most_events", "events", "customer_id",
        f"Customer {counts.index[0]} holds {share:.0%} of all events ({counts.iloc[0]:,} of "
        f"{counts.sum():,}). Usually an internal or test account, or events whose account "
        "could not be told apart and fell to one id.",
        "Leave internal accounts out of the export, and check the field that names the "
        "account on each event (e.g. Segment's context.groupId).",
        int(counts.iloc[0]),
    )]  # fmt: skip


def _sign_in_findings(tables: RawTables) -> list[Finding]:
    events = tables.events
    if events is None or len(events) < MIN_ROWS:
        return []
    types = events["event_type"].astype("string").str.strip()
    if types.str.lower().eq(LOGIN).any():
        return []
    counts = types.value_counts()
    like = [str(t) for t in counts.index if any(w in str(t).lower() for w in _SIGN_IN_WORDS)]
    shown = ", ".join(repr(t) for t in (like or [str(t) for t in counts.index])[:5])
    return [_warning(
        "no_sign_in_events", "events", "event_type",
        f"No event has the type {LOGIN!r}, so every login feature is zero. "
        f"{'Event types that look like sign-ins' if like else 'The most frequent types'}: "
        f"{shown}.",
        "Rename your sign-in events to login, or list them under sign_in_events in the "
        "mapping file.",
    )]  # fmt: skip


def plausibility_findings(
    tables: RawTables, now: pd.Timestamp, *, max_median_mrr: float = MAX_MEDIAN_MRR
) -> list[Finding]:
    """Every plausibility warning for an export that parsed; ``now`` as in ``validate``."""
    return [
        *_money_findings(tables, max_median_mrr),
        *_midnight_findings(tables),
        *_coverage_findings(tables, now),
        *_concentration_findings(tables),
        *_sign_in_findings(tables),
    ]

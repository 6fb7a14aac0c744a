"""RavenStack (synthetic multi-table SaaS export) -> the raw-data contract: a validation showcase.

Its labels are noise (ROC-AUC about 0.5 even with leakage, see its SOURCE.md) and its tables
contradict each other; it is here to show what ``churn validate`` makes of a messy export.
Never report model quality on it.

Mapping (source table.column -> contract table.column):

- accounts -> ``customers``: account_id -> customer_id, signup_date, account_name -> name,
  industry, country -> region, plan_tier -> plan, referral_source -> acquisition_channel,
  ``churn_flag`` -> status (``True`` -> ``churned``, ``False`` -> ``active``; the contract checks
  it against churn events and subscriptions, and it is never a feature). ``is_trial`` and
  ``seats`` describe the export day, not the past, so they are not kept as attributes (they
  would leak into every earlier as-of date).
- subscriptions -> ``subscriptions``: subscription_id, account_id, start_date, end_date,
  mrr_amount -> mrr, plan_tier -> plan, seats. ARR, trial, up/downgrade, churn, billing and
  auto-renew flags have no contract column (MRR changes yield up/downgrades anyway).
- feature_usage -> ``events`` via subscription -> account: usage_id -> event_id,
  subscription_id, usage_date (00:00 UTC) -> timestamp, ``event_type`` ``feature_use``,
  feature_name -> feature, usage_count -> value. Duration, error counts and the beta flag are
  dropped.
- support_tickets -> ``tickets``: submitted_at -> opened_at, closed_at -> resolved_at, priority,
  satisfaction_score -> csat.
- churn_events -> ``exit_reasons``: churn_date -> churned_at, reason_code -> category by
  ``EXIT_CATEGORIES`` (kept verbatim in main_reason), feedback_text -> improve; ``avoidable`` is not
  recorded in the export and stays empty.

What the contract reports on the imported folder (``churn validate``), besides overlapping
subscriptions, usage outside every subscription of the account (``event_outside_subscription``)
and churn events of accounts still subscribed (``exit_reason_while_active``) — the known
inconsistencies of SOURCE.md, each with its rule:

- repeated usage ids: ``duplicate_event_id``;
- usage outside its own subscription: ``event_outside_own_subscription``;
- churn events of accounts flagged active: ``exit_reason_for_active_customer``;
- accounts flagged churned without a churn event: ``churned_without_exit_reason``;
- accounts flagged churned that still hold an open subscription: ``churned_while_subscribed``.

:func:`source_inconsistencies` lists these findings in the source's own names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from features.contract import TICKET_PRIORITIES, RawTables, validate
from features.importers.source import (
    SourceError,
    choice,
    contract_tables,
    dates,
    fail,
    number,
    read_csv_text,
    sha256,
    text,
    unique_ids,
    utc_midnight,
    write_contract_folder,
)

FILES = {
    "accounts": "ravenstack_accounts.csv",
    "subscriptions": "ravenstack_subscriptions.csv",
    "feature_usage": "ravenstack_feature_usage.csv",
    "support_tickets": "ravenstack_support_tickets.csv",
    "churn_events": "ravenstack_churn_events.csv",
}
REQUIRED = {
    "accounts": ("account_id", "account_name", "industry", "country", "signup_date",
                 "referral_source", "plan_tier", "churn_flag"),
    "subscriptions": ("subscription_id", "account_id", "start_date", "end_date", "plan_tier",
                      "seats", "mrr_amount"),
    "feature_usage": ("usage_id", "subscription_id", "usage_date", "feature_name", "usage_count"),
    "support_tickets": ("ticket_id", "account_id", "submitted_at", "closed_at", "priority",
                        "satisfaction_score"),
    "churn_events": ("churn_event_id", "account_id", "churn_date", "reason_code",
                     "feedback_text"),
}  # fmt: skip
# reason_code -> contract exit category. The contract has no "unknown"; an unrecorded reason is
# filed as unavoidable (nothing we know of could have prevented it) with main_reason "unknown".
EXIT_CATEGORIES = {
    "pricing": "price",
    "budget": "price",
    "features": "product",
    "support": "service",
    "competitor": "competitor",
    "unknown": "unavoidable",
}
DAY = "%Y-%m-%d"
TIME = "%Y-%m-%d %H:%M:%S"
STATUS = {"true": "churned", "false": "active"}  # accounts.churn_flag -> customers.status


def _folder(src: Path) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise SourceError(f"{src} is not a folder; pass the folder holding {FILES['accounts']} …")
    missing = [name for name in FILES.values() if not (src / name).is_file()]
    if missing:
        raise SourceError(
            f"{src} lacks {', '.join(missing)}; all five RavenStack files are needed."
        )
    return src


def _read(src: Path) -> dict[str, pd.DataFrame]:
    folder = _folder(src)
    return {table: read_csv_text(folder / FILES[table], REQUIRED[table]) for table in FILES}


def _known(frame: pd.DataFrame, column: str, file: str, ids: pd.Series, what: str) -> None:
    """Every reference in ``frame[column]`` must exist in ``ids`` (else the row cannot map)."""
    fail(file, column, frame, ~frame[column].isin(ids).to_numpy(dtype=bool), f"known {what}")


def import_ravenstack(src: Path) -> RawTables:
    """Read the five RavenStack CSV files in ``src`` into contract tables (mapping above)."""
    raw = _read(src)
    acc, sub, use, tic, churn = (raw[t] for t in FILES)
    f = FILES
    account_id = unique_ids(acc, "account_id", f["accounts"])
    customers = pd.DataFrame(
        {
            "customer_id": account_id,
            "signup_date": dates(acc, "signup_date", f["accounts"], DAY),
            "name": text(acc, "account_name", f["accounts"], allow_empty=True),
            "industry": text(acc, "industry", f["accounts"], allow_empty=True),
            "region": text(acc, "country", f["accounts"], allow_empty=True),
            "plan": text(acc, "plan_tier", f["accounts"], allow_empty=True),
            "acquisition_channel": text(acc, "referral_source", f["accounts"], allow_empty=True),
            "status": choice(acc, "churn_flag", f["accounts"], STATUS, lower=True).map(STATUS),
        }
    )

    subscription_id = unique_ids(sub, "subscription_id", f["subscriptions"])
    _known(sub, "account_id", f["subscriptions"], account_id, "account ids (accounts file)")
    subscriptions = pd.DataFrame(
        {
            "subscription_id": subscription_id,
            "customer_id": text(sub, "account_id", f["subscriptions"]),
            "start_date": dates(sub, "start_date", f["subscriptions"], DAY),
            "end_date": dates(sub, "end_date", f["subscriptions"], DAY, allow_empty=True),
            "mrr": number(sub, "mrr_amount", f["subscriptions"], minimum=0),
            "plan": text(sub, "plan_tier", f["subscriptions"], allow_empty=True),
            "seats": number(
                sub, "seats", f["subscriptions"], allow_empty=True, minimum=0, whole=True
            ).astype("Int64"),
        }
    )

    _known(use, "subscription_id", f["feature_usage"], subscription_id,
           "subscription ids (subscriptions file)")  # fmt: skip
    owner = pd.Series(subscriptions["customer_id"].to_numpy(), index=subscription_id.to_numpy())
    events = pd.DataFrame(
        {
            "customer_id": owner.reindex(use["subscription_id"].to_numpy()).to_numpy(),
            "timestamp": utc_midnight(dates(use, "usage_date", f["feature_usage"], DAY)),
            "event_type": "feature_use",
            "feature": text(use, "feature_name", f["feature_usage"]),
            "value": number(use, "usage_count", f["feature_usage"], minimum=0),
            "event_id": text(use, "usage_id", f["feature_usage"]),
            "subscription_id": text(use, "subscription_id", f["feature_usage"]),
        },
        index=use.index,
    )

    _known(tic, "account_id", f["support_tickets"], account_id, "account ids (accounts file)")
    tickets = pd.DataFrame(
        {
            "ticket_id": unique_ids(tic, "ticket_id", f["support_tickets"]),
            "customer_id": text(tic, "account_id", f["support_tickets"]),
            "opened_at": utc_midnight(dates(tic, "submitted_at", f["support_tickets"], DAY)),
            "resolved_at": pd.to_datetime(
                tic["closed_at"].mask(tic["closed_at"].eq("")), format=TIME, errors="coerce"
            ).dt.tz_localize("UTC"),
            "priority": choice(
                tic, "priority", f["support_tickets"], TICKET_PRIORITIES, lower=True
            ),
            "csat": number(tic, "satisfaction_score", f["support_tickets"], allow_empty=True),
        }
    )
    unparsed = tic["closed_at"].ne("").to_numpy() & tickets["resolved_at"].isna().to_numpy()
    fail(f["support_tickets"], "closed_at", tic, unparsed, "times written YYYY-MM-DD hh:mm:ss")

    _known(churn, "account_id", f["churn_events"], account_id, "account ids (accounts file)")
    reason = choice(churn, "reason_code", f["churn_events"], EXIT_CATEGORIES, lower=True)
    exit_reasons = pd.DataFrame(
        {
            "customer_id": text(churn, "account_id", f["churn_events"]),
            "churned_at": utc_midnight(dates(churn, "churn_date", f["churn_events"], DAY)),
            "category": reason.map(EXIT_CATEGORIES),
            "avoidable": pd.Series(pd.NA, index=churn.index, dtype="boolean"),
            "main_reason": reason,
            "improve": text(churn, "feedback_text", f["churn_events"], allow_empty=True),
        }
    )
    return contract_tables(
        customers=customers,
        subscriptions=subscriptions,
        events=events,
        tickets=tickets,
        exit_reasons=exit_reasons,
    )


# Contract rule -> (source file, source column, the problem in the source's words).
SOURCE_PROBLEMS = {
    "duplicate_event_id": (
        "feature_usage",
        "usage_id",
        "usage_id appears more than once (different usage rows share an id)",
    ),
    "event_outside_own_subscription": (
        "feature_usage",
        "usage_date",
        "usage outside its own subscription's [start_date, end_date)",
    ),
    "exit_reason_for_active_customer": (
        "churn_events",
        "account_id",
        "churn event for an account flagged active (accounts.churn_flag = False)",
    ),
    "churned_without_exit_reason": (
        "accounts",
        "churn_flag",
        "account flagged churned without any churn event",
    ),
    "churned_while_subscribed": (
        "accounts",
        "churn_flag",
        "account flagged churned that still holds a subscription without end_date",
    ),
}
# The rules above do not read the clock; validate needs a "now" all the same.
_NOW = pd.Timestamp("2100-01-01", tz="UTC")


def source_inconsistencies(src: Path) -> pd.DataFrame:
    """The known inconsistencies of SOURCE.md, as ``churn validate`` finds them, in the source's
    names: a thin view of the contract's findings (``SOURCE_PROBLEMS``).

    One row per problem: ``table``, ``column``, ``problem``, ``rows`` (count, 0 when clean),
    ``first_rows`` (row numbers from 1 under the header, with the row's id) and ``rule`` (the
    contract rule). Each contract table keeps its source file's row order, so row numbers match
    the source files.
    """
    report = validate(import_ravenstack(src), _NOW)
    found = {f.rule: f for f in report.findings}
    problems = []
    for rule, (table, column, problem) in SOURCE_PROBLEMS.items():
        finding = found.get(rule)
        shown = ""
        if finding is not None:
            names = finding.values or finding.ids  # the repeated usage id, else the row's id
            shown = ", ".join(
                f"row {row} ({names[i]})" if i < len(names) else f"row {row}"
                for i, row in enumerate(finding.rows)
            )
        problems.append(
            {
                "table": table,
                "column": column,
                "problem": problem,
                "rows": finding.row_count if finding else 0,
                "first_rows": shown,
                "rule": rule,
            }
        )
    return pd.DataFrame(problems)


def import_note(src: Path) -> dict[str, Any]:
    """What ``import.json`` records for a RavenStack import."""
    folder = _folder(src)
    return {
        "source": "RavenStack synthetic SaaS data (River @ Rivalytics), copied from "
        "zeelthakkar02/customer-churn-deep-dive",
        "importer": "features.importers.ravenstack",
        "files": {name: sha256(folder / name) for name in FILES.values()},
        "notes": "Synthetic; labels are noise (never report model quality on it). A "
        "validation showcase; see features/importers/ravenstack.py.",
    }


def write_ravenstack(src: Path, out: Path) -> Path:
    """Import ``src`` and write the contract folder ``out`` atomically (nothing on failure)."""
    tables = import_ravenstack(src)
    return write_contract_folder(tables, out, import_note(src))

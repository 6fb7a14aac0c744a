"""The raw-data contract: the tables a company exports, and the rules they must follow.

Every table is read from a folder holding ``<table>.parquet`` or ``<table>.csv``. Timestamps are
UTC; a naive timestamp is taken as UTC. Dates (``signup_date``, ``start_date``, ``end_date``) are
calendar days. The column lists below are the one definition of the contract: the generator,
importers, validation and docs all read them.

Reading (``read_raw_tables``) gives every column its contract type; ``validate`` checks the rules
(pandera per table, vectorised cross-table checks) into a ``ValidationReport`` of errors, which
block every pipeline, and warnings, which do not; ``load_valid_tables`` does both and raises
``ContractError`` on errors. docs/data-contract.md is the user-facing version of this module.
The cross-table rules check each row against a ``Reference`` built from customers and
subscriptions, so ``features.contract_stream`` runs the same rules chunk by chunk on exports
larger than memory.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from features.errors import ContractError
from features.options import OPTIONS_FILE, FeatureOptions, OptionsError, read_options

# table -> (required columns, optional columns). Order is the canonical column order.
REQUIRED_TABLES = ("customers", "subscriptions")
TABLE_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "customers": (
        ("customer_id", "signup_date"),
        (
            "name",
            "industry",
            "company_size",
            "region",
            "plan",
            "acquisition_channel",
            "csm_owner",
            "status",
        ),
    ),
    "subscriptions": (
        ("subscription_id", "customer_id", "start_date", "end_date", "mrr", "plan"),
        ("seats",),
    ),
    "events": (
        ("customer_id", "timestamp", "event_type"),
        ("user_id", "feature", "value", "event_id", "subscription_id"),
    ),
    "tickets": (
        ("ticket_id", "customer_id", "opened_at", "resolved_at", "priority"),
        ("category", "csat"),
    ),
    "invoices": (("invoice_id", "customer_id", "issued_at", "due_at", "paid_at", "amount"), ()),
    "nps": (("customer_id", "responded_at", "score"), ()),
    "marketing": (("customer_id", "timestamp", "channel", "action"), ()),
    "exit_reasons": (
        ("customer_id", "churned_at", "category", "avoidable"),
        ("main_reason", "asked_for_help", "improve", "replacement", "win_back"),
    ),
}
TICKET_PRIORITIES = ("low", "medium", "high", "urgent")
MARKETING_ACTIONS = ("sent", "open", "click", "attend")
EXIT_CATEGORIES = ("product", "price", "service", "competitor", "unavoidable")
CUSTOMER_STATUSES = ("active", "churned")
"""``customers.status`` as flagged by the source CRM on the export day. It is checked against the
other tables but never a feature: it would leak today's flag into every earlier as-of date."""


Severity = Literal["error", "warning"]
ColumnKind = Literal["id", "text", "category", "date", "timestamp", "number", "integer", "boolean"]

STRING = pd.StringDtype("pyarrow")
"""Text and id columns: Arrow-backed strings, compact and fast over ~10 M event rows."""

# How each contract column is parsed. A column name means the same thing in every table.
COLUMN_KINDS: dict[str, ColumnKind] = {
    "customer_id": "id",
    "subscription_id": "id",
    "ticket_id": "id",
    "invoice_id": "id",
    "event_id": "id",
    "user_id": "id",
    "signup_date": "date",
    "start_date": "date",
    "end_date": "date",
    "timestamp": "timestamp",
    "opened_at": "timestamp",
    "resolved_at": "timestamp",
    "issued_at": "timestamp",
    "due_at": "timestamp",
    "paid_at": "timestamp",
    "responded_at": "timestamp",
    "churned_at": "timestamp",
    "mrr": "number",
    "value": "number",
    "amount": "number",
    "csat": "number",
    "score": "number",
    "seats": "integer",
    "avoidable": "boolean",
    "asked_for_help": "boolean",
}
# Closed vocabularies; values are compared lower-cased and stripped.
CATEGORIES: dict[tuple[str, str], tuple[str, ...]] = {
    ("customers", "status"): CUSTOMER_STATUSES,
    ("tickets", "priority"): TICKET_PRIORITIES,
    ("marketing", "action"): MARKETING_ACTIONS,
    ("exit_reasons", "category"): EXIT_CATEGORIES,
}
# Scales, inclusive: CSAT 1-5, NPS 0-10.
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("tickets", "csat"): (1, 5),
    ("nps", "score"): (0, 10),
}
# Columns that must be filled on every row. Other columns may be empty: an empty end_date is an
# active subscription, an empty resolved_at an open ticket, an empty paid_at an unpaid invoice.
NOT_NULL: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "signup_date"),
    "subscriptions": ("subscription_id", "customer_id", "start_date", "mrr"),
    "events": ("customer_id", "timestamp", "event_type"),
    "tickets": ("ticket_id", "customer_id", "opened_at", "priority"),
    "invoices": ("invoice_id", "customer_id", "issued_at", "amount"),
    "nps": ("customer_id", "responded_at", "score"),
    "marketing": ("customer_id", "timestamp", "action"),
    "exit_reasons": ("customer_id", "churned_at", "category"),
}
# The column that names a row in messages; it is also unique in the tables that have their own id.
ROW_ID: dict[str, str] = {
    "customers": "customer_id",
    "subscriptions": "subscription_id",
    "tickets": "ticket_id",
    "invoices": "invoice_id",
}
UNIQUE_IDS = frozenset(ROW_ID.items())
NON_NEGATIVE = frozenset(
    {("subscriptions", "mrr"), ("subscriptions", "seats"), ("invoices", "amount")}
)
# Times that may legitimately lie ahead of now: a scheduled end, an invoice not yet due.
MAY_BE_FUTURE = frozenset({"end_date", "due_at"})
MAX_EXAMPLES = 5
COLUMN_ORDER = {table: required + optional for table, (required, optional) in TABLE_COLUMNS.items()}


def column_kind(table: str, column: str) -> ColumnKind:
    """How ``table.column`` is parsed; columns not listed in ``COLUMN_KINDS`` are text."""
    if (table, column) in CATEGORIES:
        return "category"
    return COLUMN_KINDS.get(column, "text")


@dataclass(frozen=True)
class Rule:
    """One rule of the contract: how bad breaking it is, and the words a user reads."""

    severity: Severity
    title: str
    message: str
    fix: str


# The one list of rules. ``message`` and ``fix`` are format templates: {count} is "3 rows",
# {table}/{column} name the place; other fields are given where the rule is checked.
# docs/data-contract.md shows this table; a test keeps the two in step.
RULES: dict[str, Rule] = {
    "invalid_options": Rule(
        "error",
        "features.yaml is not valid",
        "{detail}",
        "Fix the line named above, or remove features.yaml to use the inferred defaults.",
    ),
    "missing_folder": Rule(
        "error",
        "data folder does not exist",
        "The data folder {folder} does not exist.",
        "Pass the folder that holds the exported tables (customers.csv, subscriptions.csv, …).",
    ),
    "missing_table": Rule(
        "error",
        "required table missing",
        "The required table {table} is missing: there is no {table}.parquet or {table}.csv "
        "in {folder}.",
        "Export the {table} table into that folder as {table}.csv or {table}.parquet.",
    ),
    "unreadable_file": Rule(
        "error",
        "file cannot be read",
        "The file {file} could not be read ({detail}).",
        "Re-export it as a UTF-8 CSV file with one header row, or as a Parquet file.",
    ),
    "duplicate_file": Rule(
        "warning",
        "both CSV and Parquet present",
        "Both {table}.parquet and {table}.csv exist; only {table}.parquet is read.",
        "Delete the file you do not mean to use.",
    ),
    "empty_table": Rule(
        "error",
        "required table has no rows",
        "The table {table} has no rows.",
        "Export the {table} table again; it must hold at least one row.",
    ),
    "missing_column": Rule(
        "error",
        "required column missing",
        "The table {table} has no column {column}, which the contract requires.",
        "Add the column {column}; check the spelling and the case of the header row.",
    ),
    "unknown_column": Rule(
        "warning",
        "column not in the contract (ignored; customers keeps it)",
        "The column {column} of {table} is not part of the contract and is ignored.",
        "If it is meant to be a contract column, rename it (check the spelling); "
        "otherwise ignore this warning.",
    ),
    "unparseable_date": Rule(
        "error",
        "value is not a date",
        "{count} of {table} {has} a {column} value that is not a date.",
        "Write dates as YYYY-MM-DD, for example 2024-03-01.",
    ),
    "unparseable_timestamp": Rule(
        "error",
        "value is not a timestamp",
        "{count} of {table} {has} a {column} value that is not a timestamp.",
        "Write timestamps in ISO 8601, for example 2024-03-01T14:30:00Z; "
        "a value without a time-zone offset is read as UTC.",
    ),
    "unparseable_number": Rule(
        "error",
        "value is not a number",
        "{count} of {table} {has} a {column} value that is not {expected}.",
        "Use plain numbers with a dot as the decimal separator, without currency signs "
        "or thousands separators.",
    ),
    "unparseable_boolean": Rule(
        "error",
        "value is not true/false",
        "{count} of {table} {has} a {column} value that is not true or false.",
        "Use true or false (yes/no and 1/0 are accepted too), or leave it empty when unknown.",
    ),
    "wrong_type": Rule(
        "error",
        "column has the wrong type (in-memory tables)",
        "The column {column} of {table} holds {actual} values, "
        "but the contract expects {expected}.",
        "Load the tables with read_raw_tables or parse_tables, which convert the types.",
    ),
    "missing_value": Rule(
        "error",
        "required value empty",
        "{count} of {table} {has} no {column}.",
        "Fill in {column} on every row, or remove those rows.",
    ),
    "duplicate_id": Rule(
        "error",
        "id appears more than once",
        "{count} of {table} share {its} {column} with another row.",
        "Each {column} must appear once in {table}: remove or merge the duplicate rows.",
    ),
    "negative_value": Rule(
        "error",
        "negative MRR, amount or seats",
        "{count} of {table} {has} a negative {column}.",
        "{column} must be zero or more; record refunds and credits as such, "
        "not as negative values.",
    ),
    "out_of_range": Rule(
        "error",
        "score outside its scale (CSAT 1-5, NPS 0-10)",
        "{count} of {table} {has} a {column} outside {low:g}–{high:g}.",
        "Convert {column} to the {low:g}–{high:g} scale (for example, rescale a 1–10 score), "
        "or leave it empty when unknown.",
    ),
    "unknown_category": Rule(
        "error",
        "value outside the allowed list (priority, action, exit category, status)",
        "{count} of {table} {has} a {column} that is not one of: {allowed}.",
        "Map your values onto {allowed}; upper/lower case and surrounding spaces do not matter.",
    ),
    "end_before_start": Rule(
        "error",
        "subscription ends before it starts",
        "{count} of subscriptions end{s} (end_date) before {it} start{s} (start_date).",
        "Correct the dates: end_date is the first day no longer covered and may not be before "
        "start_date; leave it empty while the subscription is active.",
    ),
    "resolved_before_opened": Rule(
        "warning",
        "ticket resolved before it was opened",
        "{count} of tickets {is} resolved (resolved_at) before {it} {was} opened (opened_at); "
        "the resolution time is treated as unknown.",
        "Check that both columns use the same time zone (UTC) and correct the swapped values.",
    ),
    "paid_before_issued": Rule(
        "warning",
        "invoice paid before it was issued",
        "{count} of invoices {is} paid (paid_at) before {it} {was} issued (issued_at); "
        "kept as prepayments.",
        "If these are not prepayments, correct paid_at or issued_at.",
    ),
    "due_before_issued": Rule(
        "warning",
        "invoice due before it was issued",
        "{count} of invoices {is} due (due_at) before {it} {was} issued (issued_at); kept as is.",
        "Correct due_at or issued_at; payment-delay figures are wrong for these invoices.",
    ),
    "future_time": Rule(
        "warning",
        "date or time later than now",
        "{count} of {table} {has} a {column} later than now ({now}); kept as is.",
        "Check for typos and time zones (timestamps are UTC). Point-in-time features only use "
        "a row once its time has passed.",
    ),
    "unknown_customer": Rule(
        "warning",
        "customer_id not in customers (rows dropped)",
        "{count} of {table} refer{s} to a customer_id that is not in customers; "
        "dropped before any feature is computed.",
        "Add the missing customers to customers, or remove these rows from {table}.",
    ),
    "customer_without_subscription": Rule(
        "warning",
        "customer has no subscription",
        "{count} of customers {has} no subscription, so there is no revenue or churn date "
        "for {them}.",
        "Add their subscriptions, or remove these customers if they never paid.",
    ),
    "overlapping_subscriptions": Rule(
        "warning",
        "subscriptions of one customer overlap",
        "{count} of subscriptions start{s} before an earlier subscription of the same customer "
        "has ended.",
        "Fine if the customer really holds several subscriptions at once (add-ons, products); "
        "otherwise set end_date of the earlier one to the start_date of the next.",
    ),
    "event_outside_subscription": Rule(
        "warning",
        "events while the customer has no subscription (counted)",
        "{count} of events ({share} of all events) happen{s} while the customer has no "
        "subscription; kept as is.",
        "Usually harmless (trials, use after cancelling). If the share is large, check "
        "start_date and end_date of subscriptions and the time zone of timestamp.",
    ),
    "exit_reason_while_active": Rule(
        "warning",
        "exit reason for a customer who is still subscribed",
        "{count} of exit_reasons belong{s} to a customer with a subscription that started "
        "before churned_at and is still active (no end_date, or one after now).",
        "Set end_date on the subscription the customer cancelled, or remove the exit reason "
        "if the customer did not leave.",
    ),
    "duplicate_event_id": Rule(
        "warning",
        "event_id appears more than once (rows kept)",
        "{count} of events share {its} event_id with another row: {id_count} "
        "more than once ({id_examples}). {copies} All these rows are kept.",
        "If a row is the same event exported twice, remove the copy (it would be counted twice "
        "in usage features); otherwise give every event its own event_id.",
    ),
    "unknown_subscription": Rule(
        "warning",
        "event's subscription_id not in subscriptions (rows kept)",
        "{count} of events refer{s} to a subscription_id that is not in subscriptions; kept, "
        "but {it} cannot be checked against {its} subscription's dates.",
        "Add the missing subscriptions, correct subscription_id on these rows, or leave it "
        "empty when an event belongs to no subscription.",
    ),
    "subscription_of_other_customer": Rule(
        "warning",
        "event's subscription belongs to another customer",
        "{count} of events name a subscription_id that belongs to another customer than "
        "the event's customer_id; kept as is.",
        "Correct customer_id or subscription_id on these rows: an event's customer must be "
        "the customer who holds its subscription.",
    ),
    "event_outside_own_subscription": Rule(
        "warning",
        "event outside its own subscription's dates (counted)",
        "{count} of events ({share} of the events linked to a subscription) happen{s} outside "
        "{its} own subscription's [start_date, end_date); kept as is.",
        "Check that subscription_id names the subscription that was running at the time, and "
        "the start_date and end_date of those subscriptions (end_date is the first day no "
        "longer covered; timestamps are UTC).",
    ),
    "exit_reason_for_active_customer": Rule(
        "warning",
        "exit reason for a customer whose status is active",
        "{count} of exit_reasons ({customers}) belong{s} to a customer whose status in "
        "customers is active.",
        "Fine for customers who left and came back (win-backs). Otherwise set status to "
        "churned for customers who left, or remove the exit reasons of customers who stayed.",
    ),
    "churned_without_exit_reason": Rule(
        "warning",
        "customer flagged churned has no exit reason",
        "{count} of customers {has} status churned but no row in exit_reasons.",
        "Add an exit reason (with churned_at) for each customer who left, or set status to "
        "active if they did not leave.",
    ),
    "churned_while_subscribed": Rule(
        "warning",
        "customer flagged churned still holds an open subscription",
        "{count} of customers {has} status churned but still hold{s} a subscription without "
        "an end_date. Churn labels come from subscriptions and events, never from status, so "
        "{it} {is} not counted as churned.",
        "Set end_date on the subscriptions these customers cancelled, or set status to active "
        "if they did not leave.",
    ),
}


@dataclass(frozen=True)
class Finding:
    """One broken rule, in one place, with the first offending rows so a user can find them.

    ``rows`` are 1-based data-row numbers (row 1 is the first row under the CSV header);
    ``ids`` are the values of ``id_column`` on those rows; ``values`` the offending values.
    """

    severity: Severity
    table: str
    column: str | None
    rule: str
    message: str
    fix: str
    row_count: int = 0
    rows: tuple[int, ...] = ()
    id_column: str | None = None
    ids: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict, compare=False, repr=False)
    """The rule's template fields the message was written from (besides the row count), so
    that findings over consecutive chunks of one table can be merged and re-worded."""

    @property
    def where(self) -> str:
        """``table.column`` or ``table``."""
        return f"{self.table}.{self.column}" if self.column else self.table

    def examples(self) -> str:
        """The first offending rows, e.g. ``row 3 (customer_id c7): '31/12/2024'``."""
        parts = []
        for i, row in enumerate(self.rows):
            part = f"row {row}"
            if i < len(self.ids) and self.ids[i]:
                part += f" ({self.id_column} {self.ids[i]})"
            if i < len(self.values):
                part += f": {self.values[i]!r}"
            parts.append(part)
        more = self.row_count - len(self.rows)
        if parts and more > 0:
            parts.append(f"and {more:,} more")
        return ", ".join(parts)

    def describe(self) -> str:
        """One readable paragraph: what, where, examples, how to fix."""
        text = f"{self.severity.upper()} in {self.where}: {self.message}"
        if self.rows:
            text += f" First rows: {self.examples()}."
        return f"{text} How to fix: {self.fix}"


@dataclass(frozen=True)
class ValidationReport:
    """Everything wrong with one export. ``ok`` means no errors; warnings never block a run."""

    findings: tuple[Finding, ...] = ()
    row_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def error_count(self) -> int:
        return len(self.errors)

    @property
    def warning_count(self) -> int:
        return len(self.warnings)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """``"2 errors, 1 warning"``."""
        return f"{_plural(self.error_count, 'error')}, {_plural(self.warning_count, 'warning')}"

    def format_errors(self) -> str:
        """The readable list of errors a ``ContractError`` carries."""
        lines = [f"The data breaks the data contract ({self.summary()}); nothing was computed."]
        lines += [f"{i}. {f.describe()}" for i, f in enumerate(self.errors, start=1)]
        lines.append(
            "Run `churn validate --data <folder>` for the full report; "
            "docs/data-contract.md explains every rule."
        )
        return "\n".join(lines)


@dataclass(frozen=True)
class RawTables:
    """One company's export. ``None`` means the source is absent (its features are absent too).

    ``read_findings`` carries what went wrong while reading and parsing (unparseable values
    become nulls there), so that ``validate`` reports it with everything else.
    """

    customers: pd.DataFrame
    subscriptions: pd.DataFrame
    events: pd.DataFrame | None = None
    tickets: pd.DataFrame | None = None
    invoices: pd.DataFrame | None = None
    nps: pd.DataFrame | None = None
    marketing: pd.DataFrame | None = None
    exit_reasons: pd.DataFrame | None = None
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    read_findings: tuple[Finding, ...] = field(default=(), compare=False, repr=False)
    options: FeatureOptions = field(default_factory=FeatureOptions, compare=False, repr=False)
    """``features.yaml`` of the export folder: sign-in events, vocabulary caps, attribute types."""

    def present(self) -> dict[str, pd.DataFrame]:
        """The contract tables that exist, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in TABLE_COLUMNS and getattr(self, f.name) is not None
        }


# --------------------------------------------------------------------------------------------
# Findings


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _agreement(n: int) -> dict[str, str]:
    """Template words that agree with a row count: "1 row has", "3 rows have"."""
    one = n == 1
    return {
        "count": _plural(n, "row"),
        "has": "has" if one else "have",
        "is": "is" if one else "are",
        "was": "was" if one else "were",
        "s": "s" if one else "",
        "it": "it" if one else "they",
        "its": "its" if one else "their",
        "them": "it" if one else "them",
    }


def _finding(rule: str, table: str, column: str | None = None, **details: object) -> Finding:
    """A finding without rows (a whole table or column)."""
    spec = RULES[rule]
    fmt = {"table": table, "column": column, **_agreement(0), **details}
    return Finding(
        severity=spec.severity,
        table=table,
        column=column,
        rule=rule,
        message=spec.message.format(**fmt),
        fix=spec.fix.format(**fmt),
    )


def _row_finding(
    rule: str,
    table: str,
    column: str | None,
    frame: pd.DataFrame,
    positions: np.ndarray,
    *,
    show_values: bool = False,
    id_column: str | None = None,
    keep_empty: bool = False,
    **details: object,
) -> Finding | None:
    """A finding about the rows at ``positions`` (0-based), or None when there are none.

    Rows are named by ``id_column``, by default the table's ``ROW_ID`` or customer_id.
    ``keep_empty`` gives a finding of 0 rows instead of None: a chunk's share of a rule that
    found nothing still counts in the share's base (``share_of``) when chunks merge.
    """
    if len(positions) == 0 and not keep_empty:
        return None
    first = np.sort(positions)[:MAX_EXAMPLES]
    id_column = id_column or ROW_ID.get(table, "customer_id")
    ids: tuple[str, ...] = ()
    if id_column in frame.columns:
        ids = tuple("" if pd.isna(v) else str(v) for v in frame[id_column].iloc[first])
    values: tuple[str, ...] = ()
    if show_values and column in frame.columns:
        values = tuple(str(v) for v in frame[column].iloc[first])
    return worded_finding(
        rule,
        table,
        column,
        len(positions),
        tuple(int(p) + 1 for p in first),
        id_column=id_column if ids else None,
        ids=ids,
        values=values,
        details=details,
    )


def worded_finding(
    rule: str,
    table: str,
    column: str | None,
    count: int,
    rows: tuple[int, ...],
    *,
    id_column: str | None,
    ids: tuple[str, ...],
    values: tuple[str, ...],
    details: Mapping[str, object],
) -> Finding:
    """The finding of ``count`` rows breaking ``rule``, ``rows`` the first (1-based) of them.

    A ``share_of`` detail is the number of rows the count is a share of (``{share}``).
    """
    spec = RULES[rule]
    fmt = {"table": table, "column": column, **_agreement(count), **details}
    if "share_of" in details:
        fmt["share"] = f"{count / max(_share_of(details), 1):.1%}"
    return Finding(
        severity=spec.severity,
        table=table,
        column=column,
        rule=rule,
        message=spec.message.format(**fmt),
        fix=spec.fix.format(**fmt),
        row_count=count,
        rows=rows,
        id_column=id_column,
        ids=ids,
        values=values,
        details=dict(details),
    )


def _share_of(details: Mapping[str, object]) -> int:
    base = details["share_of"]
    assert isinstance(base, int), base
    return base


def merge_findings(first: Finding, then: Finding, offset: int) -> Finding:
    """One rule's findings over two consecutive chunks of a table as one finding.

    ``then`` came from the chunk starting ``offset`` rows into the table: its rows move by
    ``offset``, the counts (and ``share_of``) add up, the examples stay the first in file order.
    """
    details = dict(first.details)
    if "share_of" in details:
        details["share_of"] = _share_of(first.details) + _share_of(then.details)
    return worded_finding(
        first.rule,
        first.table,
        first.column,
        first.row_count + then.row_count,
        (first.rows + tuple(row + offset for row in then.rows))[:MAX_EXAMPLES],
        id_column=first.id_column or then.id_column,
        ids=(first.ids + then.ids)[:MAX_EXAMPLES],
        values=(first.values + then.values)[:MAX_EXAMPLES],
        details=details,
    )


def severity_order(finding: Finding) -> tuple[int, int, str]:
    tables = list(TABLE_COLUMNS)
    table_rank = tables.index(finding.table) if finding.table in tables else -1
    return (0 if finding.severity == "error" else 1, table_rank, finding.column or "")


# --------------------------------------------------------------------------------------------
# Reading and parsing


def _string_mapper(arrow_type: pyarrow.DataType) -> pd.api.extensions.ExtensionDtype | None:
    if pyarrow.types.is_string(arrow_type) or pyarrow.types.is_large_string(arrow_type):
        return STRING
    return None


def csv_header(path: Path) -> list[str]:
    """The header row of a CSV file; a name given twice makes the file unreadable."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    if len(set(header)) != len(header):
        twice = sorted({name for name in header if header.count(name) > 1})
        raise ValueError(f"the header row names {', '.join(twice)} more than once")
    return header


def csv_options(header: list[str]) -> arrow_csv.ConvertOptions:
    """Every CSV cell as text (empty is null); the contract types are parsed afterwards."""
    return arrow_csv.ConvertOptions(
        column_types={name: pyarrow.string() for name in header},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def arrow_frame(arrow_table: pyarrow.Table) -> pd.DataFrame:
    """An Arrow table as the raw frame ``parse_table`` reads (Arrow-backed strings)."""
    return arrow_table.to_pandas(types_mapper=_string_mapper, date_as_object=False)


def read_file(path: Path) -> pd.DataFrame:
    """Read one file, every CSV column as text (types are parsed per column afterwards)."""
    if path.suffix == ".parquet":
        arrow_table = pq.read_table(path)
    else:
        arrow_table = arrow_csv.read_csv(path, convert_options=csv_options(csv_header(path)))
    return arrow_frame(arrow_table)


def as_text(values: pd.Series, *, lower: bool = False) -> pd.Series:
    """Strings with surrounding spaces removed; empty strings become null."""
    if pd.api.types.is_float_dtype(values.dtype):
        whole = values.dropna()
        if (whole == np.floor(whole)).all():  # ids stored as 1.0 when the column has nulls
            values = values.astype("Int64")
    text = values.astype(STRING).str.strip()
    if lower:
        text = text.str.lower()
    return text.mask(text.eq("").fillna(False))


def _arrow_text(text: pd.Series) -> pyarrow.Array | pyarrow.ChunkedArray:
    return pyarrow.array(text, type=pyarrow.large_string(), from_pandas=True)


def _as_timestamp(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """UTC timestamps; a naive value is taken as UTC. Returns the values and the unparseable mask.

    ISO 8601 strings go through Arrow's parser (fast on 10 M rows); mixed or odd formats fall
    back to pandas; what neither parses is reported.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC"), None
    if pd.api.types.is_datetime64_dtype(dtype):
        return values.dt.tz_localize("UTC"), None
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        bad = values.notna().to_numpy()
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]"), bad
    text = as_text(values)
    arrow_values = _arrow_text(text)
    parsed: pd.Series | None = None
    for target in (pyarrow.timestamp("ns", "UTC"), pyarrow.timestamp("ns")):
        try:
            parsed = pd.Series(pc.cast(arrow_values, target).to_pandas(), index=values.index)
            break
        except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError):
            continue
    if parsed is None:
        parsed = pd.to_datetime(
            text.astype(object), format="ISO8601", utc=True, errors="coerce"
        ).astype("datetime64[ns, UTC]")
    elif parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize("UTC")
    bad = (text.notna() & parsed.isna()).to_numpy(dtype=bool)
    return parsed, bad if bad.any() else None


def _as_date(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """Calendar days as naive midnight datetimes; a time part is cut off (after moving to UTC)."""
    parsed, bad = _as_timestamp(values)
    return parsed.dt.tz_localize(None).dt.normalize(), bad


def _as_number(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """float64 with NaN for missing."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64"), None
    text = as_text(values)
    try:
        arrow_numbers = pc.cast(_arrow_text(text), pyarrow.float64())
        parsed = pd.Series(arrow_numbers.to_pandas(), index=values.index, dtype="float64")
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError):
        coerced = pd.to_numeric(text.astype(object), errors="coerce")
        parsed = pd.Series(coerced, index=values.index, dtype="float64")
    bad = (text.notna() & parsed.isna()).to_numpy(dtype=bool)
    return parsed, bad if bad.any() else None


def _as_integer(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """Nullable Int64; a fractional value counts as unparseable."""
    numbers, bad = _as_number(values)
    fractional = (numbers.notna() & (numbers != np.floor(numbers))).to_numpy(dtype=bool)
    if fractional.any():
        bad = fractional if bad is None else bad | fractional
    whole = numbers.where(~fractional)
    return whole.round().astype("Int64"), bad


_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0")


def _as_boolean(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """Nullable boolean from true/false, yes/no or 1/0."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean"), None
    text = as_text(values, lower=True)
    parsed = pd.Series(pd.NA, index=values.index, dtype="boolean")
    parsed[text.isin(_TRUE).fillna(False).to_numpy(dtype=bool)] = True
    parsed[text.isin(_FALSE).fillna(False).to_numpy(dtype=bool)] = False
    bad = (text.notna() & parsed.isna()).to_numpy(dtype=bool)
    return parsed, bad if bad.any() else None


_PARSERS = {
    "date": (_as_date, "unparseable_date"),
    "timestamp": (_as_timestamp, "unparseable_timestamp"),
    "number": (_as_number, "unparseable_number"),
    "integer": (_as_integer, "unparseable_number"),
    "boolean": (_as_boolean, "unparseable_boolean"),
}
_NULL_DTYPES: dict[ColumnKind, object] = {
    "id": STRING,
    "text": STRING,
    "category": STRING,
    "date": "datetime64[ns]",
    "timestamp": "datetime64[ns, UTC]",
    "number": "float64",
    "integer": "Int64",
    "boolean": "boolean",
}


def parse_table(table: str, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Finding]]:
    """Give one raw table the contract's types and column order.

    Unparseable values become nulls and are reported (never a pandas traceback). Missing
    optional columns are added empty, so downstream code can rely on them; missing required
    columns stay missing for ``validate`` to report. Extra customer columns are kept as
    customer attributes (text from CSV); extra columns of other tables are dropped.
    """
    frame = frame.reset_index(drop=True)
    frame.columns = [str(name).strip() for name in frame.columns]
    required, optional = TABLE_COLUMNS[table]
    findings: list[Finding] = []
    columns: dict[str, pd.Series] = {}
    for name in required + optional:
        if name not in frame.columns:
            if name in optional:
                dtype = _NULL_DTYPES[column_kind(table, name)]
                columns[name] = pd.Series(None, index=frame.index, dtype=dtype)  # type: ignore[call-overload]
            continue
        kind = column_kind(table, name)
        if kind in _PARSERS:
            parser, rule = _PARSERS[kind]
            columns[name], bad = parser(frame[name])
            if bad is not None:
                expected = "a whole number" if kind == "integer" else "a number"
                finding = _row_finding(
                    rule,
                    table,
                    name,
                    frame,
                    np.flatnonzero(bad),
                    show_values=True,
                    expected=expected,
                )
                if finding is not None:
                    findings.append(finding)
        else:
            columns[name] = as_text(frame[name], lower=kind == "category")
    for name in frame.columns:
        if name in columns or name in required:
            continue
        if table == "customers":
            is_text = pd.api.types.is_object_dtype(frame[name]) or pd.api.types.is_string_dtype(
                frame[name]
            )
            columns[name] = as_text(frame[name]) if is_text else frame[name]
        else:
            findings.append(_finding("unknown_column", table, name))
    return pd.DataFrame(columns, index=frame.index), findings


def parse_tables(tables: RawTables) -> RawTables:
    """``parse_table`` on every table of an in-memory export (e.g. from an importer)."""
    findings = list(tables.read_findings)
    parsed: dict[str, pd.DataFrame] = {}
    for name, frame in tables.present().items():
        parsed[name], table_findings = parse_table(name, frame)
        findings += table_findings
    return replace(tables, **parsed, read_findings=tuple(findings))  # type: ignore[arg-type]


READ_ERRORS = (OSError, ValueError, UnicodeDecodeError, pyarrow.ArrowException)
"""What reading a file may raise; each becomes an ``unreadable_file`` finding."""


def table_file(folder: Path, table: str) -> tuple[Path | None, list[Finding]]:
    """The file ``table`` is read from (Parquet before CSV), or None; and what is wrong there."""
    parquet, csv_file = folder / f"{table}.parquet", folder / f"{table}.csv"
    findings: list[Finding] = []
    if parquet.is_file() and csv_file.is_file():
        findings.append(_finding("duplicate_file", table))
    path = parquet if parquet.is_file() else csv_file if csv_file.is_file() else None
    if path is None and table in REQUIRED_TABLES:
        findings.append(_finding("missing_table", table, folder=folder))
    return path, findings


def unreadable(table: str, path: Path, exc: Exception) -> Finding:
    """The ``unreadable_file`` finding of ``path``, with the first line of the reader's error."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _finding("unreadable_file", table, file=path.name, detail=detail)


def missing_folder(folder: Path) -> Finding:
    return _finding("missing_folder", "", None, folder=folder)


def _read_folder(folder: Path) -> tuple[dict[str, pd.DataFrame], list[Finding]]:
    """Read and parse every contract table in ``folder``; problems become findings."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}, [missing_folder(folder)]
    frames: dict[str, pd.DataFrame] = {}
    findings: list[Finding] = []
    for table in TABLE_COLUMNS:
        path, file_findings = table_file(folder, table)
        findings += file_findings
        if path is None:
            continue
        try:
            raw = read_file(path)
        except READ_ERRORS as exc:
            findings.append(unreadable(table, path, exc))
            continue
        frames[table], table_findings = parse_table(table, raw)
        findings += table_findings
    return frames, findings


def options_findings(folder: Path) -> tuple[FeatureOptions, list[Finding]]:
    """The folder's ``features.yaml`` (defaults when absent); a bad file becomes an error."""
    try:
        return read_options(folder), []
    except OptionsError as exc:
        return FeatureOptions(), [_finding("invalid_options", OPTIONS_FILE, None, detail=exc)]


def read_raw_tables(folder: Path) -> RawTables:
    """Read an export folder (``<table>.parquet`` or ``<table>.csv`` per table) with contract types.

    Raises ``ContractError`` only when the required tables cannot be had at all; every other
    problem (unparseable values, unknown columns) travels in ``read_findings`` to ``validate``.
    """
    frames, findings = _read_folder(folder)
    options, problems = options_findings(folder)
    findings += problems
    if any(table not in frames for table in REQUIRED_TABLES):
        raise ContractError(ValidationReport(tuple(findings)).format_errors())
    return RawTables(**frames, read_findings=tuple(findings), options=options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Validation: one pandera schema per table, then cross-table checks


def as_utc(now: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(now)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _has_kind(values: pd.Series, kind: ColumnKind) -> bool:
    """Whether a column's dtype is what the contract's kind promises (any datetime unit)."""
    dtype = values.dtype
    if kind in ("id", "text", "category"):
        if isinstance(dtype, pd.CategoricalDtype):  # compact text, e.g. from the generator
            return _has_kind(pd.Series(dtype.categories), kind)
        return pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
    if kind == "date":
        return pd.api.types.is_datetime64_dtype(dtype) and not isinstance(dtype, pd.DatetimeTZDtype)
    if kind == "timestamp":
        return isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC"
    if kind == "number":
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "integer":
        return pd.api.types.is_integer_dtype(dtype)
    return pd.api.types.is_bool_dtype(dtype)


_EXPECTED = {
    "id": "text",
    "text": "text",
    "category": "text",
    "date": "dates (naive datetime64)",
    "timestamp": "UTC timestamps (datetime64[ns, UTC])",
    "number": "numbers",
    "integer": "whole numbers",
    "boolean": "true/false",
}
# Two-column rules: name -> (table, later column, earlier column). The later must not precede.
_ORDER_RULES: dict[str, tuple[str, str, str]] = {
    "end_before_start": ("subscriptions", "end_date", "start_date"),
    "resolved_before_opened": ("tickets", "resolved_at", "opened_at"),
    "paid_before_issued": ("invoices", "paid_at", "issued_at"),
    "due_before_issued": ("invoices", "due_at", "issued_at"),
}


def _not_before(later: str, earlier: str) -> Callable[[pd.DataFrame], pd.Series]:
    def check(frame: pd.DataFrame) -> pd.Series:
        return ~(frame[later] < frame[earlier])  # empty on either side passes

    return check


def _not_after(limit: pd.Timestamp) -> Callable[[pd.Series], pd.Series]:
    def check(values: pd.Series) -> pd.Series:
        return ~(values > limit)

    return check


def _between(low: float, high: float) -> Callable[[pd.Series], pd.Series]:
    def check(values: pd.Series) -> pd.Series:
        return (values >= low) & (values <= high)

    return check


def _one_of(allowed: tuple[str, ...]) -> Callable[[pd.Series], pd.Series]:
    def check(values: pd.Series) -> pd.Series:
        return values.isin(allowed)

    return check


def _non_negative(values: pd.Series) -> pd.Series:
    return values >= 0


def _filled(values: pd.Series) -> pd.Series:
    return values.notna()


def _unique(values: pd.Series) -> pd.Series:
    return ~values.duplicated(keep=False)


def _check(function: Callable[..., pd.Series], rule: str, *, ignore_na: bool = True) -> pa.Check:
    """A pandera check named after its rule. Pandera keeps only a few failure cases (turning
    millions of them into strings takes minutes); positions come from the check output."""
    return pa.Check(function, name=rule, ignore_na=ignore_na, n_failure_cases=MAX_EXAMPLES)


def table_schemas(
    table: str, columns: Iterable[str], now: pd.Timestamp
) -> dict[Severity, pa.DataFrameSchema]:
    """The pandera schemas of ``table`` over ``columns`` (those present with the right type).

    Two schemas because pandera has no severity: a failure of the ``"error"`` schema blocks the
    run, one of the ``"warning"`` schema is only reported. Every check is named after its
    ``RULES`` key; emptiness and uniqueness are checks too, so they are reported the same way.
    """
    now = as_utc(now)
    today = now.tz_localize(None).normalize()
    usable = set(columns)
    error_columns: dict[str, pa.Column] = {}
    warning_columns: dict[str, pa.Column] = {}
    for name in usable:
        kind = column_kind(table, name)
        checks: list[pa.Check] = []
        if name in NOT_NULL[table]:
            checks.append(_check(_filled, "missing_value", ignore_na=False))
        if (table, name) in UNIQUE_IDS:
            checks.append(_check(_unique, "duplicate_id"))
        if (table, name) in NON_NEGATIVE:
            checks.append(_check(_non_negative, "negative_value"))
        if (table, name) in RANGES:
            checks.append(_check(_between(*RANGES[table, name]), "out_of_range"))
        if (table, name) in CATEGORIES:
            checks.append(_check(_one_of(CATEGORIES[table, name]), "unknown_category"))
        error_columns[name] = pa.Column(nullable=True, checks=checks, required=False)
        if kind in ("date", "timestamp") and name not in MAY_BE_FUTURE:
            limit = today if kind == "date" else now
            warning_columns[name] = pa.Column(
                nullable=True, checks=[_check(_not_after(limit), "future_time")], required=False
            )
    order_checks: dict[Severity, list[pa.Check]] = {"error": [], "warning": []}
    for rule, (rule_table, later, earlier) in _ORDER_RULES.items():
        if rule_table == table and {later, earlier} <= usable:
            check = _check(_not_before(later, earlier), rule, ignore_na=False)
            order_checks[RULES[rule].severity].append(check)
    return {
        "error": pa.DataFrameSchema(error_columns, checks=order_checks["error"], name=table),
        "warning": pa.DataFrameSchema(warning_columns, checks=order_checks["warning"], name=table),
    }


def _schema_findings(
    table: str, frame: pd.DataFrame, schema: pa.DataFrameSchema, now: pd.Timestamp
) -> list[Finding]:
    """Run one pandera schema lazily and turn each failed check into a finding.

    The failing rows are read from the check's boolean output (vectorised), not from
    pandera's string failure cases.
    """
    try:
        schema.validate(frame, lazy=True, inplace=True)
        return []
    except pa.errors.SchemaErrors as exc:
        errors = exc.schema_errors
    findings: list[Finding] = []
    for error in errors:
        rule = getattr(error.check, "name", None)
        output = error.check_output
        if rule not in RULES or not isinstance(output, pd.Series):
            # a check that could not run; the type gate in check_table should prevent it
            raise RuntimeError(f"pandera failed on {table}: {error}") from error
        column = _ORDER_RULES[rule][1] if rule in _ORDER_RULES else str(error.column_name)
        failed = ~output.to_numpy(dtype=bool, na_value=True)
        positions = output.index.to_numpy()[failed].astype(np.int64)
        low, high = RANGES.get((table, column), (0, 0))
        finding = _row_finding(
            rule,
            table,
            column,
            frame,
            positions,
            show_values=rule in ("unknown_category", "out_of_range", "negative_value"),
            now=f"{now:%Y-%m-%d %H:%M} UTC",
            low=low,
            high=high,
            allowed=", ".join(CATEGORIES.get((table, column), ())),
        )
        if finding is not None:
            findings.append(finding)
    return findings


def check_table(
    table: str, frame: pd.DataFrame, now: pd.Timestamp
) -> tuple[list[Finding], set[str]]:
    """Column presence, types and the table's pandera schemas; returns the usable columns."""
    findings: list[Finding] = []
    if table in REQUIRED_TABLES and frame.empty:
        findings.append(_finding("empty_table", table))
    required, optional = TABLE_COLUMNS[table]
    usable: set[str] = set()
    for name in required + optional:
        if name not in frame.columns:
            if name in required:
                findings.append(_finding("missing_column", table, name))
            continue
        kind = column_kind(table, name)
        if not _has_kind(frame[name], kind):
            findings.append(
                _finding(
                    "wrong_type",
                    table,
                    name,
                    actual=str(frame[name].dtype),
                    expected=_EXPECTED[kind],
                )
            )
            continue
        usable.add(name)
    for schema in table_schemas(table, usable, now).values():
        findings += _schema_findings(table, frame, schema, now)
    return findings, usable


def without_echoes(findings: list[Finding]) -> list[Finding]:
    """Drop a ``missing_value`` that only repeats an unparseable finding on the same rows.

    Unparseable values are read as empty, so the not-null check sees them again.
    """
    unparseable = {
        (f.table, f.column): f.row_count for f in findings if f.rule.startswith("unparseable_")
    }
    return [
        f
        for f in findings
        if not (f.rule == "missing_value" and unparseable.get((f.table, f.column)) == f.row_count)
    ]


_EPOCH_BASE = int(pd.Timestamp("1900-01-01").timestamp())
_SPAN_BITS = 34  # 2**34 seconds after 1900 reaches the year 2444


def _seconds(values: pd.Series) -> np.ndarray:
    """Seconds since 1900 in [0, 2**34 - 2], for composite (customer, time) search keys."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    seconds = values.to_numpy(dtype="datetime64[ns]").astype("datetime64[s]").astype(np.int64)
    return np.clip(seconds - _EPOCH_BASE, 0, (1 << _SPAN_BITS) - 2)


def _customer_codes(values: pd.Series, known: pd.Index) -> np.ndarray:
    """Position of each row's id (a customer_id, or any id) in ``known``; -1 unknown, -2 empty.

    Factorising first keeps the hash lookups to the distinct ids (fast on 10 M event rows).
    """
    codes, uniques = pd.factorize(values)
    lookup = np.append(known.get_indexer(pd.Index(uniques)), -2)
    return lookup[codes]  # code -1 (empty) indexes the trailing -2


def _subscription_spans(
    subscriptions: pd.DataFrame, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Overlapping subscriptions and each customer's covered spans.

    Returns the positions of subscriptions that start before an earlier one of the same
    customer has ended, and the disjoint covered spans [start, end) per customer code as
    ``(code, start, end)`` seconds sorted by code and start (an open end is the far future).
    """
    start = subscriptions["start_date"]
    end = subscriptions["end_date"]
    valid = (codes >= 0) & start.notna().to_numpy() & ~(end < start).to_numpy()
    rows = np.flatnonzero(valid)
    start_s = _seconds(start)[rows]
    end_s = np.where(end.isna().to_numpy()[rows], (1 << _SPAN_BITS) - 1, _seconds(end)[rows])
    order = np.lexsort((start_s, codes[rows]))
    rows, start_s, end_s, code = rows[order], start_s[order], end_s[order], codes[rows][order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = code[1:] != code[:-1]
    running_end = pd.Series(end_s).groupby(code).cummax().to_numpy()
    previous_end = np.empty_like(running_end)
    previous_end[1:] = running_end[:-1]
    overlap = ~first & (start_s < previous_end)
    new_span = first | (start_s > previous_end)
    span_starts = np.flatnonzero(new_span)
    spans = pd.DataFrame(
        {
            "code": code[span_starts],
            "start": start_s[span_starts],
            "end": np.maximum.reduceat(end_s, span_starts) if len(rows) else end_s,
        }
    )
    return rows[overlap], new_span, spans


def _events_outside(
    events: pd.DataFrame, codes: np.ndarray, spans: pd.DataFrame, seconds: np.ndarray
) -> np.ndarray:
    """Positions of events of known customers outside every covered span [start, end).

    ``seconds`` are the events' ``_seconds``. One binary search per event over (customer, time)
    keys: vectorised, O(n log m).
    """
    valid = (codes >= 0) & events["timestamp"].notna().to_numpy()
    rows = np.flatnonzero(valid)
    keys = (codes[rows].astype(np.int64) << _SPAN_BITS) | seconds[rows]
    span_code = spans["code"].to_numpy(dtype=np.int64) << _SPAN_BITS
    span_start = span_code | spans["start"].to_numpy(dtype=np.int64)
    span_end = span_code | spans["end"].to_numpy(dtype=np.int64)
    at = np.searchsorted(span_start, keys, side="right") - 1
    inside = (at >= 0) & (keys < span_end[np.clip(at, 0, None)]) if len(spans) else at >= 0
    return rows[~inside]


def _exit_while_active(
    exit_reasons: pd.DataFrame,
    exit_codes: np.ndarray,
    subscriptions: pd.DataFrame,
    sub_codes: np.ndarray,
    today: pd.Timestamp,
) -> np.ndarray:
    """Positions of exit reasons whose customer holds a subscription that started on or before
    the churn day and is still active (no end_date, or one after today)."""
    exits = pd.DataFrame(
        {
            "position": np.arange(len(exit_reasons)),
            "code": exit_codes,
            "churn_day": exit_reasons["churned_at"].dt.tz_localize(None).dt.normalize(),
        }
    )
    active = (subscriptions["end_date"].isna() | (subscriptions["end_date"] > today)).to_numpy()
    subs = pd.DataFrame({"code": sub_codes, "start": subscriptions["start_date"]})[
        active & (sub_codes >= 0)
    ]
    pairs = exits[exits["code"] >= 0].merge(subs, on="code")
    return pd.unique(pairs.loc[pairs["start"] <= pairs["churn_day"], "position"].to_numpy())


def _event_row_id(events: pd.DataFrame) -> str | None:
    """event_id names event rows in the new event checks when the export fills it."""
    if "event_id" in events.columns and events["event_id"].notna().any():
        return "event_id"
    return None


def duplicate_event_details(
    repeated: list[tuple[str, int]], repeated_count: int, copies: int
) -> dict[str, str]:
    """The words of ``duplicate_event_id``: the first repeated ids (in order of first appearance)
    with their row counts, how many ids repeat, and how many rows are exact copies."""
    shown = ", ".join(f"{name} ({count:,} rows)" for name, count in repeated[:MAX_EXAMPLES])
    if repeated_count > MAX_EXAMPLES:
        shown += f" and {repeated_count - MAX_EXAMPLES:,} more"
    verb = "appears" if repeated_count == 1 else "appear"
    copies_text = (
        f"{copies:,} of them are exact copies of another row."
        if copies
        else "None of them is an exact copy of another row."
    )
    return {
        "id_count": f"{_plural(repeated_count, 'event_id')} {verb}",
        "id_examples": shown,
        "copies": copies_text,
    }


def _duplicate_event_ids(events: pd.DataFrame) -> Finding | None:
    """Rows whose event_id another row shares: which ids, how many rows, how many exact copies.

    The rows are kept (``clean`` does not drop them): an id clash says nothing about which row is
    right, and an exact copy is named so the user can remove it at the source. Arrow's hash table
    encodes the ids (about 3 s for 10 M distinct ids, a third of ``pd.factorize``).
    """
    ids = _arrow_text(events["event_id"])
    encoded = pc.dictionary_encode(
        ids.combine_chunks() if isinstance(ids, pyarrow.ChunkedArray) else ids
    )
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    filled = codes >= 0
    counts = np.bincount(codes[filled], minlength=len(encoded.dictionary))
    repeated = np.flatnonzero(counts > 1)  # in order of first appearance
    if len(repeated) == 0:
        return None
    positions = np.flatnonzero(filled & (counts[np.where(filled, codes, 0)] > 1))
    names = encoded.dictionary.take(pyarrow.array(repeated[:MAX_EXAMPLES])).to_pylist()
    copies = int(events.iloc[positions].duplicated(keep=False).sum())  # 0 or at least 2
    shown = [(str(name), int(counts[code])) for name, code in zip(names, repeated, strict=False)]
    words = duplicate_event_details(shown, len(repeated), copies)
    return _row_finding(
        "duplicate_event_id",
        "events",
        "event_id",
        events,
        positions,
        show_values=True,
        id_count=words["id_count"],
        id_examples=words["id_examples"],
        copies=words["copies"],
    )


@dataclass(frozen=True)
class _Links:
    """Each subscription_id's first row (a repeated id is an error of its own), for the
    event -> subscription checks. Arrays have one entry per id, then a sentinel that fails every
    test: the holder's customer code, the [start, end) seconds, whether the dates are usable
    (no dates when subscriptions' start_date or end_date is unusable)."""

    ids: pd.Index
    holder: np.ndarray
    start: np.ndarray | None
    end: np.ndarray | None
    dated: np.ndarray | None


@dataclass(frozen=True)
class Reference:
    """What rows of the other tables are checked against: the known customer ids, the spans
    their subscriptions cover, and the subscriptions events link to.

    Built once per export from customers and subscriptions (per-customer sized), so that a large
    table can be checked chunk by chunk against it (``features.contract_stream``).
    """

    known: pd.Index
    spans: pd.DataFrame | None
    """Covered spans per customer code (``_subscription_spans``); None without usable dates."""
    links: _Links | None


def reference(
    frames: Mapping[str, pd.DataFrame], usable: Mapping[str, set[str]]
) -> Reference | None:
    """The ``Reference`` of checked ``frames`` (None when customers has no usable customer_id)."""
    if "customer_id" not in usable["customers"]:
        return None
    known = pd.Index(frames["customers"]["customer_id"].dropna().unique())
    subscriptions = frames["subscriptions"]
    columns = usable["subscriptions"]
    if "customer_id" not in columns:
        return Reference(known, None, None)
    sub_codes = _customer_codes(subscriptions["customer_id"], known)
    dated = {"start_date", "end_date"} <= columns
    spans = _subscription_spans(subscriptions, sub_codes)[2] if dated else None
    links = None
    if "subscription_id" in columns:
        ids = subscriptions["subscription_id"]
        subs = np.flatnonzero(~ids.duplicated().to_numpy() & ids.notna().to_numpy())
        start_s = end_s = usable_dates = None
        if dated:
            start = subscriptions["start_date"].iloc[subs]
            end = subscriptions["end_date"].iloc[subs]
            far = (1 << _SPAN_BITS) - 1
            start_s = np.append(_seconds(start), 0)
            end_s = np.append(np.where(end.isna().to_numpy(), far, _seconds(end)), far)
            # else an error is reported already
            usable_dates = np.append((start.notna() & ~(end < start)).to_numpy(), False)
        holder = np.append(sub_codes[subs], -1)
        links = _Links(pd.Index(ids.iloc[subs]), holder, start_s, end_s, usable_dates)
    return Reference(known, spans, links)


def _event_subscription_findings(
    events: pd.DataFrame,
    event_codes: np.ndarray,
    links: _Links,
    event_seconds: np.ndarray | None,
    row_id: str | None,
    keep_empty: bool,
) -> list[Finding | None]:
    """Events linked to a subscription by ``events.subscription_id``: the link must exist, belong
    to the event's customer, and the event must fall in that subscription's [start, end).

    ``event_seconds`` are the events' ``_seconds`` (None when subscription dates are unusable).
    Whole-column array operations: one hash lookup per distinct subscription_id, then gathers
    and comparisons (unlinked events point at the sentinel subscription).
    """
    link = _customer_codes(events["subscription_id"], links.ids)
    own = np.where(link >= 0, link, len(links.ids))  # len(ids) is the sentinel
    holder = links.holder[own]
    other = (event_codes >= 0) & (holder >= 0) & (event_codes != holder)
    findings: list[Finding | None] = [
        _row_finding(
            "unknown_subscription",
            "events",
            "subscription_id",
            events,
            np.flatnonzero(link == -1),
            show_values=True,
            id_column=row_id,
        ),
        _row_finding(
            "subscription_of_other_customer",
            "events",
            "subscription_id",
            events,
            np.flatnonzero(other),
            show_values=True,
            id_column=row_id,
        ),
    ]
    if event_seconds is not None and links.dated is not None:
        assert links.start is not None and links.end is not None
        checked = links.dated[own] & events["timestamp"].notna().to_numpy()
        outside = checked & ((event_seconds < links.start[own]) | (event_seconds >= links.end[own]))
        findings.append(
            _row_finding(
                "event_outside_own_subscription",
                "events",
                "timestamp",
                events,
                np.flatnonzero(outside),
                id_column=row_id,
                keep_empty=keep_empty,
                share_of=int(checked.sum()),
            )
        )
    return findings


def row_findings(
    ref: Reference,
    table: str,
    frame: pd.DataFrame,
    usable: set[str],
    row_id: str | None,
    *,
    keep_empty: bool = False,
) -> list[Finding]:
    """The cross-table rules about each row of ``table`` (any table but customers): an unknown
    customer; for events, coverage by any subscription and the link to their own.

    Row-local given ``ref``: a large table may be checked chunk by chunk, ``keep_empty`` then
    keeps the 0-row findings of rules worded with a share (``_row_finding``). ``row_id`` names
    event rows (``_event_row_id`` of the whole table).
    """
    if "customer_id" not in usable:
        return []
    codes = _customer_codes(frame["customer_id"], ref.known)
    unknown = np.flatnonzero(codes == -1)
    findings = [_row_finding("unknown_customer", table, "customer_id", frame, unknown)]
    if table == "events":
        event_seconds = None
        if ref.spans is not None and "timestamp" in usable:
            event_seconds = _seconds(frame["timestamp"])  # shared by two checks
            outside = _events_outside(frame, codes, ref.spans, event_seconds)
            findings.append(
                _row_finding(
                    "event_outside_subscription",
                    "events",
                    "timestamp",
                    frame,
                    outside,
                    keep_empty=keep_empty,
                    share_of=len(frame),
                )
            )
        if ref.links is not None and "subscription_id" in usable:
            findings += _event_subscription_findings(
                frame, codes, ref.links, event_seconds, row_id, keep_empty
            )
    return [f for f in findings if f is not None]


def _status_findings(
    customers: pd.DataFrame,
    customer_codes: np.ndarray,
    codes: dict[str, np.ndarray],
    frames: Mapping[str, pd.DataFrame],
    known_count: int,
    subscriptions_open: np.ndarray | None,
) -> list[Finding | None]:
    """``customers.status`` (the CRM's flag) against exit reasons and open subscriptions.

    ``subscriptions_open`` marks the subscriptions without an end_date (None when end_date is
    unusable). Customer ids are positions in the known ids (``_customer_codes``).
    """
    status = customers["status"]
    mine = customer_codes >= 0
    churned = status.eq("churned").fillna(False).to_numpy(dtype=bool) & mine
    active_by_code = np.zeros(known_count + 1, dtype=bool)
    active = status.eq("active").fillna(False).to_numpy(dtype=bool) & mine
    active_by_code[customer_codes[active]] = True
    findings: list[Finding | None] = []
    if "exit_reasons" in codes:
        exit_codes = codes["exit_reasons"]
        exits = frames["exit_reasons"]
        for_active = np.flatnonzero((exit_codes >= 0) & active_by_code[exit_codes])
        findings.append(
            _row_finding(
                "exit_reason_for_active_customer",
                "exit_reasons",
                "customer_id",
                exits,
                for_active,
                customers=_plural(len(np.unique(exit_codes[for_active])), "customer"),
            )
        )
        has_exit = np.zeros(known_count + 1, dtype=bool)
        has_exit[exit_codes[exit_codes >= 0]] = True
        without = np.flatnonzero(churned & ~has_exit[customer_codes])
        findings.append(
            _row_finding("churned_without_exit_reason", "customers", "status", customers, without)
        )
    if "subscriptions" in codes and subscriptions_open is not None:
        sub_codes = codes["subscriptions"]
        has_open = np.zeros(known_count + 1, dtype=bool)
        has_open[sub_codes[subscriptions_open & (sub_codes >= 0)]] = True
        still = np.flatnonzero(churned & has_open[customer_codes])
        findings.append(
            _row_finding("churned_while_subscribed", "customers", "status", customers, still)
        )
    return findings


def customer_findings(
    frames: Mapping[str, pd.DataFrame],
    usable: Mapping[str, set[str]],
    ref: Reference,
    now: pd.Timestamp,
) -> list[Finding]:
    """The cross-table rules about customers, subscriptions and exit reasons (all per-customer
    sized): customers without subscription, overlaps, exits while active, the status flag."""
    customers, subscriptions = frames["customers"], frames["subscriptions"]
    customer_codes = _customer_codes(customers["customer_id"], ref.known)
    codes = {
        table: _customer_codes(frames[table]["customer_id"], ref.known)
        for table in ("subscriptions", "exit_reasons")
        if table in frames and "customer_id" in usable[table]
    }
    findings: list[Finding | None] = []
    if "subscriptions" in codes:
        covered = np.zeros(len(ref.known) + 1, dtype=bool)
        covered[codes["subscriptions"][codes["subscriptions"] >= 0]] = True
        alone = np.flatnonzero((customer_codes >= 0) & ~covered[customer_codes])
        findings.append(
            _row_finding(
                "customer_without_subscription", "customers", "customer_id", customers, alone
            )
        )
    if ref.spans is not None:  # subscriptions with usable customer_id, start_date, end_date
        overlap = _subscription_spans(subscriptions, codes["subscriptions"])[0]
        findings.append(
            _row_finding(
                "overlapping_subscriptions", "subscriptions", "start_date", subscriptions, overlap
            )
        )
        if "exit_reasons" in codes and "churned_at" in usable["exit_reasons"]:
            exits = frames["exit_reasons"]
            today = now.tz_localize(None).normalize()
            active = _exit_while_active(
                exits, codes["exit_reasons"], subscriptions, codes["subscriptions"], today
            )
            findings.append(
                _row_finding(
                    "exit_reason_while_active", "exit_reasons", "churned_at", exits, active
                )
            )
    if "status" in usable["customers"]:
        subscriptions_open = None
        if "end_date" in usable["subscriptions"]:
            subscriptions_open = subscriptions["end_date"].isna().to_numpy()
        findings += _status_findings(
            customers, customer_codes, codes, frames, len(ref.known), subscriptions_open
        )
    return [f for f in findings if f is not None]


def _cross_table_findings(
    frames: dict[str, pd.DataFrame], usable: dict[str, set[str]], now: pd.Timestamp
) -> list[Finding]:
    """Rules that need more than one table: unknown customers, coverage, overlaps, exits,
    events against their own subscription, and the customers' status flag."""
    ref = reference(frames, usable)
    if ref is None:
        return []
    findings: list[Finding] = []
    for table, frame in frames.items():
        if table != "customers":
            row_id = _event_row_id(frame) if table == "events" else None
            findings += row_findings(ref, table, frame, usable[table], row_id)
    return findings + customer_findings(frames, usable, ref, now)


def validate(tables: RawTables, now: pd.Timestamp) -> ValidationReport:
    """Check an export against the contract; never raises for bad data, reports it.

    ``now`` is the caller's clock (a naive value is UTC): rows later than it are warned about.
    Vectorised throughout: a few seconds for ~10 M event rows.
    """
    now = as_utc(now)
    findings = list(tables.read_findings)
    frames = {name: checkable(name, frame) for name, frame in tables.present().items()}
    usable: dict[str, set[str]] = {}
    for name, frame in frames.items():
        table_findings, usable[name] = check_table(name, frame, now)
        findings += table_findings
    findings += _cross_table_findings(frames, usable, now)
    if "events" in frames and "event_id" in usable["events"]:
        duplicates = _duplicate_event_ids(frames["events"])
        findings += [duplicates] if duplicates is not None else []
    return ValidationReport(
        findings=tuple(sorted(without_echoes(findings), key=severity_order)),
        row_counts={name: len(frame) for name, frame in frames.items()},
    )


def checkable(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with a 0-based positional index (row numbers in messages) and categorical
    contract columns as plain values (pandera cannot report empty categorical cells)."""
    index = frame.index
    if not (isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1):
        frame = frame.reset_index(drop=True)
    categorical: dict[str, pd.Series] = {}
    for name in COLUMN_ORDER[table]:
        dtype = frame[name].dtype if name in frame.columns else None
        if isinstance(dtype, pd.CategoricalDtype):
            categorical[name] = frame[name].astype(dtype.categories.dtype)
    return frame.assign(**categorical) if categorical else frame


def clean(tables: RawTables, report: ValidationReport) -> RawTables:
    """The tables downstream code may trust, after a passing ``validate``.

    Drops rows whose customer_id is not in customers (warned as ``unknown_customer``) and
    blanks resolved_at where it precedes opened_at (``resolved_before_opened``). Everything
    else warned about is kept as is. Refuses to run on a report with errors.
    """
    if not report.ok:
        raise ContractError(report.format_errors())
    known = pd.Index(tables.customers["customer_id"].dropna().unique())
    cleaned: dict[str, pd.DataFrame] = {}
    for name, frame in tables.present().items():
        if name == "customers":
            continue
        keep = _customer_codes(frame["customer_id"], known) >= 0
        if not keep.all():
            frame = frame[keep].reset_index(drop=True)
        if name == "tickets":
            swapped = frame["resolved_at"] < frame["opened_at"]
            if swapped.any():
                frame = frame.assign(resolved_at=frame["resolved_at"].mask(swapped))
        cleaned[name] = frame
    return replace(tables, **cleaned)  # type: ignore[arg-type]


def validate_folder(folder: Path, now: pd.Timestamp) -> tuple[RawTables | None, ValidationReport]:
    """Read and validate an export folder without raising: what ``churn validate`` shows.

    The tables are None when a required table is missing or unreadable.
    """
    frames, findings = _read_folder(folder)
    options, problems = options_findings(folder)
    findings += problems
    if any(table not in frames for table in REQUIRED_TABLES):
        for name, frame in frames.items():  # a missing table must not hide the other problems
            findings += check_table(name, checkable(name, frame), as_utc(now))[0]
        order = sorted(without_echoes(findings), key=severity_order)
        return None, ValidationReport(tuple(order), {n: len(f) for n, f in frames.items()})
    tables = RawTables(**frames, read_findings=tuple(findings), options=options)  # type: ignore[arg-type]
    return tables, validate(tables, now)


def load_valid_tables(folder: Path, now: pd.Timestamp) -> tuple[RawTables, ValidationReport]:
    """The one entry point for pipelines: read, validate, clean.

    Raises ``ContractError`` with the readable list of errors before anything downstream runs;
    the returned tables are already ``clean``ed, the report carries the warnings.
    """
    tables, report = validate_folder(folder, now)
    if tables is None or not report.ok:
        raise ContractError(report.format_errors())
    return clean(tables, report), report


# --------------------------------------------------------------------------------------------
# Rendering

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow"}


def render_report(report: ValidationReport) -> Table:
    """The report as a rich table, errors first (``churn validate`` prints it).

    Problem, first rows and fix share one column so the table stays readable at 80 columns.
    """
    table = Table(
        title=f"Data contract: {report.summary()}",
        caption="Rows are numbered from 1 under the header row. Rules: docs/data-contract.md",
        show_lines=True,
    )
    table.add_column("Severity", no_wrap=True)
    table.add_column("Where", overflow="fold")
    table.add_column("Rows", justify="right", no_wrap=True)
    table.add_column("Problem and fix", ratio=1)
    if not report.findings:
        table.add_row("[green]ok[/]", "", "", "Every check passed.")
    for finding in report.findings:
        details = escape(finding.message)
        if finding.rows:
            details += f"\n[dim]First rows: {escape(finding.examples())}[/]"
        details += f"\n[cyan]Fix:[/] {escape(finding.fix)}"
        table.add_row(
            f"[{_SEVERITY_STYLE[finding.severity]}]{finding.severity}[/]",
            f"{escape(finding.where)}\n[dim]{finding.rule}[/]",
            f"{finding.row_count:,}" if finding.row_count else "",
            details,
        )
    return table


def print_report(report: ValidationReport, console: Console | None = None) -> None:
    """Print the report table and a one-line verdict."""
    console = console or Console()
    console.print(render_report(report))
    counts = ", ".join(f"{name} {count:,}" for name, count in report.row_counts.items())
    if counts:
        console.print(f"Rows read: {counts}.")
    verdict = "[green]valid[/]" if report.ok else "[bold red]invalid[/]"
    console.print(f"The data is {verdict}: {report.summary()}.")

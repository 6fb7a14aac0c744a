"""The feature catalog: the one place a feature is named, grouped, described and put into words.

Training reads the feature list from here, serving and the UI turn contributions into the
``sentence`` a customer-success manager reads, and ``docs/features.md`` is generated from it.
The SQL in ``features/definitions/`` computes the values; a test checks both agree.

Windows are half-open ``[as_of - w, as_of)``; timestamps UTC; "days" are calendar days.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

Group = Literal["usage", "support", "commercial", "marketing", "profile"]
Kind = Literal["numeric", "categorical"]

CATALOG_VERSION = "1.1.0"
KEY_COLUMNS = ("customer_id", "as_of")
DURATION_COLUMNS = ("duration_days", "event_observed", "followup_days")
"""Time to churn of a labeled row, from the same life as its label (see ``labels_*.sql``)."""
LABEL_COLUMNS = ("churned", "label_complete", *DURATION_COLUMNS)

# Customer columns that identify or route, never predict. `status` is the source CRM's current
# active/churned flag: today's value would leak into every earlier as-of date.
NON_FEATURE_ATTRIBUTES = ("customer_id", "name", "signup_date", "csm_owner", "status")


@dataclass(frozen=True)
class Feature:
    """One leading indicator.

    ``sentence`` is a ``str.format`` template with the fields ``value`` (the number), ``abs``,
    ``pct`` and ``abs_pct`` (value x 100, for ratios), ``up_down`` (``up``/``down``),
    ``more_fewer`` and ``yes_no`` (for flags). ``requires`` lists ``table.column`` sources: when
    one is absent from an export the feature is absent too (never zero-filled).
    """

    name: str
    group: Group
    unit: str
    description: str
    sentence: str
    requires: tuple[str, ...]
    kind: Kind = "numeric"
    missing: str = ""
    """The sentence when the value is missing, where missing has a meaning (never used)."""

    def explain(self, value: object) -> str:
        """The plain-language sentence for one customer's value."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing or f"{self.description}: no data"
        if self.kind == "categorical" or isinstance(value, str):
            return self.sentence.format(value=value)
        number = float(value)  # type: ignore[arg-type]
        return self.sentence.format(
            value=number,
            abs=abs(number),
            pct=number * 100,
            abs_pct=abs(number) * 100,
            up_down="up" if number >= 0 else "down",
            more_fewer="more" if number >= 0 else "fewer",
            yes_no="yes" if number else "no",
        )


def _f(
    name: str,
    group: Group,
    unit: str,
    description: str,
    sentence: str,
    *requires: str,
    kind: Kind = "numeric",
) -> Feature:
    return Feature(name, group, unit, description, sentence, tuple(requires), kind)


EV = "events.timestamp"
SIGN_IN = "events.sign_in"
"""Present when some event type means a sign-in (``features.vocabulary``), not a real column."""
# fmt: off
FEATURES: tuple[Feature, ...] = (
    # usage: product events
    _f("events_7d", "usage", "actions", "Product actions in the last 7 days",
       "{value:.0f} product actions in the last 7 days", EV),
    _f("events_30d", "usage", "actions", "Product actions in the last 30 days",
       "{value:.0f} product actions in the last 30 days", EV),
    _f("events_90d", "usage", "actions", "Product actions in the last 90 days",
       "{value:.0f} product actions in the last 90 days", EV),
    _f("active_days_30d", "usage", "days", "Days with any product activity in the last 30 days",
       "Active on {value:.0f} of the last 30 days", EV),
    _f("active_days_90d", "usage", "days", "Days with any product activity in the last 90 days",
       "Active on {value:.0f} of the last 90 days", EV),
    _f("logins_30d", "usage", "logins", "Logins in the last 30 days",
       "{value:.0f} logins in the last 30 days", EV, SIGN_IN),
    _f("activity_change_30d", "usage", "ratio",
       "Change in product actions, last 30 days vs the previous 30",
       "Activity {up_down} {abs_pct:.0f} % vs the previous 30 days", EV),
    _f("logins_change_30d", "usage", "ratio", "Change in logins, last 30 days vs the previous 30",
       "Logins {up_down} {abs_pct:.0f} % vs the previous 30 days", EV, SIGN_IN),
    _f("activity_slope_90d", "usage", "ratio per week",
       "Weekly trend of activity over the last 90 days, relative to the average week",
       "Weekly activity trending {up_down} {abs_pct:.0f} % a week over the last 90 days", EV),
    _f("days_since_last_activity", "usage", "days", "Days since the last product activity",
       "Last product activity {value:.0f} days ago", EV),
    _f("active_users_30d", "usage", "users", "Distinct users active in the last 30 days",
       "{value:.0f} users active in the last 30 days", EV, "events.user_id"),
    _f("active_users_change_30d", "usage", "users",
       "Change in active users, last 30 days vs the previous 30",
       "{abs:.0f} {more_fewer} active users than in the previous 30 days", EV, "events.user_id"),
    _f("seat_utilization_30d", "usage", "share", "Share of paid seats active in the last 30 days",
       "{pct:.0f} % of paid seats active in the last 30 days",
       EV, "events.user_id", "subscriptions.seats"),
    _f("core_breadth_30d", "usage", "features",
       "Core features used in the last 30 days (core = the 5 features most customers used "
       "in the 90 days before the as-of date)",
       "Used {value:.0f} of the 5 core features in the last 30 days", EV, "events.feature"),
    _f("core_breadth_change_30d", "usage", "features",
       "Change in core features used, last 30 days vs the previous 30",
       "Core features used: {abs:.0f} {more_fewer} than in the previous 30 days",
       EV, "events.feature"),
    _f("core_events_30d", "usage", "actions", "Actions on core features in the last 30 days",
       "{value:.0f} core-feature actions in the last 30 days", EV, "events.feature"),
    _f("core_share_30d", "usage", "share", "Share of actions on core features, last 30 days",
       "{pct:.0f} % of activity on core features in the last 30 days", EV, "events.feature"),
    _f("feature_breadth_30d", "usage", "features", "Distinct features used in the last 30 days",
       "Used {value:.0f} distinct features in the last 30 days", EV, "events.feature"),
    _f("new_feature_adoption_90d", "usage", "share",
       "Share of features launched in the last 90 days that the customer has tried",
       "Tried {pct:.0f} % of the features launched in the last 90 days", EV, "events.feature"),
    _f("value_90d", "usage", "currency", "Value of purchases or metered usage, last 90 days",
       "Purchases or usage worth {value:,.0f} in the last 90 days", EV, "events.value"),
    _f("lifetime_active_days", "usage", "days", "Days with activity since the customer's start",
       "Active on {value:.0f} days in total", EV),
    _f("lifetime_value", "usage", "currency", "Value of all purchases or metered usage to date",
       "Purchases or usage worth {value:,.0f} to date", EV, "events.value"),
    _f("days_since_first_activity", "usage", "days", "Days since the first product activity",
       "First activity {value:.0f} days ago", EV),
    _f("lifetime_active_share", "usage", "share",
       "Share of the days since the first product activity with any activity",
       "Active on {pct:.0f} % of the days since the first activity", EV),
    # support: tickets
    _f("tickets_30d", "support", "tickets", "Support tickets opened in the last 30 days",
       "{value:.0f} support tickets opened in the last 30 days", "tickets.opened_at"),
    _f("tickets_90d", "support", "tickets", "Support tickets opened in the last 90 days",
       "{value:.0f} support tickets opened in the last 90 days", "tickets.opened_at"),
    _f("tickets_change_30d", "support", "tickets",
       "Change in tickets opened, last 30 days vs the previous 30",
       "{abs:.0f} {more_fewer} tickets than in the previous 30 days", "tickets.opened_at"),
    _f("open_tickets", "support", "tickets", "Tickets still open at the as-of date",
       "{value:.0f} support tickets still open", "tickets.opened_at"),
    _f("high_priority_open", "support", "tickets", "High or urgent tickets still open",
       "{value:.0f} high-priority tickets still open", "tickets.opened_at"),
    _f("high_priority_90d", "support", "tickets", "High or urgent tickets opened, last 90 days",
       "{value:.0f} high-priority tickets opened in the last 90 days", "tickets.opened_at"),
    _f("resolution_hours_90d", "support", "hours",
       "Mean hours to resolve tickets resolved in the last 90 days",
       "Tickets took {value:.0f} hours to resolve on average", "tickets.opened_at"),
    _f("csat_90d", "support", "score 1-5", "Mean CSAT of tickets resolved in the last 90 days",
       "Support satisfaction {value:.1f} of 5 in the last 90 days", "tickets.csat"),
    _f("low_csat_90d", "support", "tickets",
       "Tickets rated 1 or 2 (CSAT) among those resolved in the last 90 days",
       "{value:.0f} tickets rated poorly (CSAT 1-2) in the last 90 days", "tickets.csat"),
    _f("ticket_silence", "support", "flag",
       "Filed 2+ tickets in the 9 months before the last 90 days, and none since",
       "Used to file tickets, silent for 90 days ({value:.0f} = yes)", "tickets.opened_at"),
    _f("days_since_last_ticket", "support", "days", "Days since the last ticket was opened",
       "Last support ticket {value:.0f} days ago", "tickets.opened_at"),
    # commercial: subscriptions and invoices
    _f("mrr", "commercial", "currency / month", "Monthly recurring revenue at the as-of date",
       "Pays {value:,.0f} a month", "subscriptions.mrr"),
    _f("mrr_change_90d", "commercial", "ratio", "Change in MRR vs 90 days earlier",
       "MRR {up_down} {abs_pct:.0f} % vs 90 days ago", "subscriptions.mrr"),
    _f("upgrades_180d", "commercial", "changes", "Plan changes that raised MRR, last 180 days",
       "{value:.0f} upgrades in the last 180 days", "subscriptions.mrr"),
    _f("downgrades_180d", "commercial", "changes", "Plan changes that lowered MRR, last 180 days",
       "{value:.0f} downgrades in the last 180 days", "subscriptions.mrr"),
    _f("seats", "commercial", "seats", "Paid seats at the as-of date",
       "{value:.0f} paid seats", "subscriptions.seats"),
    _f("days_to_renewal", "commercial", "days",
       "Days to the next yearly anniversary of the current subscription",
       "Renewal anniversary in {value:.0f} days", "subscriptions.start_date"),
    _f("invoices_late_180d", "commercial", "invoices",
       "Invoices due in the last 180 days paid late or still unpaid past due",
       "{value:.0f} invoices paid late or overdue in the last 180 days", "invoices.due_at"),
    _f("unpaid_invoices", "commercial", "invoices", "Invoices issued, not paid by the as-of date",
       "{value:.0f} invoices unpaid", "invoices.due_at"),
    _f("overdue_amount", "commercial", "currency", "Amount past due and unpaid at the as-of date",
       "{value:,.0f} overdue", "invoices.due_at"),
    _f("payment_delay_days_180d", "commercial", "days",
       "Mean days past due of invoices due in the last 180 days (0 = on time)",
       "Pays {value:.0f} days late on average", "invoices.due_at"),
    # marketing: NPS and campaigns
    _f("nps_last", "marketing", "score 0-10", "Latest NPS answer",
       "Last NPS answer: {value:.0f} of 10", "nps.score"),
    _f("nps_change", "marketing", "points", "Change between the last two NPS answers",
       "NPS {up_down} {abs:.0f} points since the previous answer", "nps.score"),
    _f("days_since_nps", "marketing", "days", "Days since the latest NPS answer",
       "Last NPS answer {value:.0f} days ago", "nps.score"),
    _f("marketing_opens_90d", "marketing", "opens", "Marketing emails opened, last 90 days",
       "Opened {value:.0f} marketing emails in the last 90 days", "marketing.action"),
    _f("marketing_clicks_90d", "marketing", "clicks", "Marketing links clicked, last 90 days",
       "Clicked {value:.0f} marketing links in the last 90 days", "marketing.action"),
    _f("marketing_open_rate_90d", "marketing", "share",
       "Share of marketing emails sent in the last 90 days that were opened",
       "Opened {pct:.0f} % of marketing emails in the last 90 days", "marketing.action"),
    _f("events_attended_180d", "marketing", "events", "Webinars or events attended, last 180 days",
       "Attended {value:.0f} webinars or events in the last 180 days", "marketing.action"),
    # profile: tenure, lifecycle and attributes
    _f("tenure_days", "profile", "days", "Days since the customer signed up",
       "Customer for {value:.0f} days", "customers.signup_date"),
    _f("lifecycle_stage", "profile", "stage",
       "onboarding (< 90 days), adoption (< 1 year), renewal (within 60 days of an anniversary) "
       "or mature",
       "Lifecycle stage: {value}", "customers.signup_date", kind="categorical"),
    _f("industry", "profile", "", "Industry", "Industry: {value}", "customers.industry",
       kind="categorical"),
    _f("company_size", "profile", "", "Company size", "Company size: {value}",
       "customers.company_size", kind="categorical"),
    _f("region", "profile", "", "Region", "Region: {value}", "customers.region",
       kind="categorical"),
    _f("plan", "profile", "", "Current plan", "On the {value} plan", "customers.plan",
       kind="categorical"),
    _f("acquisition_channel", "profile", "", "How the customer was acquired",
       "Acquired through {value}", "customers.acquisition_channel", kind="categorical"),
)
# fmt: on

BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}


def feature_info(name: str, generated: Mapping[str, Feature] | None = None) -> Feature:
    """The catalog entry of ``name``: hand-written, else ``generated`` (the entries built from an
    export's vocabulary and attributes, which travel with a model), else a generic profile one.
    """
    if name in BY_NAME:
        return BY_NAME[name]
    if generated and name in generated:
        return generated[name]
    label = name.replace("_", " ")
    return Feature(
        name,
        "profile",
        "",
        f"Customer attribute '{label}'",
        f"{label.capitalize()}: {{value}}",
        (f"customers.{name}",),
        "categorical",
    )


def entries_to_json(entries: Iterable[Feature]) -> list[dict[str, object]]:
    """Catalog entries as JSON-ready dicts (stored with a labeled set and with a model)."""
    return [{**asdict(f), "requires": list(f.requires)} for f in entries]


def entries_from_json(raw: Iterable[Mapping[str, Any]]) -> dict[str, Feature]:
    """The inverse of :func:`entries_to_json`, by feature name."""
    out: dict[str, Feature] = {}
    for item in raw:
        entry = Feature(
            str(item["name"]), item["group"], str(item["unit"]), str(item["description"]),
            str(item["sentence"]), tuple(str(r) for r in item["requires"]), item["kind"],
            str(item.get("missing", "")),
        )  # fmt: skip
        out[entry.name] = entry
    return out


def available(present_columns: set[str]) -> list[Feature]:
    """Catalog features whose every source ``table.column`` is present in the export."""
    return [f for f in FEATURES if all(r in present_columns for r in f.requires)]


_EXAMPLE_VALUES: dict[str, float] = {
    "ratio": -0.45, "share": 0.35, "ratio per week": -0.06, "days": 12, "hours": 30,
    "score 1-5": 2.5, "score 0-10": 5, "points": -3, "currency": 1200, "currency / month": 900,
}  # fmt: skip


def catalog_markdown() -> str:
    """``docs/features.md``: the catalog as a user document (``python -m features.catalog``)."""
    lines = [
        "# Feature catalog",
        "",
        "Generated from `features/catalog.py` by `python -m features.catalog > docs/features.md`;",
        "do not edit by hand (a test checks it is up to date). Windows are half-open",
        "`[as_of - w, as_of)`, timestamps UTC. A feature whose source is absent from an export is",
        "absent too, never zero. Customer columns beyond the contract become profile features.",
        "",
        f"Catalog version {CATALOG_VERSION}.",
    ]
    for group in ("usage", "support", "commercial", "marketing", "profile"):
        header = "| feature | unit | meaning | example sentence | needs |"
        lines += ["", f"## {group.capitalize()}", "", header, "|---|---|---|---|---|"]
        for f in (f for f in FEATURES if f.group == group):
            example = f.explain(_EXAMPLE_VALUES.get(f.unit, 3) if f.kind == "numeric" else "SaaS")
            lines.append(f"| `{f.name}` | {f.unit} | {f.description} | {example} | "
                         f"{', '.join(f'`{r}`' for r in f.requires)} |")  # fmt: skip
    lines += _generated_markdown()
    return "\n".join(lines) + "\n"


def _generated_markdown() -> list[str]:
    """The templates behind generated features, shown on an example vocabulary."""
    from features.attributes import AttributeSpec
    from features.vocabulary import Vocabulary, vocabulary_catalog

    lines = [
        "",
        "## Generated from the export's own vocabulary",
        "",
        "Each of the most frequent event types (`type_<name>_...`) and product features",
        "(`uses_<name>_...`) gets these columns, the rest pooled as `other`; caps and the",
        "sign-in event types are set in the export's `features.yaml` (docs/data-contract.md).",
        "Shown for an event type `cancel_meeting`:",
        "",
        "| feature | unit | meaning | example sentence | needs |",
        "|---|---|---|---|---|",
    ]
    example = Vocabulary(event_types=("cancel_meeting",))
    for f in vocabulary_catalog(example, with_users=True):
        if f.name.startswith("type_cancel_meeting"):
            value = _EXAMPLE_VALUES.get(f.unit, 3)
            lines.append(f"| `{f.name}` | {f.unit} | {f.description} | {f.explain(value)} | "
                         f"{', '.join(f'`{r}`' for r in f.requires)} |")  # fmt: skip
    lines += [
        "",
        "Customer columns outside the contract get a type from their values (or `features.yaml`):",
        "",
        "| column type | feature | example sentence |",
        "|---|---|---|",
    ]
    samples: list[tuple[AttributeSpec, float | str]] = [
        (AttributeSpec("balance", "number", "inferred", "balance"), 1520.5),
        (AttributeSpec("products", "integer", "inferred", "products"), 2),
        (AttributeSpec("is_member", "boolean", "inferred", "is_member"), 1),
        (AttributeSpec("date_of_birth", "date", "inferred", "years_since_date_of_birth",
                       in_years=True), 41),
        (AttributeSpec("contract_date", "date", "inferred", "days_since_contract_date"), 230),
        (AttributeSpec("segment", "category", "inferred", "segment", ("smb",)), "smb"),
    ]  # fmt: skip
    for spec, shown in samples:
        entry = spec.catalog_entry()
        lines.append(f"| {spec.type} | `{entry.name}` | {entry.explain(shown)} |")
    lines += ["| text, identifier | none: never a feature | |"]
    return lines


if __name__ == "__main__":
    print(catalog_markdown(), end="")

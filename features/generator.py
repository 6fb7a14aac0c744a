"""A synthetic B2B SaaS company whose churn follows a documented latent-health process.

Why it exists: a model can only be judged against the truth, and real exports never carry it. Each
customer has a latent ``health`` that evolves month to month (AR(1) around the customer's own mean,
plus declines that drag it down for months) together with a few persistent driver states (late
payer, champion departed, unresolved high-priority ticket, narrow core-feature adoption, recent
downgrade). The states of month ``t`` drive what is observable in month ``t`` (events, tickets,
invoices, NPS, marketing, subscriptions) and, after a month's notice, the churn hazard of month
``t + 2``, so every driver shows up in the data 1-3 months before the churn it causes. Raw
activity scales with the account's seats; health shows in seat utilisation, breadth and change
against the account's own past. The true hazards and driver states are written to ``truth/`` next
to (never inside) the contract tables, so the oracle ROC-AUC is computable (see
:func:`oracle_scores`). ``docs/generator.md`` documents the process and its effect sizes.

Conventions: timestamps are UTC (``datetime64[ns, UTC]``); ``signup_date``, ``start_date`` and
``end_date`` are calendar days (Python ``date`` objects, Parquet ``date32``); a subscription's
``end_date`` is the first day without service, and a churned customer has no events on or after it.
Everything is vectorised over customers and rows; the only Python loop runs over months.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.contract import (
    EXIT_CATEGORIES,
    MARKETING_ACTIONS,
    TABLE_COLUMNS,
    TICKET_PRIORITIES,
    RawTables,
)
from features.errors import ChurnError
from features.io import atomic_path

Array = npt.NDArray[Any]
ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(months_done, months_total)`` after each simulated month."""

NS_PER_DAY = 86_400 * 10**9
NS_PER_SECOND = 10**9
NEVER = np.iinfo(np.int64).max // NS_PER_DAY  # a day number later than any simulated day

# --- the company -----------------------------------------------------------------------------
PLANS = ("starter", "growth", "business", "enterprise")
PRICE_PER_SEAT = np.array([25.0, 45.0, 80.0, 120.0])  # USD per seat per month
SEAT_RANGE = np.array([[2, 6], [5, 16], [12, 41], [30, 151]])  # [low, high) at signup, by plan
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
SIZE_SHARE = np.array([0.30, 0.32, 0.20, 0.12, 0.06])
PLAN_BY_SIZE = np.array(  # P(plan | company size): bigger companies buy bigger plans
    [
        [0.70, 0.25, 0.05, 0.00],
        [0.35, 0.45, 0.17, 0.03],
        [0.10, 0.40, 0.38, 0.12],
        [0.03, 0.20, 0.45, 0.32],
        [0.00, 0.08, 0.37, 0.55],
    ]
)
INDUSTRIES = (
    "software",
    "fintech",
    "healthcare",
    "retail",
    "manufacturing",
    "education",
    "media",
    "logistics",
)
REGIONS = ("north_america", "emea", "apac", "latam")
REGION_SHARE = np.array([0.45, 0.32, 0.15, 0.08])
REGION_UTC_OFFSET_HOURS = np.array([-6, 1, 8, -4])
CHANNELS = ("inbound", "outbound", "partner", "paid_search", "referral")
CHANNEL_SHARE = np.array([0.35, 0.20, 0.15, 0.18, 0.12])
CHANNEL_HEALTH = np.array([0.0, -0.15, 0.1, -0.2, 0.25])  # referred customers fit better
CSM_OWNERS = (
    "Alice Moreau",
    "Ben Okafor",
    "Chloé Martin",
    "Daniel Kim",
    "Elena Rossi",
    "Farid Haddad",
    "Grace Liu",
    "Hugo Schmidt",
    "Ines Duarte",
    "Jonas Berg",
    "Keiko Tanaka",
    "Liam O'Brien",
)
NAME_HEADS = np.array(
    [
        "Acme",
        "Blue",
        "Bright",
        "Cedar",
        "Delta",
        "Echo",
        "Falcon",
        "Granite",
        "Harbor",
        "Iron",
        "Juniper",
        "Kite",
        "Lumen",
        "Maple",
        "Nova",
        "Orbit",
        "Pine",
        "Quartz",
        "River",
        "Summit",
        "Tidal",
        "Urban",
        "Vector",
        "Willow",
        "Zenith",
        "Apex",
        "Boreal",
        "Cobalt",
        "Drift",
        "Ember",
    ]
)
NAME_TAILS = np.array(
    [
        "Analytics",
        "Labs",
        "Systems",
        "Works",
        "Logistics",
        "Health",
        "Foods",
        "Media",
        "Capital",
        "Retail",
        "Robotics",
        "Energy",
        "Studios",
        "Partners",
        "Networks",
        "Bio",
        "Cloud",
        "Metrics",
        "Goods",
        "Learning",
    ]
)
NAME_LEGAL = np.array(["Inc", "Ltd", "GmbH", "SAS", "BV", "LLC"])

CORE_FEATURES = ("dashboards", "reports", "automations", "integrations", "alerts")
CORE_THRESHOLDS = np.array([-1.9, -1.2, -0.6, -0.1, 0.4])  # adoption needs health + fit above it
CORE_USE_SHARE = 0.8  # share of feature use on adopted core features; the rest is peripheral
PERIPHERAL_FEATURES = ("api", "exports", "mobile_app", "templates", "sso_admin", "comments")
PERIPHERAL_TAKE_UP = 0.25  # chance an account uses a given peripheral feature at all
LAUNCHED_FEATURES = ("ai_assistant", "workflow_builder")  # no events before their launch day,
LAUNCH_AT = (1 / 3, 2 / 3)  # the 10th of the month a third and two thirds into the period
LAUNCH_TAKE_UP = 0.35  # at most this share of accounts tries a launched feature (healthier: more)
FEATURES = CORE_FEATURES + PERIPHERAL_FEATURES + LAUNCHED_FEATURES
EVENT_TYPES = ("login", "feature_use")
# Users, not rows, scale with the account: a month's active non-champion users are about
# (seats - 1) * sigmoid(UTILISATION_LOGIT + UTILISATION_HEALTH * health - UTILISATION_SIZE *
# log(seats / 10)), each active on 1 + Poisson(OTHER_DAYS * drive) days; the champion on
# Poisson(CHAMPION_DAYS * drive) days, drive = style * exp(LOGIN_HEALTH * health).
UTILISATION_LOGIT = -0.4
UTILISATION_HEALTH = 1.5
UTILISATION_SIZE = 0.4  # big accounts buy seats ahead of use: lower utilisation at equal health
LOGIN_HEALTH = 0.35  # login days per active user rise as exp(this * health)
OTHER_DAYS = 0.6
CHAMPION_DAYS = 8.0
FEATURE_ROWS_PER_LOGIN = 0.8  # feature_use rows per login day, times exp(0.2 * health)
USAGE_STYLE_SD = 0.4  # lognormal spread of how often an account's users log in, unrelated to health
ONBOARDING_MONTHS = 3  # narrow adoption is expected, not a risk, in the first months
NPS_RESPONSE_RATE = 0.4  # of the customers surveyed in a month (every 3 months, staggered)
MAX_SEATS = 999  # user ids are U000-U999
TICKET_PRIORITY_SHARE = np.array([0.35, 0.38, 0.19, 0.08])  # same order as TICKET_PRIORITIES
TICKET_CATEGORIES = ("bug", "how_to", "billing", "integration", "performance", "account")
TICKET_CATEGORY_SHARE = np.array([0.30, 0.25, 0.10, 0.15, 0.12, 0.08])
TICKET_MEDIAN_HOURS = np.array([72.0, 36.0, 16.0, 5.0])  # by priority
TICKET_RATE = 0.25  # tickets a month = this * (1 + expected active users) ** 0.7 * exp(-0.2 health)
SILENT_TICKETS = 0.3  # a declining account files this share of its usual tickets
SLOW_PAYER_SHARE = np.array(
    [0.02, 0.08, 0.25, 0.5]
)  # by plan: accounts-payable cycles, not distress
EXIT_TEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "product": {
        "main_reason": ("missing features we need", "too hard to adopt", "team stopped using it"),
        "improve": ("better onboarding", "deeper reporting", "simpler automations"),
        "replacement": ("spreadsheets", "in-house tool", "none"),
    },
    "price": {
        "main_reason": ("too expensive for the value", "budget cuts", "price increase"),
        "improve": ("cheaper plan", "usage-based pricing", "annual discount"),
        "replacement": ("cheaper competitor", "free tool", "none"),
    },
    "service": {
        "main_reason": ("support too slow", "issue never fixed", "no help during onboarding"),
        "improve": ("faster support", "a dedicated CSM", "fix the open bugs"),
        "replacement": ("competitor with better support", "in-house tool", "none"),
    },
    "competitor": {
        "main_reason": ("moved to a competitor", "new lead preferred another tool", "bundled deal"),
        "improve": ("match competitor features", "better integrations", "lower price"),
        "replacement": ("Competitor A", "Competitor B", "suite vendor"),
    },
    "unavoidable": {
        "main_reason": ("company acquired", "went out of business", "project ended"),
        "improve": ("nothing", "nothing", "n/a"),
        "replacement": ("parent company tool", "none", "none"),
    },
}
WIN_BACK = ("yes, with a discount", "maybe later", "no")
EXIT_ANSWER_RATE = 0.75  # share of churners who answer the free-text exit survey
BASE_SHARE = 0.5  # customers already active at ``start`` (signed up in the 36 months before)
BASE_HISTORY_MONTHS = 36
BURN_IN_MONTHS = 12  # latent months simulated for the base before start (declines, late payers)


@dataclass(frozen=True)
class ChurnProcess:
    """The true churn process: driver effects in log-odds of the monthly avoidable hazard.

    This is the one definition of the documented effect sizes; ``truth/drivers.json`` and
    ``docs/generator.md`` are written from it. Driver states are those behind the data of two
    months before (a month's notice), so they are observable before the month whose hazard they
    raise.
    """

    baseline: float = -5.7  # logit at health 0, no driver, plan "growth", past onboarding
    health: float = -1.3  # per unit of latent health (sd across customer-months is about 1)
    health_drop: float = 1.5  # per unit of health lost over the last 3 months (0 if none)
    late_payer: float = 0.2
    late_payer_x_small: float = 1.5  # extra for a late payer with at most `small_seats` seats
    champion_left: float = 0.3
    champion_left_x_unhealthy: float = 1.4  # extra when the champion left an unhealthy account
    unresolved_high_ticket: float = 1.2
    low_breadth: float = 0.5  # at most 2 of the 5 core features in use
    recent_downgrade: float = 0.5  # a downgrade in the last 3 months
    early_tenure: float = 0.4  # first 6 months after signup
    plan: tuple[float, float, float, float] = (
        0.1,
        0.0,
        0.0,
        0.0,
    )  # PLANS order; size acts via late_payer_x_small
    noise_sd: float = 0.3  # per customer-month logit noise: the unpredictable part
    unavoidable: float = 0.0015  # monthly hazard of churn unrelated to health
    small_seats: int = 10  # "small account" for the late-payer interaction
    # latent dynamics
    health_persistence: float = 0.95  # AR(1) coefficient of health around its customer mean
    health_innovation_sd: float = 0.12
    health_mean_sd: float = 0.7  # spread of customers' long-run health
    decline_enter_logit: float = -4.3  # a decline starts: logit = this - 0.6 * health
    decline_drift: float = -0.4  # health change per month while declining
    decline_exit: float = 0.15  # monthly chance a decline ends (rescued, re-engaged)
    champion_starts_decline: float = 0.4  # chance a champion's departure starts a decline
    late_enter_logit: float = -4.2  # late payer: logit(enter) = this - 0.9 * health
    late_stay: float = 0.9
    champion_leave_logit: float = -4.5  # champion leaves: logit = this - 0.3 * health
    champion_leave_health_hit: float = -0.3

    def avoidable_logit(self, x: dict[str, Array], plan: Array) -> Array:
        """Log-odds of avoidable churn before noise, from driver states ``x`` (truth columns)."""
        return (
            self.baseline
            + self.health * x["health"]
            + self.health_drop * x["health_drop"]
            + self.late_payer * x["late_payer"]
            + self.late_payer_x_small * (x["late_payer"] & x["small_account"])
            + self.champion_left * x["champion_left"]
            + self.champion_left_x_unhealthy * (x["champion_left"] & (x["health"] < 0))
            + self.unresolved_high_ticket * x["unresolved_high_ticket"]
            + self.low_breadth * x["low_breadth"]
            + self.recent_downgrade * x["recent_downgrade"]
            + self.early_tenure * x["early_tenure"]
            + np.asarray(self.plan)[plan]
        )


DEFAULT_PROCESS = ChurnProcess()


@dataclass(frozen=True)
class WorldChange:
    """Something that changes in the company from simulated month ``month`` on (0-based), for
    drift scenarios: the churn process, and so the truth, stay as they were; only what the
    export shows changes. Every knob at its default changes nothing (the same seed gives the
    same bytes as without a change).

    - ``usage_factor``: a product change; login days per user are multiplied by it (0.6: a
      redesign that needs fewer visits), and the feature use that follows logins with them.
    - ``new_plan``: a plan launched at ``month``; that share of later signups buy it (its list
      price is that of the plan they would have bought).
    - ``outage_event_type``: a tracking outage; events of this type are not recorded from the
      first day of ``month`` although customers keep using the product.
    - ``price_factor``: a price change; list prices are multiplied from ``month`` on, every open
      subscription is re-priced on its first day (a new subscription row) and invoices follow.
    """

    month: int
    usage_factor: float = 1.0
    new_plan: str | None = None
    new_plan_share: float = 0.5
    outage_event_type: str | None = None
    price_factor: float = 1.0


SCENARIOS = ("product_change", "new_plan", "tracking_outage", "price_change")


def scenario(name: str, month: int) -> WorldChange:
    """The drift scenarios the monitoring is tested and benchmarked on."""
    changes = {
        "product_change": WorldChange(month, usage_factor=0.6),
        "new_plan": WorldChange(month, new_plan="scale", new_plan_share=0.6),
        "tracking_outage": WorldChange(month, outage_event_type="feature_use"),
        "price_change": WorldChange(month, price_factor=1.3),
    }
    if name not in changes:
        raise ChurnError(f"Unknown drift scenario {name!r}: use one of {', '.join(SCENARIOS)}.")
    return changes[name]


HAZARD_DRIVERS = (  # the coefficients of ChurnProcess.avoidable_logit, in its order
    "health",
    "health_drop",
    "late_payer",
    "late_payer_x_small",
    "champion_left",
    "champion_left_x_unhealthy",
    "unresolved_high_ticket",
    "low_breadth",
    "recent_downgrade",
    "early_tenure",
)


@dataclass(frozen=True)
class DriverSignal:
    """How a true driver shows in the contract tables, and the catalog features that observe it."""

    observable: str
    lead: str
    features: tuple[str, ...]  # names in features/catalog.py


_CHAMPION_FEATURES = (
    "active_users_change_30d",
    "active_users_30d",
    "seat_utilization_30d",
    "activity_change_30d",
)
_LATE_FEATURES = (
    "invoices_late_180d",
    "payment_delay_days_180d",
    "overdue_amount",
    "unpaid_invoices",
)
DRIVER_SIGNALS: dict[str, DriverSignal] = {
    "health": DriverSignal(
        "share of paid seats active, login days per user, NPS, ticket CSAT, core features in use "
        "(all rise with health); raw event and ticket counts scale with seats first",
        "AR(1) with persistence 0.95: visible for months; churn follows with a month's notice",
        (
            "seat_utilization_30d",
            "active_users_30d",
            "active_days_30d",
            "days_since_last_activity",
            "nps_last",
            "csat_90d",
        ),
    ),
    "health_drop": DriverSignal(
        "activity, active users and core features fall against the account's own previous "
        "months; NPS drops; the account stops filing tickets",
        "a decline lasts about 6 months (exit 0.15/month), health falling 0.4 a month",
        (
            "activity_change_30d",
            "logins_change_30d",
            "activity_slope_90d",
            "active_users_change_30d",
            "core_breadth_change_30d",
            "nps_change",
            "ticket_silence",
        ),
    ),
    "late_payer": DriverSignal(
        "invoices paid after due_at or still unpaid (due 15 days after issue)",
        "state persists (stay 0.9/month); the month's invoice falls due mid-month",
        _LATE_FEATURES,
    ),
    "late_payer_x_small": DriverSignal(
        "late or unpaid invoices of an account with at most 10 paid seats",
        "interaction of the two",
        (*_LATE_FEATURES, "seats", "mrr"),
    ),
    "champion_left": DriverSignal(
        "the account's main user (most events) stops producing events; active users drop",
        "absorbing: once gone, stays gone",
        _CHAMPION_FEATURES,
    ),
    "champion_left_x_unhealthy": DriverSignal(
        "champion departure in an account whose seat use and NPS were already low",
        "interaction of the two",
        _CHAMPION_FEATURES,
    ),
    "unresolved_high_ticket": DriverSignal(
        "a high/urgent ticket opened in the last 2 months still unresolved after 30+ days",
        "stuck tickets stay open 35-120 days",
        ("high_priority_open", "open_tickets", "resolution_hours_90d", "low_csat_90d"),
    ),
    "low_breadth": DriverSignal(
        "distinct core features used (dashboards, reports, automations, integrations, alerts)",
        "follows health; narrow during onboarding",
        ("core_breadth_30d", "feature_breadth_30d", "core_share_30d", "core_events_30d"),
    ),
    "recent_downgrade": DriverSignal(
        "a subscription row with lower MRR than its predecessor in the last 3 months",
        "3 months",
        ("downgrades_180d", "mrr_change_90d"),
    ),
    "early_tenure": DriverSignal(
        "signup_date within 6 months",
        "known from signup",
        ("tenure_days", "lifecycle_stage", "days_since_first_activity"),
    ),
}


@dataclass(frozen=True)
class World:
    """A generated company: the contract tables plus the truth that produced them."""

    tables: RawTables
    truth_hazard: pd.DataFrame  # one row per customer-month at risk; see docs/generator.md
    drivers: dict[str, Any]  # written as truth/drivers.json
    start: date
    months: int
    seed: int


@dataclass
class _Chunks:
    """Column arrays appended month by month, concatenated once at the end."""

    columns: dict[str, list[Array]] = field(default_factory=dict)

    def add(self, **arrays: Array) -> None:
        for name, values in arrays.items():
            self.columns.setdefault(name, []).append(values)

    def get(self, name: str, dtype: npt.DTypeLike) -> Array:
        parts = self.columns.get(name, [])
        return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _sigmoid(x: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-x))


def _choice_rows(rng: np.random.Generator, probs: Array) -> Array:
    """One categorical draw per row of ``probs`` (rows sum to 1), vectorised."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(axis=1), probs.shape[1] - 1)


def _month_bounds(start: date, first: int, last: int) -> Array:
    """Day numbers (days since 1970-01-01) of the first day of months ``first..last`` from start."""
    base = np.datetime64(start, "M")
    return (base + np.arange(first, last + 1)).astype("datetime64[D]").astype(np.int64)


def _weekday_weights(days: Array) -> Array:
    """Relative activity per day: weekends quiet, the last week of December quieter."""
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    weights = np.where(weekday >= 5, 0.12, 1.0)
    dates = days.astype("datetime64[D]")
    month = dates.astype("datetime64[M]").astype(np.int64) % 12
    dom = (dates - dates.astype("datetime64[M]")).astype(np.int64)
    return np.where((month == 11) & (dom >= 22), weights * 0.35, weights)


def _draw_days(rng: np.random.Generator, cum_weights: Array, lo: Array, hi: Array) -> Array:
    """Day offsets in ``[lo, hi)`` within a month, drawn with that month's day weights."""
    a, b = cum_weights[lo], cum_weights[hi]
    u = a + rng.random(len(lo)) * (b - a)
    day = np.searchsorted(cum_weights, u, side="right") - 1
    return np.clip(day, lo, hi - 1)


def _time_of_day_ns(rng: np.random.Generator, utc_offset: Array) -> Array:
    """Nanoseconds into the UTC day for business-hours activity in the customer's time zone."""
    local = np.clip(rng.normal(13.0, 2.8, len(utc_offset)), 6.0, 22.5)
    return _hours_ns((local - utc_offset) % 24.0)


def _hours_ns(hours: Array) -> Array:
    """Durations in hours -> int64 nanoseconds, whole seconds (exports rarely carry finer)."""
    return (hours * 3600).astype(np.int64) * NS_PER_SECOND


def _pick(options: Sequence[str], index: Array) -> Array:
    return np.asarray(options, dtype=object)[index]


def _as_dates(days: Array) -> Array:
    """Day numbers (``NEVER`` = missing) -> object array of ``date`` / ``None`` (Parquet date32)."""
    values = np.where(days >= NEVER, np.iinfo(np.int64).min, days).astype("datetime64[D]")
    out = pd.Series(values).dt.date.to_numpy(dtype=object)
    out[days >= NEVER] = None
    return out


def _as_utc(ns: Array) -> pd.Series:
    """Int64 nanoseconds since the epoch (int64 min = missing) -> ``datetime64[ns, UTC]``."""
    return pd.Series(ns.astype("datetime64[ns]")).dt.tz_localize("UTC")


def _categorical(codes: Array, categories: Sequence[str] | Array) -> pd.Series:
    """Codes (-1 = missing) into a categorical column over ``categories``."""
    dtype = pd.CategoricalDtype(list(categories))
    return pd.Series(pd.Categorical.from_codes(codes.astype(np.int64), dtype=dtype))


def _ids(prefix: str, n: int, width: int) -> Array:
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width)).astype(object)


def _launch_days(month_start: Array, months: int) -> Array:
    """The day each launched feature ships: the 10th of the month a share ``LAUNCH_AT`` into the
    period (``NEVER`` when that month lies past it)."""
    launch_month = [max(1, round(months * share)) for share in LAUNCH_AT]
    return np.array(
        [month_start[m] + 9 if m < months else NEVER for m in launch_month], dtype=np.int64
    )


def _evolve_latent(
    rng: np.random.Generator,
    process: ChurnProcess,
    e: Array,
    health: Array,
    health_mean: Array,
    declining: Array,
    late: Array,
) -> None:
    """One month of the latent process for customers ``e``, in place (full-size arrays).

    Declines start (more often in unhealthy accounts) and end; health reverts towards the
    customer's mean (AR(1)) but drifts down while a decline lasts; late payers enter and leave.
    """
    h = health[e]
    starts = rng.random(len(e)) < _sigmoid(process.decline_enter_logit - 0.6 * h)
    ends = rng.random(len(e)) < process.decline_exit
    declining[e] = np.where(declining[e], ~ends, starts)
    health[e] = (
        health_mean[e]
        + process.health_persistence * (h - health_mean[e])
        + rng.normal(0.0, process.health_innovation_sd, len(e))
        + process.decline_drift * declining[e]
    )
    p_late = np.where(
        late[e], process.late_stay, _sigmoid(process.late_enter_logit - 0.9 * health[e])
    )
    late[e] = rng.random(len(e)) < p_late


def generate_world(
    customers: int,
    months: int,
    seed: int,
    start: date = date(2024, 1, 1),
    progress: ProgressCallback | None = None,
    process: ChurnProcess = DEFAULT_PROCESS,
    change: WorldChange | None = None,
    fork: tuple[int, int] | None = None,
) -> World:
    """Simulate ``customers`` accounts over ``months`` months from ``start`` (a first of month).

    Half the customers are already active at ``start`` (signed up in the prior 36 months, so
    features have history from month 1); the rest sign up uniformly over the period. The same
    ``seed`` gives identical tables. ``progress(done, total)`` is called after each month.
    ``change``: a drift scenario from one month on (:class:`WorldChange`). ``fork``:
    ``(month, path)``: from simulated month ``month`` (0-based) on, every draw comes from a new
    stream of ``(seed, path)``: the same world up to that month, another future after it
    (:func:`point_in_time_survival`).
    """
    if customers < 1 or months < 1:
        raise ChurnError(
            f"generate_world needs customers >= 1 and months >= 1, got {customers=}, {months=}"
        )
    if start.day != 1:
        raise ChurnError(f"start must be the first day of a month, got {start.isoformat()}")
    if change is not None and not 0 <= change.month < months:
        raise ChurnError(f"WorldChange.month must lie in [0, {months}), got {change.month}")
    rng = np.random.default_rng(seed)
    n = customers
    bounds = _month_bounds(start, -BASE_HISTORY_MONTHS, months)  # the base's history, then ours
    month_start = bounds[BASE_HISTORY_MONTHS:]  # months + 1 boundaries of the simulated period
    data_end = int(month_start[-1])
    customer_ids = _ids("C", n, 6)

    # --- static attributes ---------------------------------------------------------------------
    in_base = rng.random(n) < BASE_SHARE
    signup_month = np.where(
        in_base, rng.integers(-BASE_HISTORY_MONTHS, 0, n), rng.integers(0, months, n)
    )
    m_lo = bounds[signup_month + BASE_HISTORY_MONTHS]
    m_len = bounds[signup_month + BASE_HISTORY_MONTHS + 1] - m_lo
    signup_dom = (rng.random(n) * m_len).astype(np.int64)
    signup_day = m_lo + signup_dom
    size = rng.choice(len(COMPANY_SIZES), n, p=SIZE_SHARE)
    plan = _choice_rows(rng, PLAN_BY_SIZE[size])
    seats = rng.integers(SEAT_RANGE[plan, 0], SEAT_RANGE[plan, 1])
    annual = rng.random(n) < np.array([0.2, 0.4, 0.6, 0.8])[plan]  # annual term: yearly renewals
    industry = rng.integers(0, len(INDUSTRIES), n)
    region = rng.choice(len(REGIONS), n, p=REGION_SHARE)
    channel = rng.choice(len(CHANNELS), n, p=CHANNEL_SHARE)
    csm = rng.integers(0, len(CSM_OWNERS), n)
    utc_offset = REGION_UTC_OFFSET_HOURS[region].astype(np.float64)
    health_mean = CHANNEL_HEALTH[channel] + 0.05 * size + rng.normal(0.0, process.health_mean_sd, n)
    fit = rng.normal(0.0, 0.7, (n, len(CORE_FEATURES)))  # per-feature fit: breadth varies
    style = rng.lognormal(0.0, USAGE_STYLE_SD, n)  # daily-use team or weekly-use team
    champion_drive = rng.uniform(0.7, 1.3, n)  # how much more the main user logs in
    slow_payer = rng.random(n) < SLOW_PAYER_SHARE[plan]  # pays late by habit, always pays
    peripheral = rng.random((n, len(PERIPHERAL_FEATURES))) < PERIPHERAL_TAKE_UP
    launch_taste = rng.random((n, len(LAUNCHED_FEATURES)))
    survey_wave = rng.integers(0, 3, n)  # NPS surveyed every 3 months, staggered
    names = (
        pd.Series(NAME_HEADS[rng.integers(0, len(NAME_HEADS), n)])
        + " "
        + NAME_TAILS[rng.integers(0, len(NAME_TAILS), n)]
        + " "
        + NAME_LEGAL[rng.integers(0, len(NAME_LEGAL), n)]
    ).to_numpy(dtype=object)

    # --- initial latent state: the base after a year of burn-in, new ones near their mean -------
    stationary_sd = process.health_innovation_sd / np.sqrt(1 - process.health_persistence**2)
    health = health_mean + np.where(
        in_base, rng.normal(0.0, stationary_sd, n), rng.normal(0.0, 0.5, n)
    )
    declining = np.zeros(n, dtype=bool)
    late = np.zeros(n, dtype=bool)
    base = np.flatnonzero(in_base)
    history = [health.copy() for _ in range(3)]  # health before the last 3 monthly updates
    for _ in range(BURN_IN_MONTHS):
        history = [*history[1:], health.copy()]
        _evolve_latent(rng, process, base, health, health_mean, declining, late)
    tenure0 = -signup_month  # months before start, for the base
    p_gone = 1 - (1 - _sigmoid(process.champion_leave_logit - 0.3 * health)) ** np.maximum(
        tenure0, 0
    )
    champion_day = np.where(in_base & (rng.random(n) < p_gone), month_start[0] - 1, NEVER)
    stuck_until = np.full(n, np.iinfo(np.int64).min)  # when the last stuck high ticket resolves
    last_downgrade = np.full(n, -100)
    churn_day = np.full(n, NEVER)
    churned_month = np.full(n, -1)

    # subscription history: the base's annual customers renewed (30 % with an upgrade) before start
    sub_start = signup_day.copy()
    subs = _Chunks()
    renewals_before = np.where(annual & in_base, (-1 - signup_month) // 12, 0)
    had_renewal = renewals_before >= 1
    renewal_month = signup_month + 12 * renewals_before
    renewal_day = bounds[renewal_month + BASE_HISTORY_MONTHS] + np.minimum(signup_dom, 27)
    upgraded = had_renewal & (rng.random(n) < 0.3) & (plan > 0)
    signup_plan = np.where(upgraded, plan - 1, plan)
    prior_seats = np.where(upgraded, np.maximum(2, (seats * 0.8).astype(np.int64)), seats)
    r = np.flatnonzero(had_renewal)
    subs.add(
        customer=r,
        start=signup_day[r],
        end=renewal_day[r],
        plan=signup_plan[r],
        seats=prior_seats[r],
        price_factor=np.ones(len(r)),
    )
    sub_start[r] = renewal_day[r]

    def breadth_of(h: Array, tenure: Array) -> Array:
        """Core features in use: health plus per-feature fit above the feature's threshold."""
        onboarding = -1.5 * np.exp(-np.maximum(tenure, 0) / 2.0)
        return (h + onboarding)[:, None] + fit > CORE_THRESHOLDS[None, :]  # (n, features) adoption

    adopted = breadth_of(health, tenure0)

    events, tickets, invoices, nps, marketing, exits, truth = (_Chunks() for _ in range(7))
    ticket_count = 0
    launch_day = _launch_days(month_start, months)
    price = PRICE_PER_SEAT * np.where(annual, 0.85, 1.0)[:, None]  # (n, plans) annual discount
    noticed: dict[str, Array] | None = None  # the driver states a month before the latest

    for t in range(months):
        if fork is not None and t == fork[0]:
            rng = np.random.default_rng([seed, 7919, fork[1]])
        ms, me = int(month_start[t]), int(month_start[t + 1])
        dim = me - ms
        days = np.arange(ms, me)
        cum_weights = np.concatenate([[0.0], np.cumsum(_weekday_weights(days))])
        tenure = t - signup_month  # whole months since the signup month
        alive = churned_month < 0
        present = alive & (signup_day < me)
        at_risk = alive & (signup_day < ms)
        changed = change is not None and t >= change.month
        if change is not None and t == change.month and change.price_factor != 1.0:
            # the new list price starts a new row for every open subscription on this day
            kp = np.flatnonzero(at_risk)
            subs.add(customer=kp, start=sub_start[kp], end=np.full(len(kp), ms), plan=plan[kp],
                     seats=seats[kp], price_factor=np.ones(len(kp)))  # fmt: skip
            sub_start[kp] = ms
        price_now = change.price_factor if changed and change is not None else 1.0

        # --- churn this month from the states of two months ago -------------------------------
        # The states behind last month's data, as of this month's start; a decision to leave
        # takes a month's notice, so this month's churn follows the states a month before those
        # (for a customer that new: the latest). Hazards are also drawn for customers who already
        # left (``at_risk`` False): the oracle needs every month of its window.
        state = {
            "health": health.copy(),
            "health_drop": np.maximum(0.0, history[0] - health),
            "late_payer": late.copy(),
            "small_account": seats <= process.small_seats,
            "champion_left": champion_day < ms,
            "unresolved_high_ticket": stuck_until > ms * NS_PER_DAY,
            "core_breadth": adopted.sum(axis=1),
            "low_breadth": (adopted.sum(axis=1) <= 2) & (tenure > ONBOARDING_MONTHS),
            "recent_downgrade": last_downgrade >= t - 3,
            "early_tenure": tenure <= 6,
            "declining": declining.copy(),
        }
        noticed = state if noticed is None else noticed
        r = np.flatnonzero(signup_day < ms)
        risk = at_risk[r]
        known = signup_day[r] < month_start[max(t - 1, 0)]
        x = {name: np.where(known, noticed[name][r], now[r]) for name, now in state.items()}
        noticed = state
        logit = process.avoidable_logit(x, plan[r]) + rng.normal(0.0, process.noise_sd, len(r))
        avoidable_hazard = _sigmoid(logit)
        hazard = 1 - (1 - avoidable_hazard) * (1 - process.unavoidable)
        churn_avoidable = risk & (rng.random(len(r)) < avoidable_hazard)
        churn_unavoidable = risk & ~churn_avoidable & (rng.random(len(r)) < process.unavoidable)
        churns = churn_avoidable | churn_unavoidable
        truth.add(
            customer=r,
            month=np.full(len(r), ms),
            hazard=hazard,
            avoidable_hazard=avoidable_hazard,
            plan=plan[r],
            at_risk=risk,
            churned=churns,
            unavoidable=churn_unavoidable,
            health_mean=health_mean[r],
            **x,
        )
        c = r[churns]
        churn_day[c] = ms + rng.integers(0, dim, len(c))
        churned_month[c] = t
        _exit_rows(rng, exits, c, churn_unavoidable[churns], x, churns)

        # --- evolve the latent state for customers already signed up (and the departed) ---------
        e = r
        history = [*history[1:], health.copy()]
        _evolve_latent(rng, process, e, health, health_mean, declining, late)
        leaves = (champion_day[e] == NEVER) & (
            rng.random(len(e)) < _sigmoid(process.champion_leave_logit - 0.3 * health[e])
        )
        gone = e[leaves]
        champion_day[gone] = ms + rng.integers(0, dim, len(gone))
        health[gone] += process.champion_leave_health_hit
        declining[gone] |= rng.random(len(gone)) < process.champion_starts_decline
        adopted = breadth_of(health, tenure)

        # --- what is observable this month, from this month's state --------------------------
        end = np.minimum(churn_day, me)
        first = np.maximum(signup_day, ms)
        o = np.flatnonzero(present & (end > first))
        o_first, o_end = first[o] - ms, end[o] - ms
        ramp = 1 - 0.65 * np.exp(-tenure[o] / 1.5)  # onboarding: usage builds over ~3 months
        season = 0.85 if (t + start.month - 1) % 12 in (7, 11) else 1.0  # August, December
        utilisation = _sigmoid(
            UTILISATION_LOGIT
            + UTILISATION_HEALTH * health
            - UTILISATION_SIZE * np.log(np.maximum(seats, 2) / 10)
        )
        drive = style[o] * np.exp(LOGIN_HEALTH * health[o]) * ramp * season  # login days per user
        if changed and change is not None:
            drive = drive * change.usage_factor
        _event_rows(
            rng,
            events,
            o,
            o_first,
            o_end,
            ms,
            cum_weights,
            seats=seats[o],
            health=health[o],
            utilisation=utilisation[o] * ramp,
            champion_days=CHAMPION_DAYS * champion_drive[o] * drive,
            other_days=OTHER_DAYS * drive,
            champion_cutoff=champion_day[o] - ms,
            adopted=adopted[o],
            peripheral=peripheral[o],
            launched=launch_taste[o] < LAUNCH_TAKE_UP * _sigmoid(1.0 + health[o])[:, None],
            utc_offset=utc_offset[o],
            launch_day=launch_day - ms,
        )
        ticket_count = _ticket_rows(
            rng,
            tickets,
            o,
            o_first,
            o_end,
            ms,
            data_end,
            cum_weights,
            users=1 + seats[o] * utilisation[o],
            health=health[o],
            late=late[o],
            silent=declining[o],
            utc_offset=utc_offset[o],
            stuck_until=stuck_until,
            numbered_from=ticket_count,
        )
        _invoice_rows(
            rng,
            invoices,
            o,
            ms,
            dim,
            data_end,
            mrr=np.round(seats[o] * price[o, plan[o]] * price_now, 2),
            first=o_first,
            is_new=signup_day[o] >= ms,
            late=late[o],
            slow=slow_payer[o],
            utc_offset=utc_offset[o],
        )
        surveyed = o[((t - survey_wave[o]) % 3 == 0) & (rng.random(len(o)) < NPS_RESPONSE_RATE)]
        s_day = _draw_days(rng, cum_weights, first[surveyed] - ms, end[surveyed] - ms) + ms
        nps.add(
            customer=surveyed,
            ns=s_day * NS_PER_DAY + _time_of_day_ns(rng, utc_offset[surveyed]),
            score=np.clip(
                np.round(7.2 + 1.5 * health[surveyed] + rng.normal(0, 1.4, len(surveyed))), 0, 10
            ).astype(np.int64),
        )
        _marketing_rows(
            rng, marketing, o, o_first, o_end, ms, cum_weights, health[o], utc_offset[o]
        )

        # --- plan changes and renewals start a new subscription row -------------------------
        k = np.flatnonzero(at_risk & (end == me))  # not churning this month
        h = health[k]
        down = (rng.random(len(k)) < _sigmoid(-4.3 - 0.9 * h)) & ((plan[k] > 0) | (seats[k] > 2))
        up = ~down & (rng.random(len(k)) < _sigmoid(-4.2 + 0.8 * h))
        renew = annual[k] & (tenure[k] % 12 == 0) & ~down & ~up
        new_row = down | up | renew
        kc = k[new_row]
        change_day = np.where(
            renew[new_row],
            ms + np.minimum(signup_dom[kc], dim - 1),
            ms + 1 + rng.integers(0, dim - 1, len(kc)),
        )
        subs.add(customer=kc, start=sub_start[kc], end=change_day, plan=plan[kc], seats=seats[kc],
                 price_factor=np.full(len(kc), price_now))  # fmt: skip
        sub_start[kc] = change_day
        kd, ku = k[down], k[up]
        plan_down = (rng.random(len(kd)) < 0.5) & (plan[kd] > 0)
        plan[kd] -= plan_down
        seats[kd] = np.where(plan_down, seats[kd], np.maximum(2, (seats[kd] * 0.75).astype(int)))
        plan_up = (rng.random(len(ku)) < 0.5) & (plan[ku] < len(PLANS) - 1)
        plan[ku] += plan_up
        grown = np.minimum(np.ceil(seats[ku] * 1.25).astype(int), MAX_SEATS)
        seats[ku] = np.where(plan_up, seats[ku], grown)
        last_downgrade[kd] = t

        if progress is not None:
            progress(t + 1, months)

    # --- final subscription rows: churned ones end, active ones stay open ----------------------
    live = np.flatnonzero(signup_day < data_end)
    subs.add(
        customer=live,
        start=sub_start[live],
        end=churn_day[live],
        plan=plan[live],
        seats=seats[live],
        price_factor=np.full(len(live), change.price_factor if change is not None else 1.0),
    )
    tables = RawTables(
        customers=_customers_table(
            customer_ids[live],
            names[live],
            signup_day[live],
            industry[live],
            size[live],
            region[live],
            signup_plan[live],
            channel[live],
            csm[live],
            churn_day[live] < data_end,
        ),
        subscriptions=_subscriptions_table(subs, customer_ids, price),
        events=_events_table(events, customer_ids),
        tickets=_tickets_table(tickets, customer_ids),
        invoices=_invoices_table(invoices, customer_ids),
        nps=pd.DataFrame(
            {
                "customer_id": customer_ids[nps.get("customer", np.int64)],
                "responded_at": _as_utc(nps.get("ns", np.int64)),
                "score": nps.get("score", np.int64),
            }
        ),
        marketing=_marketing_table(marketing, customer_ids),
        exit_reasons=_exit_table(exits, customer_ids, churn_day),
    )
    if change is not None:
        tables = _apply_change(tables, change, seed, int(month_start[change.month]))
    truth_hazard = _truth_table(truth, customer_ids)
    drivers = _drivers_document(process, truth_hazard, customers, months, seed, start, launch_day)
    if change is not None:
        drivers["change"] = asdict(change)
    return World(tables, truth_hazard, drivers, start, months, seed)


def _apply_change(tables: RawTables, change: WorldChange, seed: int, day: int) -> RawTables:
    """The parts of a :class:`WorldChange` that only change what is recorded: the new plan's
    name and the outage. A separate random stream keeps the simulation itself untouched."""
    customers, subscriptions, events = tables.customers, tables.subscriptions, tables.events
    first_day = pd.Timestamp(_as_dates(np.array([day]))[0])
    if change.new_plan is not None:
        rng = np.random.default_rng([seed, 20])
        signed = pd.to_datetime(customers["signup_date"]) >= first_day
        buyers = signed.to_numpy() & (rng.random(len(customers)) < change.new_plan_share)
        customers = customers.assign(plan=np.where(buyers, change.new_plan, customers["plan"]))
        bought = subscriptions["customer_id"].isin(customers.loc[buyers, "customer_id"])
        subscriptions = subscriptions.assign(
            plan=np.where(bought, change.new_plan, subscriptions["plan"])
        )
    if change.outage_event_type is not None and events is not None:
        lost = (events["event_type"].astype(str) == change.outage_event_type) & (
            events["timestamp"] >= first_day.tz_localize("UTC")
        )
        events = events[~lost.to_numpy()].reset_index(drop=True)
    return replace(tables, customers=customers, subscriptions=subscriptions, events=events)


def _event_rows(
    rng: np.random.Generator,
    events: _Chunks,
    o: Array,
    o_first: Array,
    o_end: Array,
    ms: int,
    cum_weights: Array,
    *,
    seats: Array,
    health: Array,
    utilisation: Array,
    champion_days: Array,
    other_days: Array,
    champion_cutoff: Array,
    adopted: Array,
    peripheral: Array,
    launched: Array,
    utc_offset: Array,
    launch_day: Array,
) -> None:
    """Logins (a row per user-day, value = sessions) and feature use (a row per user-day-feature,
    value = actions).

    Users scale with the account, activity per user with health: ``(seats - 1) * utilisation``
    non-champion users (randomly rounded) are active this month, users 1..k (so the same people
    come back), each on ``1 + Poisson(other_days)`` days; the champion (user 0) on
    ``Poisson(champion_days)`` days until its departure day, after which neither the user nor its
    activity appears again. Each login day brings ``Poisson(0.8 exp(0.2 health))`` feature rows.
    """
    exposure = (o_end - o_first) / (len(cum_weights) - 1)
    expected = np.maximum(seats - 1, 0) * np.clip(utilisation * exposure, 0.0, 1.0)
    others = (expected + rng.random(len(o))).astype(np.int64)  # a stable team: rounding only
    champion = champion_cutoff > o_first
    users = others + champion
    owner = np.repeat(np.arange(len(o)), users)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(users) - users, users)
    user = rank + ~champion[owner]  # the champion is user 0 while present; others 1..k
    is_champion = user == 0
    days = np.where(
        is_champion,
        rng.poisson(champion_days[owner] * exposure[owner]),
        1 + rng.poisson(other_days[owner] * exposure[owner]),
    )
    row, user = np.repeat(owner, days), np.repeat(user, days)
    day = _draw_days(rng, cum_weights, o_first[row], o_end[row])
    keep = (user != 0) | (day < champion_cutoff[row])
    row, user, day = row[keep], user[keep], day[keep]
    login_ns = (ms + day) * NS_PER_DAY + _time_of_day_ns(rng, utc_offset[row])

    per_login = rng.poisson(FEATURE_ROWS_PER_LOGIN * np.exp(0.2 * health[row]))
    f = np.repeat(np.arange(len(row)), per_login)
    day_end = (ms + day[f] + 1) * NS_PER_DAY - NS_PER_SECOND
    feature_ns = np.minimum(login_ns[f] + _hours_ns(rng.exponential(0.6, len(f))), day_end)
    feature = _pick_feature(rng, adopted, peripheral, launched, row[f], day[f], launch_day)
    value = np.concatenate(
        [1 + rng.poisson(0.6, len(row)), 1 + rng.poisson(3.0 * np.exp(0.15 * health[row[f]]))]
    )
    ns = np.concatenate([login_ns, feature_ns])
    order = np.argsort(ns, kind="stable")
    events.add(
        customer=o[np.concatenate([row, row[f]])][order],
        user=np.concatenate([user, user[f]])[order],
        ns=ns[order],
        event_type=np.repeat(np.array([0, 1], dtype=np.int8), [len(row), len(f)])[order],
        feature=np.concatenate([np.full(len(row), -1), feature])[order].astype(np.int8),
        value=value[order].astype(np.int32),
    )


def _pick_feature(
    rng: np.random.Generator,
    adopted: Array,
    peripheral: Array,
    launched: Array,
    row: Array,
    day: Array,
    launch_day: Array,
) -> Array:
    """A feature for each feature-use row of customer ``row`` (an index into the per-customer
    ``adopted`` core, ``peripheral`` and ``launched`` flags) on ``day``.

    80 % of uses go to an adopted core feature, the rest to the account's own peripheral features
    or a launched feature it tried (only from its launch day).
    """
    m = len(row)
    breadth = adopted.sum(axis=1)[row]
    core_rank = np.argsort(~adopted, axis=1, kind="stable")  # adopted core features first
    core = core_rank[row, (rng.random(m) * np.maximum(breadth, 1)).astype(np.int64)]
    n_peripheral = peripheral.sum(axis=1)[row]
    peripheral_rank = np.argsort(~peripheral, axis=1, kind="stable")
    available = launched[row] & (day[:, None] >= launch_day[None, :])
    n_other = n_peripheral + available.sum(axis=1)
    pick = (rng.random(m) * np.maximum(n_other, 1)).astype(np.int64)
    own = len(CORE_FEATURES) + peripheral_rank[row, np.minimum(pick, len(PERIPHERAL_FEATURES) - 1)]
    first_launched = np.where(available[:, 0], 0, 1)
    tried = (
        len(CORE_FEATURES)
        + len(PERIPHERAL_FEATURES)
        + np.where(pick == n_peripheral, first_launched, 1)
    )
    other = np.where(pick < n_peripheral, own, tried)
    any_peripheral = len(CORE_FEATURES) + rng.integers(0, len(PERIPHERAL_FEATURES), m)
    other = np.where(n_other > 0, other, any_peripheral)
    use_core = (breadth > 0) & ((rng.random(m) < CORE_USE_SHARE) | (n_other == 0))
    return np.where(use_core, core, other)


def _ticket_rows(
    rng: np.random.Generator,
    tickets: _Chunks,
    o: Array,
    o_first: Array,
    o_end: Array,
    ms: int,
    data_end: int,
    cum_weights: Array,
    *,
    users: Array,
    health: Array,
    late: Array,
    silent: Array,
    utc_offset: Array,
    stuck_until: Array,
    numbered_from: int,
) -> int:
    """Tickets come from the people using the product (``users``: expected active users), a little
    more often when health is low, but a declining account goes quiet (a third of the rate): few
    tickets is not a sign of health. Some high/urgent tickets get stuck for 35-120 days.

    Raises ``stuck_until`` (full-size, nanoseconds) to the resolution time of each customer's stuck
    high/urgent tickets and returns the running ticket count (ids run over the whole period).
    """
    exposure = (o_end - o_first) / (len(cum_weights) - 1)
    rate = TICKET_RATE * users**0.7 * np.exp(-0.2 * health) * np.where(silent, SILENT_TICKETS, 1.0)
    count = rng.poisson(rate * exposure)
    row = np.repeat(np.arange(len(o)), count)
    m = len(row)
    day = _draw_days(rng, cum_weights, o_first[row], o_end[row])
    opened = (ms + day) * NS_PER_DAY + _time_of_day_ns(rng, utc_offset[row])
    priority = rng.choice(len(TICKET_PRIORITIES), m, p=TICKET_PRIORITY_SHARE)
    high = priority >= 2
    p_stuck = np.where(high, _sigmoid(-1.8 - 0.5 * health[row]), 0.04)
    is_stuck = rng.random(m) < p_stuck
    hours = TICKET_MEDIAN_HOURS[priority] * rng.lognormal(0.0, 0.8, m)
    hours = np.where(is_stuck, rng.uniform(35 * 24, 120 * 24, m), hours)
    resolved = opened + _hours_ns(hours)
    resolved = np.where(resolved >= data_end * NS_PER_DAY, np.iinfo(np.int64).min, resolved)
    category = rng.choice(len(TICKET_CATEGORIES), m, p=TICKET_CATEGORY_SHARE)
    category = np.where(late[row] & (rng.random(m) < 0.4), 2, category)  # billing disputes
    answered = (rng.random(m) < 0.5) & (resolved > 0)
    csat = np.clip(np.round(3.9 + 0.6 * health[row] - 1.5 * is_stuck + rng.normal(0, 0.8, m)), 1, 5)
    stuck_high = high & is_stuck
    np.maximum.at(
        stuck_until, o[row[stuck_high]], opened[stuck_high] + _hours_ns(hours[stuck_high])
    )
    order = np.argsort(opened, kind="stable")
    tickets.add(
        number=numbered_from + 1 + np.arange(m),
        customer=o[row][order],
        opened=opened[order],
        resolved=resolved[order],
        priority=priority[order],
        category=category[order],
        csat=np.where(answered, csat, np.nan)[order],
    )
    return numbered_from + m


def _invoice_rows(
    rng: np.random.Generator,
    invoices: _Chunks,
    o: Array,
    ms: int,
    dim: int,
    data_end: int,
    *,
    mrr: Array,
    first: Array,
    is_new: Array,
    late: Array,
    slow: Array,
    utc_offset: Array,
) -> None:
    """Monthly invoices due in 15 days; late payers pay 3-45 days late or (25 %) never.

    Slow payers (mostly big accounts, whose accounts payable run on their own cycle) pay 60 % of
    invoices 5-30 days late whatever their health: lateness alone is not distress. A new
    customer's first invoice is issued on its signup day and prorated.
    """
    m = len(o)
    issued_day = ms + np.where(is_new, first, 0)
    amount = np.round(mrr * np.where(is_new, (dim - first) / dim, 1.0), 2)
    issued = issued_day * NS_PER_DAY
    due = issued + 15 * NS_PER_DAY
    on_time = issued_day + rng.integers(0, 15, m)
    slightly_late = issued_day + 15 + rng.integers(1, 11, m)
    very_late = issued_day + 15 + rng.integers(3, 46, m)
    paid_day = np.where(rng.random(m) < 0.03, slightly_late, on_time)
    habitually_late = issued_day + 15 + rng.integers(5, 31, m)
    paid_day = np.where(slow & (rng.random(m) < 0.6), habitually_late, paid_day)
    paid_day = np.where(late, np.where(rng.random(m) < 0.25, NEVER, very_late), paid_day)
    paid = np.minimum(paid_day, data_end) * NS_PER_DAY + _time_of_day_ns(rng, utc_offset)
    paid = np.where(paid_day >= data_end, np.iinfo(np.int64).min, paid)  # unpaid at export
    invoices.add(customer=o, issued=issued, due=due, paid=paid, amount=amount)


def _marketing_rows(
    rng: np.random.Generator,
    marketing: _Chunks,
    o: Array,
    o_first: Array,
    o_end: Array,
    ms: int,
    cum_weights: Array,
    health: Array,
    utc_offset: Array,
) -> None:
    """Newsletters (1-2 a month), in-app messages and webinar invites.

    Email opens barely depend on health (inbox habits, not product value); in-app clicks and
    webinar attendance somewhat more. Responses (open, click, attend) follow their send within two
    days and never after churn.
    """
    exposure = (o_end - o_first) / (len(cum_weights) - 1)
    # channel, sends per month, logit of first response, its health slope, response, click chance
    touches = (
        ("email", 1.5, -0.4, 0.1, 1, 0.25),
        ("in_app", 0.5, -1.0, 0.3, 2, 0.0),
        ("webinar", 0.35, -1.8, 0.5, 3, 0.0),
    )
    for channel, rate, logit, slope, response, p_click in touches:
        count = rng.poisson(rate * exposure)
        row = np.repeat(np.arange(len(o)), count)
        m = len(row)
        day = _draw_days(rng, cum_weights, o_first[row], o_end[row])
        sent = (ms + day) * NS_PER_DAY + _time_of_day_ns(rng, utc_offset[row])
        responds = rng.random(m) < _sigmoid(logit + slope * health[row])
        replied = sent + _hours_ns(rng.exponential(8.0, m))
        clicked = replied + _hours_ns(rng.exponential(0.2, m))
        clicks = responds & (rng.random(m) < p_click)
        end_ns = (ms + o_end[row]) * NS_PER_DAY
        responds &= replied < end_ns
        clicks &= clicked < end_ns
        ns = np.concatenate([sent, replied[responds], clicked[clicks]])
        action = np.concatenate(
            [np.zeros(m), np.full(responds.sum(), response), np.full(clicks.sum(), 2)]
        )
        customer = np.concatenate([o[row], o[row[responds]], o[row[clicks]]])
        order = np.argsort(ns, kind="stable")
        marketing.add(
            customer=customer[order],
            ns=ns[order],
            channel=np.full(len(ns), channel, dtype=object),
            action=action[order].astype(np.int64),
        )


def _exit_rows(
    rng: np.random.Generator,
    exits: _Chunks,
    churned: Array,
    unavoidable: Array,
    x: dict[str, Array],
    churns: Array,
) -> None:
    """Exit category follows the churner's strongest driver (late payer -> price, etc.)."""
    m = len(churned)
    weights = np.stack(
        [
            0.3
            + 0.6 * x["low_breadth"][churns]
            + 0.5 * np.maximum(0, -x["health"][churns])
            + 0.5 * x["health_drop"][churns],
            0.3 + 1.0 * x["late_payer"][churns] + 0.6 * x["recent_downgrade"][churns],
            0.2 + 1.2 * x["unresolved_high_ticket"][churns],
            0.3 + 0.8 * x["champion_left"][churns],
        ],
        axis=1,
    )
    category = np.where(
        unavoidable, EXIT_CATEGORIES.index("unavoidable"), _choice_rows(rng, weights)
    )
    exits.add(
        customer=churned,
        category=category,
        answered=rng.random(m) < EXIT_ANSWER_RATE,
        text=rng.integers(0, 3, (m, 3)),
        win_back=rng.integers(0, len(WIN_BACK), m),
        asked_for_help=(rng.random(m) < np.where(category == 2, 0.85, 0.3)),
    )


def _customers_table(
    ids: Array,
    names: Array,
    signup_day: Array,
    industry: Array,
    size: Array,
    region: Array,
    plan: Array,
    channel: Array,
    csm: Array,
    churned: Array,
) -> pd.DataFrame:
    """``plan`` here is the plan at signup; the current plan lives on ``subscriptions``.

    ``status`` is the CRM's flag on the export day: ``churned`` once the last subscription ended.
    """
    return pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": _as_dates(signup_day),
            "name": names,
            "industry": _pick(INDUSTRIES, industry),
            "company_size": _pick(COMPANY_SIZES, size),
            "region": _pick(REGIONS, region),
            "plan": _pick(PLANS, plan),
            "acquisition_channel": _pick(CHANNELS, channel),
            "csm_owner": _pick(CSM_OWNERS, csm),
            "status": np.where(churned, "churned", "active").astype(object),
        }
    )


def _subscriptions_table(subs: _Chunks, customer_ids: Array, price: Array) -> pd.DataFrame:
    customer = subs.get("customer", np.int64)
    start = subs.get("start", np.int64)
    plan = subs.get("plan", np.int64)
    seats = subs.get("seats", np.int64)
    factor = subs.get("price_factor", np.float64)
    order = np.lexsort((start, customer))
    customer, start, plan, seats = customer[order], start[order], plan[order], seats[order]
    factor = factor[order]
    end = subs.get("end", np.int64)[order]
    return pd.DataFrame(
        {
            "subscription_id": _ids("S", len(order), 7),
            "customer_id": customer_ids[customer],
            "start_date": _as_dates(start),
            "end_date": _as_dates(end),
            "mrr": np.round(seats * price[customer, plan] * factor, 2),
            "plan": _pick(PLANS, plan),
            "seats": seats.astype(np.int64),
        }
    )


def _events_table(events: _Chunks, customer_ids: Array) -> pd.DataFrame:
    """Repeated strings are categoricals: 10 M rows of ids cost ints, not Python strings.

    Parquet keeps them dictionary-encoded and pandas reads them back as the same categoricals.
    """
    customer = events.get("customer", np.int64)
    user = events.get("user", np.int64)
    key = customer * 1000 + user
    users, user_code = np.unique(key, return_inverse=True)
    user_ids = np.char.add(
        np.char.add(customer_ids[users // 1000].astype(str), "-U"),
        np.char.zfill((users % 1000).astype(str), 3),
    ).astype(object)
    return pd.DataFrame(
        {
            "customer_id": _categorical(customer, customer_ids),
            "timestamp": _as_utc(events.get("ns", np.int64)),
            "event_type": _categorical(events.get("event_type", np.int8), EVENT_TYPES),
            "user_id": _categorical(user_code, user_ids),
            "feature": _categorical(events.get("feature", np.int8), FEATURES),
            "value": events.get("value", np.int32),
        }
    )


def _tickets_table(tickets: _Chunks, customer_ids: Array) -> pd.DataFrame:
    number = tickets.get("number", np.int64)
    csat = tickets.get("csat", np.float64)
    return pd.DataFrame(
        {
            "ticket_id": _ids("T", len(number), 7),
            "customer_id": customer_ids[tickets.get("customer", np.int64)],
            "opened_at": _as_utc(tickets.get("opened", np.int64)),
            "resolved_at": _as_utc(tickets.get("resolved", np.int64)),
            "priority": _pick(TICKET_PRIORITIES, tickets.get("priority", np.int64)),
            "category": _pick(TICKET_CATEGORIES, tickets.get("category", np.int64)),
            "csat": pd.Series(csat).astype("Int64"),
        }
    )


def _invoices_table(invoices: _Chunks, customer_ids: Array) -> pd.DataFrame:
    customer = invoices.get("customer", np.int64)
    issued = invoices.get("issued", np.int64)
    order = np.lexsort((issued, customer))
    return pd.DataFrame(
        {
            "invoice_id": _ids("I", len(order), 8),
            "customer_id": customer_ids[customer[order]],
            "issued_at": _as_utc(issued[order]),
            "due_at": _as_utc(invoices.get("due", np.int64)[order]),
            "paid_at": _as_utc(invoices.get("paid", np.int64)[order]),
            "amount": invoices.get("amount", np.float64)[order],
        }
    )


def _marketing_table(marketing: _Chunks, customer_ids: Array) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": customer_ids[marketing.get("customer", np.int64)],
            "timestamp": _as_utc(marketing.get("ns", np.int64)),
            "channel": marketing.get("channel", object),
            "action": _pick(MARKETING_ACTIONS, marketing.get("action", np.int64)),
        }
    )


def _exit_table(exits: _Chunks, customer_ids: Array, churn_day: Array) -> pd.DataFrame:
    customer = exits.get("customer", np.int64)
    category = _pick(EXIT_CATEGORIES, exits.get("category", np.int64))
    answered = exits.get("answered", bool)
    text = np.concatenate(exits.columns.get("text", [np.empty((0, 3), np.int64)]))

    def answer(column: str, i: int) -> Array:
        bank = {name: np.asarray(EXIT_TEXT[name][column], dtype=object) for name in EXIT_TEXT}
        out = np.empty(len(customer), dtype=object)
        for name, options in bank.items():  # five categories, not a loop over customers
            rows = category == name
            out[rows] = options[text[rows, i]]
        out[~answered] = None
        return out

    asked = np.where(exits.get("asked_for_help", bool), "yes", "no").astype(object)
    asked[~answered] = None
    win_back = _pick(WIN_BACK, exits.get("win_back", np.int64))
    win_back[~answered] = None
    return pd.DataFrame(
        {
            "customer_id": customer_ids[customer],
            "churned_at": _as_utc(churn_day[customer] * NS_PER_DAY),
            "category": category,
            "avoidable": category != "unavoidable",
            "main_reason": answer("main_reason", 0),
            "asked_for_help": asked,
            "improve": answer("improve", 1),
            "replacement": answer("replacement", 2),
            "win_back": win_back,
        }
    )


TRUTH_DRIVERS = (
    "health",
    "health_drop",
    "late_payer",
    "small_account",
    "champion_left",
    "unresolved_high_ticket",
    "core_breadth",
    "low_breadth",
    "recent_downgrade",
    "early_tenure",
    "declining",
)


def _truth_table(truth: _Chunks, customer_ids: Array) -> pd.DataFrame:
    """One row per customer-month at risk: the hazard used and the driver states behind it."""
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids[truth.get("customer", np.int64)],
            "month": _as_dates(truth.get("month", np.int64)),
            "hazard": truth.get("hazard", np.float64),
            "avoidable_hazard": truth.get("avoidable_hazard", np.float64),
            **{name: truth.get(name, np.float64) for name in TRUTH_DRIVERS},
            "plan": _pick(PLANS, truth.get("plan", np.int64)),
            "at_risk": truth.get("at_risk", bool),
            "churned": truth.get("churned", bool),
            "unavoidable": truth.get("unavoidable", bool),
            "health_mean": truth.get("health_mean", np.float64),
        }
    )
    return frame.astype({"core_breadth": np.int64})


def _drivers_document(
    process: ChurnProcess,
    truth: pd.DataFrame,
    customers: int,
    months: int,
    seed: int,
    start: date,
    launch_day: Array,
) -> dict[str, Any]:
    """The true drivers, their observable signals and effect sizes, plus what this world shows."""
    truth = truth[truth["at_risk"]]
    coefficients = {name: getattr(process, name) for name in HAZARD_DRIVERS}
    rate = float(truth["churned"].mean()) if len(truth) else 0.0
    churners = truth[truth["churned"]]
    units = {"health": "per unit of health", "health_drop": "per unit of health lost in 3 months"}

    def rate_ratio(flag: pd.Series) -> float | None:
        on, off = truth.loc[flag, "churned"].mean(), truth.loc[~flag, "churned"].mean()
        return round(float(on / off), 2) if flag.any() and (~flag).any() and off > 0 else None

    flags = {
        "health_below_minus_1": truth["health"] < -1,
        "health_drop_over_1": truth["health_drop"] > 1,
        "declining": truth["declining"].astype(bool),
        "late_payer": truth["late_payer"].astype(bool),
        "late_payer_x_small": (truth["late_payer"] * truth["small_account"]).astype(bool),
        "champion_left": truth["champion_left"].astype(bool),
        "unresolved_high_ticket": truth["unresolved_high_ticket"].astype(bool),
        "low_breadth": truth["low_breadth"].astype(bool),
        "recent_downgrade": truth["recent_downgrade"].astype(bool),
        "early_tenure": truth["early_tenure"].astype(bool),
    }
    return {
        "world": {
            "customers": customers,
            "months": months,
            "seed": seed,
            "start": start.isoformat(),
            "end": (pd.Timestamp(start) + pd.DateOffset(months=months)).date().isoformat(),
            "feature_launches": {
                name: pd.Timestamp(int(day), unit="D").date().isoformat()
                for name, day in zip(LAUNCHED_FEATURES, launch_day, strict=True)
                if day < NEVER
            },
        },
        "hazard_model": (
            "avoidable = sigmoid(baseline + sum(coefficient * driver state two months before)"
            " + plan effect + Normal(0, noise_sd));"
            " hazard = 1 - (1 - avoidable) * (1 - unavoidable)"
        ),
        "baseline_logit": process.baseline,
        "noise_sd": process.noise_sd,
        "unavoidable_monthly_hazard": process.unavoidable,
        "notice": "month m's hazard follows the driver states behind month m-2's data",
        "plan_effect": dict(zip(PLANS, process.plan, strict=True)),
        "drivers": {
            name: {
                "coefficient": coefficient,
                "odds_ratio": round(float(np.exp(coefficient)), 3),
                "unit": units.get(name, "when true"),
                "observable": DRIVER_SIGNALS[name].observable,
                "lead": DRIVER_SIGNALS[name].lead,
                "features": list(DRIVER_SIGNALS[name].features),
            }
            for name, coefficient in coefficients.items()
        },
        "process": asdict(process),
        "measured": {
            "monthly_churn_rate": round(rate, 5),
            "unavoidable_share_of_churn": (
                round(float(churners["unavoidable"].mean()), 4) if len(churners) else None
            ),
            "customer_months_at_risk": len(truth),
            "churn_rate_ratio": {name: rate_ratio(flag) for name, flag in flags.items()},
            "share_of_customer_months": {
                name: round(float(flag.mean()), 4) if len(flag) else None
                for name, flag in flags.items()
            },
        },
    }


def write_world(world: World, out: Path) -> Path:
    """Write ``out/<table>.parquet`` for each contract table and the truth to ``out/truth/``.

    Columns follow the contract's order; optional columns the generator does not produce
    (``events.event_id``, ``events.subscription_id``) are left out, as the contract allows.

    The whole folder is written atomically: a failure leaves the previous ``out`` (or nothing).
    Files are byte-identical for the same seed (no timestamps or random names inside).
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        (tmp / "truth").mkdir(parents=True)
        for name, frame in world.tables.present().items():
            columns = [c for group in TABLE_COLUMNS[name] for c in group if c in frame.columns]
            frame[columns].to_parquet(tmp / f"{name}.parquet", index=False, compression="zstd")
        world.truth_hazard.to_parquet(
            tmp / "truth" / "hazard.parquet", index=False, compression="zstd"
        )
        survival_table(world.truth_hazard).to_parquet(
            tmp / "truth" / "survival.parquet", index=False, compression="zstd"
        )
        (tmp / "truth" / "drivers.json").write_text(
            json.dumps(world.drivers, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return out


BLOCK_CUSTOMERS = 50_000
"""Customers simulated at once by :func:`generate_to_folder`: about 14 M events (some 2 GB) at
12 months, whatever the world's size. A world of at most this many is one block, exactly
:func:`generate_world`."""
_ID_WIDTHS = {"customer_id": ("C", 6), "subscription_id": ("S", 7), "ticket_id": ("T", 7),
              "invoice_id": ("I", 8)}  # fmt: skip
"""The id columns :func:`generate_world` numbers from 1 (``_ids``): prefix and digits."""
NUMBERED = {"subscriptions": "subscription_id", "tickets": "ticket_id", "invoices": "invoice_id"}
"""Tables whose rows are numbered 1..n: a block's ids continue after the blocks before it."""


def block_seed(seed: int, block: int) -> int:
    """The seed of block ``block`` of a world of ``seed``: its own stream, the same each run."""
    return int(np.random.SeedSequence([seed, block]).generate_state(1, np.uint32)[0])


def _renumber(values: pd.Series, prefix: str, width: int, offset: int) -> pd.Series:
    """Ids ``<prefix><digits>`` moved up by ``offset`` (categoricals: only their categories)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = pd.Series(values.cat.categories)
        return values.cat.rename_categories(_renumber(categories, prefix, width, offset).tolist())
    text = values.astype(object)
    number = text.str.slice(len(prefix)).astype(np.int64) + offset
    moved = prefix + number.astype(str).str.zfill(width)
    return moved.where(text.notna(), None).astype(object)


def _renumber_users(values: pd.Series, offset: int) -> pd.Series:
    """``<customer>-U<nnn>`` user ids with the customer part moved up by ``offset``."""
    categories = pd.Series(values.cat.categories).astype(str)
    parts = categories.str.split("-U", n=1, regex=False)
    customer, user = parts.str[0], parts.str[1]
    moved = _renumber(customer, "C", _ID_WIDTHS["customer_id"][1], offset) + "-U" + user
    return values.cat.rename_categories(moved.tolist())


def _shift_ids(frame: pd.DataFrame, offsets: dict[str, int]) -> pd.DataFrame:
    """``frame`` with every id column of :data:`_ID_WIDTHS` moved up by its offset."""
    moved = {}
    for column, (prefix, width) in _ID_WIDTHS.items():
        if column in frame.columns and offsets.get(column, 0):
            moved[column] = _renumber(frame[column], prefix, width, offsets[column])
    if "user_id" in frame.columns and offsets.get("customer_id", 0):
        moved["user_id"] = _renumber_users(frame["user_id"], offsets["customer_id"])
    return frame.assign(**moved) if moved else frame


class _TableAppender:
    """One Parquet file per table, each block appended as row groups; text as plain strings."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.writers: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def append(self, name: str, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if name not in self.writers:
            fields = [
                f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f
                for f in table.schema
            ]
            self.schemas[name] = pa.schema(fields)
            self.writers[name] = pq.ParquetWriter(
                self.folder / f"{name}.parquet", self.schemas[name], compression="zstd"
            )
        self.writers[name].write_table(table.cast(self.schemas[name]))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def generate_to_folder(
    customers: int,
    months: int,
    seed: int,
    out: Path,
    start: date = date(2024, 1, 1),
    progress: ProgressCallback | None = None,
    block: int = BLOCK_CUSTOMERS,
) -> Path:
    """:func:`generate_world` then :func:`write_world`, in blocks of ``block`` customers so a
    world of any size is generated in the memory of one block.

    Each block is a world of its own seed (:func:`block_seed`) whose ids are moved up past the
    blocks before it; its tables are appended to the Parquet files as row groups. Same seed, same
    files. A world of at most ``block`` customers is exactly ``write_world(generate_world(...))``.
    """
    if customers <= block:
        return write_world(generate_world(customers, months, seed, start, progress), out)
    blocks = -(-customers // block)
    offsets = dict.fromkeys(_ID_WIDTHS, 0)
    truth: list[pd.DataFrame] = []
    out = Path(out)
    with atomic_path(out) as tmp:
        (tmp / "truth").mkdir(parents=True)
        appender = _TableAppender(tmp)
        try:
            for b in range(blocks):
                size = min(block, customers - b * block)

                def step(done: int, total: int, b: int = b) -> None:
                    if progress is not None:
                        progress(b * months + done, blocks * total)

                world = generate_world(size, months, block_seed(seed, b), start, step)
                for name, frame in world.tables.present().items():
                    columns = [c for group in TABLE_COLUMNS[name] for c in group if c in frame]
                    appender.append(name, _shift_ids(frame[columns], offsets))
                truth.append(_shift_ids(world.truth_hazard, offsets))
                offsets["customer_id"] += size
                for name, column in NUMBERED.items():
                    frame = getattr(world.tables, name)
                    offsets[column] += 0 if frame is None else len(frame)
                del world
        finally:
            appender.close()
        truth_hazard = pd.concat(truth, ignore_index=True)
        truth_hazard.to_parquet(tmp / "truth" / "hazard.parquet", index=False, compression="zstd")
        survival_table(truth_hazard).to_parquet(
            tmp / "truth" / "survival.parquet", index=False, compression="zstd"
        )
        month_start = _month_bounds(start, 0, months)
        drivers = _drivers_document(DEFAULT_PROCESS, truth_hazard, customers, months, seed, start,
                                    _launch_days(month_start, months))  # fmt: skip
        drivers["blocks"] = {"customers": block, "count": blocks}
        (tmp / "truth" / "drivers.json").write_text(
            json.dumps(drivers, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return out


def oracle_survival(
    truth_hazard: pd.DataFrame,
    as_of: date,
    days: Sequence[float] | npt.NDArray[np.float64],
    customer_ids: Sequence[str],
) -> npt.NDArray[np.float64]:
    """True chance of still being a customer ``days`` after ``as_of`` (customers x days).

    ``prod_m (1 - hazard_m) ** overlap_m`` over the months ``[as_of, as_of + d)`` covers, a
    month's hazard spread evenly over its days and ``overlap_m`` the covered fraction of month
    ``m``. Months where a customer is not at risk contribute nothing; unknown customers get 1.
    """
    months = pd.to_datetime(truth_hazard["month"]).to_numpy(dtype="datetime64[D]")
    spans = np.asarray(days, dtype=np.float64)
    window_start = np.datetime64(as_of, "D")
    if len(months) and len(spans):
        last_end = (months.max().astype("datetime64[M]") + 1).astype("datetime64[D]")
        reach = window_start + np.timedelta64(int(np.ceil(spans.max())), "D")
        if reach > last_end:
            raise ChurnError(
                f"oracle window [{as_of}, {as_of + timedelta(days=float(spans.max()))}) runs past "
                f"the simulated period ending {last_end}; pick an earlier as_of or a shorter "
                "horizon"
            )
    ids = pd.Index(list(customer_ids))
    calendar = np.unique(months)
    row = ids.get_indexer(pd.Index(truth_hazard["customer_id"]))
    known = row >= 0
    log_keep = np.zeros((len(ids), len(calendar)))
    col = np.searchsorted(calendar, months[known])
    np.add.at(
        log_keep, (row[known], col), np.log1p(-truth_hazard["hazard"].to_numpy(np.float64)[known])
    )
    return np.asarray(np.exp(log_keep @ _month_fractions(calendar, window_start, spans).T))


def _month_fractions(
    calendar: npt.NDArray[np.datetime64], window_start: np.datetime64, spans: Array
) -> Array:
    """(days x months): the share of each month (its first day in ``calendar``) that
    ``[window_start, window_start + span)`` covers, a month's hazard spread over its days."""
    month_end = (calendar.astype("datetime64[M]") + 1).astype("datetime64[D]")
    start_day = (calendar - window_start).astype(np.int64).astype(np.float64)
    end_day = (month_end - window_start).astype(np.int64).astype(np.float64)
    overlap = np.clip(
        np.minimum(end_day[None, :], spans[:, None]) - np.maximum(start_day, 0.0), 0, None
    )
    return np.asarray(overlap / (end_day - start_day)[None, :])


def futures(
    customers: int,
    months: int,
    seed: int,
    as_of: date,
    paths: int = 20,
    start: date = date(2024, 1, 1),
) -> list[pd.DataFrame]:
    """``paths`` true hazard tables of the world ``(customers, months, seed, start)``, identical
    up to ``as_of`` (a first of month inside the simulated period) and with fresh draws from
    it on (``generate_world(fork=...)``): the futures :func:`point_in_time_survival` averages."""
    month = (as_of.year - start.year) * 12 + as_of.month - start.month
    if as_of.day != 1 or not 0 <= month < months:
        raise ChurnError(
            f"futures: as_of {as_of} must be a first of month inside the simulated period "
            f"({start} + {months} months)"
        )
    return [
        generate_world(customers, months, seed, start=start, fork=(month, path)).truth_hazard
        for path in range(paths)
    ]


def point_in_time_survival(
    futures: Sequence[pd.DataFrame],
    as_of: date,
    days: Sequence[float] | npt.NDArray[np.float64],
    customer_ids: Sequence[str],
) -> npt.NDArray[np.float64]:
    """The fair oracle: ``E[S(as_of + d) | the world up to as_of]`` (customers x days), the
    mean of :func:`oracle_survival` over :func:`futures` forked at ``as_of``.

    :func:`oracle_survival` on the world itself multiplies the hazards that were drawn, so it
    also knows the future: each month's noise, a year of latent health, declines, tickets and
    champions. No forecaster can. This one knows everything up to ``as_of`` and nothing after.
    """
    if not futures:
        raise ChurnError("point_in_time_survival needs at least one future (futures(...))")
    curves = [oracle_survival(truth, as_of, days, customer_ids) for truth in futures]
    return np.asarray(np.mean(curves, axis=0))


def survival_table(truth_hazard: pd.DataFrame) -> pd.DataFrame:
    """Each customer's true survival curve: S at the start of every simulated month.

    ``survival`` = the chance of still being a customer at ``month``'s start, counted from the
    first month at risk (1 there); S between two as-of dates is their ratio, and within a month
    the hazard is spread evenly over its days (see :func:`oracle_survival`).
    """
    frame = truth_hazard[["customer_id", "month", "hazard"]].sort_values(
        ["customer_id", "month"], kind="stable"
    )
    log_keep = np.log1p(-frame["hazard"].to_numpy(np.float64))
    cumulative = pd.Series(log_keep).groupby(frame["customer_id"].to_numpy()).cumsum().to_numpy()
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "month": frame["month"].to_numpy(),
            "survival": np.exp(cumulative - log_keep),
            "hazard": frame["hazard"].to_numpy(),
        }
    )


def oracle_scores(
    truth_hazard: pd.DataFrame, as_of: date, horizon_days: int, customer_ids: Sequence[str]
) -> pd.Series:
    """True probability of churning in ``[as_of, as_of + horizon_days)``: the oracle's score,
    ``1 -`` :func:`oracle_survival` at the horizon (for an ``as_of`` on the 1st and 90 days
    about three whole months)."""
    survival = oracle_survival(truth_hazard, as_of, [float(horizon_days)], customer_ids)[:, 0]
    return pd.Series(
        1.0 - survival,
        index=pd.Index(customer_ids, name="customer_id"),
        name="oracle_score",
    )

"""A synthetic B2B SaaS company whose churn follows a documented latent-health process.

Why it exists: a model can only be judged against the truth, and real exports never carry it. Each
customer has a latent ``health`` that evolves month to month (AR(1) with shocks) together with a few
persistent driver states (late payer, champion departed, unresolved high-priority ticket, narrow
core-feature adoption, recent downgrade). The states of month ``t`` drive what is observable in
month ``t`` (events, tickets, invoices, NPS, marketing, subscriptions) and the churn hazard of month
``t + 1``, so every driver shows up in the data before the churn it causes. The true hazards and
driver states are written to ``truth/`` next to (never inside) the contract tables, so the oracle
ROC-AUC is computable (see :func:`oracle_scores`). ``docs/generator.md`` documents the process.

Conventions: timestamps are UTC (``datetime64[ns, UTC]``); ``signup_date``, ``start_date`` and
``end_date`` are calendar days (Python ``date`` objects, Parquet ``date32``); a subscription's
``end_date`` is the first day without service, and a churned customer has no events on or after it.
Everything is vectorised over customers and rows; the only Python loop runs over months.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
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
CORE_THRESHOLDS = np.array([-1.9, -1.2, -0.6, 0.0, 0.6])  # adoption needs health + fit above it
PERIPHERAL_FEATURES = ("api", "exports", "mobile_app", "templates", "sso_admin", "comments")
LAUNCHED_FEATURES = ("ai_assistant", "workflow_builder")  # no events before their launch day,
LAUNCH_AT = (1 / 3, 2 / 3)  # the 10th of the month a third and two thirds into the period
LAUNCH_UPTAKE = 0.25  # share of peripheral usage that moves to a launched feature
FEATURES = CORE_FEATURES + PERIPHERAL_FEATURES + LAUNCHED_FEATURES
EVENT_TYPES = ("login", "feature_use")
TICKET_PRIORITY_SHARE = np.array([0.35, 0.38, 0.19, 0.08])  # same order as TICKET_PRIORITIES
TICKET_CATEGORIES = ("bug", "how_to", "billing", "integration", "performance", "account")
TICKET_CATEGORY_SHARE = np.array([0.30, 0.25, 0.10, 0.15, 0.12, 0.08])
TICKET_MEDIAN_HOURS = np.array([72.0, 36.0, 16.0, 5.0])  # by priority
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


@dataclass(frozen=True)
class ChurnProcess:
    """The true churn process: driver effects in log-odds of the monthly avoidable hazard.

    This is the one definition of the documented effect sizes; ``truth/drivers.json`` and
    ``docs/generator.md`` are written from it. Driver states are those of the previous month, so
    they are observable before the month whose hazard they raise.
    """

    baseline: float = -5.4  # logit at health 0, no driver, plan "growth", past onboarding
    health: float = -0.9  # per unit of latent health (sd across customer-months is about 1)
    late_payer: float = 1.0
    champion_left: float = 0.7
    champion_left_x_unhealthy: float = 0.7  # extra when the champion left an unhealthy account
    unresolved_high_ticket: float = 0.9
    low_breadth: float = 0.6  # at most 2 of the 5 core features in use
    recent_downgrade: float = 0.6  # a downgrade in the last 3 months
    early_tenure: float = 0.4  # first 6 months after signup
    plan: tuple[float, float, float, float] = (0.3, 0.0, -0.2, -0.5)  # PLANS order
    noise_sd: float = 0.3  # per customer-month logit noise: the unpredictable part
    unavoidable: float = 0.002  # monthly hazard of churn unrelated to health
    # latent dynamics
    health_persistence: float = 0.85  # AR(1) coefficient of health around its customer mean
    health_innovation_sd: float = 0.35
    health_mean_sd: float = 0.5  # spread of customers' long-run health
    shock_rate: float = 0.02  # monthly chance of a setback (reorg, failed rollout)
    shock_size: float = -1.0
    late_enter_logit: float = -3.8  # late payer: logit(enter) = this - 0.9 * health
    late_stay: float = 0.8
    champion_leave_logit: float = -4.5  # champion leaves: logit = this - 0.3 * health
    champion_leave_health_hit: float = -0.3

    def avoidable_logit(self, x: dict[str, Array], plan: Array) -> Array:
        """Log-odds of avoidable churn before noise, from driver states ``x`` (truth columns)."""
        return (
            self.baseline
            + self.health * x["health"]
            + self.late_payer * x["late_payer"]
            + self.champion_left * x["champion_left"]
            + self.champion_left_x_unhealthy * (x["champion_left"] & (x["health"] < 0))
            + self.unresolved_high_ticket * x["unresolved_high_ticket"]
            + self.low_breadth * x["low_breadth"]
            + self.recent_downgrade * x["recent_downgrade"]
            + self.early_tenure * x["early_tenure"]
            + np.asarray(self.plan)[plan]
        )


DEFAULT_PROCESS = ChurnProcess()

# truth column -> (observable signal, lead): what a model can see of each true driver
DRIVER_SIGNALS: dict[str, tuple[str, str]] = {
    "health": (
        "logins and feature actions per month, active users, NPS score, ticket CSAT, "
        "marketing opens/attendance, downgrades (all rise with health)",
        "AR(1) with persistence 0.85: visible in the 1-3 months before churn",
    ),
    "late_payer": (
        "invoices paid after due_at or still unpaid (due 15 days after issue)",
        "state persists (stay 0.8/month); the month's invoice falls due mid-month",
    ),
    "champion_left": (
        "the account's main user (most events) stops producing events; activity drops",
        "absorbing: once gone, stays gone",
    ),
    "champion_left_x_unhealthy": (
        "champion departure in an account whose activity/NPS was already low",
        "interaction of the two",
    ),
    "unresolved_high_ticket": (
        "a high/urgent ticket opened in the last 2 months still unresolved after 30+ days",
        "stuck tickets stay open 35-120 days",
    ),
    "low_breadth": (
        "distinct core features used (dashboards, reports, automations, integrations, alerts)",
        "follows health; narrow during onboarding",
    ),
    "recent_downgrade": (
        "a subscription row with lower MRR than its predecessor in the last 3 months",
        "3 months",
    ),
    "early_tenure": ("signup_date within 6 months", "known from signup"),
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


def generate_world(
    customers: int,
    months: int,
    seed: int,
    start: date = date(2024, 1, 1),
    progress: ProgressCallback | None = None,
    process: ChurnProcess = DEFAULT_PROCESS,
) -> World:
    """Simulate ``customers`` accounts over ``months`` months from ``start`` (a first of month).

    Half the customers are already active at ``start`` (signed up in the prior 36 months, so
    features have history from month 1); the rest sign up uniformly over the period. The same
    ``seed`` gives identical tables. ``progress(done, total)`` is called after each month.
    """
    if customers < 1 or months < 1:
        raise ChurnError(
            f"generate_world needs customers >= 1 and months >= 1, got {customers=}, {months=}"
        )
    if start.day != 1:
        raise ChurnError(f"start must be the first day of a month, got {start.isoformat()}")
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
    champion_share = rng.uniform(0.3, 0.5, n)  # share of activity by the main user
    survey_wave = rng.integers(0, 3, n)  # NPS surveyed every 3 months, staggered
    names = (
        pd.Series(NAME_HEADS[rng.integers(0, len(NAME_HEADS), n)])
        + " "
        + NAME_TAILS[rng.integers(0, len(NAME_TAILS), n)]
        + " "
        + NAME_LEGAL[rng.integers(0, len(NAME_LEGAL), n)]
    ).to_numpy(dtype=object)

    # --- initial latent state: stationary for the base, near the customer's mean for new ones ---
    stationary_sd = process.health_innovation_sd / np.sqrt(1 - process.health_persistence**2)
    health = health_mean + np.where(
        in_base, rng.normal(0.0, stationary_sd, n), rng.normal(0.0, 0.5, n)
    )
    enter = _sigmoid(process.late_enter_logit - 0.9 * health)
    late = in_base & (rng.random(n) < enter / (enter + 1 - process.late_stay))  # stationary
    tenure0 = -signup_month  # months before start, for the base
    p_gone = 1 - (1 - _sigmoid(process.champion_leave_logit - 0.3 * health)) ** np.maximum(
        tenure0, 0
    )
    champion_day = np.where(in_base & (rng.random(n) < p_gone), month_start[0] - 1, NEVER)
    stuck_prev = np.zeros(n, dtype=bool)  # stuck high ticket opened last month
    stuck_now = np.zeros(n, dtype=bool)
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
    )
    sub_start[r] = renewal_day[r]

    def breadth_of(h: Array, tenure: Array) -> Array:
        """Core features in use: health plus per-feature fit above the feature's threshold."""
        onboarding = -1.5 * np.exp(-np.maximum(tenure, 0) / 2.0)
        return (h + onboarding)[:, None] + fit > CORE_THRESHOLDS[None, :]  # (n, features) adoption

    adopted = breadth_of(health, tenure0)

    events, tickets, invoices, nps, marketing, exits, truth = (_Chunks() for _ in range(7))
    ticket_count = 0
    launch_month = [max(1, round(months * share)) for share in LAUNCH_AT]
    launch_day = np.array(
        [month_start[m] + 9 if m < months else NEVER for m in launch_month], dtype=np.int64
    )
    price = PRICE_PER_SEAT * np.where(annual, 0.85, 1.0)[:, None]  # (n, plans) annual discount

    for t in range(months):
        ms, me = int(month_start[t]), int(month_start[t + 1])
        dim = me - ms
        days = np.arange(ms, me)
        cum_weights = np.concatenate([[0.0], np.cumsum(_weekday_weights(days))])
        tenure = t - signup_month  # whole months since the signup month
        alive = churned_month < 0
        present = alive & (signup_day < me)
        at_risk = alive & (signup_day < ms)

        # --- churn this month from last month's states ---------------------------------------
        # Hazards are also drawn for customers who already left (``at_risk`` False): the oracle
        # needs every month of its window, not just the months a customer happened to survive.
        r = np.flatnonzero(signup_day < ms)
        risk = at_risk[r]
        x = {
            "health": health[r],
            "late_payer": late[r],
            "champion_left": champion_day[r] < ms,
            "unresolved_high_ticket": (stuck_now | stuck_prev)[r],
            "core_breadth": adopted[r].sum(axis=1),
            "recent_downgrade": last_downgrade[r] >= t - 3,
            "early_tenure": tenure[r] <= 6,
        }
        x["low_breadth"] = x["core_breadth"] <= 2
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
            **x,
        )
        c = r[churns]
        churn_day[c] = ms + rng.integers(0, dim, len(c))
        churned_month[c] = t
        _exit_rows(rng, exits, c, churn_unavoidable[churns], x, churns)

        # --- evolve the latent state for customers already signed up (and the departed) ---------
        e = r
        shock = (rng.random(len(e)) < process.shock_rate) * process.shock_size
        health[e] = (
            health_mean[e]
            + process.health_persistence * (health[e] - health_mean[e])
            + rng.normal(0.0, process.health_innovation_sd, len(e))
            + shock
        )
        p_late = np.where(
            late[e], process.late_stay, _sigmoid(process.late_enter_logit - 0.9 * health[e])
        )
        late[e] = rng.random(len(e)) < p_late
        leaves = (champion_day[e] == NEVER) & (
            rng.random(len(e)) < _sigmoid(process.champion_leave_logit - 0.3 * health[e])
        )
        gone = e[leaves]
        champion_day[gone] = ms + rng.integers(0, dim, len(gone))
        health[gone] += process.champion_leave_health_hit
        adopted = breadth_of(health, tenure)

        # --- what is observable this month, from this month's state --------------------------
        end = np.minimum(churn_day, me)
        first = np.maximum(signup_day, ms)
        o = np.flatnonzero(present & (end > first))
        o_first, o_end = first[o] - ms, end[o] - ms
        ramp = 1 - 0.65 * np.exp(-tenure[o] / 1.5)  # onboarding: usage builds over ~3 months
        season = 0.85 if (t + start.month - 1) % 12 in (7, 11) else 1.0  # August, December
        engagement = np.exp(0.5 * health[o]) * ramp * season * (o_end - o_first) / dim
        _event_rows(
            rng,
            events,
            o,
            o_first,
            o_end,
            ms,
            cum_weights,
            engagement,
            seats=seats[o],
            champion_cutoff=champion_day[o] - ms,
            champion_share=champion_share[o],
            adopted=adopted[o],
            health=health[o],
            utc_offset=utc_offset[o],
            launch_day=launch_day - ms,
        )
        stuck_prev, stuck_now = stuck_now, np.zeros(n, dtype=bool)
        ticket_count = _ticket_rows(
            rng,
            tickets,
            o,
            o_first,
            o_end,
            ms,
            data_end,
            cum_weights,
            seats=seats[o],
            health=health[o],
            late=late[o],
            utc_offset=utc_offset[o],
            stuck=stuck_now,
            numbered_from=ticket_count,
        )
        _invoice_rows(
            rng,
            invoices,
            o,
            ms,
            dim,
            data_end,
            mrr=np.round(seats[o] * price[o, plan[o]], 2),
            first=o_first,
            is_new=signup_day[o] >= ms,
            late=late[o],
            utc_offset=utc_offset[o],
        )
        surveyed = o[((t - survey_wave[o]) % 3 == 0) & (rng.random(len(o)) < 0.3)]
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
        change = down | up | renew
        kc = k[change]
        change_day = np.where(
            renew[change],
            ms + np.minimum(signup_dom[kc], dim - 1),
            ms + 1 + rng.integers(0, dim - 1, len(kc)),
        )
        subs.add(customer=kc, start=sub_start[kc], end=change_day, plan=plan[kc], seats=seats[kc])
        sub_start[kc] = change_day
        kd, ku = k[down], k[up]
        plan_down = (rng.random(len(kd)) < 0.5) & (plan[kd] > 0)
        plan[kd] -= plan_down
        seats[kd] = np.where(plan_down, seats[kd], np.maximum(2, (seats[kd] * 0.75).astype(int)))
        plan_up = (rng.random(len(ku)) < 0.5) & (plan[ku] < len(PLANS) - 1)
        plan[ku] += plan_up
        seats[ku] = np.where(plan_up, seats[ku], np.ceil(seats[ku] * 1.25).astype(int))
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
    truth_hazard = _truth_table(truth, customer_ids)
    drivers = _drivers_document(process, truth_hazard, customers, months, seed, start, launch_day)
    return World(tables, truth_hazard, drivers, start, months, seed)


def _event_rows(
    rng: np.random.Generator,
    events: _Chunks,
    o: Array,
    o_first: Array,
    o_end: Array,
    ms: int,
    cum_weights: Array,
    engagement: Array,
    *,
    seats: Array,
    champion_cutoff: Array,
    champion_share: Array,
    adopted: Array,
    health: Array,
    utc_offset: Array,
    launch_day: Array,
) -> None:
    """Logins (a row per user-day) and feature use (a row per user-day-feature, value = actions).

    The champion is user 0; after its departure day its rows are dropped, so both the user and its
    share of the activity vanish from the data.
    """
    scale = np.sqrt(seats) * engagement
    for event_type, rate in ((0, 2.4), (1, 3.0)):
        count = rng.poisson(rate * scale)
        row = np.repeat(np.arange(len(o)), count)
        m = len(row)
        day = _draw_days(rng, cum_weights, o_first[row], o_end[row])
        other = 1 + (rng.random(m) * (seats[row] - 1)).astype(np.int64)
        user = np.where(rng.random(m) < champion_share[row], 0, other)
        keep = (user != 0) | (day < champion_cutoff[row])
        row, day, user = row[keep], day[keep], user[keep]
        m = len(row)
        ns = (ms + day) * NS_PER_DAY + _time_of_day_ns(rng, utc_offset[row])
        if event_type == 0:
            feature = np.full(m, -1)
            value = 1 + rng.poisson(0.6, m)
        else:
            feature = _pick_feature(rng, adopted[row], day, launch_day)
            value = 1 + rng.poisson(3.0 * np.exp(0.25 * health[row]))
        order = np.argsort(ns, kind="stable")
        events.add(
            customer=o[row][order],
            user=user[order],
            ns=ns[order],
            event_type=np.full(m, event_type, dtype=np.int8),
            feature=feature[order].astype(np.int8),
            value=value[order].astype(np.int32),
        )


def _pick_feature(rng: np.random.Generator, adopted: Array, day: Array, launch_day: Array) -> Array:
    """70 % of uses go to an adopted core feature, the rest to peripheral or launched features."""
    m = len(day)
    breadth = adopted.sum(axis=1)
    ranked = np.argsort(~adopted, axis=1, kind="stable")  # adopted core features first
    pick = (rng.random(m) * np.maximum(breadth, 1)).astype(np.int64)
    core = ranked[np.arange(m), pick]
    peripheral = len(CORE_FEATURES) + rng.integers(0, len(PERIPHERAL_FEATURES), m)
    u = rng.random(m)
    for i, launched in enumerate(launch_day):
        moved = (day >= launched) & (u >= i * LAUNCH_UPTAKE) & (u < (i + 1) * LAUNCH_UPTAKE)
        peripheral = np.where(moved, len(CORE_FEATURES) + len(PERIPHERAL_FEATURES) + i, peripheral)
    use_core = (rng.random(m) < 0.7) & (breadth > 0)
    return np.where(use_core, core, peripheral)


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
    seats: Array,
    health: Array,
    late: Array,
    utc_offset: Array,
    stuck: Array,
    numbered_from: int,
) -> int:
    """Tickets rise as health falls; some high/urgent ones get stuck for 35-120 days.

    Marks ``stuck`` (full-size) for customers with a stuck high/urgent ticket this month and returns
    the running ticket count (ids are sequential over the whole period).
    """
    exposure = (o_end - o_first) / (len(cum_weights) - 1)
    count = rng.poisson(0.35 * seats**0.3 * np.exp(-0.4 * health) * exposure)
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
    stuck[o[row[high & is_stuck]]] = True
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
    utc_offset: Array,
) -> None:
    """Monthly invoices due in 15 days; late payers pay 3-45 days late or (25 %) never.

    A new customer's first invoice is issued on its signup day and prorated.
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
    """Newsletters (1-2 a month), in-app messages and webinar invites; healthier accounts engage.

    Responses (open, click, attend) follow their send within two days and never after churn.
    """
    exposure = (o_end - o_first) / (len(cum_weights) - 1)
    # channel, sends per month, logit of first response, first response, chance of a click
    touches = (
        ("email", 1.5, -0.4, 1, 0.25),
        ("in_app", 0.5, -1.0, 2, 0.0),
        ("webinar", 0.35, -1.8, 3, 0.0),
    )
    for channel, rate, logit, response, p_click in touches:
        count = rng.poisson(rate * exposure)
        row = np.repeat(np.arange(len(o)), count)
        m = len(row)
        day = _draw_days(rng, cum_weights, o_first[row], o_end[row])
        sent = (ms + day) * NS_PER_DAY + _time_of_day_ns(rng, utc_offset[row])
        responds = rng.random(m) < _sigmoid(logit + 0.7 * health[row])
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
            0.3 + 0.6 * x["low_breadth"][churns] + 0.5 * np.maximum(0, -x["health"][churns]),
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
) -> pd.DataFrame:
    """``plan`` here is the plan at signup; the current plan lives on ``subscriptions``."""
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
        }
    )


def _subscriptions_table(subs: _Chunks, customer_ids: Array, price: Array) -> pd.DataFrame:
    customer = subs.get("customer", np.int64)
    start = subs.get("start", np.int64)
    plan = subs.get("plan", np.int64)
    seats = subs.get("seats", np.int64)
    order = np.lexsort((start, customer))
    customer, start, plan, seats = customer[order], start[order], plan[order], seats[order]
    end = subs.get("end", np.int64)[order]
    return pd.DataFrame(
        {
            "subscription_id": _ids("S", len(order), 7),
            "customer_id": customer_ids[customer],
            "start_date": _as_dates(start),
            "end_date": _as_dates(end),
            "mrr": np.round(seats * price[customer, plan], 2),
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
    "late_payer",
    "champion_left",
    "unresolved_high_ticket",
    "core_breadth",
    "low_breadth",
    "recent_downgrade",
    "early_tenure",
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
    coefficients = {
        name: getattr(process, name)
        for name in (
            "health",
            "late_payer",
            "champion_left",
            "champion_left_x_unhealthy",
            "unresolved_high_ticket",
            "low_breadth",
            "recent_downgrade",
            "early_tenure",
        )
    }
    rate = float(truth["churned"].mean()) if len(truth) else 0.0

    def rate_ratio(flag: pd.Series) -> float | None:
        on, off = truth.loc[flag, "churned"].mean(), truth.loc[~flag, "churned"].mean()
        return round(float(on / off), 2) if flag.any() and (~flag).any() and off > 0 else None

    flags = {
        "late_payer": truth["late_payer"].astype(bool),
        "champion_left": truth["champion_left"].astype(bool),
        "unresolved_high_ticket": truth["unresolved_high_ticket"].astype(bool),
        "low_breadth": truth["low_breadth"].astype(bool),
        "recent_downgrade": truth["recent_downgrade"].astype(bool),
        "early_tenure": truth["early_tenure"].astype(bool),
        "health_below_minus_1": truth["health"] < -1,
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
            "avoidable = sigmoid(baseline + sum(coefficient * driver state of the previous month)"
            " + plan effect + Normal(0, noise_sd));"
            " hazard = 1 - (1 - avoidable) * (1 - unavoidable)"
        ),
        "baseline_logit": process.baseline,
        "noise_sd": process.noise_sd,
        "unavoidable_monthly_hazard": process.unavoidable,
        "plan_effect": dict(zip(PLANS, process.plan, strict=True)),
        "drivers": {
            name: {
                "coefficient": coefficient,
                "odds_ratio": round(float(np.exp(coefficient)), 3),
                "unit": "per unit of health" if name == "health" else "when true",
                "observable": DRIVER_SIGNALS[name][0],
                "lead": DRIVER_SIGNALS[name][1],
            }
            for name, coefficient in coefficients.items()
        },
        "process": asdict(process),
        "measured": {
            "monthly_churn_rate": round(rate, 5),
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

    The whole folder is written atomically: a failure leaves the previous ``out`` (or nothing).
    Files are byte-identical for the same seed (no timestamps or random names inside).
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        (tmp / "truth").mkdir(parents=True)
        for name, frame in world.tables.present().items():
            columns = [c for group in TABLE_COLUMNS[name] for c in group]
            frame[columns].to_parquet(tmp / f"{name}.parquet", index=False, compression="zstd")
        world.truth_hazard.to_parquet(
            tmp / "truth" / "hazard.parquet", index=False, compression="zstd"
        )
        (tmp / "truth" / "drivers.json").write_text(
            json.dumps(world.drivers, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return out


def oracle_scores(
    truth_hazard: pd.DataFrame, as_of: date, horizon_days: int, customer_ids: Sequence[str]
) -> pd.Series:
    """True probability of churning in ``[as_of, as_of + horizon_days)``: the oracle's score.

    ``1 - prod(1 - hazard_m ** overlap_m)`` over the months the window covers, where a month's
    hazard is spread evenly over its days and ``overlap_m`` is the covered fraction of month ``m``
    (for an ``as_of`` on the 1st and 90 days this is about three whole months). Months where a
    customer is not at risk contribute nothing; unknown customers score 0.
    """
    months = pd.to_datetime(truth_hazard["month"]).to_numpy(dtype="datetime64[D]")
    window_start = np.datetime64(as_of, "D")
    window_end = window_start + np.timedelta64(horizon_days, "D")
    if len(months):
        last_end = (months.max().astype("datetime64[M]") + 1).astype("datetime64[D]")
        if window_end > last_end:
            raise ChurnError(
                f"oracle window [{as_of}, {as_of + timedelta(days=horizon_days)}) runs past the "
                f"simulated period ending {last_end}; pick an earlier as_of or a shorter horizon"
            )
    month_end = (months.astype("datetime64[M]") + 1).astype("datetime64[D]")
    overlap = np.minimum(month_end, window_end) - np.maximum(months, window_start)
    fraction = np.maximum(overlap.astype(np.int64), 0) / (month_end - months).astype(np.int64)
    log_survival = fraction * np.log1p(-truth_hazard["hazard"].to_numpy(dtype=np.float64))
    per_customer = pd.Series(log_survival).groupby(truth_hazard["customer_id"].to_numpy()).sum()
    log_window = per_customer.reindex(list(customer_ids), fill_value=0.0).to_numpy(np.float64)
    return pd.Series(
        1.0 - np.exp(log_window),
        index=pd.Index(customer_ids, name="customer_id"),
        name="oracle_score",
    )

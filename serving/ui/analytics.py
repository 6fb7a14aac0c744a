"""Retention analytics for leaders: how much churns, where, why, who is worth saving, and
whether the model can be trusted.

Every number comes from a library function, never a second definition: monthly churn, MRR
churn and NRR from ``features.metrics.monthly_metrics``, cohorts from ``cohort_retention``, the
headline figures from ``retention_summary``; churn by segment pools ``customer_months`` (the base
table of those metrics) over the final months; churn by lifecycle stage and the churned vs
retained profile read the labeled set (the label definition of ``features.labels``, the
point-in-time features of the catalog); calibration uses ``training.evaluation``. Built once per
data change (a few seconds for 50 000 customers) and cached by :class:`AnalyticsCache`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churn_settings import Settings
from features.catalog import feature_info
from features.contract import RawTables, clean, validate
from features.engine import observed_until
from features.errors import ChurnError
from features.metrics import cohort_retention, customer_months, monthly_metrics, retention_summary
from features.pipeline import data_start
from serving.scoring import score_frame
from serving.state import file_stamp
from serving.ui import charts
from serving.ui.context import UiContext, contract_file, read_contract_table
from serving.ui.portfolio import HIGH_VALUE_INACTIVE, SEGMENTS, VALUE_SEGMENTS
from training.evaluation import expected_calibration_error, reliability_curve

log = logging.getLogger("churn.ui")

COHORTS_SHOWN = 18
CLOSED_WINDOW_COMPLETE = 0.95  # an as-of date whose labels are this complete is a closed window
PROFILE_FEATURES = (
    "events_30d", "active_days_30d", "logins_change_30d", "core_breadth_30d",
    "seat_utilization_30d", "tickets_30d", "high_priority_90d", "csat_90d",
    "invoices_late_180d", "nps_last", "mrr", "tenure_days",
)  # fmt: skip
STAGES = ("onboarding", "adoption", "renewal", "mature")


@dataclass
class Chart:
    key: str
    title: str
    figure: dict[str, Any]
    note: str = ""


@dataclass
class Analytics:
    kpis: list[tuple[str, str, str]] = field(default_factory=list)  # label, value, note
    charts: dict[str, Chart] = field(default_factory=dict)
    profile: list[dict[str, Any]] = field(default_factory=list)
    exit_summary: dict[str, Any] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)
    save_first: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    period: str = ""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    currency: str = "USD"  # of every amount shown (Settings.currency_code)

    def add(self, key: str, title: str, figure: dict[str, Any], note: str = "") -> None:
        self.charts[key] = Chart(key, title, figure, note)


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value * 100:.{digits}f} %"


def money(value: float | None, currency: str) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:,.0f} {currency}"


def load_tables(settings: Settings, now: pd.Timestamp) -> tuple[RawTables, list[str]]:
    """Customers, subscriptions and exit reasons, validated and cleaned like the pipeline's."""
    frames = {
        name: read_contract_table(settings.data_dir, name)
        for name in ("customers", "subscriptions", "exit_reasons")
    }
    customers, subscriptions = frames["customers"], frames["subscriptions"]
    if customers is None or subscriptions is None:
        raise ChurnError(
            f"No customers or subscriptions table in {settings.data_dir}: set CHURN_DATA_DIR to "
            "the export the model was trained on."
        )
    tables = RawTables(customers, subscriptions, exit_reasons=frames["exit_reasons"])
    report = validate(tables, now)
    if not report.ok:
        raise ChurnError(
            f"{settings.data_dir} breaks the data contract; run `churn validate` "
            f"for the list.\n{report.format_errors()[:500]}"
        )
    return clean(tables, report), []


def export_period(settings: Settings, tables: RawTables) -> tuple[date, date]:
    """``[first day of product data, day after the last record)``: the period `churn metrics`
    uses. The event log is read for its first and last timestamp only."""
    start, end = data_start(tables), observed_until(tables)
    events = contract_file(settings.data_dir, "events")
    if events is not None and events.suffix == ".parquet":
        stamps = pq.read_table(events, columns=["timestamp"]).column("timestamp")
        if len(stamps):
            lo, hi = pc.min_max(stamps).values()
            first = pd.Timestamp(str(lo.as_py()))
            last = pd.Timestamp(str(hi.as_py()))
            start, end = first.date(), max(end, last.date())
    return start, end + timedelta(days=1)


def _monthly(analytics: Analytics, tables: RawTables, start: date, end: date) -> pd.DataFrame:
    monthly = monthly_metrics(tables, start, end)
    months = [m.strftime("%Y-%m") for m in monthly.index]
    final = monthly["final"].to_numpy(dtype=bool)
    first_open = int(np.argmin(final)) if not final.all() else None
    analytics.add(
        "churn_by_month",
        "Customer and MRR churn by month",
        charts.line(
            months,
            {
                "Customer churn": monthly["churn_rate"].tolist(),
                "Gross MRR churn": monthly["gross_mrr_churn"].tolist(),
            },
            percent=True,
            dashed_from=first_open,
        ),
        "Lost customers / customers at the month's start; churned + contraction MRR / start MRR."
        " Hollow points: not final yet (a late renewal may still come).",
    )
    analytics.add(
        "nrr",
        "Net revenue retention by month",
        charts.line(
            months,
            {"NRR": monthly["net_revenue_retention"].tolist()},
            percent=True,
            dashed_from=first_open,
        ),
        "(start MRR + expansion - contraction - churned) / start MRR; new customers excluded.",
    )
    return monthly


def _kpis(analytics: Analytics, tables: RawTables, start: date, end: date) -> None:
    s = retention_summary(tables, start, end)
    analytics.kpis += [
        ("Customers", f"{s['customers']:,}", f"end of {s['month'][:7]}"),
        ("MRR", money(s["mrr"], analytics.currency), f"end of {s['month'][:7]}"),
        ("Customer churn", pct(s["churn_rate"]), f"in {s['month'][:7]}"),
        ("Gross MRR churn", pct(s["gross_mrr_churn"]), f"in {s['month'][:7]}"),
        ("Net revenue retention", pct(s["net_revenue_retention"]), f"in {s['month'][:7]}"),
        ("Lifetime value", money(s["ltv"], analytics.currency), "ARPA x margin / churn"),
    ]


def _cohorts(analytics: Analytics, tables: RawTables, start: date, end: date) -> None:
    matrix = cohort_retention(tables, start, end).tail(COHORTS_SHOWN)
    matrix = matrix.loc[:, matrix.notna().any(axis=0)].iloc[:, : COHORTS_SHOWN + 1]
    z = [[None if pd.isna(v) else float(v) for v in row] for row in matrix.to_numpy()]
    analytics.add(
        "cohorts",
        "Cohort retention",
        charts.heatmap(
            [int(c) for c in matrix.columns],
            [c.strftime("%Y-%m") for c in matrix.index],
            z,
            height=max(260, 22 * len(matrix) + 90),
        ),
        "Share of each sign-up cohort still a customer k months later.",
    )


def _by_segment(
    analytics: Analytics, tables: RawTables, start: date, end: date, monthly: pd.DataFrame
) -> None:
    months = customer_months(tables, start, end)
    final = monthly.index[monthly["final"].to_numpy(dtype=bool)]
    months = months[months["month"].isin(final)]
    attributes = tables.customers.set_index(tables.customers["customer_id"].astype(str))
    months = months.assign(customer_id=months["customer_id"].astype(str))
    for column, label in SEGMENTS.items():
        if column not in attributes:
            continue
        values = attributes[column].astype("string").reindex(months["customer_id"]).to_numpy()
        sums = months.assign(segment=values).groupby("segment")[["lost", "active_start"]].sum()
        sums = sums[sums["active_start"] > 0]
        rate = (sums["lost"] / sums["active_start"]).sort_values(ascending=False)
        lost, exposed = sums["lost"].to_dict(), sums["active_start"].to_dict()
        hover = [
            f"{seg}: {r:.2%} a month ({int(lost[seg]):,} lost of "
            f"{int(exposed[seg]):,} customer-months)"
            for seg, r in rate.items()
        ]
        analytics.add(
            f"churn_by_{column}",
            f"Monthly churn by {label.lower()}",
            charts.bars(
                [str(x) for x in rate.index],
                {"churn": rate.tolist()},
                height=220,
                percent=True,
                hover=hover,
            ),
        )


def _labeled(settings: Settings) -> pd.DataFrame | None:
    path = settings.features_path
    if not path.is_file():
        return None
    names = set(pq.read_schema(path).names)
    wanted = [
        "customer_id", "as_of", "churned", "label_complete", "lifecycle_stage",
        "acquisition_channel", *PROFILE_FEATURES,
    ]  # fmt: skip
    frame = pd.read_parquet(path, columns=[c for c in dict.fromkeys(wanted) if c in names])
    if "churned" not in frame or "label_complete" not in frame:
        return None
    return frame


def _profile(analytics: Analytics, labeled: pd.DataFrame, customers: pd.DataFrame) -> None:
    complete = labeled[labeled["label_complete"].astype(bool)]
    churned = complete["churned"].astype(bool)
    if "lifecycle_stage" in complete:
        by_stage = complete.groupby(complete["lifecycle_stage"].astype("string"))["churned"]
        rate = by_stage.mean().reindex([s for s in STAGES if s in by_stage.groups]).dropna()
        analytics.add(
            "churn_by_lifecycle",
            "Churn within the horizon by lifecycle stage",
            charts.bars(list(rate.index), {"churn": rate.tolist()}, height=220, percent=True),
            "Share of customers in each stage at an as-of date who churned within the horizon.",
        )
    for name in PROFILE_FEATURES:
        if name not in complete:
            continue
        values = pd.to_numeric(complete[name], errors="coerce")
        a, b = values[churned].mean(), values[~churned].mean()
        analytics.profile.append(
            {
                "feature": name,
                "description": feature_info(name).description,
                "churned": a,
                "retained": b,
                "ratio": a / b if b and math.isfinite(b) and b != 0 else math.nan,
            }
        )
    if "acquisition_channel" in complete:
        channel = complete["acquisition_channel"].astype("string")
        mix = pd.crosstab(channel, churned.map({True: "Churned", False: "Retained"}),
                          normalize="columns")  # fmt: skip
        mix = mix.sort_values(mix.columns[0], ascending=False)
        analytics.add(
            "channel_mix",
            "Acquisition channel: churned vs retained",
            charts.bars(
                list(mix.index),
                {c: mix[c].tolist() for c in mix.columns},
                height=240,
                percent=True,
                y_title="share of customers",
            ),
            "A channel over-represented among churners brings customers who do not stay.",
        )
    if "csm_owner" in customers:
        owner = customers.set_index(customers["customer_id"].astype(str))["csm_owner"]
        owners = owner.astype("string").reindex(complete["customer_id"].astype(str)).to_numpy()
        rate = complete.assign(owner=owners).groupby("owner")["churned"].mean()
        rate = rate.sort_values(ascending=False)
        analytics.add(
            "churn_by_csm",
            "Churn within the horizon by CSM owner",
            charts.bars(
                [str(x) for x in rate.index], {"churn": rate.tolist()}, height=240, percent=True
            ),
        )


def _exit_reasons(analytics: Analytics, exits: pd.DataFrame | None) -> None:
    if exits is None or exits.empty:
        analytics.problems.append("No exit_reasons table in the export: exit reasons not shown.")
        return
    avoidable = exits["avoidable"].astype("boolean").fillna(False).astype(bool)
    table = pd.crosstab(exits["category"].astype("string"), avoidable)
    table = table.reindex(columns=[True, False], fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
    analytics.add(
        "exit_reasons",
        "Exit reasons",
        charts.bars(
            list(table.index),
            {"Avoidable": table[True].tolist(), "Unavoidable": table[False].tolist()},
            height=240,
            stacked=True,
            y_title="churned customers",
        ),
    )
    main = (
        exits["main_reason"].astype("string").value_counts().head(5)
        if "main_reason" in exits
        else pd.Series(dtype=int)
    )
    analytics.exit_summary = {
        "count": len(exits),
        "avoidable_share": float(avoidable.mean()),
        "top_reasons": [(str(k), int(v)) for k, v in main.items()],
    }
    analytics.kpis.append(("Avoidable churn", pct(float(avoidable.mean()), 0), "of exit reasons"))


def _value_segments(analytics: Analytics, ctx: UiContext) -> None:
    summary = ctx.portfolio.segment_summary()
    customers, mrr = summary["customers"], summary["mrr"]
    share_customers = (customers / max(customers.sum(), 1)).tolist()
    share_mrr = (mrr / mrr.sum() if mrr.sum() else mrr * 0).tolist()
    analytics.add(
        "value_segments",
        "Value segments: share of customers and of MRR",
        charts.bars(
            list(VALUE_SEGMENTS),
            {"Customers": share_customers, "MRR": share_mrr},
            height=240,
            percent=True,
        ),
        "RFM: top 20 % by MRR are high value; a mean recency + frequency score of 2 or less of 5 "
        "is inactive.",
    )
    analytics.segments = [
        {
            "segment": seg,
            "customers": int(customers[seg]),
            "mrr": float(mrr[seg]),
            "revenue_at_risk": float(summary["revenue_at_risk"].to_dict()[seg]),
        }
        for seg in VALUE_SEGMENTS
    ]
    analytics.save_first = ctx.portfolio.top(HIGH_VALUE_INACTIVE, 10)
    analytics.kpis.append(
        (
            "High value, inactive",
            f"{int(customers[HIGH_VALUE_INACTIVE]):,}",
            f"{money(float(mrr[HIGH_VALUE_INACTIVE]), analytics.currency)} MRR to save first",
        )
    )


def _model_health(
    analytics: Analytics, ctx: UiContext, settings: Settings, labeled: pd.DataFrame | None
) -> None:
    scored = ctx.state.scored
    tiers = scored.tier.astype(str)
    analytics.add(
        "score_distribution",
        "Health score distribution (served customers)",
        charts.histogram_by_tier(
            {t: scored.health_score[tiers == t].tolist() for t in charts.TIER_COLOURS}
        ),
    )
    if labeled is None:
        analytics.problems.append("No labeled set: calibration of the last closed window skipped.")
        return
    complete_share = labeled.groupby("as_of")["label_complete"].mean()
    closed = complete_share[complete_share >= CLOSED_WINDOW_COMPLETE]
    if closed.empty:
        analytics.problems.append("No closed window in the labeled set yet: no calibration.")
        return
    as_of = closed.index.max()
    model = ctx.state.model
    path = settings.features_path
    names = set(pq.read_schema(path).names)
    missing = [n for n in model.features if n not in names]
    if missing:
        analytics.problems.append(
            f"The labeled set lacks model features ({', '.join(missing[:3])}): no calibration."
        )
        return
    columns = ["churned", "label_complete", *model.features]
    window = pd.read_parquet(path, columns=columns, filters=[("as_of", "==", as_of)])
    window = window[window["label_complete"].astype(bool)]
    probability = score_frame(model, window, 0).probability
    y = window["churned"].astype(int).to_numpy()
    curve = reliability_curve(y, probability)
    ece = expected_calibration_error(y, probability)
    analytics.calibration = {
        "as_of": pd.Timestamp(as_of).strftime("%Y-%m-%d"),
        "rows": len(window),
        "ece": ece,
        "predicted": float(probability.mean()),
        "observed": float(y.mean()),
    }
    analytics.add(
        "calibration",
        f"Calibration of the last closed window (as of {pd.Timestamp(as_of):%Y-%m-%d})",
        charts.reliability(curve.predicted.tolist(), curve.observed.tolist(), curve.rows.tolist()),
        f"{len(window):,} customers in 10 equal-size bins; ECE {ece:.3f}; predicted "
        f"{probability.mean():.1%} vs observed {y.mean():.1%} churn.",
    )


def build_analytics(ctx: UiContext, settings: Settings, now: pd.Timestamp) -> Analytics:
    """Every section; a section whose data is missing is skipped and said so in ``problems``."""
    started = time.perf_counter()
    analytics = Analytics(currency=settings.currency_code())
    labeled = _labeled(settings)
    try:
        tables, _ = load_tables(settings, now)
    except ChurnError as exc:
        analytics.problems.append(str(exc))
        tables = None
    if tables is not None:
        start, end = export_period(settings, tables)
        analytics.period = f"{start:%Y-%m-%d} to {end - timedelta(days=1):%Y-%m-%d}"
        try:
            _kpis(analytics, tables, start, end)
            monthly = _monthly(analytics, tables, start, end)
            _cohorts(analytics, tables, start, end)
            _by_segment(analytics, tables, start, end, monthly)
        except ChurnError as exc:
            analytics.problems.append(f"Retention metrics: {exc}")
        if labeled is not None:
            _profile(analytics, labeled, tables.customers)
        _exit_reasons(analytics, tables.exit_reasons)
    _value_segments(analytics, ctx)
    _model_health(analytics, ctx, settings, labeled)
    analytics.seconds = time.perf_counter() - started
    log.info("retention analytics built in %.2f s", analytics.seconds)
    return analytics


class AnalyticsCache:
    """One :class:`Analytics` per UI context and export files; built once, under a lock."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._key: tuple[Any, ...] | None = None
        self._value: Analytics | None = None
        self._lock = threading.Lock()

    def key(self, ctx: UiContext) -> tuple[Any, ...]:
        files = [
            contract_file(self.settings.data_dir, t)
            for t in ("customers", "subscriptions", "exit_reasons")
        ]
        return (ctx.stamp, *(file_stamp(p) for p in files if p is not None))

    def get(self, ctx: UiContext, now: Callable[[], pd.Timestamp]) -> Analytics:
        key = self.key(ctx)
        if self._value is not None and self._key == key:
            return self._value
        with self._lock:
            if self._value is None or self._key != key:
                self._value = build_analytics(ctx, self.settings, now())
                self._key = key
            return self._value

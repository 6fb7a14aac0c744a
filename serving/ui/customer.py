"""The customer page: why this customer is at risk, what to do, and whether it is working.

Waterfall in probability points. The model's contributions are additive in calibrated log-odds
(``docs/scoring.md``), which a CSM cannot read. The waterfall starts at the average customer's
probability (the base value), adds the drivers one at a time, strongest first, and shows each
step's change in probability: the steps add up exactly to the customer's probability. A step's
size depends on the order (log-odds are not additive in probability), so the order is fixed and
stated: strongest first, the rest grouped as "other features".

"What moved the score" compares the served scoring with the latest earlier one in the score
history: the health-score change, then the features whose contributions moved most in the same
direction, in the catalog's sentences for their current values.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from serving.ui import charts
from serving.ui.context import INDICATORS, UiContext

WATERFALL_DRIVERS = 10
MOVED_REASONS = 3
MIN_MOVE_LOGODDS = 0.02  # smaller contribution changes are noise, not a reason
UNCHANGED_POINTS = 0.5


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sentence_case(text: str) -> str:
    """Lower-case the first letter to continue a sentence ("Logins down" -> "logins down"),
    unless the word is an acronym ("NPS")."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def waterfall(ctx: UiContext, row: int) -> dict[str, Any]:
    """Base -> strongest drivers -> the customer's probability, in percentage points."""
    state = ctx.state
    f = state.feature_count
    c = state.scored.contributions[row]
    base = float(c[f])
    order = np.argsort(-np.abs(c[:f]), kind="stable")
    shown = order[:WATERFALL_DRIVERS]
    rest = order[WATERFALL_DRIVERS:]
    logit = base
    previous = sigmoid(logit) * 100
    labels = ["Average customer"]
    points = [previous]
    hover = [f"Average customer: {previous:.1f} % churn probability"]
    drivers = []
    for j in shown:
        j = int(j)
        logit += float(c[j])
        now = sigmoid(logit) * 100
        step = now - previous
        item = state.explainer.driver(j, state.X[row, j], float(c[j]))
        item["points"] = step
        item["percentile"] = state.percentile(j, float(state.X[row, j]))
        item["description"] = state.explainer.info[j].description
        drivers.append(item)
        labels.append(_short(item["sentence"]))
        points.append(step)
        hover.append(f"{item['sentence']}: {step:+.1f} points ({item['direction']})")
        previous = now
    if len(rest):
        logit += float(c[rest].sum())
        now = sigmoid(logit) * 100
        labels.append(f"{len(rest)} other features")
        points.append(now - previous)
        hover.append(f"{len(rest)} other features together: {now - previous:+.1f} points")
        previous = now
    labels.append("This customer")
    points.append(previous)
    hover.append(f"This customer: {previous:.1f} % churn probability")
    return {
        "figure": charts.waterfall(labels, points, hover, points[0]),
        "drivers": drivers,
        "base_probability": points[0],
        "probability": previous,
    }


def _short(sentence: str, limit: int = 48) -> str:
    return sentence if len(sentence) <= limit else sentence[: limit - 1].rstrip() + "…"


def what_moved(ctx: UiContext, customer_id: str, row: int) -> dict[str, Any] | None:
    """The change since the previous scoring, in sentences; None without an earlier scoring."""
    if customer_id not in ctx.previous.index:
        return None
    prev = {str(k): v for k, v in ctx.previous.loc[customer_id].to_dict().items()}
    state = ctx.state
    health_now = float(state.scored.health_score[row])
    delta = health_now - float(prev["health_score"])
    previous_as_of = pd.Timestamp(str(prev["as_of"])).strftime("%Y-%m-%d")
    model_changed = str(prev["model_version"]) != state.ref.version
    reasons: list[dict[str, Any]] = []
    old = ctx.history.contributions(str(prev["filename"]), customer_id)
    if old is not None and abs(delta) >= UNCHANGED_POINTS:
        c = state.scored.contributions[row]
        moves = []
        for j, name in enumerate(state.model.features):
            change = float(c[j]) - old.get(name, 0.0)
            # health fell -> risk rose -> contributions that grew explain it (and vice versa)
            value = state.explainer.value(j, state.X[row, j])
            if value is None:  # "no data" explains nothing a CSM can act on
                continue
            if (change > 0) == (delta < 0) and abs(change) >= MIN_MOVE_LOGODDS:
                moves.append((abs(change), j, change))
        for _, j, change in sorted(moves, reverse=True)[:MOVED_REASONS]:
            value = state.explainer.value(j, state.X[row, j])
            reasons.append(
                {
                    "feature": state.model.features[j],
                    "sentence": state.explainer.info[j].explain(value),
                    "change": change,
                    "direction": "raised risk" if change > 0 else "lowered risk",
                }
            )
    points = round(abs(delta))
    if abs(delta) < UNCHANGED_POINTS:
        headline = f"Health score unchanged since {previous_as_of} ({health_now:.0f})"
    else:
        verb = "fell" if delta < 0 else "rose"
        headline = f"Health score {verb} {points} point{'s' if points != 1 else ''}"
        if reasons:
            headline += ": " + "; ".join(sentence_case(r["sentence"]) for r in reasons)
    return {
        "headline": headline,
        "delta": delta,
        "previous_as_of": previous_as_of,
        "previous_health": float(prev["health_score"]),
        "previous_tier": str(prev["tier"]),
        "reasons": reasons,
        "model_changed": model_changed,
        "previous_model": str(prev["model_version"]),
    }


def history_chart(ctx: UiContext, customer_id: str, row: int) -> dict[str, Any]:
    frame = ctx.history.customer(customer_id)
    dates = [pd.Timestamp(d).strftime("%Y-%m-%d") for d in frame["as_of"]]
    health = [float(h) for h in frame["health_score"]]
    versions = [str(v) for v in frame["model_version"]]
    current = ctx.as_of.isoformat()
    if not any(
        d == current and v == ctx.state.ref.version for d, v in zip(dates, versions, strict=True)
    ):
        dates.append(current)
        health.append(float(ctx.state.scored.health_score[row]))
        versions.append(ctx.state.ref.version)
    hover = [
        f"{d}: health {h:.0f} (model v{v})" for d, h, v in zip(dates, health, versions, strict=True)
    ]
    return {"figure": charts.score_history(dates, health, hover), "points": len(dates)}


def trends(ctx: UiContext, customer_id: str, row: int) -> list[dict[str, Any]]:
    """Monthly values of the key indicators (labeled set) plus the snapshot's current value."""
    out = []
    history = ctx.indicators.customer(customer_id) if ctx.indicators is not None else None
    for label, names in INDICATORS.items():
        name = next(
            (n for n in names if (history is not None and n in history) or n in ctx.snapshot),
            None,
        )
        if name is None:
            continue
        dates: list[str] = []
        values: list[float] = []
        if history is not None and name in history:
            dates = [d.strftime("%Y-%m-%d") for d in history["as_of"]]
            values = [float(v) for v in history[name]]
        if name in ctx.snapshot:
            current = pd.to_numeric(pd.Series([ctx.snapshot[name].iloc[row]]), errors="coerce")
            if ctx.as_of.isoformat() not in dates:
                dates.append(ctx.as_of.isoformat())
                values.append(float(current.iloc[0]))
        if not dates:
            continue
        figure = charts.line(dates, {label: values}, height=180)
        figure["layout"]["margin"] = {"l": 40, "r": 12, "t": 8, "b": 28}
        figure["layout"]["xaxis"]["type"] = "date"
        out.append({"label": label, "feature": name, "figure": figure, "points": len(dates)})
    return out


def profile(ctx: UiContext, row: int, listed: dict[str, Any]) -> list[tuple[str, str]]:
    """Profile attributes for the side panel, in words."""
    snap = ctx.snapshot.iloc[row]

    def number(name: str, fmt: str) -> str | None:
        value = pd.to_numeric(pd.Series([snap.get(name)]), errors="coerce").iloc[0]
        return None if pd.isna(value) else fmt.format(float(value))

    items = [
        ("Industry", listed.get("industry")),
        ("Company size", listed.get("company_size")),
        ("Region", listed.get("region")),
        ("Plan", listed.get("plan")),
        ("Acquisition channel", listed.get("acquisition_channel")),
        ("Lifecycle stage", listed.get("lifecycle_stage")),
        ("CSM owner", listed.get("csm_owner")),
        ("Customer for", number("tenure_days", "{:,.0f} days")),
        ("Paid seats", number("seats", "{:,.0f}")),
        ("Renewal anniversary in", number("days_to_renewal", "{:,.0f} days")),
    ]
    return [(k, str(v)) for k, v in items if v not in (None, "", "<NA>")]


SURVIVAL_DAYS = (0, 30, 60, 90, 180, 365)


def survival_view(ctx: UiContext, row: int) -> dict[str, Any] | None:
    """The survival curve and its money numbers, from the block precomputed at score-all."""
    blocks = ctx.state.survival
    if blocks is None:
        return None
    block = blocks[row]
    curve = [1.0, *(block["survival"].get(f"{d}d") for d in SURVIVAL_DAYS[1:])]
    figure = charts.line(list(SURVIVAL_DAYS), {"Still a customer": curve}, height=220,
                         percent=True, y_title="chance still a customer")  # fmt: skip
    figure["layout"]["xaxis"]["title"] = {"text": "days from the as-of date"}
    return {**block, "figure": figure}


def customer_view(
    ctx: UiContext,
    customer_id: str,
    now: datetime,
    open_tasks: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Everything the customer page shows, or None for an id that is not served.

    "Due by" is the stored ``due_at`` of the customer's open task for the tier's play (fixed
    when the rules created it, the same on every reload and on the tasks page); with no such
    task there is no due date yet, only the SLA. Without a workflow ledger (``open_tasks`` is
    None) it is the SLA from ``now``, as the scoring API states it.
    """
    state = ctx.state
    row = state.row_of.get(customer_id)
    listed = ctx.portfolio.customer(customer_id)
    if row is None or listed is None:
        return None
    tier = str(state.scored.tier[row])
    recommendation = state.recommendations[row]
    if open_tasks is None:
        deadline = state.deadlines(now)[tier]
    else:
        play = [t for t in open_tasks if t.get("play") == tier]
        deadline = str(play[0]["due_at"]) if play else ""
    return {
        "tasks": open_tasks or [],
        "customer": listed,
        "row": row,
        "waterfall": waterfall(ctx, row),
        "action": recommendation.as_dict(deadline),
        "moved": what_moved(ctx, customer_id, row),
        "history": history_chart(ctx, customer_id, row),
        "trends": trends(ctx, customer_id, row),
        "profile": profile(ctx, row, listed),
        "survival": survival_view(ctx, row),
        "horizon_days": state.model.horizon_days,
        "model": state.model_info,
        "as_of": ctx.as_of.isoformat(),
    }

"""The closed loop: did acting on alerts keep customers, which rules are worth their noise, why
customers left, and how far the retention goal is.

Every number here is computed from the ledger, the customer facts and the score history at an
explicit ``now``. Definitions, stated once:

- An alert's **outcome** is *churned* if the customer churned within ``outcome_days`` after the
  alert opened, *retained* if that window has passed without churn, else *open* (not counted).
- **Action type**: the first intervention recorded for the customer in that window, else
  ``none``. **Score change**: the latest health score minus the score at the alert.
- **With vs without intervention** is only correlational: CSMs choose whom to call (often the
  customers they expect to save, or the loudest), so the groups differ before any action.
- The **hold-out** comparison is causal: the draw (``run.in_holdout``) decides who gets no
  action, so acted-on and held-out alerts differ only by chance and by the action. The
  difference of retention rates has a 95 % Newcombe (Wilson score) interval; **MRR saved** =
  that difference x the MRR (at alert) of the acted-on customers whose outcome is known.
- **Rule precision**: from verdicts, useful / (useful + not valid); from outcomes, the churn rate
  of the rule's alerts that got no action (hold-out or none) against the base churn rate of all
  customers over the same window — a risk rule worth its noise has a clear lift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import BY_NAME
from features.facts import SEGMENT_COLUMNS, day_of, utc
from serving.workflows.config import RulesConfig
from serving.workflows.effects import (
    campaign_rows,
    contact_plan,
    fit_contact_model,
    play_effects,
    targeting_comparison,
)
from serving.workflows.inputs import latest_scores

Z95 = 1.959963984540054
MIN_VERDICTS_FOR_FLAG = 5


@dataclass
class LoopInputs:
    """Everything the closed loop reads; ``monthly_churn`` is ``features.metrics.churn_rates``
    (None when the contract tables are not at hand)."""

    config: RulesConfig
    now: datetime
    alerts: pd.DataFrame
    interventions: pd.DataFrame
    verdicts: pd.DataFrame
    tasks: pd.DataFrame
    outbox: pd.DataFrame
    interviews: pd.DataFrame
    contract_exits: pd.DataFrame | None
    facts: pd.DataFrame
    daily: pd.DataFrame
    goal: dict[str, Any] | None = None
    monthly_churn: pd.DataFrame | None = None
    # who to contact (``serving.workflows.effects``): the point-in-time features of the
    # randomised alerts' scorings (None while no action has enough hold-out data), and the
    # current customers (features, probability, MRR, CSM, 12-month revenue) to plan for
    campaign_features: pd.DataFrame | None = None
    current: pd.DataFrame | None = None


@dataclass
class ClosedLoop:
    """The page's sections; DataFrames are ready to show, ``notes`` are sentences."""

    now: str
    outcomes: pd.DataFrame
    by_tier_action: pd.DataFrame
    with_without: pd.DataFrame
    holdout: dict[str, Any]
    holdout_by_tier: pd.DataFrame
    exit_by_month: pd.DataFrame
    avoidable_share: float | None
    stated_vs_model: pd.DataFrame
    disagreements: list[str]
    rule_precision: pd.DataFrame
    goal: dict[str, Any] | None
    mrr_saved: dict[str, Any]
    at_risk_mrr_open: float
    open_actions: list[str] = field(default_factory=list)
    play_effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    contact: pd.DataFrame = field(default_factory=pd.DataFrame)
    contact_note: str = ""
    targeting: pd.DataFrame = field(default_factory=pd.DataFrame)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (good at small n and rates near 0 or 1)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (centre - half, centre + half)


def difference_interval(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float]:
    """p1 - p2 with Newcombe's hybrid score 95 % interval (method 10)."""
    if n1 == 0 or n2 == 0:
        return (math.nan, math.nan, math.nan)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    return (d, d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2))


def _ts(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.tz_localize(None)


def alert_outcomes(inputs: LoopInputs) -> pd.DataFrame:
    """One row per alert: arm, action type, outcome and score change (module docstring)."""
    alerts = inputs.alerts
    columns = [
        "alert_id",
        "rule_id",
        "customer_id",
        "opened",
        "tier",
        "holdout",
        "mrr",
        "health_at_alert",
        "health_now",
        "score_change",
        "action_type",
        "arm",
        "outcome",
        "risk_rule",
    ]
    if alerts.empty:  # typed, so boolean masks on the flags still select rows, not columns
        flags = ("holdout", "risk_rule")
        return pd.DataFrame({c: pd.Series(dtype=bool if c in flags else object) for c in columns})
    window = pd.Timedelta(days=inputs.config.outcome_days)
    today = day_of(inputs.now)
    out = pd.DataFrame(
        {
            "alert_id": alerts["alert_id"].astype(int),
            "rule_id": alerts["rule_id"].astype(str),
            "customer_id": alerts["customer_id"].astype(str),
            "opened": _ts(alerts["opened_at"]),
            "tier": alerts["tier"].fillna("unscored"),
            "holdout": alerts["holdout"].astype(bool),
            "mrr": pd.to_numeric(alerts["mrr"]).fillna(0.0),
            "health_at_alert": pd.to_numeric(alerts["health_score"]),
        }
    )
    latest = (
        latest_scores(inputs.daily)["health_score"]
        if not inputs.daily.empty
        else pd.Series(dtype=float)
    )
    out["health_now"] = out["customer_id"].map(latest)
    out["score_change"] = out["health_now"] - out["health_at_alert"]
    acts = inputs.interventions
    if not acts.empty:
        acts = acts.assign(day=_ts(acts["date"])).sort_values(["day", "intervention_id"])
        joined = out[["alert_id", "customer_id", "opened"]].merge(
            acts[["customer_id", "day", "type"]], on="customer_id"
        )
        joined = joined[
            (joined["day"] >= joined["opened"].dt.normalize())
            & (joined["day"] < joined["opened"] + window)
        ]
        first = joined.drop_duplicates("alert_id").set_index("alert_id")["type"]
        out["action_type"] = out["alert_id"].map(first).fillna("none")
    else:
        out["action_type"] = "none"
    out["arm"] = np.where(
        out["holdout"],
        "hold-out",
        np.where(out["action_type"] == "none", "no intervention", "intervention"),
    )
    churned_at = (
        out["customer_id"].map(inputs.facts["churned_at"])
        if not inputs.facts.empty
        else pd.Series(pd.NaT, index=out.index)
    )
    churned_at = pd.to_datetime(churned_at)
    churned = (
        churned_at.notna()
        & (churned_at >= out["opened"].dt.normalize())
        & (churned_at < out["opened"] + window)
    )
    matured = out["opened"] + window <= today
    out["outcome"] = np.where(churned, "churned", np.where(matured, "retained", "open"))
    rules = {r.id: r for r in inputs.config.rules}
    out["risk_rule"] = out["rule_id"].map(lambda r: rules[r].is_risk if r in rules else True)
    return out[columns]


def _rates(frame: pd.DataFrame) -> dict[str, Any]:
    decided = frame[frame["outcome"] != "open"]
    retained = int((decided["outcome"] == "retained").sum())
    changes = frame["score_change"].dropna()
    return {
        "alerts": len(frame),
        "decided": len(decided),
        "retained": retained,
        "retention": retained / len(decided) if len(decided) else math.nan,
        "mean_score_change": float(changes.mean()) if len(changes) else math.nan,
    }


def _grouped(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame(
            columns=[*keys, "alerts", "decided", "retained", "retention", "mean_score_change"]
        )
    rows = [
        {**dict(zip(keys, k if isinstance(k, tuple) else (k,), strict=True)), **_rates(g)}
        for k, g in frame.groupby(keys, sort=True)
    ]
    return pd.DataFrame(rows)


def holdout_comparison(outcomes: pd.DataFrame) -> dict[str, Any]:
    """Acted-on vs held-out risk alerts whose outcome is known: retention difference + CI."""
    risk = outcomes[outcomes["risk_rule"] & (outcomes["outcome"] != "open")]
    treated, control = risk[~risk["holdout"]], risk[risk["holdout"]]
    x1, n1 = int((treated["outcome"] == "retained").sum()), len(treated)
    x2, n2 = int((control["outcome"] == "retained").sum()), len(control)
    d, low, high = difference_interval(x1, n1, x2, n2)
    if n1 == 0 or n2 == 0:
        verdict = (
            "No hold-out comparison yet: it needs decided alerts in both arms "
            "(set holdout.share > 0 and wait outcome_days)."
        )
    elif low > 0:
        verdict = f"Acting raised retention by {d:+.1%} (95 % CI {low:+.1%} to {high:+.1%})."
    elif high < 0:
        verdict = (
            f"Acted-on customers kept worse: {d:+.1%} (95 % CI {low:+.1%} to {high:+.1%}); "
            "review the playbook."
        )
    else:
        verdict = (
            f"Difference {d:+.1%} (95 % CI {low:+.1%} to {high:+.1%}) cannot be told from zero "
            "yet; more alerts are needed."
        )
    return {
        "treated_n": n1,
        "treated_retained": x1,
        "treated_rate": x1 / n1 if n1 else math.nan,
        "holdout_n": n2,
        "holdout_retained": x2,
        "holdout_rate": x2 / n2 if n2 else math.nan,
        "difference": d,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict,
        "treated_mrr": float(treated["mrr"].sum()),
    }


def _exits(inputs: LoopInputs) -> pd.DataFrame:
    """Exit reasons: the contract's table, overridden per customer by interviews recorded here."""
    parts = []
    if inputs.contract_exits is not None and not inputs.contract_exits.empty:
        c = inputs.contract_exits
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": c["customer_id"].astype(str),
                    "churned_at": _ts(c["churned_at"].astype(str)),
                    "category": c["category"].astype(str),
                    "avoidable": c["avoidable"].astype("boolean"),
                    "source": "export",
                }
            )
        )
    if not inputs.interviews.empty:
        i = inputs.interviews
        parts.append(
            pd.DataFrame(
                {
                    "customer_id": i["customer_id"].astype(str),
                    "churned_at": _ts(i["churned_at"]),
                    "category": i["category"].astype(str),
                    "avoidable": i["avoidable"].astype(bool).astype("boolean"),
                    "source": "interview",
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            columns=["customer_id", "churned_at", "category", "avoidable", "source"]
        )
    exits = pd.concat(parts, ignore_index=True)
    exits = exits[exits["churned_at"] <= day_of(inputs.now) + pd.Timedelta(days=1)]
    exits = exits.sort_values("source", key=lambda s: s.eq("interview"))  # interviews last
    return exits.drop_duplicates("customer_id", keep="last").reset_index(drop=True)


def _dominant_group(drivers: list[dict[str, Any]]) -> str | None:
    """The catalog group with the largest risk-raising contribution among the top drivers."""
    weights: dict[str, float] = {}
    for d in drivers:
        info = BY_NAME.get(str(d.get("feature")))
        contribution = d.get("contribution")
        weight = float(contribution) if contribution is not None else 1.0
        if info is not None and weight > 0:
            weights[info.group] = weights.get(info.group, 0.0) + weight
    return max(weights, key=lambda g: weights[g]) if weights else None


def stated_vs_model(
    exits: pd.DataFrame, daily: pd.DataFrame, config: RulesConfig
) -> tuple[pd.DataFrame, list[str]]:
    """Stated exit category beside the model's dominant driver group before the churn date."""
    columns = ["category", "customers", "with_scores", "agree", "agreement", "model_says"]
    if exits.empty or daily.empty:
        return pd.DataFrame(columns=columns), []
    before = daily.merge(exits[["customer_id", "churned_at"]], on="customer_id")
    before = before[before["as_of"] <= before["churned_at"]]
    last = before.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    groups = last["top_drivers"].map(_dominant_group)
    frame = exits.assign(model_group=exits["customer_id"].map(groups))
    rows, notes = [], []
    for category, g in frame.groupby("category", sort=True):
        expected = config.exit_reason_groups.get(str(category), [])
        scored = g[g["model_group"].notna()]
        agree = int(scored["model_group"].isin(expected).sum()) if expected else 0
        common = scored["model_group"].value_counts()
        says = ", ".join(f"{k} {v}" for k, v in common.head(3).items())
        share = agree / len(scored) if len(scored) and expected else math.nan
        rows.append(
            {
                "category": category,
                "customers": len(g),
                "with_scores": len(scored),
                "agree": agree,
                "agreement": share,
                "model_says": says,
            }
        )
        if expected and len(scored) and share < 0.5:
            top = str(common.index[0])
            notes.append(
                f"'{category}' was stated by {len(g)} churned customers, but for "
                f"{len(scored) - agree} of {len(scored)} the model's top drivers pointed at "
                f"{top} rather than {' / '.join(expected)}: check whether '{category}' is the "
                "real reason or the polite one."
            )
    return pd.DataFrame(rows, columns=columns), notes


def rule_precision(
    outcomes: pd.DataFrame, verdicts: pd.DataFrame, inputs: LoopInputs
) -> pd.DataFrame:
    """Per rule: verdict precision and the untreated churn rate against the base rate."""
    base = base_churn_rate(inputs)
    latest_verdicts = (
        verdicts.sort_values("verdict_id").drop_duplicates("alert_id", keep="last")
        if not verdicts.empty
        else verdicts
    )
    rows = []
    for rule in inputs.config.rules:
        mine = outcomes[outcomes["rule_id"] == rule.id]
        v = (
            latest_verdicts[latest_verdicts["alert_id"].isin(mine["alert_id"])]
            if not latest_verdicts.empty
            else latest_verdicts
        )
        useful = int(v["useful"].astype(int).sum()) if not v.empty else 0
        judged = len(v)
        untreated = mine[(mine["arm"] != "intervention") & (mine["outcome"] != "open")]
        churn = float((untreated["outcome"] == "churned").mean()) if len(untreated) else math.nan
        lift = churn / base if base and not math.isnan(churn) else math.nan
        precision = useful / judged if judged else math.nan
        noisy = (judged >= MIN_VERDICTS_FOR_FLAG and precision < 0.5) or (
            rule.is_risk and len(untreated) >= 20 and lift <= 1.0
        )
        rows.append(
            {
                "rule_id": rule.id,
                "alerts": len(mine),
                "open": int((mine["outcome"] == "open").sum()),
                "verdicts": judged,
                "useful": useful,
                "verdict_precision": precision,
                "untreated_decided": len(untreated),
                "untreated_churn_rate": churn,
                "lift_vs_base": lift,
                "noisy": bool(noisy),
            }
        )
    return pd.DataFrame(rows)


def base_churn_rate(inputs: LoopInputs) -> float:
    """Share of customers active ``outcome_days`` ago who churned since (all customers)."""
    facts = inputs.facts
    if facts.empty:
        return math.nan
    start = day_of(inputs.now) - pd.Timedelta(days=inputs.config.outcome_days)
    churned_at = pd.to_datetime(facts["churned_at"])
    at_start = facts[(facts["signup_date"] <= start) & (churned_at.isna() | (churned_at >= start))]
    if at_start.empty:
        return math.nan
    return float(pd.to_datetime(at_start["churned_at"]).notna().mean())


def goal_progress(
    goal: dict[str, Any] | None, monthly: pd.DataFrame | None, now: datetime
) -> dict[str, Any] | None:
    """The goal's planned path (linear from baseline to target) against final monthly churn.

    A stored goal that cannot be placed on the calendar (recorded before the API bounded the
    start, e.g. 9999-12-31) is shown with what to do instead of failing the whole report."""
    if goal is None:
        return None
    try:
        start = pd.Timestamp(goal["start"]).to_period("M")
        months = int(goal["months"])
        deadline = str((start + months).to_timestamp().date())
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return {
            **goal, "start": str(goal["start"]), "deadline": None, "months_table": [],
            "status": f"The goal's start {goal['start']} is out of range: set a new goal "
            "(PUT /workflows/goal or the closed-loop page).",
        }  # fmt: skip
    out: dict[str, Any] = {
        **goal,
        "start": str(goal["start"]),
        "deadline": deadline,
        "months_table": [],
    }
    if monthly is None or monthly.empty:
        out["status"] = "No monthly churn figures (contract tables not loaded)."
        return out
    table = monthly[monthly["final"]] if "final" in monthly else monthly
    rows = []
    for month, row in table.iterrows():
        period = pd.Timestamp(str(month)).to_period("M")
        step = (period - start).n
        if step < 0:
            continue
        planned = (
            goal["baseline"] + (goal["target"] - goal["baseline"]) * min(step, months) / months
        )
        rows.append(
            {
                "month": str(period),
                "churn_rate": float(row["churn_rate"]),
                "planned": planned,
                "on_track": bool(row["churn_rate"] <= planned),
            }
        )
    out["months_table"] = rows
    if rows:
        last = rows[-1]
        status = "on track" if last["on_track"] else "behind plan"
        out["status"] = (
            f"{last['month']}: churn {last['churn_rate']:.1%} against {last['planned']:.1%} "
            f"planned ({status}); target {goal['target']:.1%} by {out['deadline']}."
        )
        out["current"] = last["churn_rate"]
    else:
        out["status"] = "No final month since the goal started yet."
    return out


def closed_loop(inputs: LoopInputs) -> ClosedLoop:
    """All sections of the closed-loop page and ``churn report``."""
    outcomes = alert_outcomes(inputs)
    risk = outcomes[outcomes["risk_rule"]]
    by_tier_action = _grouped(risk, ["tier", "action_type"])
    with_without = _grouped(
        risk[~risk["holdout"]].assign(intervened=risk["action_type"] != "none"),
        ["tier", "intervened"],
    )
    comparison = holdout_comparison(outcomes)
    by_tier = []
    for tier, g in outcomes[outcomes["risk_rule"] & (outcomes["outcome"] != "open")].groupby(
        "tier"
    ):
        t, c = g[~g["holdout"]], g[g["holdout"]]
        d, low, high = difference_interval(
            int((t["outcome"] == "retained").sum()),
            len(t),
            int((c["outcome"] == "retained").sum()),
            len(c),
        )
        by_tier.append(
            {
                "tier": tier,
                "acted_on": len(t),
                "held_out": len(c),
                "difference": d,
                "ci_low": low,
                "ci_high": high,
            }
        )
    exits = _exits(inputs)
    if exits.empty:
        by_month, avoidable = pd.DataFrame(), None
    else:
        months = exits.assign(month=exits["churned_at"].dt.to_period("M").astype(str))
        by_month = months.pivot_table(
            index="month", columns="category", values="customer_id", aggfunc="count", fill_value=0
        )
        by_month["avoidable_share"] = months.groupby("month")["avoidable"].mean().astype(float)
        by_month = by_month.reset_index()
        avoidable = float(exits["avoidable"].astype(float).mean())
    stated, disagreements = stated_vs_model(exits, inputs.daily, inputs.config)
    precision = rule_precision(outcomes, inputs.verdicts, inputs)
    d = comparison["difference"]
    saved = {
        "estimate": d * comparison["treated_mrr"] if not math.isnan(d) else math.nan,
        "ci_low": comparison["ci_low"] * comparison["treated_mrr"]
        if not math.isnan(d)
        else math.nan,
        "ci_high": comparison["ci_high"] * comparison["treated_mrr"]
        if not math.isnan(d)
        else math.nan,
        "basis": f"retention difference x MRR of {comparison['treated_n']} acted-on alerts "
        "with a known outcome",
    }
    open_risk = outcomes[
        outcomes["risk_rule"] & ~outcomes["holdout"] & (outcomes["action_type"] == "none")
    ]
    still_open = (
        inputs.alerts.loc[inputs.alerts["cleared_at"].isna(), "alert_id"]
        if not inputs.alerts.empty
        else pd.Series(dtype=int)
    )
    open_risk = open_risk[open_risk["alert_id"].isin(still_open)].drop_duplicates("customer_id")
    at_risk = (
        float(open_risk["customer_id"].map(inputs.facts["mrr"]).fillna(open_risk["mrr"]).sum())
        if not inputs.facts.empty
        else float(open_risk["mrr"].sum())
    )
    rows = campaign_rows(outcomes, inputs.daily)
    effects = play_effects(rows, inputs.campaign_features, inputs.config)
    plan, note = pd.DataFrame(), ""
    comparison_table = pd.DataFrame()
    if inputs.current is not None:
        model = fit_contact_model(rows, inputs.campaign_features, inputs.config)
        plan, note = contact_plan(model, inputs.current, inputs.config)
        owners = max(int(inputs.current["csm_owner"].nunique()), 1)
        budget = inputs.config.contact.budget_per_csm_week * owners
        comparison_table = targeting_comparison(plan, budget)
    return ClosedLoop(
        now=str(utc(inputs.now).isoformat()),
        outcomes=outcomes,
        by_tier_action=by_tier_action,
        with_without=with_without,
        holdout=comparison,
        holdout_by_tier=pd.DataFrame(by_tier),
        exit_by_month=by_month,
        avoidable_share=avoidable,
        stated_vs_model=stated,
        disagreements=disagreements,
        rule_precision=precision,
        goal=goal_progress(inputs.goal, inputs.monthly_churn, inputs.now),
        mrr_saved=saved,
        at_risk_mrr_open=at_risk,
        open_actions=open_actions(inputs, precision),
        play_effects=effects,
        contact=plan,
        contact_note=note,
        targeting=comparison_table,
    )


def open_actions(inputs: LoopInputs, precision: pd.DataFrame) -> list[str]:
    """Improvement actions still open: overdue tasks, dead letters, noisy rules, complaints."""
    items = []
    tasks = inputs.tasks
    if not tasks.empty:
        open_tasks = tasks[tasks["status"] == "open"]
        overdue = open_tasks[_ts(open_tasks["due_at"]) < utc(inputs.now).tz_localize(None)]
        if len(overdue):
            owners = overdue["owner"].value_counts().head(3)
            items.append(
                f"{len(overdue)} overdue tasks (most with "
                f"{', '.join(f'{o} ({n})' for o, n in owners.items())})."
            )
    if not inputs.outbox.empty and (inputs.outbox["status"] == "dead").any():
        items.append(
            f"{int((inputs.outbox['status'] == 'dead').sum())} webhooks dead-lettered: fix the "
            "CRM endpoint, then requeue them."
        )
    for row in precision[precision["noisy"]].itertuples():
        items.append(
            f"Rule {row.rule_id} looks noisy (verdict precision {row.verdict_precision:.0%}, "
            f"lift {row.lift_vs_base:.2f}): tighten or retire it."
        )
    if not inputs.verdicts.empty:
        bad = inputs.verdicts[(inputs.verdicts["useful"] == 0) & inputs.verdicts["comment"].notna()]
        for comment in bad["comment"].tail(5):
            items.append(f'CSM: alert not valid — "{comment}"')
    return items


# ----- quarterly review ----------------------------------------------------------------------


def quarter_bounds(quarter: str) -> tuple[date, date]:
    """``2025Q1`` -> [2025-01-01, 2025-04-01)."""
    period = pd.Period(quarter, freq="Q")
    return period.start_time.date(), (period + 1).start_time.date()


def common_traits(facts: pd.DataFrame, start: date, end: date, top: int = 6) -> pd.DataFrame:
    """Attribute values over-represented among customers who churned in ``[start, end)``
    compared with everyone active at ``start`` (lift = share among churned / share among all)."""
    churned_at = pd.to_datetime(facts["churned_at"])
    base = facts[
        (facts["signup_date"] < pd.Timestamp(start))
        & (churned_at.isna() | (churned_at >= pd.Timestamp(start)))
    ]
    lost = base[
        (pd.to_datetime(base["churned_at"]) >= pd.Timestamp(start))
        & (pd.to_datetime(base["churned_at"]) < pd.Timestamp(end))
    ]
    rows = []
    for column in (*SEGMENT_COLUMNS, "csm_owner"):
        if lost.empty or base[column].isna().all():
            continue
        share_all = base[column].value_counts(normalize=True)
        counts = lost[column].value_counts()
        for value, n in counts.items():
            if n >= 3:
                share = n / len(lost)
                rows.append(
                    {
                        "attribute": column,
                        "value": value,
                        "churned": int(n),
                        "share_churned": share,
                        "share_all": float(share_all.get(value, 0)),
                        "lift": share / float(share_all.get(value, np.nan)),
                    }
                )
    frame = pd.DataFrame(
        rows, columns=["attribute", "value", "churned", "share_churned", "share_all", "lift"]
    )
    return frame.sort_values("lift", ascending=False).head(top).reset_index(drop=True)


def quarterly_review(loop: ClosedLoop, inputs: LoopInputs, quarter: str) -> dict[str, Any]:
    """What the quarterly review shows: churned customers, traits, reasons, what worked and
    what is left to do (rendered to markdown or HTML by ``report``)."""
    start, end = quarter_bounds(quarter)
    facts = inputs.facts
    churned_at = pd.to_datetime(facts["churned_at"])
    lost = facts[(churned_at >= pd.Timestamp(start)) & (churned_at < pd.Timestamp(end))]
    exits = _exits(inputs)
    in_quarter = exits[
        (exits["churned_at"] >= pd.Timestamp(start)) & (exits["churned_at"] < pd.Timestamp(end))
    ]
    acted = loop.outcomes[loop.outcomes["arm"] == "intervention"]
    strategies = _grouped(acted, ["action_type"])
    lost_mrr = lost.join(
        loop.outcomes.sort_values("opened")
        .drop_duplicates("customer_id", keep="last")
        .set_index("customer_id")[["mrr"]]
        .rename(columns={"mrr": "mrr_at_alert"}),
        how="left",
    )
    return {
        "quarter": quarter,
        "start": start.isoformat(),
        "end": (end - timedelta(days=1)).isoformat(),
        "churned": len(lost),
        "churned_alerted": int(lost.index.isin(loop.outcomes["customer_id"]).sum()),
        "churned_list": lost_mrr.reset_index()
        .rename(columns={"index": "customer_id"})[
            ["customer_id", "name", "csm_owner", "churned_at", "mrr_at_alert"]
        ]
        .head(25),
        "traits": common_traits(facts, start, end),
        "reasons": in_quarter["category"]
        .value_counts()
        .rename_axis("category")
        .reset_index(name="customers"),
        "avoidable_share": float(in_quarter["avoidable"].astype(float).mean())
        if len(in_quarter)
        else None,
        "strategies": strategies,
        "holdout": loop.holdout,
        "play_effects": loop.play_effects,
        "targeting": loop.targeting,
        "contact_note": loop.contact_note,
        "rule_precision": loop.rule_precision,
        "disagreements": loop.disagreements,
        "open_actions": loop.open_actions,
        "goal": loop.goal,
        "mrr_saved": loop.mrr_saved,
        "at_risk_mrr_open": loop.at_risk_mrr_open,
    }

"""Who to contact: the hold-outs' effects per play and action, and targeting by revenue saved.

The closed loop's hold-out comparison says whether acting works on average. This module asks
for whom, from the same ledger (the estimation itself is ``training.uplift``):

- :func:`campaign_rows`: the decided alerts that were randomised: hold-outs (action
  ``holdout``) and acted-on alerts with their first action type. Alerts nobody acted on are
  left out: whether a CSM acted was a choice, not a draw. Each row carries the scoring the
  alert was raised on (its ``as_of`` and churn probability), which is pre-treatment.
- :func:`arm_counts` / :func:`ready_actions`: a count check before any feature is built or
  model fitted, so a young ledger costs nothing.
- :func:`play_effects`: per play (rule) and action, the AIPW average effect with its 95 %
  interval, or a status saying plainly why there is none. Never a figure without its interval.
- :func:`contact_plan`: per current customer, the uplift ranking (expected revenue saved =
  effect x 12-month expected revenue - cost, predicted sleeping dogs suppressed, a hold-out
  kept in every play) beside the risk ranking, and :func:`targeting_comparison`: expected
  revenue saved by each ranking at the same budget.

Sign convention (``training.uplift``): effect = reduction in the churn probability over the
horizon; positive = the action helps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import KEY_COLUMNS
from serving.workflows.config import Contact, RulesConfig
from training.uplift import CONTROL, OK, UpliftConfig, UpliftModel, average_effects, target

ALL_PLAYS = "all plays"
EFFECT_COLUMNS = [
    "play", "action", "status", "effect", "ci_low", "ci_high", "n_treated", "n_control",
    "churners_treated", "churners_control", "message",
]  # fmt: skip
RISK_FALLBACK = (
    "Ranked by risk: no action has enough randomised hold-out data for an effect estimate yet "
    "(see the effects by play on the closed-loop page)."
)


def campaign_rows(outcomes: pd.DataFrame, daily: pd.DataFrame) -> pd.DataFrame:
    """Decided, randomised alerts of risk rules: ``alert_id, play, customer_id, as_of, action,
    churned, churn_probability, revenue_12m`` (MRR at the alert x 12); ``as_of`` is the day of
    the scoring the alert was raised on (the customer's latest scored day on or before it)."""
    columns = ["alert_id", "play", "customer_id", "as_of", "action", "churned",
               "churn_probability", "revenue_12m"]  # fmt: skip
    decided = outcomes[
        outcomes["risk_rule"]
        & (outcomes["outcome"] != "open")
        & (outcomes["holdout"] | (outcomes["action_type"] != "none"))
    ]
    if decided.empty or daily.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    rows = decided.assign(
        play=decided["rule_id"],
        action=np.where(decided["holdout"], CONTROL, decided["action_type"]),
        churned=decided["outcome"] == "churned",
        # what the customer paid at the alert, for a year: the effect models are chosen on the
        # revenue-saved scale the plan ranks on (training.uplift, Lemmens & Gupta 2020)
        revenue_12m=pd.to_numeric(decided["mrr"], errors="coerce").fillna(0.0).clip(lower=0) * 12,
        day=pd.to_datetime(decided["opened"]).dt.normalize().astype("datetime64[ns]"),
    ).sort_values("day", kind="stable")
    scored = daily[["customer_id", "as_of"]].assign(
        as_of=pd.to_datetime(daily["as_of"]).astype("datetime64[ns]"),
        churn_probability=daily.get("churn_probability", np.nan),
    )
    joined = pd.merge_asof(
        rows,
        scored.sort_values("as_of", kind="stable"),
        left_on="day",
        right_on="as_of",
        by="customer_id",
        direction="backward",
    )
    joined = joined[joined["as_of"].notna()]
    return joined[columns].sort_values("alert_id", kind="stable").reset_index(drop=True)


def arm_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Decided alerts and churners per play and arm (``all plays`` pools them)."""
    pooled = pd.concat([rows, rows.assign(play=ALL_PLAYS)], ignore_index=True)
    return (
        pooled.groupby(["play", "action"], sort=True)["churned"]
        .agg(n="size", churners="sum")
        .reset_index()
    )


def _count(counts: pd.DataFrame, play: str, action: str) -> tuple[int, int]:
    """(decided alerts, churners) of one play's arm; zeros if it has none."""
    hit = counts[(counts["play"] == play) & (counts["action"] == action)]
    if hit.empty:
        return 0, 0
    return int(hit["n"].iloc[0]), int(hit["churners"].iloc[0])


def ready_actions(counts: pd.DataFrame, play: str, contact: Contact) -> list[str]:
    """The actions of ``play`` with enough decided alerts and churners, as has its hold-out."""

    def enough(action: str) -> bool:
        n, churners = _count(counts, play, action)
        return n >= contact.min_per_arm and churners >= contact.min_churners_per_arm

    if not enough(CONTROL):
        return []
    actions = sorted(set(counts.loc[counts["play"] == play, "action"]) - {CONTROL})
    return [a for a in actions if enough(a)]


def uplift_config(contact: Contact, seed: int) -> UpliftConfig:
    return UpliftConfig(
        seed=seed,
        min_per_arm=contact.min_per_arm,
        min_churners_per_arm=contact.min_churners_per_arm,
    )


def _not_enough(play: str, action: str, counts: pd.DataFrame, contact: Contact) -> dict[str, Any]:
    n_t, c_t = _count(counts, play, action)
    n_c, c_c = _count(counts, play, CONTROL)
    return {
        "play": play, "action": action, "status": "not_enough_holdout_data",
        "effect": math.nan, "ci_low": math.nan, "ci_high": math.nan,
        "n_treated": n_t, "n_control": n_c, "churners_treated": c_t, "churners_control": c_c,
        "message": (
            f"Not enough hold-out data: {n_t} decided alerts ({c_t} churned) with {action} and "
            f"{n_c} held out ({c_c} churned); an estimate needs {contact.min_per_arm} and "
            f"{contact.min_churners_per_arm} churners in each. Rank by risk until then."
        ),
    }  # fmt: skip


def play_effects(
    rows: pd.DataFrame, features: pd.DataFrame | None, config: RulesConfig
) -> pd.DataFrame:
    """Per play (and pooled over plays) and action: the AIPW effect with its 95 % interval,
    or why there is none. ``features``: point-in-time features keyed by (customer_id, as_of)
    for the rows' scorings; needed only where :func:`ready_actions` finds an action."""
    from training.uplift import with_risk

    counts = arm_counts(rows)
    names, categories = feature_inputs(features) if features is not None else ([], {})
    inputs, _ = with_risk(names)
    out: list[dict[str, Any]] = []
    for play in [*sorted(set(rows["play"])), ALL_PLAYS] if len(rows) else []:
        actions = sorted(set(counts.loc[counts["play"] == play, "action"]) - {CONTROL})
        ready = ready_actions(counts, play, config.contact) if features is not None else []
        for action in actions:
            if action not in ready:
                out.append(_not_enough(play, action, counts, config.contact))
        if ready:
            sub = rows if play == ALL_PLAYS else rows[rows["play"] == play]
            if play == ALL_PLAYS:  # a customer alerted by several plays counts once
                sub = sub.drop_duplicates("customer_id", keep="first")
            campaign = with_features(sub[sub["action"].isin([CONTROL, *ready])], features)
            table = average_effects(campaign, inputs, categories,
                                    uplift_config(config.contact, config.holdout.seed))  # fmt: skip
            for record in table.to_dict("records"):
                out.append({c: record.get(c) for c in EFFECT_COLUMNS} | {"play": play})
    frame = pd.DataFrame(out, columns=EFFECT_COLUMNS)
    return frame.sort_values(["play", "action"], kind="stable").reset_index(drop=True)


def with_features(rows: pd.DataFrame, features: pd.DataFrame | None) -> pd.DataFrame:
    """The rows with their scoring's point-in-time features (inner join on the keys)."""
    if features is None:
        raise ValueError("with_features needs the features of the rows' scorings")
    keyed = features.assign(as_of=pd.to_datetime(features["as_of"]).astype("datetime64[ns]"))
    extra = [c for c in keyed.columns if c not in rows.columns or c in KEY_COLUMNS]
    return rows.merge(keyed[extra], on=list(KEY_COLUMNS), how="inner")


def action_costs(actions: list[str], mrr: pd.Series, contact: Contact) -> pd.DataFrame:
    """(customer x action) cost in the export's currency, from ``contact.costs``."""
    frames = []
    for action in actions:
        cost = contact.costs.get(action)
        fixed, months = (cost.fixed, cost.mrr_months) if cost is not None else (0.0, 0.0)
        frames.append(pd.DataFrame({"customer_id": mrr.index, "action": action,
                                    "cost": fixed + months * mrr.to_numpy(float)}))  # fmt: skip
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def contact_plan(
    model: UpliftModel | None,
    current: pd.DataFrame,
    config: RulesConfig,
    weeks: float = 1.0,
) -> tuple[pd.DataFrame, str]:
    """Who to contact this week: one row per current customer, best first, with
    ``risk_rank`` (1 = riskiest) beside ``uplift_rank`` and the reason.

    ``current``: one row per customer with the model's features, ``churn_probability``,
    ``mrr``, ``csm_owner`` and ``revenue_12m`` (the survival block's expected 12-month revenue,
    else MRR x 12). Without a usable effect model the plan is the risk ranking, said plainly.
    The budget is ``budget_per_csm_week`` contacts per CSM (``weeks`` of it)."""
    contact = config.contact
    ranked = current.sort_values(["churn_probability", "customer_id"], ascending=[False, True])
    ranked = ranked.assign(risk_rank=np.arange(1, len(ranked) + 1))
    base = ranked[["customer_id", "csm_owner", "churn_probability", "mrr", "revenue_12m",
                   "risk_rank"]]  # fmt: skip
    usable = [] if model is None else [a for a in model.actions if model.status(a) == OK]
    if not usable or current.empty:
        plan = base.assign(action=None, effect=math.nan, effect_low=math.nan,
                           effect_high=math.nan, revenue_saved=math.nan, uplift_rank=math.nan,
                           contact=False, reason="ranked by risk")  # fmt: skip
        return plan.reset_index(drop=True), RISK_FALLBACK
    assert model is not None
    predicted = model.predict(current)
    predicted = predicted[predicted["action"].isin(usable)]
    options = predicted.merge(
        action_costs(usable, current.set_index("customer_id")["mrr"], contact),
        on=["customer_id", "action"],
    ).merge(current[["customer_id", "revenue_12m", "csm_owner"]], on="customer_id")
    options["csm_owner"] = options["csm_owner"].fillna("unassigned")
    budget = round(contact.budget_per_csm_week * weeks)
    chosen = target(options, budget, config.holdout.share, config.holdout.seed,
                    group_by="csm_owner")  # fmt: skip
    chosen = chosen.assign(uplift_rank=np.arange(1, len(chosen) + 1))
    plan = base.merge(
        chosen[["customer_id", "action", "effect", "effect_low", "effect_high",
                "revenue_saved", "uplift_rank", "contact", "reason"]],
        on="customer_id", how="left",
    )  # fmt: skip
    plan["contact"] = plan["contact"].fillna(False).astype(bool)
    plan["reason"] = plan["reason"].fillna("no effect estimate for this customer")
    order = plan["uplift_rank"].fillna(len(plan) + plan["risk_rank"])
    plan = plan.iloc[np.argsort(order.to_numpy(float), kind="stable")]
    note = (
        f"Ranked by expected revenue saved (effect x 12-month revenue - cost) for "
        f"{', '.join(usable)}; {budget} contacts per CSM; predicted sleeping dogs are not "
        f"contacted; {config.holdout.share:.0%} of the selected are held out to keep measuring."
    )
    return plan.reset_index(drop=True), note


def targeting_comparison(plan: pd.DataFrame, budget: int) -> pd.DataFrame:
    """Expected revenue saved by the top ``budget`` customers of each ranking, with the
    customers' best predicted action (the uplift ranking's own estimate: an estimate, not a
    measurement; the hold-outs measure it later)."""
    if plan["revenue_saved"].isna().all() or budget <= 0:
        return pd.DataFrame(columns=["ranking", "customers", "expected_revenue_saved"])
    rows = []
    for name, key in (("by revenue saved", "uplift_rank"), ("by risk", "risk_rank")):
        top = plan.sort_values(key, kind="stable", na_position="last").head(budget)
        saved = float(top["revenue_saved"].fillna(0).sum())
        rows.append({"ranking": name, "customers": len(top), "expected_revenue_saved": saved})
    return pd.DataFrame(rows)


def current_customers(
    snapshot: pd.DataFrame, store: pd.DataFrame, facts: pd.DataFrame
) -> pd.DataFrame:
    """The customers to plan for: snapshot features + the store's probability and 12-month
    revenue (MRR x 12 without the survival block) + the CSM and MRR from the facts."""
    keep = ["customer_id", "churn_probability"] + (
        ["expected_revenue_12m"] if "expected_revenue_12m" in store.columns else []
    )
    frame = snapshot.merge(store[keep], on="customer_id", how="inner")
    frame["csm_owner"] = (
        frame["customer_id"].map(facts["csm_owner"]) if "csm_owner" in facts else None
    )
    if "mrr" not in frame:  # the feature when the export has subscriptions, else the facts'
        mrr = frame["customer_id"].map(facts["mrr"]) if "mrr" in facts else np.nan
        frame["mrr"] = pd.to_numeric(mrr, errors="coerce")
    frame["mrr"] = frame["mrr"].fillna(0.0)
    if "expected_revenue_12m" in frame:
        frame["revenue_12m"] = frame.pop("expected_revenue_12m").fillna(frame["mrr"] * 12)
    else:
        frame["revenue_12m"] = frame["mrr"] * 12
    return frame


def feature_inputs(features: pd.DataFrame) -> tuple[list[str], dict[str, list[str]]]:
    """The model inputs of a built feature table and the levels of its text columns (sorted:
    the same input gives the same encoding)."""
    from features.engine import feature_columns

    names = feature_columns(features)
    categories = {
        c: sorted(str(v) for v in features[c].dropna().unique())
        for c in names
        if not pd.api.types.is_numeric_dtype(features[c])
        and not pd.api.types.is_bool_dtype(features[c])
    }
    return names, categories


def fit_contact_model(
    rows: pd.DataFrame, features: pd.DataFrame | None, config: RulesConfig
) -> UpliftModel | None:
    """The per-customer effect model on every play's randomised alerts (a customer counts
    once), with the risk at the alert as an input; None while no action has enough data."""
    from training.uplift import fit_uplift, with_risk

    if features is None or not ready_actions(arm_counts(rows), ALL_PLAYS, config.contact):
        return None
    names, categories = feature_inputs(features)
    inputs, catalog = with_risk(names)
    pooled = rows.drop_duplicates("customer_id", keep="first")
    campaign = with_features(pooled, features)
    return fit_uplift(campaign, inputs, categories,
                      uplift_config(config.contact, config.holdout.seed), catalog)  # fmt: skip

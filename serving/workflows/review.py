"""Render the closed loop and the quarterly review as markdown (``churn report``) — the HTML
versions are the UI's templates over the same dicts, so both always show the same numbers."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from serving.workflows.loop import ClosedLoop

CORRELATIONAL = (
    "Customers with an intervention differ from those without before anyone acts: CSMs pick "
    "whom to call, and they pick the ones they expect to save (or the loudest). Their retention "
    "difference mixes the effect of the action with that choice, so it is correlation, not "
    "effect. Only the hold-out comparison, where a random draw decides who gets no action, "
    "measures what the actions change."
)


def fmt(value: Any, kind: str = "") -> str:
    """One cell: percentages, money, signed numbers; NaN and None as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "pct":
        return f"{float(value):.1%}"
    if kind == "signed_pct":
        return f"{float(value):+.1%}"
    if kind == "money":
        return f"{float(value):,.0f}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    return str(value)


PCT_COLUMNS = {
    "retention",
    "agreement",
    "verdict_precision",
    "untreated_churn_rate",
    "share_churned",
    "share_all",
    "avoidable_share",
    "churn_rate",
    "planned",
}
SIGNED = {"difference", "ci_low", "ci_high", "effect", "effect_low", "effect_high"}
MONEY = {"mrr", "mrr_at_alert", "revenue_12m", "revenue_saved", "expected_revenue_saved"}
EFFECT_TABLE = ["play", "action", "status", "effect", "ci_low", "ci_high", "n_treated",
                "n_control"]  # fmt: skip
CONTACT_TABLE = ["customer_id", "csm_owner", "risk_rank", "uplift_rank", "action", "effect",
                 "effect_low", "effect_high", "revenue_12m", "revenue_saved", "reason"]  # fmt: skip


def cell(column: str, value: Any) -> str:
    kind = (
        "pct"
        if column in PCT_COLUMNS
        else "signed_pct"
        if column in SIGNED
        else "money"
        if column in MONEY
        else ""
    )
    return fmt(value, kind)


def markdown_table(frame: pd.DataFrame | list[dict[str, Any]]) -> str:
    table = pd.DataFrame(frame) if isinstance(frame, list) else frame
    if table.empty:
        return "_none yet_\n"
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = [
        "| " + " | ".join(cell(str(c), v) for c, v in zip(table.columns, row, strict=True)) + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows]) + "\n"


def loop_markdown(loop: ClosedLoop) -> str:
    """``churn report``: the closed-loop page as markdown."""
    h = loop.holdout
    s = loop.mrr_saved
    parts = [
        f"# Retention workflows: closed loop (as of {loop.now[:10]})\n",
        "## Effect of actions: random hold-out\n",
        f"{h['verdict']}\n",
        f"- acted on: {h['treated_n']} alerts with a known outcome, "
        f"retention {fmt(h['treated_rate'], 'pct')}",
        f"- held out (no action): {h['holdout_n']}, retention {fmt(h['holdout_rate'], 'pct')}",
        f"- MRR saved: {fmt(s['estimate'], 'money')} (95 % CI {fmt(s['ci_low'], 'money')} "
        f"to {fmt(s['ci_high'], 'money')}); {s['basis']}",
        "- at-risk MRR still open (open risk alerts, no action yet): "
        f"{fmt(loop.at_risk_mrr_open, 'money')}\n",
        markdown_table(loop.holdout_by_tier),
        "## Retention and score change by tier and action type\n",
        markdown_table(loop.by_tier_action),
        "### With vs without intervention (correlational)\n",
        f"{CORRELATIONAL}\n",
        markdown_table(loop.with_without),
        "## Exit reasons\n",
        f"Avoidable share: {fmt(loop.avoidable_share, 'pct')}\n",
        markdown_table(loop.exit_by_month),
        "### Stated reasons vs the model's top driver groups\n",
        markdown_table(loop.stated_vs_model),
        *[f"- {d}" for d in loop.disagreements],
        "\n## Rule precision\n",
        markdown_table(loop.rule_precision),
        *contact_markdown(loop.play_effects, loop.contact_note, loop.targeting, loop.contact),
    ]
    if loop.goal:
        parts += [
            "## Retention goal\n",
            f"{loop.goal.get('status', '')}\n",
            markdown_table(loop.goal.get("months_table", [])),
        ]
    parts += [
        "## Open improvement actions\n",
        *([f"- {a}" for a in loop.open_actions] or ["_none_"]),
    ]
    return "\n".join(parts) + "\n"


def effect_notes(effects: pd.DataFrame) -> list[str]:
    """The plain reasons an action has no effect figure, once each."""
    if effects.empty:
        return []
    missing = effects[effects["status"] != "ok"]
    return sorted({f"{r.play} / {r.action}: {r.message}" for r in missing.itertuples()})


def contact_markdown(
    effects: pd.DataFrame,
    note: str,
    targeting: pd.DataFrame,
    plan: pd.DataFrame | None = None,
    top: int = 20,
) -> list[str]:
    """Who to contact: effects by play and action (AIPW on the randomised hold-outs, effect =
    reduction of churn probability), the ranking comparison, or why there is none."""
    parts = [
        "## Who to contact: effect of each play and action (randomised hold-outs)\n",
        "Effect = reduction of the churn probability over the outcome window (doubly robust "
        "AIPW, 95 % interval); positive = the action helps, negative = contact hurts.\n",
        markdown_table(effects[EFFECT_TABLE]) if not effects.empty else "_no decided alerts yet_\n",
        *[f"- {n}" for n in effect_notes(effects)],
    ]
    if note:
        parts += ["\n### Targeting\n", f"{note}\n"]
    if not targeting.empty:
        parts += [markdown_table(targeting)]
    if plan is not None and not plan.empty and plan["contact"].any():
        chosen = plan[plan["contact"]].head(top)
        parts += [f"Top {len(chosen)} to contact:\n", markdown_table(chosen[CONTACT_TABLE])]
    return parts


def monitoring_markdown(report: Any) -> str:
    """The model-monitoring section of the quarterly review: is the champion still what training
    promised (a :class:`training.monitoring.report.MonitoringReport`, or the reason there is
    none as a string)."""
    if isinstance(report, str):
        return f"## Model monitoring\n\n_unavailable: {report}_\n"
    parts = [
        "## Model monitoring\n",
        f"{report.model_name} v{report.model_version}, snapshot as of {report.as_of}, model data "
        f"{report.model_age_days} days old.\n",
        *([f"- **{a.kind}** {a.message}" for a in report.alarms] or ["- no alarm"]),
    ]
    if report.estimate is not None:
        e = report.estimate
        promised = report.promised.get("roc_auc")
        parts.append(
            f"\nEstimated ROC-AUC {e.roc_auc:.3f} (95 % {e.roc_auc_low:.3f} to "
            f"{e.roc_auc_high:.3f}; {report.trust})"
            + (f" against the promised {promised:.3f}" if promised is not None else "")
            + ".\n"
        )
    if len(report.realised):
        columns = [
            "as_of",
            "model_version",
            "rows",
            "roc_auc",
            "estimated_roc_auc",
            "pr_auc",
            "brier",
            "ece",
            "lift_top10",
        ]
        parts += [
            "### Realised quality of closed scorings\n",
            markdown_table(report.realised[columns].round(4)),
        ]
    drifted = report.features[report.features["significant"]]
    parts += [
        "### Drifted features\n",
        markdown_table(drifted[["feature", "share", "kind", "psi", "p_value"]].round(4)),
    ]
    return "\n".join(parts) + "\n"


def review_markdown(review: dict[str, Any], monitoring: Any = None) -> str:
    """The quarterly review (``churn report --quarter 2025Q1``) as markdown; ``monitoring``: the
    champion's monitoring report (or why there is none) for its own section."""
    h = review["holdout"]
    parts = [
        f"# Quarterly retention review {review['quarter']} "
        f"({review['start']} to {review['end']})\n",
        "## Churned customers\n",
        f"{review['churned']} customers churned; "
        f"{review['churned_alerted']} of them had an alert before.\n",
        markdown_table(review["churned_list"]),
        "## Common traits (over-represented among churned customers)\n",
        markdown_table(review["traits"]),
        "## Reasons\n",
        f"Avoidable share: {fmt(review['avoidable_share'], 'pct')}\n",
        markdown_table(review["reasons"]),
        *[f"- {d}" for d in review["disagreements"]],
        "\n## Strategy success rates\n",
        markdown_table(review["strategies"]),
        f"\nHold-out: {h['verdict']}\n",
        *contact_markdown(review["play_effects"], review["contact_note"], review["targeting"]),
        "## Rule precision\n",
        markdown_table(review["rule_precision"]),
    ]
    if review["goal"]:
        parts += ["## Goal\n", f"{review['goal'].get('status', '')}\n"]
    parts += [
        "## Open improvement actions\n",
        *([f"- {a}" for a in review["open_actions"]] or ["_none_"]),
    ]
    if monitoring is not None:
        parts += ["", monitoring_markdown(monitoring)]
    return "\n".join(parts) + "\n"

"""The model card: a markdown page a reviewer reads before trusting a model."""

from __future__ import annotations

from typing import Any

import pandas as pd

METRIC_ROWS = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("log_loss", "log loss"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("lift_top10", "lift, top 10 %"),
    ("recall_top10", "churners caught, top 10 %"),
    ("mrr_capture_top10", "at-risk MRR caught, top 10 %"),
)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.4f}"


def _capacity(result: Any) -> str:
    meta = result.model.meta
    params = meta.get("params", {})
    shape = ", ".join(f"{k} {params.get(k)}" for k in ("num_leaves", "max_depth",
                                                      "min_child_samples"))  # fmt: skip
    searched = (
        f"chosen on the validation window among {len(result.candidates)} shapes"
        if getattr(result, "candidates", None)
        else "fixed by the config"
    )
    return (
        f"{shape}, {meta.get('trees')} trees ({searched}); TreeSHAP "
        f"{getattr(result, 'shap_ms', float('nan')):.3f} ms per customer"
    )


def model_card(result: Any, label: str, data_description: str, version: str | None = None) -> str:
    """Markdown: data window, label, metrics vs baselines, top drivers, known limits."""
    metrics: dict[str, dict[str, float]] = result.metrics
    models = list(metrics)
    lines = [
        f"# Churn model card{f' - version {version}' if version else ''}",
        "",
        "## Data",
        f"- Source: {data_description}",
        f"- Split: {result.split.description}",
        f"- Label: {label}",
        f"- Features: {len(result.model.features)} used"
        + (
            f"; dropped as constant: {', '.join(result.dropped_features)}"
            if result.dropped_features
            else ""
        ),
        f"- Data fingerprint: `{result.data_fingerprint}`",
        f"- Export origin: {result.model.meta.get('origin', 'export')}; horizon "
        f"{result.model.horizon_days} days",
        "",
        "## What is served",
        f"- Capacity: {_capacity(result)}",
        f"- The served model: {result.model.meta.get('fitted_on', 'the held-out model')}.",
        "- The metrics below are those of the held-out model (same recipe, fitted before the "
        "test window and never on it); the served model has seen more data and should do at "
        "least as well, but no figure here is measured on it.",
        "",
        "## Test-window metrics (held out)",
        "",
        "| metric | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for key, title in METRIC_ROWS:
        lines.append(f"| {title} | " + " | ".join(_fmt(metrics[m].get(key)) for m in models) + " |")
    lines += ["", "## Top drivers (mean |SHAP| on the test window, calibrated log-odds)", ""]
    for row in result.importance.head(10).itertuples():
        info = result.model.info(str(row.feature))
        weight = f"{row.mean_abs_contribution:.4f}"
        lines.append(f"- **{row.feature}** ({info.group}): {info.description} - {weight}")
    lines += [
        "",
        "## Known limits",
        "- The probability is Platt-calibrated (out of fold for the refit model); if churn "
        "rates shift, recalibrate by retraining.",
        "- Customer attributes are read as they are today, not as they were at each as-of date.",
        "- Explanations are associations learned from history, not causes; the closed-loop report "
        "measures what interventions actually change.",
        "- The health score maps the probability through anchors set from the training churn rate "
        "(see docs/scoring.md).",
    ]
    return "\n".join(lines) + "\n"

"""Evaluation on a held-out window: ranking, calibration and the numbers a CS team acts on.

- Ranking: ROC-AUC, PR-AUC (average precision; its chance level is the churn rate).
- Calibration, for probabilities only: log loss, Brier score and the expected calibration error
  (ECE) over ``ECE_BINS`` = 10 *equal-frequency* bins. Churn probabilities pile up near the base
  rate, so equal-width bins would put most rows in one bin and leave the rest near-empty and
  noisy. A ranking score such as the health-score risk is not a probability: pass
  ``probability=False`` and its calibration metrics are NaN (not applicable), never misleading.
- Action: if the team calls the top 5/10/20 % of customers by risk, the share of churners
  caught (``recall_top10``), the lift over calling at random (``lift_top10`` = recall / share
  called) and the share of at-risk MRR (MRR of the churners) caught in the top 10 %.
  Ties at the cut-off share the remaining places pro rata, i.e. the expected value under a random
  tie-break, so a coarse score is not flattered or punished by row order.

Degenerate input raises (:class:`~features.errors.InsufficientDataError` when only one class is
present, :class:`~features.errors.ChurnError` for malformed arrays) rather than returning NaN,
so a broken test window never reaches a comparison table looking like a result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from rich.table import Table
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from features.errors import ChurnError, InsufficientDataError

ECE_BINS = 10
TOP_SHARES = (0.05, 0.10, 0.20)
MRR_TOP_SHARE = 0.10

# Row labels of ``metrics_table``, in display order.
METRIC_LABELS: dict[str, str] = {
    "rows": "Rows",
    "churn_rate": "Churn rate",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC (average precision)",
    "log_loss": "Log loss",
    "brier": "Brier score",
    "ece": f"ECE ({ECE_BINS} equal-frequency bins)",
    **{f"recall_top{round(s * 100)}": f"Churners caught, top {s:.0%}" for s in TOP_SHARES},
    **{f"lift_top{round(s * 100)}": f"Lift, top {s:.0%}" for s in TOP_SHARES},
    f"mrr_capture_top{round(MRR_TOP_SHARE * 100)}": f"At-risk MRR caught, top {MRR_TOP_SHARE:.0%}",
}
# time to churn (training.survival_eval): reported beside the classifier's, never by evaluate()
SURVIVAL_METRIC_LABELS: dict[str, str] = {
    "c_index_ipcw": "Uno's C (IPCW), to tau",
    "ibs": "Integrated Brier score",
    "tau_days": "tau (days)",
    "c_index_vs_oracle": "C / oracle's C",
    "revenue_12m_vs_truth": "12-month revenue / truth",
    "classifier_mean_abs_gap": "|1 - S(horizon) - classifier p|, mean",
    "classifier_mean_gap": "1 - S(horizon) - classifier p, portfolio",
}
HIGHER_IS_BETTER = frozenset(
    {
        "roc_auc",
        "pr_auc",
        "c_index_ipcw",
        *(k for k in METRIC_LABELS if k.startswith(("recall_", "lift_", "mrr_"))),
    }
)
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "ibs"})


class ReliabilityCurve(NamedTuple):
    """Per bin: mean predicted probability, observed churn rate, number of rows."""

    predicted: np.ndarray
    observed: np.ndarray
    rows: np.ndarray


def _as_labels(y: np.ndarray) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ChurnError(f"Labels must be one-dimensional, got shape {labels.shape}.")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ChurnError("Labels must be 0/1 (churned), found other values or missing labels.")
    return labels.astype(np.int64)


def _as_scores(p: np.ndarray, n: int, name: str = "scores") -> np.ndarray:
    scores = np.asarray(p, dtype=np.float64)
    if scores.shape != (n,):
        raise ChurnError(f"Expected {n} {name} (one per label), got shape {scores.shape}.")
    if not np.isfinite(scores).all():
        raise ChurnError(
            f"{name.capitalize()} contain {int((~np.isfinite(scores)).sum())} NaN or infinite "
            "values; score every row before evaluating."
        )
    return scores


def reliability_curve(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> ReliabilityCurve:
    """Observed vs predicted churn rate in ``bins`` equal-frequency bins of ``p``.

    Rows are sorted by ``p`` and cut into bins whose sizes differ by at most one, except that
    tied probabilities stay together (a bin then grows); empty bins are dropped.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    labels = _as_labels(y)
    probs = _as_scores(p, labels.size, "probabilities")
    if labels.size == 0:
        empty = np.array([], dtype=np.float64)
        return ReliabilityCurve(empty, empty, np.array([], dtype=np.int64))
    # Rank of the first of any tied probabilities: ties share a bin, whatever the row order.
    rank = np.searchsorted(np.sort(probs), probs, side="left")
    bin_of = rank * bins // labels.size
    count = np.bincount(bin_of, minlength=bins)
    keep = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(bin_of, weights=probs, minlength=bins) / count
        observed = np.bincount(bin_of, weights=labels, minlength=bins) / count
    return ReliabilityCurve(predicted[keep], observed[keep], count[keep])


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Row-weighted mean of |observed - predicted| over equal-frequency bins (0 = calibrated)."""
    curve = reliability_curve(y, p, bins)
    if curve.rows.sum() == 0:
        return math.nan
    gap = np.abs(curve.observed - curve.predicted)
    return float(np.sum(curve.rows * gap) / curve.rows.sum())


def gains_curve(
    y: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: share of rows called (highest score first) vs share of churners caught.

    With ``weight`` (e.g. MRR) the caught share is of the churners' total weight. Tied scores form
    one straight segment (random tie-break in expectation). Starts at (0, 0), ends at (1, 1);
    NaN if the churners' total weight is 0.
    """
    labels = _as_labels(y)
    scores = _as_scores(score, labels.size)
    gained = labels.astype(np.float64)
    if weight is not None:
        gained = gained * _as_scores(weight, labels.size, "weights")
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    # Last position of every group of tied scores: the curve's vertices.
    last = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    cumulative = np.cumsum(gained[order])
    total = cumulative[-1] if cumulative.size else 0.0
    share_called = np.r_[0.0, (last + 1) / labels.size]
    with np.errstate(invalid="ignore", divide="ignore"):
        share_caught = np.r_[0.0, cumulative[last] / total] if total > 0 else share_called * np.nan
    return share_called, share_caught


def captured_at(
    y: np.ndarray, score: np.ndarray, share: float, weight: np.ndarray | None = None
) -> float:
    """Share of churners (or of their ``weight``) among the top ``share`` of rows by score."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    called, caught = gains_curve(y, score, weight)
    return float(np.interp(share, called, caught))


def evaluate(
    y: np.ndarray,
    p: np.ndarray,
    mrr: np.ndarray | None = None,
    *,
    probability: bool = True,
    ece_bins: int = ECE_BINS,
) -> dict[str, float]:
    """Every metric of one scorer on one labeled window (keys: ``METRIC_LABELS``).

    ``p`` is a churn probability, or with ``probability=False`` any score where higher means
    riskier (calibration metrics are then NaN). ``mrr`` (per row, currency per month) enables the
    at-risk MRR capture; without it that metric is NaN.
    """
    labels = _as_labels(y)
    scores = _as_scores(p, labels.size)
    churners = int(labels.sum())
    if churners == 0 or churners == labels.size:
        only = "non-churners" if churners == 0 else "churners"
        raise InsufficientDataError(
            f"Cannot evaluate on {labels.size} rows that are all {only}: ranking metrics need "
            "both classes. Use a longer or later test window (more as-of dates)."
        )
    if probability and ((scores < 0).any() or (scores > 1).any()):
        raise ChurnError(
            f"Probabilities must lie in [0, 1], got range [{scores.min():.4g}, {scores.max():.4g}]."
            " For a ranking score pass probability=False."
        )

    metrics: dict[str, float] = {
        "rows": float(labels.size),
        "churn_rate": churners / labels.size,
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "log_loss": math.nan,
        "brier": math.nan,
        "ece": math.nan,
    }
    if probability:
        metrics["log_loss"] = float(log_loss(labels, scores, labels=[0, 1]))
        metrics["brier"] = float(brier_score_loss(labels, scores))
        metrics["ece"] = expected_calibration_error(labels, scores, ece_bins)

    called, caught = gains_curve(labels, scores)
    for share in TOP_SHARES:
        recall = float(np.interp(share, called, caught))
        metrics[f"recall_top{round(share * 100)}"] = recall
        metrics[f"lift_top{round(share * 100)}"] = recall / share

    mrr_key = f"mrr_capture_top{round(MRR_TOP_SHARE * 100)}"
    metrics[mrr_key] = math.nan
    if mrr is not None:
        revenue = _as_scores(mrr, labels.size, "MRR values")
        if (revenue < 0).any():
            raise ChurnError("MRR must be non-negative; found negative values.")
        metrics[mrr_key] = captured_at(labels, scores, MRR_TOP_SHARE, revenue)
    return metrics


def _cell(key: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if key == "rows":
        return f"{value:,.0f}"
    if key.startswith("lift_"):
        return f"{value:.2f}x"
    return f"{value:.3f}"


def metrics_table(results: Mapping[str, Mapping[str, float]], title: str | None = None) -> Table:
    """Scorers side by side (one column each, e.g. model vs baselines), best value in bold.

    "n/a" marks a metric that does not apply (calibration of a ranking score, MRR capture
    without MRR).
    """
    table = Table(title=title)
    table.add_column("Metric")
    for name in results:
        table.add_column(name, justify="right")
    labels = {**METRIC_LABELS, **SURVIVAL_METRIC_LABELS}
    keys = [k for k in labels if any(k in r for r in results.values())]
    keys += list(dict.fromkeys(k for r in results.values() for k in r if k not in labels))
    for key in keys:
        values = [float(r.get(key, math.nan)) for r in results.values()]
        finite = [v for v in values if not math.isnan(v)]
        best = None
        if len(finite) > 1 and key in HIGHER_IS_BETTER:
            best = max(finite)
        elif len(finite) > 1 and key in LOWER_IS_BETTER:
            best = min(finite)
        cells = [
            f"[bold]{_cell(key, v)}[/bold]" if best is not None and v == best else _cell(key, v)
            for v in values
        ]
        table.add_row(labels.get(key, key), *cells)
    return table


__all__ = [
    "ECE_BINS",
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "METRIC_LABELS",
    "MRR_TOP_SHARE",
    "SURVIVAL_METRIC_LABELS",
    "TOP_SHARES",
    "ReliabilityCurve",
    "captured_at",
    "evaluate",
    "expected_calibration_error",
    "gains_curve",
    "metrics_table",
    "reliability_curve",
]

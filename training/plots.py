"""Evaluation and explanation figures, returned as matplotlib ``Figure`` objects for MLflow.

Figures are built on the Agg canvas directly, without pyplot: no global figure registry to leak
or clear, safe in threads and servers, and nothing is shown. Log one with
``mlflow.log_figure(fig, "roc.png")``. Every plot is deterministic (no random jitter), so the
same run gives the same image.

``scores`` arguments map a scorer's name (``"model"``, ``"health_score"``, ...) to its scores on
the same rows as ``y``; higher means riskier. Curves come from ``training.evaluation`` so the
figures and the metrics table agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shap
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from training.evaluation import ECE_BINS, expected_calibration_error, gains_curve, reliability_curve

REFERENCE_STYLE: dict[str, Any] = {"color": "grey", "linestyle": "--", "linewidth": 1}


def _figure(width: float = 6.0, height: float = 5.0) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def plot_roc(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> Figure:
    """ROC curves of several scorers on one axes, with the chance diagonal (lines: n + 1)."""
    figure, ax = _figure()
    for name, score in scores.items():
        fpr, tpr, _ = roc_curve(y, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, score):.3f})")
    ax.plot([0, 1], [0, 1], label="chance", **REFERENCE_STYLE)
    ax.set(
        xlabel="False positive rate",
        ylabel="True positive rate (churners caught)",
        title="ROC",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return figure


def plot_precision_recall(y: np.ndarray, scores: Mapping[str, np.ndarray]) -> Figure:
    """Precision-recall curves with the churn rate as the chance level (lines: n + 1)."""
    figure, ax = _figure()
    for name, score in scores.items():
        precision, recall, _ = precision_recall_curve(y, score)
        ap = average_precision_score(y, score)
        ax.plot(recall, precision, drawstyle="steps-post", label=f"{name} (AP {ap:.3f})")
    rate = float(np.mean(y))
    ax.plot([0, 1], [rate, rate], label=f"chance (churn rate {rate:.3f})", **REFERENCE_STYLE)
    ax.set(
        xlabel="Recall (share of churners caught)",
        ylabel="Precision",
        title="Precision-recall",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="upper right")
    return figure


def plot_calibration(
    y: np.ndarray, probabilities: Mapping[str, np.ndarray], bins: int = ECE_BINS
) -> Figure:
    """Reliability diagram: observed vs predicted churn rate per equal-frequency bin.

    Probabilities only (not the health-score risk). Axes zoom to the data because churn
    probabilities sit near the base rate. Lines: n + 1 (the diagonal is perfect calibration).
    """
    figure, ax = _figure()
    top = 0.0
    for name, p in probabilities.items():
        curve = reliability_curve(y, p, bins)
        ece = expected_calibration_error(y, p, bins)
        ax.plot(curve.predicted, curve.observed, marker="o", label=f"{name} (ECE {ece:.3f})")
        top = max(top, float(np.max(curve.predicted, initial=0)), float(np.max(curve.observed)))
    top = min(1.0, top * 1.05) or 1.0
    ax.plot([0, top], [0, top], label="perfectly calibrated", **REFERENCE_STYLE)
    ax.set(
        xlabel="Mean predicted churn probability",
        ylabel="Observed churn rate",
        title=f"Calibration ({bins} equal-frequency bins)",
        xlim=(0, top),
        ylim=(0, top),
    )
    ax.legend(loc="upper left")
    return figure


def plot_gains(
    y: np.ndarray, scores: Mapping[str, np.ndarray], weight: np.ndarray | None = None
) -> Figure:
    """Cumulative gains: share of churners (or of their ``weight``, e.g. MRR) caught vs share
    of customers called, highest risk first. Lines: n + 2 (random and best possible).
    """
    figure, ax = _figure()
    for name, score in scores.items():
        called, caught = gains_curve(y, score, weight)
        ax.plot(called, caught, label=name)
    ax.plot([0, 1], [0, 1], label="random", **REFERENCE_STYLE)
    # Best possible: the churners first, largest weight first.
    perfect_score = np.asarray(y, dtype=np.float64) * (
        1.0 + (0.0 if weight is None else np.asarray(weight))
    )
    called, caught = gains_curve(y, perfect_score, weight)
    ax.plot(called, caught, label="best possible", color="black", linestyle=":", linewidth=1)
    what = "churners" if weight is None else "churners' weight (e.g. MRR)"
    ax.set(
        xlabel="Share of customers called (highest risk first)",
        ylabel=f"Share of {what} caught",
        title="Cumulative gains",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return figure


def plot_lift(y: np.ndarray, scores: Mapping[str, np.ndarray], points: int = 100) -> Figure:
    """Lift (churners caught / share called) vs share called; 1 = random (lines: n + 1)."""
    figure, ax = _figure()
    grid = np.linspace(1.0 / points, 1.0, points)
    for name, score in scores.items():
        called, caught = gains_curve(y, score)
        ax.plot(grid, np.interp(grid, called, caught) / grid, label=name)
    ax.plot([0, 1], [1, 1], label="random", **REFERENCE_STYLE)
    ax.set(
        xlabel="Share of customers called (highest risk first)",
        ylabel="Lift",
        title="Lift",
        xlim=(0, 1),
    )
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right")
    return figure


def _feature_contributions(contributions: np.ndarray, values: pd.DataFrame) -> np.ndarray:
    """Contributions aligned with ``values``' columns; a trailing bias column is dropped."""
    matrix = np.asarray(contributions, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != len(values):
        raise ValueError(
            f"contributions must be rows x features with {len(values)} rows, got {matrix.shape}"
        )
    if matrix.shape[1] == values.shape[1] + 1:
        matrix = matrix[:, :-1]
    if matrix.shape[1] != values.shape[1]:
        raise ValueError(
            f"contributions have {matrix.shape[1]} columns, values {values.shape[1]} features "
            "(a trailing bias column is allowed)"
        )
    return matrix


def top_features(contributions: np.ndarray, values: pd.DataFrame, top: int) -> list[str]:
    """The ``top`` features by mean |contribution| (ties in column order)."""
    matrix = _feature_contributions(contributions, values)
    order = np.argsort(-np.abs(matrix).mean(axis=0), kind="stable")[:top]
    return [str(values.columns[i]) for i in order]


def _numeric(column: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numbers to place or colour a column by; categories become codes (with their names)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan), None
    categorical = column.astype("category")
    codes = categorical.cat.codes.to_numpy().astype(np.float64)
    codes[codes < 0] = np.nan
    return codes, [str(c) for c in categorical.cat.categories]


def shap_explanation(contributions: np.ndarray, values: pd.DataFrame) -> shap.Explanation:
    """LightGBM's ``pred_contrib`` output as a ``shap.Explanation``, so ``shap.plots`` draws it.

    The per-request path keeps the raw contributions for speed; this is only for figures.
    Categories become their codes (``shap`` colours by number; missing stays NaN, drawn grey).
    """
    raw = np.asarray(contributions, dtype=np.float64)
    matrix = _feature_contributions(raw, values)
    bias = raw[:, -1] if raw.shape[1] == values.shape[1] + 1 else np.zeros(len(values))
    data = np.column_stack([_numeric(values[c])[0] for c in values.columns]).reshape(matrix.shape)
    return shap.Explanation(
        values=matrix,
        base_values=bias,
        data=data,
        feature_names=[str(c) for c in values.columns],
    )


@contextmanager
def _shap_drawing(seed: int = 0) -> Iterator[None]:
    """``shap.plots`` jitters with NumPy's global generator and may open pyplot figures.

    Seed the one and restore it after, and close only the figures the call opened, so the same
    run gives the same image and nothing leaks into a caller's pyplot session.
    """
    state = np.random.get_state()  # noqa: NPY002 (shap draws from the legacy global)
    before = set(plt.get_fignums())
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002
        for number in set(plt.get_fignums()) - before:
            plt.close(number)


def plot_shap_beeswarm(
    contributions: np.ndarray,
    values: pd.DataFrame,
    max_display: int = 15,
    xlabel: str = "Contribution to churn log-odds",
) -> Figure:
    """``shap``'s beeswarm of the top features: a dot per customer, x its contribution, colour
    its value (categories by code, missing grey). A trailing bias column is dropped.
    """
    explanation = shap_explanation(contributions, values)
    shown = min(max_display, values.shape[1])
    figure, ax = _figure(8.0, 0.45 * shown + 1.5)
    with _shap_drawing():
        shap.plots.beeswarm(
            explanation,
            max_display=shown,
            ax=ax,
            show=False,
            plot_size=None,
            group_remaining_features=False,
        )
    ax.set(xlabel=xlabel, title="Feature contributions")
    return figure


def plot_shap_dependence(
    contributions: np.ndarray,
    values: pd.DataFrame,
    features: Sequence[str] | None = None,
    top: int = 4,
    ylabel: str = "Contribution to churn log-odds",
) -> Figure:
    """``shap``'s dependence scatter, one panel per feature (``features`` or the ``top`` ones):
    its value against its contribution; categories are labelled by name.
    """
    explanation = shap_explanation(contributions, values)
    names = list(features) if features is not None else top_features(contributions, values, top)
    unknown = [n for n in names if n not in values.columns]
    if unknown:
        raise ValueError(f"features not in values: {', '.join(unknown)}")
    cols = min(2, max(1, len(names)))
    rows = max(1, -(-len(names) // cols))
    figure = Figure(figsize=(5.0 * cols, 3.8 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        with _shap_drawing():
            shap.plots.scatter(explanation[:, name], hist=False, ax=ax, show=False)
        categories = _numeric(values[name])[1]
        if categories is not None:
            ax.set_xticks(range(len(categories)), labels=categories, rotation=30, ha="right")
        ax.set(title=name, ylabel=ylabel)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return figure


__all__ = [
    "plot_calibration",
    "plot_gains",
    "plot_lift",
    "plot_precision_recall",
    "plot_roc",
    "plot_shap_beeswarm",
    "plot_shap_dependence",
    "shap_explanation",
    "top_features",
]

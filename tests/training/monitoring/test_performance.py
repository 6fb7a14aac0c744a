"""Performance before labels (CBPE) against a reference computation, and after labels."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from training.monitoring.performance import (
    closed_scorings,
    estimate_performance,
    estimated_roc_auc,
    realised_performance,
    simulated_roc_auc,
)


def _calibrated(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(1 / (1 + np.exp(-rng.normal(-2.3, 1.1, n))), 3)  # ties, as in real scores


def test_estimated_auc_is_the_mean_auc_of_labels_drawn_from_the_probabilities() -> None:
    """The reference: draw labels Bernoulli(p) many times and average sklearn's ROC-AUC."""
    p = _calibrated(2000, 0)
    rng = np.random.default_rng(1)
    draws = [roc_auc_score(rng.random(len(p)) < p, p) for _ in range(600)]
    assert estimated_roc_auc(p) == pytest.approx(np.mean(draws), abs=0.002)
    assert np.mean(simulated_roc_auc(p, 600, seed=2)) == pytest.approx(np.mean(draws), abs=0.002)


def test_estimated_auc_matches_nannymls_area_under_the_expected_roc_curve() -> None:
    """NannyML's CBPE: expected TP/FP at each threshold, area by the trapezoid rule; ours leaves
    out the self pairs, an O(1/n) difference."""
    p = _calibrated(5000, 3)
    order = np.argsort(-p, kind="stable")
    sorted_p = p[order]
    last = np.r_[np.flatnonzero(np.diff(sorted_p) != 0), len(p) - 1]
    tpr = np.r_[0, np.cumsum(sorted_p)[last] / sorted_p.sum()]
    fpr = np.r_[0, np.cumsum(1 - sorted_p)[last] / (1 - sorted_p).sum()]
    nannyml = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert estimated_roc_auc(p) == pytest.approx(nannyml, abs=5 / len(p))


def test_the_estimate_interval_covers_the_realised_auc_of_calibrated_scores() -> None:
    p = _calibrated(3000, 4)
    covered = 0
    for seed in range(20):
        y = np.random.default_rng(100 + seed).random(len(p)) < p
        estimate = estimate_performance(p)
        covered += estimate.roc_auc_low <= roc_auc_score(y, p) <= estimate.roc_auc_high
    assert covered >= 17
    assert estimate.churn_rate == pytest.approx(p.mean())


def test_only_scorings_whose_horizon_closed_are_realised() -> None:
    dates = [date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]
    assert closed_scorings(dates, 90, 0, date(2025, 5, 1)) == [date(2025, 1, 1)]
    assert closed_scorings(dates, 30, 14, date(2025, 3, 17)) == dates[:2]


def test_realised_metrics_drop_incomplete_labels_and_split_by_tier() -> None:
    rng = np.random.default_rng(5)
    n = 400
    p = _calibrated(n, 5)
    history = pd.DataFrame({"customer_id": [f"C{i}" for i in range(n)], "as_of": date(2025, 1, 1),
                            "model_version": "3", "churn_probability": p,
                            "tier": np.where(p > 0.2, "high", "healthy")})  # fmt: skip
    labels = history[["customer_id", "as_of"]].assign(
        churned=(rng.random(n) < p).astype(int), label_complete=np.arange(n) % 10 != 0
    )
    realised, tiers = realised_performance(history, labels, {"roc_auc": 0.99})
    keep = labels["label_complete"].to_numpy()
    assert realised.loc[0, "rows"] == keep.sum()
    assert realised.loc[0, "roc_auc"] == pytest.approx(
        roc_auc_score(labels["churned"][keep], p[keep])
    )
    assert bool(realised.loc[0, "below_promised"])
    assert tiers["rows"].sum() == keep.sum()

"""Evaluation metrics (``training.evaluation``) against tiny examples worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rich.console import Console

from features.errors import ChurnError, InsufficientDataError
from training.evaluation import (
    METRIC_LABELS,
    captured_at,
    evaluate,
    expected_calibration_error,
    gains_curve,
    metrics_table,
    reliability_curve,
)


def _ranked(churners_at: list[int], rows: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Labels with churners at the given ranks (0 = riskiest) and a strictly decreasing score."""
    y = np.zeros(rows, dtype=int)
    y[churners_at] = 1
    return y, np.linspace(1.0, 0.0, rows)


def test_a_perfect_ranking_has_roc_auc_and_pr_auc_of_1() -> None:
    y = np.array([0, 0, 0, 1, 1])
    metrics = evaluate(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert evaluate(y, np.array([0.9, 0.8, 0.7, 0.2, 0.1]))["roc_auc"] == 0.0


def test_log_loss_and_brier_match_the_hand_computed_values() -> None:
    metrics = evaluate(np.array([1, 0]), np.array([0.8, 0.4]))
    assert metrics["brier"] == pytest.approx((0.2**2 + 0.4**2) / 2)
    assert metrics["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)


def test_ece_of_a_perfectly_calibrated_set_of_bins_is_zero() -> None:
    # 10 equal-frequency bins of 10 rows; in the bin predicting k/10, k rows churn.
    p = np.repeat(np.arange(10) / 10, 10)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(10 - k)] for k in range(10)]).astype(int)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    assert evaluate(y, p)["ece"] == pytest.approx(0.0, abs=1e-12)


def test_ece_of_a_constant_overprediction_is_the_gap_whatever_the_row_order() -> None:
    # tied probabilities share one bin: row order must not split churners from the rest
    y = np.r_[np.ones(10), np.zeros(90)].astype(int)
    assert expected_calibration_error(y, np.full(100, 0.5)) == pytest.approx(0.4)
    assert expected_calibration_error(y[::-1], np.full(100, 0.5)) == pytest.approx(0.4)


def test_reliability_bins_hold_equal_numbers_of_rows() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, 25)
    curve = reliability_curve(rng.integers(0, 2, 25), p, bins=10)
    assert curve.rows.sum() == 25
    assert set(curve.rows.tolist()) <= {2, 3}
    assert np.all(np.diff(curve.predicted) >= 0)
    # fewer rows than bins: empty bins are dropped, not NaN
    assert len(reliability_curve(np.array([0, 1, 0]), np.array([0.1, 0.5, 0.2]), 10).rows) == 3


def test_lift_and_churners_caught_in_the_top_5_10_20_percent() -> None:
    # 10 churners in 100 rows: 3 in the top 5, 4 in the top 10, 6 in the top 20.
    y, score = _ranked([0, 2, 4, 7, 12, 15, 30, 50, 70, 90])
    metrics = evaluate(y, score)
    assert metrics["recall_top5"] == pytest.approx(0.3)
    assert metrics["lift_top5"] == pytest.approx(6.0)  # 3/5 called churn vs 10 % base rate
    assert metrics["recall_top10"] == pytest.approx(0.4)
    assert metrics["lift_top10"] == pytest.approx(4.0)
    assert metrics["recall_top20"] == pytest.approx(0.6)
    assert metrics["lift_top20"] == pytest.approx(3.0)


def test_tied_scores_at_the_cut_off_share_the_places_pro_rata() -> None:
    # a constant score cannot rank: calling 10 % catches 10 % of churners whatever the row order
    y, _ = _ranked([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    metrics = evaluate(y, np.full(100, 0.3))
    assert metrics["recall_top10"] == pytest.approx(0.1)
    assert metrics["lift_top10"] == pytest.approx(1.0)


def test_at_risk_mrr_caught_in_the_top_10_percent() -> None:
    # 10 rows: the top 10 % is the riskiest row, a churner paying 300 of the churners' 400.
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    score = np.linspace(1.0, 0.1, 10)
    mrr = np.array([300.0, 5000, 5000, 100, 0, 0, 0, 0, 0, 0])
    assert evaluate(y, score, mrr)["mrr_capture_top10"] == pytest.approx(0.75)
    assert captured_at(y, score, 0.4, mrr) == pytest.approx(1.0)
    assert math.isnan(evaluate(y, score)["mrr_capture_top10"])


def test_gains_curve_runs_from_nobody_called_to_everybody_called() -> None:
    y, score = _ranked([1, 3], rows=4)
    called, caught = gains_curve(y, score)
    assert called.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert caught.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0]


def test_a_ranking_score_gets_no_calibration_metrics() -> None:
    y = np.array([0, 1, 0, 1])
    metrics = evaluate(y, np.array([10.0, 70.0, 20.0, 40.0]), probability=False)
    assert metrics["roc_auc"] == 1.0
    assert all(math.isnan(metrics[k]) for k in ("log_loss", "brier", "ece"))


def test_a_probability_outside_0_1_asks_for_probability_false() -> None:
    with pytest.raises(ChurnError, match="probability=False"):
        evaluate(np.array([0, 1]), np.array([0.2, 1.5]))


def test_one_class_only_is_insufficient_data() -> None:
    with pytest.raises(InsufficientDataError, match="all non-churners"):
        evaluate(np.zeros(5, dtype=int), np.linspace(0, 1, 5))
    with pytest.raises(InsufficientDataError, match="all churners"):
        evaluate(np.ones(5, dtype=int), np.linspace(0, 1, 5))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        (np.array([0, 1, 1]), np.array([0.1, 0.2]), "Expected 3 scores"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "1 NaN or infinite"),
        (np.array([0, 2]), np.array([0.1, 0.2]), "must be 0/1"),
        (np.array([0.0, np.nan]), np.array([0.1, 0.2]), "must be 0/1"),
    ],
)
def test_malformed_input_is_rejected_with_a_reason(
    y: np.ndarray, p: np.ndarray, message: str
) -> None:
    with pytest.raises(ChurnError, match=message):
        evaluate(y, p)


def test_every_metric_is_reported_under_a_known_key() -> None:
    y, score = _ranked([0, 5, 50])
    assert set(evaluate(y, score, np.ones(100))) == set(METRIC_LABELS)


def test_metrics_table_puts_scorers_side_by_side_and_marks_not_applicable() -> None:
    y, score = _ranked([0, 5, 50])
    results = {
        "model": evaluate(y, score * 0.5),
        "health_score": evaluate(y, 1 - score, probability=False),
    }
    table = metrics_table(results, title="test window")
    assert [c.header for c in table.columns] == ["Metric", "model", "health_score"]
    assert table.row_count == len(METRIC_LABELS)
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert "ROC-AUC" in text
    assert "n/a" in text  # calibration of the health score, MRR capture without MRR

"""The hand-weighted health score (``training.health_score``) on small hand-made frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from features.engine import build_labeled_set
from features.errors import ChurnError, InsufficientDataError
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import default_as_of
from training.health_score import (
    TIERS,
    UNKNOWN_TIER,
    HealthScore,
    HealthScoreConfigError,
    config_from_mapping,
    load_config,
    tier_of,
)

# Two sub-scores, one indicator each, so every number can be worked out by hand.
SMALL = config_from_mapping(
    {
        "sub_scores": {
            "usage": {"weight": 0.6, "indicators": {"active_days_30d": "higher"}},
            "commercial": {"weight": 0.4, "indicators": {"invoices_late_180d": "lower"}},
        }
    }
)


def _train(rows: int = 200, seed: int = 0) -> pd.DataFrame:
    """A training population with every default indicator, plausible ranges, some gaps."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "active_days_30d": rng.integers(0, 30, rows).astype(float),
            "events_30d": rng.poisson(20, rows).astype(float),
            "seat_utilization_30d": rng.uniform(0, 1, rows),
            "activity_change_30d": rng.normal(0, 0.5, rows),
            "core_breadth_30d": rng.integers(0, 6, rows).astype(float),
            "open_tickets": rng.poisson(0.3, rows).astype(float),
            "high_priority_open": rng.poisson(0.1, rows).astype(float),
            "low_csat_90d": rng.poisson(0.1, rows).astype(float),
            "csat_90d": rng.uniform(1, 5, rows),
            "tickets_30d": rng.poisson(0.8, rows).astype(float),
            "invoices_late_180d": rng.poisson(0.6, rows).astype(float),
            "payment_delay_days_180d": rng.exponential(3, rows),
            "mrr_change_90d": rng.normal(0, 0.1, rows),
            "downgrades_180d": rng.poisson(0.1, rows).astype(float),
            "nps_last": rng.integers(0, 11, rows).astype(float),
            "marketing_opens_90d": rng.poisson(2, rows).astype(float),
            "days_since_last_activity": rng.exponential(3, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.3, "csat_90d"] = np.nan
    frame.loc[rng.random(rows) < 0.4, "nps_last"] = np.nan
    return frame


def test_score_is_the_hand_computed_weighted_mean_of_percentile_ranks() -> None:
    train = pd.DataFrame(
        {"active_days_30d": [0.0, 10, 20, 30], "invoices_late_180d": [0.0, 0, 1, 2]}
    )
    health = HealthScore.fit(train, SMALL)
    row = pd.DataFrame({"active_days_30d": [20.0], "invoices_late_180d": [1.0]})
    # active 20 is >= 3 of 4 training values: 75; 1 late invoice is <= 2 of 4: 50.
    assert health.indicator_scores(row).iloc[0].tolist() == [75.0, 50.0]
    assert health.score(row).iloc[0] == pytest.approx(0.6 * 75 + 0.4 * 50)
    assert health.risk(row).iloc[0] == pytest.approx(1 - (0.6 * 75 + 0.4 * 50) / 100)


def test_a_common_healthy_value_scores_100_because_ties_count_in_the_customers_favour() -> None:
    train = pd.DataFrame({"active_days_30d": [5.0] * 4, "invoices_late_180d": [0.0, 0, 0, 3]})
    health = HealthScore.fit(train, SMALL)
    scores = health.indicator_scores(
        pd.DataFrame({"active_days_30d": [5.0], "invoices_late_180d": [0.0]})
    )
    assert scores.iloc[0].tolist() == [100.0, 100.0]


def test_customers_with_more_late_invoices_score_lower() -> None:
    train = _train()
    health = HealthScore.fit(train, load_config())
    customers = pd.concat([train.iloc[[0]]] * 3, ignore_index=True)
    customers["invoices_late_180d"] = [0.0, 1.0, 4.0]
    scores = health.score(customers).to_numpy()
    assert scores[0] > scores[1] > scores[2]


def test_customers_more_active_score_higher() -> None:
    train = _train()
    health = HealthScore.fit(train, load_config())
    customers = pd.concat([train.iloc[[1]]] * 2, ignore_index=True)
    customers["active_days_30d"] = [2.0, 25.0]
    low, high = health.score(customers).to_numpy()
    assert high > low


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 50),
    shift=st.floats(-100, 100, allow_nan=False),
)
def test_score_lies_between_0_and_100_even_outside_the_training_range(
    seed: int, rows: int, shift: float
) -> None:
    health = HealthScore.fit(_train(rows, seed), load_config())
    scored = _train(30, seed + 1) + shift
    scores = health.score(scored)
    assert scores.notna().all()
    assert ((scores >= 0) & (scores <= 100)).all()


def test_scaling_is_fitted_on_training_rows_only_so_a_row_scores_the_same_in_any_batch() -> None:
    train, test = _train(seed=1), _train(seed=2)
    health = HealthScore.fit(train, load_config())
    batch = health.score(test)
    single = pd.concat([health.score(test.iloc[[i]]) for i in range(5)])
    np.testing.assert_allclose(single.to_numpy(), batch.iloc[:5].to_numpy())
    # a batch of extreme customers does not move anyone else's score
    extreme = pd.concat([test.iloc[:5], test.iloc[5:] * 100])
    np.testing.assert_allclose(health.score(extreme).iloc[:5], batch.iloc[:5])


def test_weights_renormalise_when_a_group_is_absent_from_the_data_set() -> None:
    without_engagement = _train().drop(
        columns=["nps_last", "marketing_opens_90d", "days_since_last_activity"]
    )
    health = HealthScore.fit(without_engagement, load_config())
    assert set(health.skipped) == {"nps_last", "marketing_opens_90d", "days_since_last_activity"}
    subs = health.sub_scores(without_engagement)
    assert list(subs.columns) == ["usage", "support", "commercial"]
    expected = (0.40 * subs["usage"] + 0.25 * subs["support"] + 0.20 * subs["commercial"]) / 0.85
    np.testing.assert_allclose(health.score(without_engagement), expected)


def test_a_data_set_without_nps_still_gets_a_score_from_the_other_engagement_indicators() -> None:
    train = _train().drop(columns=["nps_last"])
    health = HealthScore.fit(train, load_config())
    assert health.skipped == ("nps_last",)
    assert "engagement" in health.sub_scores(train).columns
    assert health.score(train).notna().all()


def test_a_missing_indicator_value_is_skipped_in_that_rows_sub_score() -> None:
    train = _train()
    health = HealthScore.fit(train, load_config())
    row = train.iloc[[0]].copy()
    row["csat_90d"] = np.nan
    indicators = health.indicator_scores(row)
    support = ["open_tickets", "high_priority_open", "low_csat_90d", "tickets_30d"]
    assert health.sub_scores(row)["support"].iloc[0] == pytest.approx(
        indicators[support].iloc[0].mean()
    )


def test_a_row_with_no_data_at_all_has_no_score_and_an_unknown_tier() -> None:
    health = HealthScore.fit(_train(), load_config())
    empty = _train().iloc[[0]] * np.nan
    assert math.isnan(health.score(empty).iloc[0])
    assert health.tier(empty).iloc[0] == UNKNOWN_TIER


def test_scoring_a_frame_without_a_trained_indicator_names_the_column() -> None:
    health = HealthScore.fit(_train(), load_config())
    with pytest.raises(ChurnError, match="nps_last"):
        health.score(_train().drop(columns=["nps_last"]))


def test_fitting_without_any_indicator_is_insufficient_data() -> None:
    with pytest.raises(InsufficientDataError, match="active_days_30d"):
        HealthScore.fit(pd.DataFrame({"mrr": [1.0, 2.0]}), load_config())
    with pytest.raises(InsufficientDataError, match="empty"):
        HealthScore.fit(_train().iloc[:0], load_config())


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (100.0, "healthy"),
        (80.0, "healthy"),
        (79.99, "low"),
        (60.0, "low"),
        (59.99, "medium"),
        (40.0, "medium"),
        (39.99, "high"),
        (0.0, "high"),
        (math.nan, UNKNOWN_TIER),
    ],
)
def test_tiers_at_exact_boundaries(score: float, tier: str) -> None:
    assert tier_of(score) == tier
    assert tier_of(np.array([score])).tolist() == [tier]


def test_tiers_follow_configured_thresholds() -> None:
    config = SMALL.model_copy(
        update={"tiers": SMALL.tiers.model_copy(update={"healthy": 90.0, "low": 70.0})}
    )
    train = pd.DataFrame({"active_days_30d": [0.0, 10, 20, 30], "invoices_late_180d": [0.0] * 4})
    # scores: 0.6 * [25, 50, 75, 100] + 0.4 * 100 = [55, 70, 85, 100]
    tiers = HealthScore.fit(train, config).tier(train).tolist()
    assert tiers == ["medium", "low", "low", "healthy"]
    assert set(tiers) <= set(TIERS)


def test_packaged_default_config_has_the_documented_weights_and_tiers() -> None:
    config = load_config()
    weights = {name: sub.weight for name, sub in config.sub_scores.items()}
    assert weights == {"usage": 0.40, "support": 0.25, "commercial": 0.20, "engagement": 0.15}
    assert config.tiers.bounds == (80.0, 60.0, 40.0)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "health.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_missing_config_file_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(HealthScoreConfigError, match=r"not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(HealthScoreConfigError, match=r"health\.yaml is not valid YAML"):
        load_config(_write(tmp_path, "sub_scores: [usage: {weight: 1\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list", "must be a mapping"),
        (
            "sub_scores:\n  usage:\n    weight: -1\n    indicators: {events_30d: higher}\n",
            r"sub_scores\.usage\.weight: Input should be greater than or equal to 0",
        ),
        (
            "sub_scores:\n  usage:\n    weigth: 1\n    indicators: {events_30d: higher}\n",
            r"sub_scores\.usage\.weigth: Extra inputs are not permitted",
        ),
        (
            "sub_scores:\n  usage:\n    weight: 1\n    indicators: {logins_per_day: higher}\n",
            "'logins_per_day' is not a feature of features/catalog.py",
        ),
        (
            "sub_scores:\n  usage:\n    weight: 1\n    indicators: {plan: higher}\n",
            "'plan' is categorical",
        ),
        (
            "sub_scores:\n  usage:\n    weight: 1\n    indicators: {events_30d: up}\n",
            r"sub_scores\.usage\.indicators\.events_30d: Input should be 'higher' or 'lower'",
        ),
        (
            "sub_scores:\n  usage:\n    weight: 0\n    indicators: {events_30d: higher}\n",
            "at least one sub-score needs a weight above 0",
        ),
        (
            "sub_scores:\n"
            "  usage: {weight: 1, indicators: {events_30d: higher}}\n"
            "  other: {weight: 1, indicators: {events_30d: higher}}\n",
            "'events_30d' is in both 'usage' and 'other'",
        ),
        (
            "sub_scores:\n  usage: {weight: 1, indicators: {events_30d: higher}}\n"
            "tiers: {healthy: 50, low: 60, medium: 40}\n",
            "100 >= healthy > low > medium >= 0",
        ),
    ],
)
def test_config_errors_name_the_offending_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(HealthScoreConfigError, match=message):
        load_config(_write(tmp_path, text))


@pytest.fixture(scope="module")
def generated_labeled_set() -> pd.DataFrame:
    world = generate_world(800, 12, seed=3)
    labeled = build_labeled_set(world.tables, default_as_of(world.tables), LabelSpec())
    return labeled[labeled["label_complete"]].reset_index(drop=True)


def test_health_score_ranks_churners_as_riskier_on_a_generated_world(
    generated_labeled_set: pd.DataFrame,
) -> None:
    labeled = generated_labeled_set
    dates = sorted(labeled["as_of"].unique())
    train, test = labeled[labeled["as_of"] < dates[-3]], labeled[labeled["as_of"] >= dates[-3]]
    health = HealthScore.fit(train, load_config())
    assert health.skipped == ()
    assert roc_auc_score(test["churned"], health.risk(test)) > 0.65
    tiers = health.tier(test)
    healthy = test.loc[tiers == "healthy", "churned"].mean()
    at_risk = test.loc[tiers.isin(["medium", "high"]), "churned"].mean()
    assert at_risk > healthy


def test_a_config_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "sub_scores:\n  usage:\n    weight: 1\n    indicators:\n"
                  "      events_30d: upward\n")  # fmt: skip
    with pytest.raises(HealthScoreConfigError) as caught:
        load_config(path)
    assert f"{path}, line 5, key sub_scores.usage.indicators.events_30d: Input should be" in str(
        caught.value
    )

"""The hazard model (training/survival.py): renewal-aware hazards, consistency with the
classifier, curves and money numbers that follow from the hazards."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from features.contract import RawTables
from features.engine import build_labeled_set, monthly_as_of
from features.labels import LabelSpec
from training.fit import categorical_levels
from training.periods import period_grid, person_periods, truncate_followup
from training.pipeline import TrainConfig, train, usable_features
from training.survival import (
    CONSISTENCY_TOLERANCE,
    PORTFOLIO_TOLERANCE,
    SurvivalModel,
    fit_survival,
    median_days,
    outcomes,
    refit_survival,
    restricted_mean,
    survival_at,
    survival_test_date,
    train_survival,
)

UNTIL = date(2025, 12, 31)


def _contract_world(customers: int, seed: int) -> RawTables:
    """Annual customers can leave only on an anniversary (35 % do); monthly ones any day."""
    rng = np.random.default_rng(seed)
    subs = []
    for i in range(customers):
        signup = date(2022, 1, 1) + timedelta(days=int(rng.integers(0, 730)))
        annual = rng.random() < 0.5
        if annual:
            end, year = None, 1
            while end is None:
                renewal = signup + timedelta(days=365 * year)
                if renewal > UNTIL:
                    break
                if rng.random() < 0.35:
                    end = renewal
                year += 1
        else:
            days = int(rng.geometric(0.04 / 30))
            end = signup + timedelta(days=days) if signup + timedelta(days=days) <= UNTIL else None
        subs.append((f"c{i:04d}", signup, end, 100.0, "annual" if annual else "monthly"))
    subscriptions = pd.DataFrame(
        {
            "subscription_id": [f"s{i}" for i in range(len(subs))],
            "customer_id": pd.Series([s[0] for s in subs], dtype="string"),
            "start_date": [s[1] for s in subs],
            "end_date": [s[2] for s in subs],
            "mrr": [s[3] for s in subs],
            "plan": [s[4] for s in subs],
        }
    )
    customers_frame = pd.DataFrame(
        {
            "customer_id": [s[0] for s in subs],
            "signup_date": [s[1] for s in subs],
            "plan": [s[4] for s in subs],
        }
    )
    return RawTables(customers=customers_frame, subscriptions=subscriptions)


@pytest.fixture(scope="module")
def renewal_model() -> tuple[SurvivalModel, pd.DataFrame]:
    tables = _contract_world(1500, seed=5)
    labeled = build_labeled_set(
        tables, monthly_as_of(date(2024, 1, 1), UNTIL), LabelSpec(observed_until=UNTIL)
    )
    features, _ = usable_features(labeled, np.ones(len(labeled), dtype=bool))
    model, _ = fit_survival(labeled, features, categorical_levels(labeled, features), 90)
    return model, labeled


def test_annual_customer_7_months_before_renewal_has_near_zero_hazard_until_then(
    renewal_model: tuple[SurvivalModel, pd.DataFrame],
) -> None:
    model, labeled = renewal_model
    annual = labeled[(labeled["plan"] == "annual") & labeled["days_to_renewal"].between(205, 225)]
    assert len(annual) > 20
    hazards = model.hazards(annual)
    renewal_period = int(np.searchsorted(model.grid, 215, side="right") - 1)
    before = hazards[:, :renewal_period]
    assert np.median(before.max(axis=1)) < 0.01  # near zero in each month until the renewal
    assert np.median(hazards[:, renewal_period]) > 0.15  # the renewal month carries the risk
    # a monthly customer of the same row carries risk every month instead
    monthly = labeled[labeled["plan"] == "monthly"]
    assert np.median(model.hazards(monthly)[:, :renewal_period]) > 0.01


def test_annual_renewal_probability_is_read_at_the_renewal(
    renewal_model: tuple[SurvivalModel, pd.DataFrame],
) -> None:
    model, labeled = renewal_model
    annual = labeled[labeled["plan"] == "annual"].head(200)
    result = outcomes(model, annual)
    assert result["p_renew_next"].between(0.45, 0.85).mean() > 0.9  # 65 % renew in this world


def test_survival_model_agrees_with_the_classifier_within_tolerance(
    small_labeled: pd.DataFrame,
) -> None:
    result = train(small_labeled, TrainConfig(capacity_search=False, refit=False))
    classifier = result.model
    model, _ = fit_survival(
        small_labeled, classifier.features, classifier.categories, classifier.horizon_days
    )
    latest = small_labeled[small_labeled["as_of"] == small_labeled["as_of"].max()]
    p = classifier.probability(classifier.encode(latest))
    from_survival = outcomes(model, latest)[f"p_churn_{classifier.horizon_days}d"].to_numpy()
    assert np.abs(from_survival - p).mean() <= CONSISTENCY_TOLERANCE
    assert abs(from_survival.mean() - p.mean()) <= PORTFOLIO_TOLERANCE
    assert np.corrcoef(from_survival, p)[0, 1] > 0.8


def test_curves_from_constant_hazard_match_the_closed_form() -> None:
    grid = np.array([0, 30, 60, 90])
    hazards = np.full((1, 3), 0.1)
    s = survival_at(hazards, grid, np.array([0.0, 45.0, 90.0]))[0]
    assert s == pytest.approx([1.0, 0.9**1.5, 0.9**3])
    rate = -np.log(0.9) / 30
    assert restricted_mean(hazards, grid, 90.0)[0] == pytest.approx((1 - np.exp(-rate * 90)) / rate)
    assert np.isnan(median_days(hazards, grid)[0])  # S(90) = 0.73 > 1/2
    assert median_days(np.full((1, 3), 0.5), grid)[0] == pytest.approx(30.0)


def test_survival_model_round_trips_through_its_files(
    renewal_model: tuple[SurvivalModel, pd.DataFrame], tmp_path: pd.DataFrame
) -> None:
    model, labeled = renewal_model
    loaded = SurvivalModel.load(model.save(tmp_path))
    rows = labeled.head(50)
    assert np.array_equal(loaded.hazards(rows), model.hazards(rows))


def test_contributions_sum_to_the_calibrated_hazard_logit(
    renewal_model: tuple[SurvivalModel, pd.DataFrame],
) -> None:
    model, labeled = renewal_model
    rows = labeled.head(30)
    contributions = model.contributions(rows, period=2)
    logit = np.log(model.hazards(rows)[:, 2] / (1 - model.hazards(rows)[:, 2]))
    assert contributions.sum(axis=1) == pytest.approx(logit, abs=1e-6)


def test_revenue_and_ltv_follow_mrr_and_margin(
    renewal_model: tuple[SurvivalModel, pd.DataFrame],
) -> None:
    model, labeled = renewal_model
    rows = labeled.head(40).copy()
    base = outcomes(model, rows, gross_margin=0.5)
    assert (base["expected_revenue_12m"] <= 12 * rows["mrr"] + 1e-9).all()
    assert (base["revenue_at_risk_12m"] >= -1e-9).all()
    richer = rows.assign(mrr=rows["mrr"] * 2)
    doubled = outcomes(model, richer, gross_margin=1.0)
    assert doubled["expected_ltv"].to_numpy() == pytest.approx(4 * base["expected_ltv"].to_numpy())


def test_measured_hazard_model_is_the_served_recipe_fitted_on_every_customer_before_the_test(
    small_labeled: pd.DataFrame,
) -> None:
    """The metrics used to describe the early-stopped model fitted on 80 % of the customers;
    the served model is refit on all of them, so the measured one must be too."""
    features, _ = usable_features(small_labeled, np.ones(len(small_labeled), dtype=bool))
    levels = categorical_levels(small_labeled, features)
    result = train_survival(small_labeled, features, levels, 90)
    test_date = survival_test_date(small_labeled, 365, 90)
    before = (pd.to_datetime(small_labeled["as_of"]) < test_date).to_numpy()
    train_rows = truncate_followup(small_labeled[before], test_date).reset_index(drop=True)
    early, _ = fit_survival(train_rows, features, levels, 90)
    recipe = refit_survival(early, train_rows)
    periods = person_periods(train_rows, period_grid(90, 365))
    assert result.heldout.meta["person_periods"] == len(periods)
    rows = small_labeled[(pd.to_datetime(small_labeled["as_of"]) == test_date).to_numpy()]
    assert np.array_equal(result.heldout.hazards(rows), recipe.hazards(rows))
    assert not np.array_equal(early.hazards(rows), recipe.hazards(rows))
    # the served model: the same tree count on the whole follow-up, test window included
    assert result.model.meta["trees"] == result.heldout.meta["trees"] == early.meta["trees"]
    assert result.model.meta["person_periods"] > len(periods)

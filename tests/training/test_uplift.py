"""Effect estimates and targeting (training/uplift.py, training/uplift_eval.py) on simulated
randomised campaigns whose true effects are planted in the test."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.catalog import feature_info
from features.errors import ChurnError
from training.uplift import (
    CONTROL,
    NOT_ENOUGH,
    OK,
    POOR_OVERLAP,
    Calibration,
    UpliftConfig,
    UpliftModel,
    average_effects,
    fit_uplift,
    target,
    with_risk,
)
from training.uplift_eval import auuc, qini_coefficient, qini_curve, revenue_saved

FEATURES = ["mrr", "logins_30d"]
FAST = UpliftConfig(folds=3, outcome_trees=60, effect_trees=80)


def campaign(
    n: int,
    effect: object,
    holdout_share: float = 0.5,
    seed: int = 0,
    assign: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Randomised ``call`` vs hold-out; P(churn | hold-out) = p0(x), call lowers it by tau(x)."""
    rng = np.random.default_rng(seed)
    mrr = rng.lognormal(6.0, 1.0, n)
    logins = rng.poisson(20, n).astype(float)
    p0 = np.clip(0.10 + 0.10 * (logins < 15), 0, 1)
    tau = np.asarray(effect(logins) if callable(effect) else np.full(n, effect))
    treated = rng.random(n) >= holdout_share if assign is None else assign
    churned = rng.random(n) < np.where(treated, p0 - tau, p0)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "action": np.where(treated, "call", CONTROL),
            "churned": churned,
            "mrr": mrr,
            "logins_30d": logins,
        }
    )
    return frame, tau


def test_aipw_recovers_a_known_constant_effect_within_its_interval() -> None:
    frame, _ = campaign(6000, 0.05, seed=1)
    row = average_effects(frame, FEATURES, {}, FAST).iloc[0]
    assert row["status"] == OK
    assert row["ci_low"] <= 0.05 <= row["ci_high"]
    assert row["ci_high"] - row["ci_low"] < 0.05  # informative, not just wide


def test_the_interval_is_wider_with_fewer_holdouts() -> None:
    many, _ = campaign(4000, 0.05, holdout_share=0.5, seed=2)
    few, _ = campaign(4000, 0.05, holdout_share=0.1, seed=2)
    wide = average_effects(few, FEATURES, {}, FAST).iloc[0]
    narrow = average_effects(many, FEATURES, {}, FAST).iloc[0]
    assert wide["ci_high"] - wide["ci_low"] > 1.2 * (narrow["ci_high"] - narrow["ci_low"])


def test_too_few_holdouts_give_a_status_and_no_effect_figure() -> None:
    frame, _ = campaign(600, 0.05, holdout_share=0.05, seed=3)
    row = average_effects(frame, FEATURES, {}, FAST).iloc[0]
    assert row["status"] == NOT_ENOUGH
    assert np.isnan([row["effect"], row["ci_low"], row["ci_high"]]).all()
    assert "Not enough hold-out data for call" in row["message"]
    model = fit_uplift(frame, FEATURES, {}, FAST)
    predicted = model.predict(frame)
    assert predicted["effect"].isna().all() and (predicted["status"] == NOT_ENOUGH).all()
    assert target(predicted.assign(cost=1.0, revenue_12m=100.0), 10, 0.0, 0).empty


def test_an_assignment_decided_by_the_features_fails_the_overlap_check() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    frame, _ = campaign(n, 0.05, seed=4)
    treated = (frame["logins_30d"] >= 18).to_numpy() | (rng.random(n) < 0.01)
    frame["action"] = np.where(treated, "call", CONTROL)
    row = average_effects(frame, FEATURES, {}, FAST).iloc[0]
    assert row["status"] == POOR_OVERLAP
    assert row["share_outside_overlap"] > 0.3 and np.isnan(row["effect"])


def test_the_dr_learner_ranks_a_planted_heterogeneous_effect() -> None:
    def tau(logins: np.ndarray) -> np.ndarray:  # persuadables vs sleeping dogs
        return np.where(logins < 18, 0.12, -0.04)

    frame, truth = campaign(8000, tau, seed=5)
    model = fit_uplift(frame, FEATURES, {}, replace(FAST, effect_trees=150))
    fresh, fresh_truth = campaign(2000, tau, seed=6)
    effect = model.predict(fresh)["effect"].to_numpy()
    assert np.corrcoef(effect, fresh_truth)[0, 1] > 0.6
    assert effect[fresh_truth > 0].mean() > effect[fresh_truth < 0].mean() + 0.05
    calibration = model.calibration["call"]
    assert calibration.slope_low > 0  # heterogeneity is established, not just noise
    assert len(truth) == len(frame)


def test_contributions_sum_to_the_predicted_effect_and_read_as_catalog_sentences() -> None:
    frame, _ = campaign(3000, lambda x: np.where(x < 18, 0.1, 0.0), seed=7)
    model = fit_uplift(frame, FEATURES, {}, FAST)
    head = frame.head(50)
    contributions = model.contributions(head, "call")
    predicted = model.predict(head)["effect"].to_numpy()
    np.testing.assert_allclose(contributions.sum(axis=1), predicted, atol=1e-9)
    why = model.explain(head.head(1), "call", k=2)
    value = head["logins_30d"].iloc[0]
    assert feature_info("logins_30d").explain(value) in set(why["sentence"])
    assert list(why["rank"]) == [1, 2]


def options(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "customer_id": c,
                "action": a,
                "effect": e,
                "effect_low": e - 0.1,
                "effect_high": e + 0.1,
                "cost": cost,
                "revenue_12m": 10_000.0,
            }
            for c, a, e, cost in rows
        ]
    )


def test_targeting_suppresses_predicted_sleeping_dogs_and_picks_the_best_action() -> None:
    table = options([
        ("dog", "call", -0.02, 10.0), ("dog", "offer", -0.01, 10.0),
        ("big", "call", 0.05, 10.0), ("big", "offer", 0.20, 500.0),
        ("small", "call", 0.01, 10.0), ("small", "offer", 0.02, 500.0),
        ("loss", "call", 0.001, 50.0),
    ])  # fmt: skip
    plan = target(table, budget=10, holdout_share=0.0, seed=0).set_index("customer_id")
    assert not plan.loc["dog", "selected"] and plan.loc["dog", "sleeping_dog"]
    assert plan.loc["big", "action"] == "offer"  # 2,000 - 500 beats 500 - 10
    assert plan.loc["small", "action"] == "call"  # 100 - 10 beats 200 - 500
    assert not plan.loc["loss", "selected"]  # saves 10, costs 50
    assert list(plan.index[:2]) == ["big", "small"]
    one = target(table, budget=1, holdout_share=0.0, seed=0)
    assert one.loc[one["selected"], "customer_id"].tolist() == ["big"]


def test_every_play_keeps_a_seeded_holdout() -> None:
    rows = [(f"C{i}", "call", 0.05 + i * 1e-4, 1.0) for i in range(2000)]
    plan = target(options(rows), budget=1000, holdout_share=0.2, seed=3)
    again = target(options(rows), budget=1000, holdout_share=0.2, seed=3)
    pd.testing.assert_frame_equal(plan, again)
    held = plan.loc[plan["selected"], "holdout"].mean()
    assert 0.15 < held < 0.25
    assert not (plan["contact"] & plan["holdout"]).any()


def test_budget_per_group_applies_within_each_csm() -> None:
    rows = [(f"C{i}", "call", 0.05 + i * 1e-4, 1.0) for i in range(20)]
    table = options(rows).assign(csm_owner=["ana", "bo"] * 10)
    plan = target(table, budget=3, holdout_share=0.0, seed=0, group_by="csm_owner")
    assert plan[plan["selected"]].groupby("csm_owner").size().to_dict() == {"ana": 3, "bo": 3}


def test_qini_of_a_perfect_ranking_beats_random_and_matches_a_hand_count() -> None:
    # 4 treated (2 would churn without contact but were saved: outcome 0), 4 hold-outs
    treated = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    churned = np.array([0, 0, 1, 1, 1, 1, 0, 0], dtype=bool)
    perfect = np.array([8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    curve = qini_curve(perfect, treated, churned)
    # top 4: 2 treated, 0 churned; 2 hold-outs, 2 churned -> Q = 2 * 2 / 2 - 0 = 2
    assert curve["qini"].iloc[4] == pytest.approx(2.0)
    assert curve["qini"].iloc[8] == pytest.approx(2 * 4 / 4 - 2)
    assert qini_coefficient(perfect, treated, churned) > qini_coefficient(
        -perfect, treated, churned
    )
    assert auuc(perfect, treated, churned) > auuc(-perfect, treated, churned)


def test_qini_needs_both_arms() -> None:
    with pytest.raises(ChurnError, match="both treated and hold-out"):
        qini_coefficient(np.arange(3.0), np.ones(3, bool), np.zeros(3, bool))


def test_revenue_saved_uses_the_true_effect_of_the_planned_action() -> None:
    truth = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "action": ["call", "offer", "call"],
            "true_effect": [0.1, -0.2, 0.05],
            "cost": [10.0, 20.0, 10.0],
        }
    )
    plan = pd.DataFrame(
        {"customer_id": ["a", "b"], "action": ["offer", "call"], "revenue_12m": [1000.0, 2000.0]}
    )
    assert revenue_saved(plan, truth) == pytest.approx(-200 - 20 + 100 - 10)


def test_a_campaign_without_outcomes_is_refused_naming_the_row() -> None:
    frame, _ = campaign(300, 0.05, seed=8)
    frame["churned"] = frame["churned"].astype("object")
    frame.loc[7, "churned"] = None
    with pytest.raises(ChurnError, match="churned is missing in row 7"):
        average_effects(frame, FEATURES, {}, FAST)


def test_an_effect_proportional_to_risk_is_found_with_the_risk_score_as_input() -> None:
    rng = np.random.default_rng(9)
    n = 8000
    p0 = rng.uniform(0.02, 0.5, n)
    treated = rng.random(n) >= 0.5
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "action": np.where(treated, "call", CONTROL),
            "churned": rng.random(n) < np.where(treated, 0.6 * p0, p0),
            "logins_30d": rng.poisson(20, n).astype(float),
            "churn_probability": p0,
        }
    )
    features, catalog = with_risk(["logins_30d"])
    model = fit_uplift(frame, features, {}, FAST, catalog)
    effect = model.predict(frame)["effect"].to_numpy()
    assert np.corrcoef(effect, 0.4 * p0)[0, 1] > 0.8
    contributions = model.contributions(frame.head(20), "call")
    np.testing.assert_allclose(contributions.sum(axis=1), effect[:20], atol=1e-9)


def test_the_risk_learner_puts_the_whole_effect_on_the_risk_score() -> None:
    features, catalog = with_risk([])
    calibration = Calibration(0.05, 0.5, 0.2, 0.8, 0.1, (0.1,), pd.DataFrame(
        {"group": [1, 2], "effect": [0.02, 0.08], "ci_low": [0.0, 0.05],
         "ci_high": [0.04, 0.11], "n": [10, 10]}
    ))  # fmt: skip
    averages = pd.DataFrame({"action": ["call"], "status": [OK]})
    model = UpliftModel(
        features, {}, averages, {}, {"call": calibration}, {"call": "risk"}, catalog
    )
    frame = pd.DataFrame({"customer_id": ["a", "b"], "churn_probability": [0.3, 0.05]})
    predicted = model.predict(frame)
    np.testing.assert_allclose(predicted["effect"], [0.05 + 0.5 * 0.2, 0.05 - 0.5 * 0.05])
    assert predicted["effect_low"].tolist() == [0.05, 0.0]  # the customer's GATES group
    why = model.explain(frame, "call", k=1)
    assert why["sentence"].tolist() == ["Churn risk 30 % in the horizon",
                                        "Churn risk 5 % in the horizon"]  # fmt: skip


def test_without_heterogeneity_every_customer_gets_the_average() -> None:
    frame, _ = campaign(4000, 0.05, seed=11)
    model = fit_uplift(frame, FEATURES, {}, FAST)
    assert model.learners["call"] == "average"  # no learner beats it by a standard error
    effect = model.predict(frame.head(100))["effect"].to_numpy()
    np.testing.assert_allclose(effect, model.averages.loc[0, "effect"])
    why = model.explain(frame.head(1), "call", k=1)
    assert why["direction"].tolist() == ["no difference found"]


def test_a_harmed_subgroup_is_found_and_suppressed() -> None:
    def tau(logins: np.ndarray) -> np.ndarray:  # persuadables vs sleeping dogs
        return np.where(logins < 18, 0.12, -0.08)

    frame, _ = campaign(8000, tau, seed=12)
    model = fit_uplift(frame, FEATURES, {}, replace(FAST, effect_trees=150))
    fresh, truth = campaign(2000, tau, seed=13)
    table = model.predict(fresh).assign(cost=1.0, revenue_12m=fresh["mrr"].to_numpy() * 12)
    plan = target(table, budget=2000, holdout_share=0.0, seed=0)
    dogs = plan.set_index("customer_id")["sleeping_dog"].reindex(fresh["customer_id"]).to_numpy()
    assert dogs.sum() > 100
    assert truth[dogs].mean() < 0 and (truth[dogs] < 0).mean() > 0.8
    assert not plan.loc[plan["sleeping_dog"], "selected"].any()


def test_a_group_shown_to_be_harmed_is_a_sleeping_dog_even_if_its_point_is_positive() -> None:
    table = options([("a", "call", 0.01, 1.0), ("b", "call", 0.01, 1.0)])
    table.loc[0, "effect_high"] = -0.001  # a's group: every customer ranked like it is harmed
    plan = target(table, budget=10, holdout_share=0.0, seed=0).set_index("customer_id")
    assert plan.loc["a", "sleeping_dog"] and not plan.loc["a", "selected"]
    assert plan.loc["b", "selected"]


def test_a_negative_revenue_is_refused_naming_the_row() -> None:
    frame, _ = campaign(600, 0.05, seed=14)
    frame["revenue_12m"] = 1000.0
    frame.loc[3, "revenue_12m"] = -5.0
    with pytest.raises(ChurnError, match="revenue_12m is missing or negative in row 3"):
        fit_uplift(frame, FEATURES, {}, FAST)


def test_revenue_weights_judge_learners_on_the_revenue_saved() -> None:
    rng = np.random.default_rng(15)
    n = 8000
    p0 = rng.uniform(0.05, 0.5, n)
    treated = rng.random(n) >= 0.5
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "action": np.where(treated, "call", CONTROL),
            "churned": rng.random(n) < np.where(treated, 0.5 * p0, p0),
            "logins_30d": rng.poisson(20, n).astype(float),
            "churn_probability": p0,
            "revenue_12m": rng.lognormal(8.0, 1.0, n),
        }
    )
    features, catalog = with_risk(["logins_30d"])
    model = fit_uplift(frame, features, {}, FAST, catalog)
    assert model.learners["call"] != "average"  # the effect scales with risk: found
    effect = model.predict(frame)["effect"].to_numpy()
    assert np.corrcoef(effect, 0.5 * p0)[0, 1] > 0.8
    contributions = model.contributions(frame.head(20), "call")
    np.testing.assert_allclose(contributions.sum(axis=1), effect[:20], atol=1e-9)

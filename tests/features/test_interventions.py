"""The true effects of retention actions (features/interventions.py) on a tiny generated world."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import ChurnError
from features.generator import World, generate_world
from features.interventions import (
    CONTROL,
    DEFAULT_INTERVENTIONS,
    simulate_campaign,
    true_effects,
    write_interventions,
)

AS_OF = date(2025, 6, 1)  # the world runs 2024-01 .. 2025-08: a 3-month horizon fits


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(1500, 20, seed=5)


@pytest.fixture(scope="module")
def active(world: World) -> list[str]:
    month = world.truth_hazard[world.truth_hazard["month"] == AS_OF]
    return month.loc[month["at_risk"], "customer_id"].astype(str).tolist()


def test_campaign_truth_is_reproducible_by_seed(world: World, active: list[str]) -> None:
    one = simulate_campaign(world, AS_OF, active, 0.2, seed=3)
    pd.testing.assert_frame_equal(one, simulate_campaign(world, AS_OF, active, 0.2, seed=3))
    other = simulate_campaign(world, AS_OF, active, 0.2, seed=4)
    assert (one["action"] != other["action"]).any()


def test_untreated_outcomes_are_the_worlds_churn(world: World, active: list[str]) -> None:
    campaign = simulate_campaign(world, AS_OF, active, 0.2, seed=3)
    subs = world.tables.subscriptions
    end = pd.to_datetime(subs["end_date"])
    last_end = end.groupby(subs["customer_id"]).max()
    still_open = subs.loc[end.isna().to_numpy(), "customer_id"].unique()
    churn_day = last_end.drop(still_open, errors="ignore")  # the export's own churn dates
    in_horizon = (churn_day >= pd.Timestamp(AS_OF)) & (churn_day < pd.Timestamp(2025, 9, 1))
    expected = campaign["customer_id"].map(in_horizon).astype("boolean").fillna(False)
    held = campaign["action"] == CONTROL
    assert held.sum() > 100 and expected[held].sum() > 5
    assert (campaign.loc[held, "churned"] == expected[held]).all()
    assert (campaign.loc[held, "true_effect"] == 0).all()


def test_treated_outcomes_are_coupled_so_their_marginal_is_p1(
    world: World, active: list[str]
) -> None:
    """Given the world's untreated outcome y0 ~ Bernoulli(p0), a treated outcome has
    E[y1 | y0] = y0 p1 / p0 if the action helps, y0 + (1 - y0)(p1 - p0)/(1 - p0) if it hurts;
    averaged over y0 that is p1. Checked summed over 200 replications of the draws."""
    effects = true_effects(world, AS_OF, active)
    observed = expected = 0.0
    for seed in range(200):
        c = simulate_campaign(world, AS_OF, active, 0.2, seed=seed, effects=effects)
        treated = c[c["treated"]]
        y0 = effects.drop_duplicates("customer_id").set_index("customer_id")["churned"]
        y0 = y0.loc[treated["customer_id"]].to_numpy(np.float64)
        p0, p1 = treated["p0"].to_numpy(), treated["p1"].to_numpy()
        helps = p1 <= p0
        expected += float(np.where(helps, y0 * p1 / p0, y0 + (1 - y0) * (p1 - p0) / (1 - p0)).sum())
        observed += float(treated["churned"].sum())
    assert abs(observed - expected) < 4 * np.sqrt(expected)  # a sum of Bernoulli draws
    assert expected > 1000


def test_the_four_kinds_of_customer_exist(world: World, active: list[str]) -> None:
    effects = true_effects(world, AS_OF, active)
    best = effects.groupby("customer_id").agg(p0=("p0", "first"), best=("true_effect", "max"))
    persuadable = best["best"] > 0.05
    sure_thing = best["p0"] < 0.02
    lost_cause = (best["p0"] > 0.3) & (best["best"] < 0.2 * best["p0"])
    sleeping_dog = best["best"] < 0
    for kind in (persuadable, sure_thing, lost_cause, sleeping_dog):
        assert kind.sum() >= 3


def test_a_contact_raises_churn_for_healthy_inert_customers() -> None:
    state = pd.DataFrame(
        {
            "health": [1.0],
            "health_drop": [0.0],
            "declining": [0.0],
            "low_breadth": [0.0],
            "early_tenure": [0.0],
            "late_payer": [0.0],
            "small_account": [0.0],
            "recent_downgrade": [0.0],
            "champion_left": [0.0],
            "unresolved_high_ticket": [0.0],
            "core_breadth": [3.0],
            "avoidable_hazard": [0.005],
        }
    )
    for action in DEFAULT_INTERVENTIONS.actions:
        assert DEFAULT_INTERVENTIONS.log_hazard_shift(action, state)[0] > 0
    declining = state.assign(health=-0.5, health_drop=1.0, core_breadth=5.0)
    assert DEFAULT_INTERVENTIONS.log_hazard_shift("call", declining)[0] < 0
    decided = declining.assign(avoidable_hazard=0.6)  # has decided: the call barely moves it
    shifts = [DEFAULT_INTERVENTIONS.log_hazard_shift("call", s)[0] for s in (declining, decided)]
    assert shifts[0] < 5 * shifts[1] < 0


def test_flagging_a_customer_who_already_left_is_an_error(world: World) -> None:
    month = world.truth_hazard[world.truth_hazard["month"] == AS_OF]
    gone = month.loc[~month["at_risk"], "customer_id"].astype(str).tolist()[:1]
    with pytest.raises(ChurnError, match="not active on 2025-06-01"):
        true_effects(world, AS_OF, gone)


def test_a_horizon_past_the_simulated_period_is_an_error(world: World, active: list[str]) -> None:
    with pytest.raises(ChurnError, match="not inside the simulated period"):
        true_effects(world, date(2025, 7, 1), active, horizon_months=3)


def test_the_truth_is_written_to_the_truth_folder(
    world: World, active: list[str], tmp_path: Path
) -> None:
    effects = true_effects(world, AS_OF, active[:50])
    campaign = simulate_campaign(world, AS_OF, active[:50], 0.2, seed=1, effects=effects)
    path = write_interventions(campaign, effects, tmp_path)
    assert path == tmp_path / "truth" / "interventions.parquet"
    read = pd.read_parquet(path)
    assert list(read.columns) == [
        "customer_id", "as_of", "action", "treated", "p0", "p1", "true_effect", "cost", "churned"
    ]  # fmt: skip
    assert (tmp_path / "truth" / "intervention_effects.parquet").exists()

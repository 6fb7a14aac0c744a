"""The capacity search's tree cap: within the explanation budget, on a coarse grid."""

from __future__ import annotations

from training.capacity import SHAP_PROBE_ROWS, TREE_STEPS, per_customer_ms, shap_cost_ms, tree_cap


def test_the_cap_is_the_largest_step_whose_estimated_cost_fits_the_budget() -> None:
    assert tree_cap(0.3, 0.003, 2000) == 100  # 100 x 0.003 = 0.3 ms
    assert tree_cap(0.3, 0.0031, 2000) == 75


def test_small_timing_noise_does_not_move_the_cap() -> None:
    caps = {tree_cap(0.3, 0.0022 * (1 + noise / 100), 2000) for noise in range(-8, 9)}
    assert caps == {100}


def test_a_cheap_shape_gets_every_tree_it_may_grow() -> None:
    assert tree_cap(0.3, 1e-6, 2000) == 2000
    assert tree_cap(0.3, 1e-6, 120) == 120
    assert tree_cap(0.3, 0.0, 500) == 500


def test_a_shape_too_costly_for_the_smallest_step_gets_none() -> None:
    assert tree_cap(0.3, 0.3 / TREE_STEPS[0] * 1.01, 2000) == 0


def test_a_run_slowed_by_a_neighbour_does_not_raise_the_measured_cost() -> None:
    # the same 100 rows timed three times; the second run lost the core to another process
    assert per_customer_ms([0.010, 0.050, 0.011], 100) == 0.1


def test_the_measured_cost_is_per_customer_of_a_real_booster() -> None:
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    params = {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 0}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=5)
    cost = shap_cost_ms(booster, X)
    assert 0 < cost < 1000 / SHAP_PROBE_ROWS  # under a second for the whole timed block

"""The capacity search's tree cap: within the explanation budget, on a coarse grid."""

from __future__ import annotations

from training.capacity import TREE_STEPS, tree_cap


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

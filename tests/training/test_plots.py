"""Figures (``training.plots``): built off-screen, one line per scorer plus the references."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from training.plots import (
    plot_calibration,
    plot_gains,
    plot_lift,
    plot_precision_recall,
    plot_roc,
    plot_shap_beeswarm,
    plot_shap_dependence,
    shap_explanation,
    top_features,
)

Scored = tuple[np.ndarray, dict[str, np.ndarray]]
Explained = tuple[np.ndarray, pd.DataFrame]


@pytest.fixture
def scored() -> Scored:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.15).astype(int)
    model = np.clip(0.1 + 0.3 * y + rng.normal(0, 0.1, 300), 0, 1)
    return y, {"model": model, "logistic": np.clip(model + rng.normal(0, 0.1, 300), 0, 1)}


@pytest.fixture
def explained() -> Explained:
    """Contributions with a trailing bias column, as LightGBM returns them; c matters most."""
    rng = np.random.default_rng(1)
    values = pd.DataFrame(
        {
            "a": rng.normal(size=200),
            "b": rng.integers(0, 5, 200).astype(float),
            "c": rng.normal(size=200),
            "plan": rng.choice(["starter", "growth", "enterprise"], 200),
        }
    )
    values.loc[:9, "b"] = np.nan
    contributions = np.column_stack(
        [
            0.2 * values["a"],
            np.full(200, 0.1),
            1.0 * values["c"],
            rng.normal(0, 0.05, 200),
            np.full(200, -3.0),
        ]
    )
    return contributions, values


def _renders(figure: Figure) -> bool:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getbuffer().nbytes > 0


def test_roc_draws_one_line_per_scorer_and_the_chance_diagonal(scored: Scored) -> None:
    y, scores = scored
    figure = plot_roc(y, scores)
    (ax,) = figure.axes
    assert len(ax.lines) == len(scores) + 1
    assert ax.get_legend_handles_labels()[1][0].startswith("model (AUC ")
    assert _renders(figure)


def test_precision_recall_draws_one_line_per_scorer_and_the_churn_rate(scored: Scored) -> None:
    y, scores = scored
    (ax,) = plot_precision_recall(y, scores).axes
    assert len(ax.lines) == len(scores) + 1
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(y.mean())


def test_calibration_draws_one_line_per_model_and_the_diagonal(scored: Scored) -> None:
    y, scores = scored
    (ax,) = plot_calibration(y, scores, bins=10).axes
    assert len(ax.lines) == len(scores) + 1
    assert len(ax.lines[0].get_xdata()) == 10


def test_gains_draws_one_line_per_scorer_random_and_best_possible(scored: Scored) -> None:
    y, scores = scored
    (ax,) = plot_gains(y, scores).axes
    assert len(ax.lines) == len(scores) + 2
    (weighted,) = plot_gains(y, scores, weight=np.linspace(1, 100, len(y))).axes
    best = weighted.lines[-1]
    assert best.get_ydata()[-1] == pytest.approx(1.0)


def test_lift_draws_one_line_per_scorer_and_the_random_level(scored: Scored) -> None:
    y, scores = scored
    (ax,) = plot_lift(y, scores).axes
    assert len(ax.lines) == len(scores) + 1
    assert ax.lines[0].get_ydata()[-1] == pytest.approx(1.0)  # calling everyone: lift 1


def test_top_features_rank_by_mean_absolute_contribution_ignoring_the_bias(
    explained: Explained,
) -> None:
    contributions, values = explained
    assert top_features(contributions, values, 2) == ["c", "a"]


def test_beeswarm_has_one_row_per_top_feature_and_is_deterministic(explained: Explained) -> None:
    contributions, values = explained
    figure = plot_shap_beeswarm(contributions, values, max_display=3)
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "c"]  # top at the top
    again = plot_shap_beeswarm(contributions, values, max_display=3).axes[0]
    for first, second in zip(ax.collections, again.collections, strict=True):
        np.testing.assert_array_equal(first.get_offsets(), second.get_offsets())
    assert _renders(figure)


def test_dependence_draws_one_panel_per_feature_with_categories_by_name(
    explained: Explained,
) -> None:
    contributions, values = explained
    figure = plot_shap_dependence(contributions, values, features=["b", "plan", "c"])
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert len(visible) == 3
    assert [ax.get_title() for ax in visible] == ["b", "plan", "c"]
    assert [t.get_text() for t in visible[1].get_xticklabels()] == [
        "enterprise",
        "growth",
        "starter",
    ]
    assert len(plot_shap_dependence(contributions, values, top=2).axes) == 2


def test_contributions_that_do_not_match_the_values_are_rejected(explained: Explained) -> None:
    contributions, values = explained
    with pytest.raises(ValueError, match="columns"):
        plot_shap_beeswarm(contributions[:, :2], values)
    with pytest.raises(ValueError, match="rows"):
        plot_shap_beeswarm(contributions[:5], values)


def test_the_explanation_holds_the_contributions_bias_and_category_codes(
    explained: Explained,
) -> None:
    contributions, values = explained
    explanation = shap_explanation(contributions, values)
    np.testing.assert_array_equal(explanation.values, contributions[:, :-1])
    np.testing.assert_array_equal(explanation.base_values, contributions[:, -1])
    assert explanation.feature_names == ["a", "b", "c", "plan"]
    assert np.isnan(explanation.data[:10, 1]).all()  # missing stays missing (drawn grey)
    assert set(np.unique(explanation.data[:, 3])) == {0.0, 1.0, 2.0}  # plan by code


def test_shap_figures_leave_the_global_rng_and_pyplot_as_they_were(
    explained: Explained,
) -> None:
    import matplotlib.pyplot as plt

    contributions, values = explained
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    figures = set(plt.get_fignums())
    assert _renders(plot_shap_dependence(contributions, values, top=2))
    assert _renders(plot_shap_beeswarm(contributions, values))
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    assert set(plt.get_fignums()) == figures

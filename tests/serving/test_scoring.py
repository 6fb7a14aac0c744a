"""The scoring core: explanations add up, batch equals singles, top-k is the k strongest."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from serving.scoring import Explainer, score_frame, score_matrix, scores_table, top_drivers
from tests.serving.conftest import Deployment

pytestmark = pytest.mark.xdist_group("serving")


def test_contributions_plus_base_value_equal_the_calibrated_margin(
    deployment: Deployment,
) -> None:
    model = deployment.model
    X = model.encode(deployment.snapshot)
    scored = score_matrix(model, X, k=5)
    np.testing.assert_allclose(
        scored.contributions.sum(axis=1), model.calibrated_logit(model.margin(X)), atol=1e-9
    )
    np.testing.assert_allclose(scored.probability, model.probability(X), atol=1e-12)
    np.testing.assert_array_equal(scored.health_score, model.health(scored.probability))


def test_chunked_batch_scoring_equals_one_call(deployment: Deployment) -> None:
    model = deployment.model
    X = model.encode(deployment.snapshot)
    whole = score_matrix(model, X, k=5)
    chunked = score_matrix(model, X, k=5, chunk_rows=97)
    np.testing.assert_array_equal(whole.contributions, chunked.contributions)
    np.testing.assert_array_equal(whole.top, chunked.top)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.integers(0, 999), min_size=1, max_size=20), k=st.integers(0, 12))
def test_batch_scores_equal_single_scores(deployment: Deployment, rows: list[int], k: int) -> None:
    model = deployment.model
    X = model.encode(deployment.snapshot)[rows]
    batch = score_matrix(model, X, k, num_threads=2)
    for i in range(len(rows)):
        single = score_matrix(model, X[i : i + 1], k, num_threads=1)
        np.testing.assert_array_equal(single.contributions[0], batch.contributions[i])
        np.testing.assert_array_equal(single.top[0], batch.top[i])
        assert single.probability[0] == batch.probability[i]
        assert single.tier[0] == batch.tier[i]


@given(
    contributions=arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 12)),
        elements=st.floats(-5, 5, allow_nan=False),
        unique=True,
    ),
    k=st.integers(0, 14),
)
def test_top_drivers_are_the_k_largest_absolute_contributions_strongest_first(
    contributions: np.ndarray, k: int
) -> None:
    top = top_drivers(contributions, k)
    n, f = contributions.shape
    assert top.shape == (n, min(k, f))
    for row, picked in zip(contributions, top, strict=True):
        expected = np.argsort(-np.abs(row), kind="stable")[: min(k, f)]
        # unique values; equal |value| only for x and -x, where either order is right
        np.testing.assert_array_equal(np.abs(row[picked]), np.abs(row[expected]))


def test_drivers_speak_the_catalog_and_say_which_way_they_push(deployment: Deployment) -> None:
    model = deployment.model
    scored = score_frame(model, deployment.snapshot.head(50), k=3)
    explainer = Explainer(model)
    X = model.encode(deployment.snapshot.head(50))
    for i in range(50):
        for driver in explainer.drivers(X[i], scored.contributions[i], scored.top[i]):
            assert driver["sentence"]
            expected = "raises risk" if driver["contribution"] > 0 else "lowers risk"
            assert driver["direction"] in (expected, "no effect")


def test_score_table_has_every_contribution_and_the_top_drivers(deployment: Deployment) -> None:
    model = deployment.model
    frame = deployment.snapshot.head(20)
    X = model.encode(frame)
    scored = score_matrix(model, X, k=2)
    table = scores_table(
        model, frame["customer_id"].to_numpy(), frame["as_of"].to_numpy(), X, scored
    )
    contribution_columns = [f"contribution.{name}" for name in model.features]
    sums = table[contribution_columns].sum(axis=1) + table["base_value"]
    np.testing.assert_allclose(1 / (1 + np.exp(-sums)), table["churn_probability"], atol=1e-12)
    assert {"driver_1_feature", "driver_2_sentence"} <= set(table.columns)

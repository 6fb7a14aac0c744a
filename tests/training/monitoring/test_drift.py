"""Drift tests whose threshold comes from the sample sizes, and the drift scenarios."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from features.catalog import BY_NAME
from features.engine import build_features, catalog_of, feature_columns
from features.generator import SCENARIOS, generate_world, scenario
from features.pipeline import build_snapshot, default_as_of
from training.monitoring.drift import (
    DriftConfig,
    categorical_check,
    chi_square_p_value,
    equal_frequency_codes,
    feature_drift,
    fixed_psi_alarms,
    natural_tolerance,
    numeric_check,
)
from training.monitoring.freshness import source_freshness

CUSTOMERS, SEED, CHANGE_MONTH = 1500, 4, 16  # the change starts 2025-05-01
SNAPSHOT, EXPORT_DATE = date(2025, 6, 1), date(2025, 5, 31)


def _samples(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def one() -> pd.DataFrame:
        return pd.DataFrame({
            "logins": rng.poisson(3.0, n).astype(float),
            "mrr": rng.lognormal(5, 1, n),
            "plan": rng.choice(["starter", "growth", "business"], n, p=[0.5, 0.3, 0.2]),
        })  # fmt: skip

    return one(), one()


def test_unchanged_small_samples_do_not_alarm_where_the_fixed_psi_rule_does() -> None:
    ours = fixed = 0
    for seed in range(40):
        reference, current = _samples(100, seed)
        drift = feature_drift(reference, current, ["logins", "mrr", "plan"])
        ours += bool(drift["significant"].any())
        fixed += bool((fixed_psi_alarms(reference, current, ["logins", "mrr"]) > 0.1).any())
    assert ours <= 4  # 5 % of 40 plus sampling slack
    assert fixed >= 20


def test_the_distribution_p_value_is_pearsons_chi_square_test() -> None:
    reference, current = np.array([40.0, 25, 3, 12]), np.array([30.0, 31, 9, 10])
    expected = stats.chi2_contingency(np.vstack([reference, current]), correction=False).pvalue
    assert chi_square_p_value(reference, current) == pytest.approx(expected, rel=1e-12)


def test_the_distribution_test_holds_its_level_on_sparse_cells_at_100_rows() -> None:
    """A feature that is zero for 95 % of 100 customers leaves cells of a few rows each, where
    the PSI's own chi-square null rejected about 1.8x its level (too many false alarms once
    Bonferroni asks for levels this small); the test must stay at or below its level."""
    rng = np.random.default_rng(0)
    level, rejected, repetitions = 0.002, 0, 10_000
    for _ in range(repetitions):
        a, b = (np.where(rng.random(100) < 0.95, 0.0, rng.poisson(1, 100) + 1.0) for _ in "ab")
        codes_a, codes_b, cells = equal_frequency_codes(a, b)
        counts_a = np.bincount(codes_a, minlength=cells).astype(float)
        counts_b = np.bincount(codes_b, minlength=cells).astype(float)
        used = (counts_a + counts_b) > 0
        rejected += chi_square_p_value(counts_a[used], counts_b[used]) < level
    assert rejected / repetitions < 1.3 * level


def test_a_small_shift_is_found_in_a_large_sample_that_the_fixed_rule_misses() -> None:
    reference, current = _samples(20_000, 1)
    current["mrr"] *= 1.08
    drift = feature_drift(reference, current, ["logins", "mrr", "plan"]).set_index("feature")
    assert drift.loc["mrr", "significant"] and not drift.loc["logins", "significant"]
    assert fixed_psi_alarms(reference, current, ["mrr"])["mrr"] < 0.1


def test_a_new_level_and_a_missing_rate_change_are_their_own_findings() -> None:
    reference, current = _samples(2000, 2)
    current.loc[:40, "plan"] = "scale"
    check = categorical_check(reference["plan"], current["plan"])
    assert check.new_levels == ("scale",) and check.p_new_level < 1e-6
    current["logins"] = current["logins"].where(np.arange(2000) % 5 != 0)
    check = numeric_check(reference["logins"], current["logins"])
    assert check.kind == "missing" and check.missing_current == pytest.approx(0.2)


def test_an_unused_feature_drifts_without_paging() -> None:
    reference, current = _samples(3000, 3)
    current["logins"] += 2
    drift = feature_drift(
        reference, current, ["logins", "mrr", "plan"], {"mrr": 1.0, "plan": 0.5}
    ).set_index("feature")
    assert drift.loc["logins", "significant"] and not drift.loc["logins", "alarm"]
    assert drift.loc["logins", "share"] == 0


def test_a_level_the_model_never_saw_pages_whatever_the_features_small_share() -> None:
    reference, current = _samples(3000, 3)
    current.loc[:300, "plan"] = "scale"
    importance = {"mrr": 1.0, "plan": 0.01}  # plan: 1 % of the explanation, below min_share
    drift = feature_drift(reference, current, ["logins", "mrr", "plan"], importance)
    row = drift.set_index("feature").loc["plan"]
    assert row["share"] < DriftConfig().min_share and row["new_levels"] == "scale"
    assert row["alarm"]
    unused = feature_drift(reference, current, ["logins", "mrr", "plan"], {"mrr": 1.0})
    assert not unused.set_index("feature").loc["plan", "alarm"]  # the model never reads it


@pytest.fixture(scope="module")
def before_change() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, list[str]]:
    """The reference window of an export ending when the change starts."""
    world = generate_world(CUSTOMERS, CHANGE_MONTH, SEED)
    window = build_features(world.tables, default_as_of(world.tables))
    features = [c for c in feature_columns(window) if window[c].nunique() > 1]
    when = pd.to_datetime(window["as_of"])
    reference = window[when == when.max()]
    lag = (pd.Timestamp(SNAPSHOT) - when.max()).days
    return window, reference, natural_tolerance(window, features, lag), features


EXPECTED = {  # scenario -> the feature groups its drift may show in, and a feature it must name
    "product_change": ({"usage"}, "logins_30d"),
    "new_plan": ({"profile"}, "plan"),
    "tracking_outage": ({"usage"}, "type_feature_use_30d"),
    "price_change": ({"commercial"}, "mrr_change_90d"),
}


@pytest.mark.parametrize("name", ["none", *SCENARIOS])
def test_each_scenario_is_named_by_its_features_on_the_first_snapshot_after_it(
    name: str, before_change: tuple[pd.DataFrame, pd.DataFrame, pd.Series, list[str]]
) -> None:
    _, reference, tolerance, features = before_change
    change = None if name == "none" else scenario(name, CHANGE_MONTH)
    world = generate_world(CUSTOMERS, CHANGE_MONTH + 1, SEED, change=change)
    current = build_snapshot(world.tables, SNAPSHOT, EXPORT_DATE)
    drift = feature_drift(reference, current, features, tolerance=tolerance.to_dict())
    found = set(drift.loc[drift["significant"], "feature"])
    stale = source_freshness(world.tables, EXPORT_DATE).query("stale")["source"].tolist()
    if name == "none":
        assert found == set() and stale == []
        return
    groups, named = EXPECTED[name]
    catalog = {**BY_NAME, **catalog_of(current)}
    assert named in found and {catalog[f].group for f in found} <= groups, found
    if name == "new_plan":
        assert drift.set_index("feature").loc["plan", "new_levels"] == "scale"
    assert stale == (["events[feature_use]"] if name == "tracking_outage" else [])


def test_the_generator_change_knobs_at_rest_change_nothing() -> None:
    plain = generate_world(200, 4, 9)
    rested = generate_world(200, 4, 9, change=scenario("price_change", 2).__class__(month=2))
    for name, frame in plain.tables.present().items():
        pd.testing.assert_frame_equal(frame, rested.tables.present()[name], obj=name)

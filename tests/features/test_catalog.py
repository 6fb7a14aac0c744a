"""The catalog is the one definition: SQL, docs and sentences all agree with it."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from features.catalog import FEATURES, catalog_markdown, feature_info
from features.engine import (
    build_features,
    default_vocabulary,
    feature_columns,
    generated_catalog,
)
from tests.features.test_leakage import random_world

ROOT = Path(__file__).resolve().parents[2]


def test_docs_features_md_is_generated_from_the_catalog() -> None:
    assert (ROOT / "docs" / "features.md").read_text() == catalog_markdown(), (
        "docs/features.md is stale: run `python -m features.catalog > docs/features.md`"
    )


def test_every_catalog_feature_is_computed_when_its_sources_are_present() -> None:
    tables = random_world(3)
    customers = tables.customers.assign(
        company_size="11-50", region="EMEA", plan="pro", acquisition_channel="partner"
    )
    built = build_features(replace(tables, customers=customers), [date(2024, 3, 15)])
    computed = set(feature_columns(built))
    missing = {f.name for f in FEATURES} - computed
    assert not missing, f"catalog features the SQL does not compute: {sorted(missing)}"


def test_every_computed_feature_is_in_the_catalog_or_a_customer_attribute() -> None:
    tables = random_world(3)
    built = build_features(tables, [date(2024, 3, 15)])
    vocabulary = default_vocabulary(tables)
    generated = {f.name for f in generated_catalog(tables, vocabulary)}
    names = {f.name for f in FEATURES} | generated
    assert set(feature_columns(built)) <= names


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_every_feature_has_a_sentence_for_a_value_and_for_missing(feature: object) -> None:
    info = feature_info(feature.name)  # type: ignore[attr-defined]
    value = "SaaS" if info.kind == "categorical" else -0.25
    assert info.explain(value)
    assert "no data" in info.explain(None)


def test_absent_sources_mean_absent_features_not_zeros() -> None:
    tables = replace(random_world(4), nps=None, marketing=None)
    built = build_features(tables, [date(2024, 3, 15)])
    assert not [c for c in built.columns if c.startswith(("nps_", "marketing_"))]
    assert "days_since_nps" not in built.columns


def test_an_absent_optional_column_drops_only_the_features_that_need_it() -> None:
    world = random_world(5)
    assert world.events is not None
    tables = replace(world, events=world.events.drop(columns=["user_id"]))
    built = build_features(tables, [date(2024, 3, 15)])
    assert "active_users_30d" not in built.columns
    assert "seat_utilization_30d" not in built.columns
    assert "events_30d" in built.columns


def test_unknown_attributes_get_a_generic_profile_entry() -> None:
    info = feature_info("contract_type")
    assert info.group == "profile"
    assert info.explain("Two year") == "Contract type: Two year"

"""Customer attributes get a type from their values; CSV text and Parquet types agree."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.attributes import attribute_features, infer_attributes, infer_type
from features.contract import read_raw_tables
from features.engine import build_features, feature_columns, generated_catalog
from features.vocabulary import Vocabulary
from tests.features.test_leakage import random_world

AS_OF = date(2024, 3, 15)


def _customers(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A bank-like customers table as a CSV gives it: every extra column is text."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "signup_date": pd.Timestamp("2023-01-01"),
            "age": rng.integers(18, 80, n).astype(str),
            "balance": [f"{v:.2f}" for v in rng.normal(5000, 2000, n)],
            "is_active_member": rng.choice(["true", "false"], n),
            "date_of_birth": pd.to_datetime(rng.integers(-15000, -7000, n), unit="D").strftime(
                "%Y-%m-%d"
            ),
            "contract_date": pd.to_datetime(rng.integers(19000, 19900, n), unit="D").strftime(
                "%Y-%m-%d"
            ),
            "geography": rng.choice(["France", "Spain", "Germany"], n),
            "surname": [f"Name{i}" for i in range(n)],
            "notes": [f"Customer {i} asked about the premium plan last week" for i in range(n)],
        }
    )


def _feature(specs: tuple, column: str) -> str | None:  # type: ignore[type-arg]
    return next(s.feature for s in specs if s.column == column)


def test_csv_numbers_become_numeric_features() -> None:
    customers = _customers()
    specs = infer_attributes(customers)
    assert {s.column: s.type for s in specs}["age"] == "integer"
    assert {s.column: s.type for s in specs}["balance"] == "number"
    keys = pd.DataFrame({"customer_id": customers["customer_id"], "as_of": pd.Timestamp(AS_OF)})
    out = attribute_features(customers, specs, keys)
    assert out["age"].dtype == "float64" and out["balance"].dtype == "float64"
    assert out["balance"].iloc[0] == pytest.approx(float(customers["balance"].iloc[0]))


def test_true_false_text_becomes_one_and_zero() -> None:
    customers = _customers()
    specs = infer_attributes(customers)
    keys = pd.DataFrame({"customer_id": customers["customer_id"], "as_of": pd.Timestamp(AS_OF)})
    out = attribute_features(customers, specs, keys)
    expected = (customers["is_active_member"] == "true").astype(float)
    np.testing.assert_array_equal(out["is_active_member"].to_numpy(), expected.to_numpy())


def test_a_date_of_birth_becomes_an_age_in_years_and_a_contract_date_days_since() -> None:
    customers = _customers()
    specs = infer_attributes(customers)
    assert _feature(specs, "date_of_birth") == "years_since_date_of_birth"
    assert _feature(specs, "contract_date") == "days_since_contract_date"
    as_of = pd.Timestamp(AS_OF)
    keys = pd.DataFrame({"customer_id": customers["customer_id"], "as_of": as_of})
    out = attribute_features(customers, specs, keys)
    born = pd.Timestamp(customers["date_of_birth"].iloc[0])
    assert out["years_since_date_of_birth"].iloc[0] == pytest.approx((as_of - born).days / 365.25)
    signed = pd.to_datetime(customers["contract_date"])
    days = out["days_since_contract_date"]
    assert days[signed < as_of].eq((as_of - signed[signed < as_of]).dt.days).all()


def test_a_date_on_or_after_the_as_of_date_is_not_yet_known() -> None:
    customers = _customers()
    specs = infer_attributes(customers)
    late = pd.to_datetime(customers["contract_date"]) >= pd.Timestamp(AS_OF)
    assert late.any()
    keys = pd.DataFrame({"customer_id": customers["customer_id"], "as_of": pd.Timestamp(AS_OF)})
    out = attribute_features(customers, specs, keys)
    assert out.loc[late.to_numpy(), "days_since_contract_date"].isna().all()


def test_free_text_and_identifier_like_columns_are_never_features() -> None:
    specs = infer_attributes(_customers())
    types = {s.column: s.type for s in specs}
    assert types["notes"] == "text" and types["surname"] == "identifier"
    assert _feature(specs, "notes") is None and _feature(specs, "surname") is None


def test_categories_keep_their_levels_and_pool_rare_ones() -> None:
    customers = _customers(200)
    customers.loc[:2, "geography"] = ["Iceland", "Malta", "Andorra"]
    specs = infer_attributes(customers)
    geo = next(s for s in specs if s.column == "geography")
    assert geo.type == "category" and set(geo.levels) == {"France", "Spain", "Germany"}
    keys = pd.DataFrame({"customer_id": customers["customer_id"], "as_of": pd.Timestamp(AS_OF)})
    out = attribute_features(customers, specs, keys)
    assert list(out["geography"].iloc[:3]) == ["other"] * 3


def test_csv_and_parquet_of_the_same_table_get_the_same_types() -> None:
    text = _customers()
    typed = text.assign(
        age=text["age"].astype(int),
        balance=text["balance"].astype(float),
        is_active_member=text["is_active_member"].eq("true"),
        date_of_birth=pd.to_datetime(text["date_of_birth"]),
        contract_date=pd.to_datetime(text["contract_date"]),
    )
    assert [s.type for s in infer_attributes(text)] == [s.type for s in infer_attributes(typed)]


def test_a_row_number_column_is_an_identifier() -> None:
    assert infer_type(pd.Series([str(i) for i in range(1, 101)])) == "identifier"
    assert infer_type(pd.Series(range(1, 101))) == "identifier"


def test_stray_junk_in_a_numeric_column_is_missing_not_a_category() -> None:
    values = pd.Series([str(i % 7 + 0.5) for i in range(200)] + ["n/a", "?"])
    assert infer_type(values) == "number"


def test_the_feature_pipeline_uses_typed_attributes_and_drops_free_text() -> None:
    tables = random_world(3)
    built = build_features(tables, [AS_OF])
    columns = set(feature_columns(built))
    assert {"balance", "is_member", "years_since_born_on", "days_since_renewed_on"} <= columns
    assert "notes" not in columns and "born_on" not in columns
    assert built["balance"].dtype == "float64"
    entries = {f.name: f for f in generated_catalog(tables, Vocabulary())}
    assert entries["years_since_born_on"].unit == "years"
    assert "years since 'born on'" in entries["years_since_born_on"].explain(41.0)


def test_features_yaml_overrides_a_type_and_drops_a_column(tmp_path: Path) -> None:
    tables = random_world(3)
    folder = tmp_path / "export"
    folder.mkdir()
    for name, frame in tables.present().items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    (folder / "features.yaml").write_text("attributes:\n  balance: drop\n  segment: text\n")
    read = read_raw_tables(folder)
    built = build_features(read, [AS_OF])
    assert "balance" not in built.columns and "segment" not in built.columns
    assert "is_member" in built.columns


def test_contract_categories_stay_categories_with_their_catalog_entry() -> None:
    tables = random_world(3, customers=40)
    customers = tables.customers.assign(plan=np.where(np.arange(40) % 2, "pro", "basic"))
    built = build_features(replace(tables, customers=customers), [AS_OF])
    assert set(built["plan"].dropna()) == {"pro", "basic"}


def test_an_attribute_named_like_a_feature_keeps_both() -> None:
    tables = random_world(3)
    customers = tables.customers.assign(
        mrr=[str(i) for i in range(12)], type_login_30d=[str(i % 3) for i in range(12)]
    )
    built = build_features(replace(tables, customers=customers), [AS_OF])
    assert {"mrr", "mrr_attribute", "type_login_30d", "type_login_30d_attribute"} <= set(
        built.columns
    )

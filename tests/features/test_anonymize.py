"""The renamed export keeps every value and loses every name."""

from __future__ import annotations

from features.anonymize import rename_vocabulary
from tests.features.test_leakage import random_world


def test_renaming_maps_names_one_to_one_and_keeps_the_values() -> None:
    tables = random_world(1, customers=30)
    renamed = rename_vocabulary(tables, seed=3)
    assert tables.events is not None and renamed.events is not None
    pairs = set(zip(tables.events["event_type"], renamed.events["event_type"], strict=True))
    assert len(pairs) == tables.events["event_type"].nunique()
    assert all(new.startswith("e") for _, new in pairs)
    assert list(renamed.events["timestamp"]) == list(tables.events["timestamp"])
    attributes = [c for c in renamed.customers.columns if c.startswith("a")]
    assert len(attributes) == 7  # industry + the six typed extra columns
    assert renamed.customers["customer_id"].tolist() == tables.customers["customer_id"].tolist()


def test_renamed_attributes_are_text_as_from_a_csv() -> None:
    tables = random_world(2, customers=30)
    renamed = rename_vocabulary(tables, seed=0)
    extra = [c for c in renamed.customers.columns if c.startswith("a")]
    assert all(str(renamed.customers[c].dtype) == "string" for c in extra)

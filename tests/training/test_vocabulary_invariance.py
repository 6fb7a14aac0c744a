"""Behavioural invariance: what an export calls its events and columns must not matter.

The synthetic world with every event type, product feature and attribute column renamed to
meaningless names, and its attributes exported as CSV text, trains to the same quality as the
original on the same split.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from features.anonymize import rename_vocabulary
from features.contract import RawTables, parse_tables
from features.engine import build_labeled_set
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import build_snapshot, default_as_of
from features.vocabulary import Vocabulary
from training.model import ChurnModel
from training.pipeline import TrainConfig, train

# A budget no candidate reaches: the capacity choice then rests on validation loss alone, not on
# how fast this machine happened to run TreeSHAP while the test ran.
CONFIG = TrainConfig(explain_budget_ms=1e9)


def _test_auc(tables: RawTables) -> float:
    labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec())
    return train(labeled, CONFIG).metrics["model"]["roc_auc"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_renaming_every_event_type_feature_and_attribute_keeps_roc_auc(seed: int) -> None:
    tables = parse_tables(generate_world(1000, 12, seed=seed).tables)
    renamed = parse_tables(rename_vocabulary(tables, seed))
    assert renamed.events is not None and tables.events is not None
    assert not set(renamed.events["event_type"]) & set(tables.events["event_type"])
    assert renamed.customers["industry"].isna().all()  # renamed away (the contract adds it empty)
    assert abs(_test_auc(renamed) - _test_auc(tables)) <= 0.01


def test_the_generated_catalog_travels_with_the_model(tmp_path: Path) -> None:
    tables = parse_tables(rename_vocabulary(generate_world(400, 10, seed=3).tables, 3))
    labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec())
    labeled.to_parquet(tmp_path / "labeled.parquet")  # the catalog rides in the Parquet file
    model = train(pd.read_parquet(tmp_path / "labeled.parquet"), CONFIG).model
    generated = [f for f in model.features if f.startswith("type_")]
    assert generated and set(generated) <= set(model.catalog)
    loaded = ChurnModel.load(model.save(tmp_path / "model"))
    name = next(f for f in generated if f.endswith("_30d"))
    kind = name.removeprefix("type_").removesuffix("_30d")
    assert loaded.info(name).explain(4.0) == f"4 '{kind}' events in the last 30 days"
    assert loaded.info(name).group == "usage"
    # a later export whose vocabulary changed (one type gone, a new one) still gets every
    # column the model reads when the snapshot is built with the model's vocabulary
    assert tables.events is not None and loaded.vocabulary == labeled.attrs["vocabulary"]
    events = tables.events[tables.events["event_type"] != kind].copy()
    events.loc[events.index[:50], "event_type"] = "brand_new_type"
    later = replace(tables, events=events)
    assert not set(loaded.features) <= set(build_snapshot(later).columns)
    snapshot = build_snapshot(later, vocabulary=Vocabulary.from_dict(loaded.vocabulary))
    assert set(loaded.features) <= set(snapshot.columns)
    assert snapshot[name].eq(0).all()  # the vanished type: none in the last 30 days

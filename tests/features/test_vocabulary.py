"""Activity features from the export's own event types and product features."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.catalog import feature_info
from features.contract import read_raw_tables
from features.engine import build_features, build_labeled_set, catalog_of, feature_columns
from features.labels import LabelSpec
from features.options import FeatureOptions, OptionsError, read_options
from features.pipeline import build_snapshot
from features.vocabulary import Vocabulary, infer_vocabulary, is_sign_in, slug
from tests.features.test_leakage import random_world

AS_OF = date(2024, 3, 15)


def _count(events: pd.DataFrame, kind: str, days: int) -> pd.Series:
    stamp = pd.to_datetime(events["timestamp"], utc=True)
    end = pd.Timestamp(AS_OF, tz="UTC")
    window = (stamp < end) & (stamp >= end - pd.Timedelta(days=days))
    return events[window & (events["event_type"] == kind)].groupby("customer_id").size()


def test_each_event_type_is_counted_in_its_own_columns() -> None:
    tables = random_world(1, event_types=("post", "like", "message"))
    built = build_features(tables, [AS_OF]).set_index("customer_id")
    assert tables.events is not None
    for kind in ("post", "like", "message"):
        counted = _count(tables.events, kind, 30).reindex(built.index, fill_value=0)
        assert built[f"type_{kind}_30d"].astype(int).eq(counted).all()
        counted_90 = _count(tables.events, kind, 90).reindex(built.index, fill_value=0)
        assert built[f"type_{kind}_90d"].astype(int).eq(counted_90).all()


def test_shares_of_event_types_add_up_to_one_for_active_customers() -> None:
    tables = random_world(2, event_types=("a", "b", "c"))
    built = build_features(tables, [AS_OF])
    shares = built[[f"type_{k}_share_90d" for k in ("a", "b", "c")] + ["type_other_share_90d"]]
    active = built["events_90d"] > 0
    assert shares[active].sum(axis=1).round(12).eq(1.0).all()
    assert shares[~active].isna().all().all()


def test_rare_types_beyond_the_cap_pool_as_other() -> None:
    tables = random_world(3, event_types=tuple(f"t{i}" for i in range(6)))
    capped = replace(tables, options=FeatureOptions(max_event_types=2))
    built = build_features(capped, [AS_OF])
    own = [c for c in built.columns if c.startswith("type_") and c.endswith("_90d")]
    own = [c for c in own if "share" not in c]
    assert len(own) == 3  # two types + other
    assert built[own].sum(axis=1).eq(built["events_90d"]).all()


def test_the_sign_in_event_is_configuration_not_the_literal_login() -> None:
    tables = random_world(4, event_types=("Signed In", "View Page"))
    assert is_sign_in("Signed In") and is_sign_in("user_login") and is_sign_in("Session-Start")
    assert not is_sign_in("login_failed") and not is_sign_in("signup")
    built = build_features(tables, [AS_OF])
    assert built["logins_30d"].eq(built["type_signed_in_30d"]).all()
    chosen = replace(tables, options=FeatureOptions(sign_in_events=("View Page",)))
    other = build_features(chosen, [AS_OF])
    assert other["logins_30d"].eq(other["type_view_page_30d"]).all()


def test_without_a_sign_in_type_login_features_are_absent_not_zero() -> None:
    tables = random_world(5, event_types=("x1", "x2"))
    built = build_features(tables, [AS_OF])
    assert "logins_30d" not in built.columns and "logins_change_30d" not in built.columns


def test_without_user_ids_per_user_columns_are_absent() -> None:
    world = random_world(5)
    assert world.events is not None
    tables = replace(world, events=world.events.drop(columns=["user_id"]))
    built = build_features(tables, [AS_OF])
    assert not [c for c in built.columns if c.endswith("per_user_30d")]


def test_every_generated_column_has_a_catalog_entry_that_travels_with_the_set(
    tmp_path: Path,
) -> None:
    tables = random_world(6, event_types=("cancel_meeting", "add_contact"))
    built = build_features(tables, [AS_OF])
    built.to_parquet(tmp_path / "set.parquet")
    entries = catalog_of(pd.read_parquet(tmp_path / "set.parquet"))
    generated = [c for c in built.columns if c.startswith(("type_", "uses_"))]
    assert generated and set(generated) <= set(entries)
    info = feature_info("type_cancel_meeting_30d", entries)
    assert info.explain(12.0) == "12 'cancel_meeting' events in the last 30 days"
    assert info.group == "usage"
    since = feature_info("type_cancel_meeting_days_since", entries)
    assert since.explain(None) == "No 'cancel_meeting' event yet"


def test_odd_names_make_unique_column_names() -> None:
    vocabulary = Vocabulary(event_types=("Sign In", "sign-in", "other", "Ünïcode ✓", "!!"))
    keys = [t.key for t in vocabulary.terms() if t.source == "event_type"]
    assert len(set(keys)) == len(keys)
    assert keys[:2] == ["sign_in", "sign_in_2"] and keys[2] == "other_2"
    assert slug("Ünïcode ✓") == "unicode"


def test_the_labeled_set_and_the_snapshot_of_one_export_get_the_same_columns() -> None:
    tables = random_world(7)
    labeled = build_labeled_set(tables, [AS_OF], LabelSpec())
    snapshot = build_snapshot(tables)
    assert labeled.attrs["vocabulary"] == snapshot.attrs["vocabulary"]
    assert set(feature_columns(labeled)) == set(feature_columns(snapshot))


def test_a_type_used_only_later_has_zero_counts_before_it_appears() -> None:
    tables = random_world(7)
    assert tables.events is not None
    late = tables.events.head(400).assign(
        event_type="launched_later", timestamp=pd.Timestamp("2024-05-20", tz="UTC")
    )
    events = pd.concat([tables.events, late], ignore_index=True)
    assert "launched_later" in infer_vocabulary(events).event_types
    built = build_features(replace(tables, events=events), [AS_OF])
    assert built["type_launched_later_90d"].eq(0).all()
    assert built["type_launched_later_days_since"].isna().all()


def test_a_bad_features_yaml_names_the_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "features.yaml").write_text(
        "max_event_types: 10\nattributes:\n  age: numbr\nsign_in_event: [login]\n"
    )
    with pytest.raises(OptionsError) as caught:
        read_options(tmp_path)
    text = str(caught.value)
    assert "line 3, key attributes.age" in text
    assert "line 4, key sign_in_event" in text and "did you mean 'sign_in_events'" in text


def test_a_bad_features_yaml_is_a_validation_error_not_a_crash(tmp_path: Path) -> None:
    tables = random_world(8)
    for name, frame in tables.present().items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "features.yaml").write_text("max_event_types: many\n")
    read = read_raw_tables(tmp_path)
    assert any(f.rule == "invalid_options" and "line 1" in f.message for f in read.read_findings)

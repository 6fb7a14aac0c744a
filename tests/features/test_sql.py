"""The DuckDB engine's primitives (``features/sql.py``) and the build's Parquet path."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from features.engine import build, build_labeled_set, profile
from features.labels import LabelSpec
from features.sql import DuckDBEngine
from tests.features.test_leakage import START, random_world

AS_OF = [(START + pd.Timedelta(days=d)).date() for d in (40, 90)]


def test_a_labeled_set_written_from_inside_duckdb_equals_the_fetched_one(tmp_path: Path) -> None:
    tables = random_world(5)
    spec = LabelSpec(horizon_days=30)
    fetched = build_labeled_set(tables, AS_OF, spec)
    written = build(tables, AS_OF, spec, labels=True).write_parquet(str(tmp_path / "set.parquet"))
    back = pd.read_parquet(written).sort_values(["customer_id", "as_of"], ignore_index=True)
    assert list(back.columns) == list(fetched.columns) and len(back) == len(fetched) > 0
    pd.testing.assert_frame_equal(back, fetched, check_dtype=False, check_like=False)


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    engine = DuckDBEngine()
    target = tmp_path / "out.parquet"
    with pytest.raises(Exception, match="no_such_table"):
        engine.write_parquet("SELECT * FROM no_such_table", str(target))
    assert list(tmp_path.iterdir()) == []


def test_the_profile_names_columns_with_values_and_the_last_recorded_day() -> None:
    tables = random_world(5)
    known = profile(tables)
    assert known.tables >= {"customers", "subscriptions", "events"}
    assert "events.timestamp" in known.sources and "events.ts" not in known.sources
    last = pd.to_datetime(tables.events["timestamp"], utc=True).max()  # type: ignore[index]
    assert known.observed_until >= last.date()
    assert known.data_start == pd.to_datetime(tables.events["timestamp"]).min().date()  # type: ignore[index]


def test_an_all_missing_column_is_no_source() -> None:
    tables = random_world(5)
    events = tables.events.assign(value=float("nan"))  # type: ignore[union-attr]
    known = profile(replace(tables, events=events))
    assert "events.value" not in known.sources
    assert isinstance(known.observed_until, date)

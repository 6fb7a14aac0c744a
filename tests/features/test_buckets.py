"""A build in customer buckets makes the same rows as the build in one piece."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features import buckets as buckets_module
from features.buckets import bucket_count, bucket_workers, default_buckets
from features.contract import RawTables, load_valid_tables
from features.engine import build, build_labeled_set
from features.files import read_file_export
from features.generator import generate_world, write_world
from features.labels import LabelSpec
from features.pipeline import default_as_of
from features.sql import DuckDBEngine, DuckDBLimits, byte_count

NOW = pd.Timestamp("2030-01-01", tz="UTC")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(generate_world(300, 12, seed=5), tmp_path_factory.mktemp("b") / "w")


@pytest.fixture(scope="module")
def tables(world: Path) -> RawTables:
    return load_valid_tables(world, NOW)[0]


@pytest.fixture(scope="module")
def whole(tables: RawTables) -> pd.DataFrame:
    return build(tables, default_as_of(tables), LabelSpec(), labels=True, buckets=1).frame()


@pytest.mark.parametrize("buckets", [2, 7])
def test_pandas_tables_built_in_buckets_give_the_rows_of_one_piece(
    tables: RawTables, whole: pd.DataFrame, buckets: int
) -> None:
    got = build(tables, default_as_of(tables), LabelSpec(), labels=True, buckets=buckets)
    frame = got.frame()
    pd.testing.assert_frame_equal(frame, whole)
    assert frame.attrs == whole.attrs


@pytest.mark.parametrize("buckets", [1, 2, 7])
def test_files_built_in_buckets_give_the_rows_of_one_piece(
    world: Path, whole: pd.DataFrame, buckets: int
) -> None:
    export = read_file_export(world)
    got = build(export, default_as_of(export), LabelSpec(), labels=True, buckets=buckets)
    pd.testing.assert_frame_equal(got.frame(), whole)
    # the export's tables are whole again afterwards (a snapshot or a second build reads them)
    again = build_labeled_set(export, default_as_of(export), LabelSpec())
    pd.testing.assert_frame_equal(again, whole)


def test_files_stored_in_buckets_by_a_small_memory_limit_give_the_rows_of_one_piece(
    world: Path, whole: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A memory limit too small for the export in one piece splits its tables by bucket on
    load; the profile (export date, vocabulary) and the rows are the whole export's."""
    monkeypatch.setattr(buckets_module, "EVENT_BYTES", 2_000)  # a tiny world as a large one
    export = read_file_export(world, DuckDBLimits(memory_limit="64MB", temp_directory=tmp_path))
    engine = export.default_engine()
    assert default_buckets(export, engine) > 1
    labeled = build(export, default_as_of(export), LabelSpec(), labels=True)
    assert labeled.kept and labeled.materialized() is labeled
    pd.testing.assert_frame_equal(labeled.frame(), whole)
    target = tmp_path / "labeled.parquet"
    labeled.write_frame(target)
    pd.testing.assert_frame_equal(pd.read_parquet(target), whole)
    for buckets in (3, 1):  # another number of buckets than the tables are stored in
        got = build(export, default_as_of(export), LabelSpec(), labels=True, buckets=buckets)
        pd.testing.assert_frame_equal(got.frame(), whole)


def test_buckets_built_at_the_same_time_give_the_rows_of_one_piece(
    world: Path, whole: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables stored split on disk are built two buckets at a time, each on a connection of its
    own; the rows are those of one piece, and the engine is left as it was."""
    monkeypatch.setattr(buckets_module, "EVENT_BYTES", 200_000)  # a tiny world as a large one
    limits = DuckDBLimits(threads=2, memory_limit="1GB", temp_directory=tmp_path)
    export = read_file_export(world, limits)
    engine = export.default_engine()
    assert isinstance(engine, DuckDBEngine) and bucket_workers(engine) == 2
    assert default_buckets(export, engine) >= 4
    labeled = build(export, default_as_of(export), LabelSpec(), labels=True)
    pd.testing.assert_frame_equal(labeled.frame(), whole)
    assert engine.threads() == 2
    shared = engine.fetch("SELECT table_name FROM duckdb_tables() WHERE NOT temporary")
    assert shared.empty  # the tables published to the workers are gone
    again = build(export, default_as_of(export), LabelSpec(), labels=True)
    pd.testing.assert_frame_equal(again.frame(), whole)


def test_buckets_are_built_one_at_a_time_when_the_memory_limit_is_small() -> None:
    assert bucket_workers(DuckDBEngine(threads=2, memory_limit="1GB")) == 2
    assert bucket_workers(DuckDBEngine(threads=2, memory_limit="300MB")) == 1
    assert bucket_workers(DuckDBEngine(threads=1, memory_limit="4GB")) == 1


def test_core_features_and_launches_count_every_customer_not_one_bucket(
    tables: RawTables,
) -> None:
    """Which features are core, and when each launched, are facts across customers: computed
    in buckets, they are the whole export's."""
    as_of = default_as_of(tables)
    one = build(tables, as_of, buckets=1).engine
    many = build(tables, as_of, buckets=7).engine
    for table in ("feature_reach", "feature_first_use"):
        expected = one.fetch(f"SELECT * FROM {table} ORDER BY ALL")
        got = many.fetch(f"SELECT * FROM {table} ORDER BY ALL")
        pd.testing.assert_frame_equal(got, expected)


def test_buckets_grow_with_the_events_and_shrink_with_the_memory_limit() -> None:
    assert bucket_count(0, byte_count("1GB")) == 1
    assert bucket_count(1_000_000, byte_count("4GB")) == 1
    one, four, eight = (byte_count(size) for size in ("1GB", "4GB", "8GB"))
    assert bucket_count(100_000_000, four) > bucket_count(100_000_000, eight)
    assert bucket_count(100_000_000, one) > bucket_count(10_000_000, one)

"""Labeled sets and snapshots streamed from DuckDB in row groups read back as the pandas writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.contract import RawTables
from features.engine import FeatureSet, build
from features.files import read_file_export
from features.io import write_parquet
from features.labels import LabelSpec
from features.pipeline import (
    default_as_of,
    label_record,
    read_labeled_set,
    snapshot_set,
    stream_labeled_set,
    write_labeled_set,
)
from features.sql import DuckDBEngine
from features.vocabulary import Vocabulary

PIECE = 2048  # rows per row group (DuckDB's least); the small world's set spans several


@pytest.fixture(scope="module")
def world(small_world_dir: Path) -> Path:
    return small_world_dir


@pytest.fixture(scope="module")
def tables(small_tables: RawTables) -> RawTables:
    return small_tables


def test_a_streamed_labeled_set_reads_back_as_the_pandas_write_with_its_record(
    world: Path, tables: RawTables, tmp_path: Path
) -> None:
    spec = LabelSpec()
    as_of = default_as_of(tables)
    until = as_of[-1]
    built = build(read_file_export(world), as_of, spec, labels=True).materialized()
    frame = built.frame()
    write_labeled_set(frame, label_record(spec, until, frame), tmp_path / "pandas.parquet")
    stream_labeled_set(built, spec, until, tmp_path / "streamed.parquet", rows=PIECE)

    assert len(frame) > 2 * PIECE
    assert pq.ParquetFile(tmp_path / "streamed.parquet").num_row_groups == -(-len(frame) // PIECE)
    expected, expected_record = read_labeled_set(tmp_path / "pandas.parquet")
    got, record = read_labeled_set(tmp_path / "streamed.parquet")
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.attrs == expected.attrs and got.attrs["catalog"]
    assert record == expected_record  # the fingerprint of the streamed pieces is the whole's


def test_a_column_missing_only_in_later_pieces_keeps_the_whole_tables_type(
    tables: RawTables, tmp_path: Path
) -> None:
    """``days_since_last_ticket``-like columns are empty for some customers only: a piece that
    happens to be all filled (or all empty) must still get the type of the whole column."""
    spec = LabelSpec()
    built = build(tables, default_as_of(tables), spec, labels=True)
    frame = built.frame()
    with_gaps = [c for c in frame.columns if frame[c].isna().any() and frame[c].notna().any()]
    assert with_gaps
    built.write_frame(tmp_path / "small-pieces.parquet", rows=PIECE)
    got = pd.read_parquet(tmp_path / "small-pieces.parquet")
    pd.testing.assert_frame_equal(got, frame, check_exact=True)
    assert got.attrs == frame.attrs


def test_integer_and_boolean_columns_missing_only_in_a_later_piece_get_the_whole_columns_type(
    tmp_path: Path,
) -> None:
    """A piece without missing values would read as int and bool; the whole table (and so the
    file) has float64 and object there, because a later piece has missing values."""
    engine = DuckDBEngine()
    sql = (
        "SELECT printf('c%05d', i) AS customer_id, TIMESTAMP '2024-04-01' AS as_of, "
        "CASE WHEN i < 5000 THEN CAST(i AS INTEGER) END AS tickets_open, "
        "CASE WHEN i < 5000 THEN i % 2 = 0 END AS flag, "
        "CAST(i AS INTEGER) AS always FROM range(6000) AS t(i)"
    )
    built = FeatureSet(engine, sql, (), Vocabulary(), ())
    frame = built.frame()
    assert str(frame["tickets_open"].dtype) == "float64" and frame["flag"].dtype == object
    assert str(frame["always"].dtype) == "int32"
    write_parquet(frame, tmp_path / "pandas.parquet")
    assert built.write_frame(tmp_path / "streamed.parquet", rows=PIECE) == 6000
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "streamed.parquet"),
        pd.read_parquet(tmp_path / "pandas.parquet"),
        check_exact=True,
    )


def test_a_streamed_snapshot_is_the_file_the_pandas_snapshot_writes(
    world: Path, tables: RawTables, tmp_path: Path
) -> None:
    write_parquet(snapshot_set(tables).frame(), tmp_path / "pandas.parquet")
    rows = snapshot_set(read_file_export(world)).write_frame(tmp_path / "streamed.parquet")
    expected = pd.read_parquet(tmp_path / "pandas.parquet")
    got = pd.read_parquet(tmp_path / "streamed.parquet")
    assert rows == len(expected) > 0
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs == expected.attrs


def test_a_failed_streamed_write_leaves_the_previous_file(
    tables: RawTables, tmp_path: Path
) -> None:
    target = tmp_path / "set.parquet"
    target.write_bytes(b"previous")
    built = build(tables, default_as_of(tables), LabelSpec(), labels=True)

    def fail(piece: pd.DataFrame) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        built.write_frame(target, each_piece=fail)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["set.parquet"]

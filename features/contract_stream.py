"""The data contract for exports larger than memory: the findings of ``validate_folder``, streamed.

``validate_export(folder, now)`` gives exactly ``validate_folder(folder, now)[1]`` (the same
findings, counts, first rows and messages) while never holding a large table whole:

- The per-customer tables (customers, subscriptions, tickets, invoices, nps, exit_reasons) are
  read whole, as ``validate_folder`` reads them.
- ``STREAMED`` tables (events, marketing) are read ``chunk_rows`` rows at a time (Parquet row
  batches, Arrow's streaming CSV reader). Each chunk is parsed and checked by the rule code of
  ``features.contract`` (``parse_table``, ``check_table``, ``row_findings`` against the
  ``Reference`` of the small tables); the chunks' findings merge (``merge_findings``: counts add,
  row numbers shift by the chunk's start, the first rows in file order are kept).
- ``duplicate_event_id``, the one rule over the whole events table, is counted by DuckDB over
  (position, event_id, customer_id, hash of the parsed row) of the events with an id, kept in a
  temporary database file under ``DUCKDB_MEMORY`` (DuckDB spills its aggregates to disk).
  Exact copies are rows with the same event_id and row hash (64 bits; a collision between two
  rows of one event_id would count them as copies).

Memory is bounded by a chunk (about 1 KB a row of parsed events with its checks), the small
tables and DuckDB's limit.

Parsing is per value, so a chunk parses as its rows would in the whole column, with two corner
cases where ``parse_table`` looks at the whole column: a Parquet id column stored as floats is
written without ``.0`` only when every value of the column (here: of the chunk) is whole, and a
timestamp column falls back from Arrow's ISO 8601 parser to pandas' when Arrow rejects one value
of the column (of the chunk); a value only one of the two parsers reads would be reported
differently. The tests hold every contract fixture and the RavenStack export to equality.

``features.spark_engine.validate_spark`` runs the same validator over a ``SparkExport``: Spark
hands the driver Arrow batches partition by partition, in file order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow
import pyarrow.csv as arrow_csv
import pyarrow.dataset
from pyarrow.fs import LocalFileSystem

from features.contract import (
    MAX_EXAMPLES,
    READ_ERRORS,
    REQUIRED_TABLES,
    RULES,
    TABLE_COLUMNS,
    Finding,
    RawTables,
    Reference,
    ValidationReport,
    arrow_frame,
    as_text,
    as_utc,
    check_table,
    checkable,
    csv_header,
    csv_options,
    customer_findings,
    duplicate_event_details,
    merge_findings,
    missing_folder,
    options_findings,
    parse_table,
    read_file,
    reference,
    row_findings,
    severity_order,
    table_file,
    unreadable,
    without_echoes,
    worded_finding,
)

STREAMED = ("events", "marketing")
"""Tables with rows per event, not per customer, and only row-local rules besides
``duplicate_event_id``: read in chunks. The others are read whole."""
CHUNK_ROWS = 250_000
"""Event rows per chunk. 50 000 customers (13.7 M events): a million rows peaked at 1.94 GB in
18.2 s, 500 000 at 1.67 GB in 18.1 s, 250 000 at 1.26 GB in 24.4 s; ``churn features`` runs the
contract in the process that then builds in about 1.3 GB, so the chunk keeps it there."""
DUCKDB_MEMORY = "512MB"
_RULE_RANK = {rule: rank for rank, rule in enumerate(RULES)}


@dataclass(frozen=True)
class TableSource:
    """Where one table's raw rows come from (as ``read_file`` gives them: text from CSV, the
    stored types from Parquet): ``whole`` reads the table at once, ``chunks(n)`` yields its rows
    in order, at most ``n`` at a time and at least one (maybe empty) frame."""

    whole: Callable[[], pd.DataFrame]
    chunks: Callable[[int], Iterator[pd.DataFrame]]
    path: Path | None = None
    """The file, named in ``unreadable_file``; None when reading errors are not the user's."""

    def unreadable(self, table: str, exc: Exception) -> Finding:
        """The ``unreadable_file`` finding of a failed read; a source with no file of the
        user's (a frame handed in) has nothing to name, so the error is ours and is raised."""
        if self.path is None:
            raise exc
        return unreadable(table, self.path, exc)


def file_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The raw rows of ``<table>.parquet`` or ``<table>.csv``, ``chunk_rows`` at a time.

    The same readers and types as ``read_file``: Parquet row batches keep the file's schema
    (and its pandas metadata), CSV cells are all text. A format without a streaming reader here
    is read whole by ``read_file`` and then cut: the same findings, without the memory bound.
    """
    if path.suffix not in (".parquet", ".csv"):
        frame = read_file(path)
        starts = range(0, max(len(frame), 1), chunk_rows)
        return (frame.iloc[start : start + chunk_rows].reset_index(drop=True) for start in starts)
    if path.suffix == ".parquet":  # one fragment, as pq.read_table opens it (and words errors)
        fragment = pyarrow.dataset.ParquetFileFormat().make_fragment(str(path), LocalFileSystem())
        schema = fragment.physical_schema
        batches: Iterator[pyarrow.RecordBatch] = fragment.to_batches(
            batch_size=chunk_rows, batch_readahead=1, fragment_readahead=1
        )
    else:
        reader = arrow_csv.open_csv(path, convert_options=csv_options(csv_header(path)))
        schema = reader.schema
        batches = iter(reader)
    return rechunked(batches, schema, chunk_rows)


def rechunked(
    batches: Iterator[pyarrow.RecordBatch], schema: pyarrow.Schema, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Arrow batches (of any size) as raw frames of ``chunk_rows`` rows, the last one shorter;
    one empty frame when there are no rows."""
    pieces: list[pyarrow.RecordBatch] = []
    held = 0
    empty = True
    for batch in batches:
        start = 0
        while start < batch.num_rows:
            piece = batch.slice(start, chunk_rows - held)
            pieces.append(piece)
            held += piece.num_rows
            start += piece.num_rows
            if held == chunk_rows:
                yield arrow_frame(pyarrow.Table.from_batches(pieces, schema=schema))
                pieces, held, empty = [], 0, False
    if held or empty:
        yield arrow_frame(pyarrow.Table.from_batches(pieces, schema=schema))


def _folder_sources(folder: Path) -> tuple[dict[str, TableSource], dict[str, list[Finding]]]:
    """The export's files as sources, and what is wrong with the files (as ``_read_folder``)."""
    sources: dict[str, TableSource] = {}
    findings: dict[str, list[Finding]] = {}
    for table in TABLE_COLUMNS:
        path, findings[table] = table_file(folder, table)
        if path is not None:
            sources[table] = TableSource(partial(read_file, path), partial(file_chunks, path), path)
    return sources, findings


class _EventIds:
    """Every event with an event_id: its position, id, customer_id and a hash of its parsed row,
    in a DuckDB file under a memory limit; answers ``duplicate_event_id`` at the end."""

    def __init__(self, folder: Path) -> None:
        self.connection = duckdb.connect(str(folder / "event_ids.duckdb"))
        self.connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        self.connection.execute(f"SET temp_directory = '{folder / 'spill'}'")
        self.connection.execute("SET preserve_insertion_order = false")
        self.connection.execute(
            "CREATE TABLE ids (position BIGINT, event_id VARCHAR, customer_id VARCHAR, "
            "row_hash UBIGINT)"
        )
        self.named = False  # whether events have a customer_id column to name rows by

    def add(self, events: pd.DataFrame, offset: int) -> None:
        """The events of one parsed chunk starting ``offset`` rows into the table; DuckDB hashes
        the whole row (nulls, NaN included, hash alike, as ``DataFrame.duplicated`` sees them)."""
        self.named = "customer_id" in events.columns
        chunk = pyarrow.Table.from_pandas(events, preserve_index=False).append_column(
            "_position", pyarrow.array(np.arange(offset, offset + len(events)))
        )
        everything = ", ".join(f'"{name}"' for name in events.columns)
        customer = "customer_id" if self.named else "NULL"
        self.connection.register("chunk", chunk)
        self.connection.execute(
            f"INSERT INTO ids SELECT _position, event_id, {customer}, hash({everything}) "
            "FROM chunk WHERE event_id IS NOT NULL"
        )
        self.connection.unregister("chunk")

    def finding(self) -> Finding | None:
        """What ``_duplicate_event_ids`` says about the whole table, from SQL."""
        sql = self.connection.execute
        sql(
            "CREATE TEMP TABLE repeated AS SELECT event_id, count(*) AS n, min(position) AS first "
            "FROM ids GROUP BY event_id HAVING count(*) > 1"
        )
        repeated_count, count = sql("SELECT count(*), coalesce(sum(n), 0) FROM repeated").fetchone()  # type: ignore[misc]
        if not repeated_count:
            return None
        shown = sql(
            f"SELECT event_id, n FROM repeated ORDER BY first LIMIT {MAX_EXAMPLES}"
        ).fetchall()
        first = sql(
            "SELECT position, event_id, customer_id FROM ids SEMI JOIN repeated USING (event_id) "
            f"ORDER BY position LIMIT {MAX_EXAMPLES}"
        ).fetchall()
        (copies,) = sql(
            "SELECT coalesce(sum(c), 0) FROM (SELECT count(*) AS c FROM ids "
            "SEMI JOIN repeated USING (event_id) GROUP BY event_id, row_hash HAVING count(*) > 1)"
        ).fetchone()  # type: ignore[misc]
        return worded_finding(
            "duplicate_event_id",
            "events",
            "event_id",
            int(count),
            tuple(int(position) + 1 for position, _, _ in first),
            id_column="customer_id" if self.named else None,
            ids=tuple(customer or "" for _, _, customer in first) if self.named else (),
            values=tuple(event_id for _, event_id, _ in first),
            details=duplicate_event_details(
                [(name, int(n)) for name, n in shown], int(repeated_count), int(copies)
            ),
        )

    def close(self) -> None:
        self.connection.close()


def _whole_event_row_id(source: TableSource, chunk_rows: int) -> str | None:
    """``features.contract._event_row_id`` of the whole events table, read until the first
    filled event_id (the first chunk, when the export fills them)."""
    for raw in source.chunks(chunk_rows):
        names = {str(name).strip(): name for name in raw.columns}
        if "event_id" not in names:
            return None
        if as_text(raw[names["event_id"]]).notna().any():
            return "event_id"
    return None


@dataclass
class _Streamed:
    """The findings of one streamed table, by stage, merged over its chunks."""

    read: dict[tuple[str, str | None], Finding]
    checked: dict[tuple[str, str | None], Finding]
    rows: dict[tuple[str, str | None], Finding]
    row_count: int = 0

    def add(self, stage: dict[tuple[str, str | None], Finding], found: list[Finding]) -> None:
        """Merge one chunk's findings; a finding about a whole column is the same in every
        chunk and kept once (a 0-row finding with a ``share_of`` only adds to the share's base)."""
        for finding in found:
            key = (finding.rule, finding.column)
            if key not in stage:
                shifted = tuple(row + self.row_count for row in finding.rows)
                stage[key] = replace(finding, rows=shifted)
            elif finding.row_count or "share_of" in finding.details:
                stage[key] = merge_findings(stage[key], finding, self.row_count)

    @staticmethod
    def ordered(stage: dict[tuple[str, str | None], Finding]) -> list[Finding]:
        """In the order ``validate`` emits them: within a stage a table's rules on one column
        come in ``RULES`` order (the sort below keeps first-seen order otherwise)."""
        found = [f for f in stage.values() if f.row_count or "share_of" not in f.details]
        return sorted(found, key=lambda finding: _RULE_RANK[finding.rule])


def _stream(
    table: str,
    source: TableSource,
    now: pd.Timestamp,
    ref: Reference | None,
    event_ids: _EventIds | None,
    chunk_rows: int,
) -> _Streamed:
    """Parse and check ``table`` chunk by chunk with the rules of ``features.contract``."""
    row_id = None
    if table == "events" and ref is not None:
        row_id = _whole_event_row_id(source, chunk_rows)
    streamed = _Streamed({}, {}, {})
    for raw in source.chunks(chunk_rows):
        frame, parsed = parse_table(table, raw)
        frame = checkable(table, frame)
        checked, usable = check_table(table, frame, now)
        streamed.add(streamed.read, parsed)
        streamed.add(streamed.checked, checked)
        if ref is not None:
            found = row_findings(ref, table, frame, usable, row_id, keep_empty=True)
            streamed.add(streamed.rows, found)
        if event_ids is not None and "event_id" in usable:
            event_ids.add(frame, streamed.row_count)
        streamed.row_count += len(frame)
    return streamed


def validate_sources(
    sources: Mapping[str, TableSource],
    file_findings: Mapping[str, list[Finding]],
    problems: list[Finding],
    now: pd.Timestamp,
    chunk_rows: int = CHUNK_ROWS,
) -> ValidationReport:
    """``validate_folder``'s report over tables read from ``sources`` (``STREAMED`` ones in
    chunks), with the findings in the order ``validate`` gives them.

    ``file_findings`` are the problems with each table's file (``table_file``); ``problems``
    those with ``features.yaml``. A source that fails to read becomes ``unreadable_file``.
    """
    utc = as_utc(now)
    read = {table: list(file_findings.get(table, [])) for table in TABLE_COLUMNS}
    frames: dict[str, pd.DataFrame] = {}
    for table, source in sources.items():
        if table in STREAMED:
            continue
        try:
            raw = source.whole()
        except READ_ERRORS as exc:
            read[table].append(source.unreadable(table, exc))
            continue
        frame, parsed = parse_table(table, raw)
        frames[table] = checkable(table, frame)
        read[table] += parsed
    checked: dict[str, list[Finding]] = {}
    usable: dict[str, set[str]] = {}
    for table, frame in frames.items():
        checked[table], usable[table] = check_table(table, frame, utc)
    complete = all(table in frames for table in REQUIRED_TABLES)
    ref = reference(frames, usable) if complete else None
    row_counts = {table: len(frame) for table, frame in frames.items()}
    rows: dict[str, list[Finding]] = {}
    duplicates: Finding | None = None
    for table in STREAMED:
        if table not in sources:
            continue
        source = sources[table]
        with tempfile.TemporaryDirectory(prefix="churn-contract-") as scratch:
            event_ids = _EventIds(Path(scratch)) if table == "events" and complete else None
            try:
                streamed = _stream(table, source, utc, ref, event_ids, chunk_rows)
                if event_ids is not None:
                    duplicates = event_ids.finding()
            except READ_ERRORS as exc:
                read[table].append(source.unreadable(table, exc))
                continue
            finally:
                if event_ids is not None:
                    event_ids.close()
        read[table] += streamed.ordered(streamed.read)
        checked[table] = streamed.ordered(streamed.checked)
        rows[table] = streamed.ordered(streamed.rows)
        row_counts[table] = streamed.row_count
    findings = [finding for table in TABLE_COLUMNS for finding in read[table]] + problems
    findings += [finding for table in TABLE_COLUMNS for finding in checked.get(table, [])]
    if ref is not None:
        for table in TABLE_COLUMNS:
            if table in frames and table != "customers":
                findings += row_findings(ref, table, frames[table], usable[table], None)
            findings += rows.get(table, [])
        findings += customer_findings(frames, usable, ref, utc)
    findings += [duplicates] if duplicates is not None else []
    order = {table: rank for rank, table in enumerate(TABLE_COLUMNS)}
    return ValidationReport(
        findings=tuple(sorted(without_echoes(findings), key=severity_order)),
        row_counts=dict(sorted(row_counts.items(), key=lambda item: order[item[0]])),
    )


def validate_export(
    folder: Path, now: pd.Timestamp, *, chunk_rows: int = CHUNK_ROWS
) -> ValidationReport:
    """``validate_folder(folder, now)[1]``, with events and marketing read ``chunk_rows`` rows at
    a time: what ``churn validate`` runs on an export folder of any size."""
    folder = Path(folder)
    if not folder.is_dir():
        found = [missing_folder(folder), *options_findings(folder)[1]]
        return ValidationReport(tuple(sorted(without_echoes(found), key=severity_order)), {})
    sources, file_findings = _folder_sources(folder)
    return validate_sources(sources, file_findings, options_findings(folder)[1], now, chunk_rows)


def read_per_customer_tables(folder: Path) -> RawTables:
    """The export's tables but the ``STREAMED`` ones, read whole with the contract's types: what
    ``churn validate`` can afford for plausibility checks on an export of any size.

    The folder must hold readable customers and subscriptions (``validate_export`` says so).
    """
    sources, _ = _folder_sources(Path(folder))
    frames: dict[str, pd.DataFrame] = {}
    for table, source in sources.items():
        if table in STREAMED:
            continue
        try:
            frames[table] = parse_table(table, source.whole())[0]
        except READ_ERRORS:
            continue  # validate_export reports it
    return RawTables(**frames, options=options_findings(Path(folder))[0])  # type: ignore[arg-type]

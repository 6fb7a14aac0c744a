"""The feature build in customer buckets: one bucket of customers at a time, on DuckDB.

Every feature definition reads one customer's rows at a time, except the few facts across customers
(``features.engine.SHARED``: which product features are core, when each launched) and the export's
profile (its date, sources, vocabulary). So the build computes those once over the whole export,
then runs every per-customer definition on one bucket of customers (``hash(customer_id) % buckets``)
after another, writing each bucket's rows to a Parquet file. Memory holds one bucket's events and
intermediate tables instead of the whole export's: a 100 M event log builds under a few GB without
spilling a join (docs/scale.md). The rows are the ones of the build in one piece
(tests/features/test_buckets.py), and the output is sorted by its reader as before.

Each contract table is read once, parsed, and written split by bucket (Parquet, in a folder under
the engine's temporary directory, removed with the engine); a bucket reads only its own files.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Protocol, runtime_checkable

from features.engine import (
    SHARED,
    Export,
    FeatureSet,
    TablesExport,
    customer_rows,
    feature_set,
    feature_sources,
    materialise_tables,
    profile_loaded,
    register_attributes,
    register_inputs,
)
from features.errors import ChurnError
from features.labels import LabelSpec
from features.sql import DuckDBEngine, SqlEngine, definition
from features.vocabulary import Vocabulary

EVENT_BYTES = 300
"""Working memory of the build per event of a bucket (DuckDB's tables and hash tables of the
roll-ups, measured at 50 000 customers: about 4 GB for 13.7 M events in one piece)."""

BUCKET_SHARE = 0.5
"""The share of the memory limit one bucket's working set may take: the rest holds the engine's
other tables (customers, the bucket's output being written) without spilling."""

MAX_BUCKETS = 256


@runtime_checkable
class FileTables(Protocol):
    """An export whose tables DuckDB reads from files (``features.files.FileExport``), and which
    stores them split by customer bucket when they need more than one."""

    def buckets(self, engine: DuckDBEngine) -> int:
        """The buckets its tables are stored in once loaded into ``engine`` (1: whole)."""
        ...


def bucket_count(events: int, memory_limit: int) -> int:
    """Buckets enough that one bucket's working set (``EVENT_BYTES`` per event) fits in
    ``BUCKET_SHARE`` of ``memory_limit`` bytes; 1 when the whole export does."""
    needed = math.ceil(events * EVENT_BYTES / max(1.0, memory_limit * BUCKET_SHARE))
    return max(1, min(MAX_BUCKETS, needed))


def default_buckets(export: Export, engine: SqlEngine) -> int:
    """The buckets of a build on ``engine``: from its memory limit and the export's event
    count on DuckDB (:func:`bucket_count`); 1 on other engines, which partition themselves."""
    if not isinstance(engine, DuckDBEngine):
        return 1
    if isinstance(export, FileTables):
        return export.buckets(engine)
    if isinstance(export, TablesExport):
        events = 0 if export.tables.events is None else len(export.tables.events)
        return bucket_count(events, engine.memory_limit())
    return 1


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _bucket(buckets: int) -> str:
    """A customer's bucket, 0 .. buckets - 1: the same for every table and every run."""
    return f"hash(customer_id) % {buckets}"


def split_table(
    engine: DuckDBEngine, table: str, sql: str, buckets: int, folder: Path
) -> tuple[str, ...]:
    """Write ``sql`` (a prepared table) split by customer bucket under ``folder`` (Parquet, one
    folder per bucket) and make it readable as ``stored_<table>`` with its ``bucket`` column and
    as ``<table>`` without it (the profile reads the whole export). An empty table stays in
    memory. Returns the table's columns."""
    bucketed = f"SELECT *, {_bucket(buckets)} AS bucket FROM ({sql})"
    folder.parent.mkdir(parents=True, exist_ok=True)
    written = engine.con.execute(
        f"COPY ({bucketed}) TO {_quoted(str(folder))} "
        "(FORMAT parquet, PARTITION_BY (bucket), OVERWRITE_OR_IGNORE)"
    ).fetchall()
    if written and int(written[0][0]):
        files = _quoted(str(folder / "*" / "*.parquet"))
        engine.con.execute(
            f'CREATE OR REPLACE TEMP VIEW "stored_{table}" AS '
            f"SELECT * FROM read_parquet({files}, hive_partitioning = true)"
        )
    else:
        engine.materialize(f"stored_{table}", f"SELECT * FROM ({bucketed}) LIMIT 0")
    engine.con.execute(
        f'CREATE OR REPLACE TEMP VIEW "{table}" AS SELECT * EXCLUDE (bucket) FROM "stored_{table}"'
    )
    names = engine.con.execute(f'DESCRIBE "{table}"').fetchall()
    return tuple(str(row[0]) for row in names)


def _is_view(engine: DuckDBEngine, name: str) -> bool:
    found = engine.con.execute(
        "SELECT COUNT(*) FROM duckdb_views() WHERE view_name = ?", [name]
    ).fetchall()
    return bool(found[0][0])


def _by_bucket(engine: DuckDBEngine, table: str, buckets: int, stored: int) -> None:
    """``all_<table>``: the whole table with each row's ``bucket``: the stored split when it has
    as many buckets, else computed (the whole table kept as ``whole_<table>``)."""
    if stored == buckets:
        engine.con.execute(f'CREATE OR REPLACE TEMP VIEW "all_{table}" AS '
                           f'SELECT * FROM "stored_{table}"')  # fmt: skip
        return
    if _is_view(engine, table):  # stored in another number of buckets
        source = f'SELECT * EXCLUDE (bucket) FROM "stored_{table}"'
    else:
        engine.con.execute(f'ALTER TABLE "{table}" RENAME TO "whole_{table}"')
        source = f'SELECT * FROM "whole_{table}"'
    engine.con.execute(f'CREATE OR REPLACE TEMP VIEW "all_{table}" AS '
                       f"SELECT *, {_bucket(buckets)} AS bucket FROM ({source})")  # fmt: skip


def _drop(engine: DuckDBEngine, name: str) -> None:
    """Drop the table or view ``name`` if there is one."""
    engine.con.execute(f'DROP {"VIEW" if _is_view(engine, name) else "TABLE"} IF EXISTS "{name}"')


def _restore(engine: DuckDBEngine, table: str) -> None:
    """``<table>`` the whole table again, for queries after the build."""
    _drop(engine, table)
    _drop(engine, f"all_{table}")
    whole = engine.con.execute(
        "SELECT COUNT(*) FROM duckdb_tables() WHERE table_name = ?", [f"whole_{table}"]
    ).fetchall()
    if whole[0][0]:
        engine.con.execute(f'ALTER TABLE "whole_{table}" RENAME TO "{table}"')
    else:
        engine.con.execute(f'CREATE TEMP VIEW "{table}" AS '
                           f'SELECT * EXCLUDE (bucket) FROM "stored_{table}"')  # fmt: skip


def _bucket_tables(engine: DuckDBEngine, tables: Sequence[str], bucket: int, kind: str) -> None:
    """Make ``tables`` the rows of one bucket's customers, as ``kind`` (``TABLE`` or ``VIEW``)."""
    for table in tables:
        _drop(engine, table)
        engine.con.execute(
            f'CREATE TEMP {kind} "{table}" AS '
            f'SELECT * EXCLUDE (bucket) FROM "all_{table}" WHERE bucket = {bucket}'
        )


def build_in_buckets(
    export: Export,
    as_of: Sequence[date],
    spec: LabelSpec,
    engine: SqlEngine,
    vocabulary: Vocabulary | None,
    labels: bool,
    buckets: int,
) -> FeatureSet:
    """:func:`features.engine.build` one bucket of customers at a time (see the module)."""
    if not isinstance(engine, DuckDBEngine):
        raise ChurnError("A build in customer buckets runs on DuckDB; pass buckets=1.")
    loaded = export.load(engine)
    known = profile_loaded(engine, loaded, export.options)
    vocabulary = register_inputs(export, as_of, spec, engine, known, vocabulary)
    sources = feature_sources(engine, known)
    specs = register_attributes(export, engine)
    split = [table for table in loaded if table != "customers"]
    stored = export.buckets(engine) if isinstance(export, FileTables) else 1
    for table in split:
        _by_bucket(engine, table, buckets, stored)

    shared = [(table, combine) for table, needs, combine in SHARED if set(needs) <= known.tables]
    if shared:  # facts across customers: each bucket's part, then combined
        for bucket in range(buckets):
            _bucket_tables(engine, split, bucket, "VIEW")
            for table, _ in shared:
                part = f"SELECT * FROM ({definition(table)})"
                if bucket == 0:
                    engine.materialize(f"{table}_parts", part)
                else:
                    engine.con.execute(f'INSERT INTO "{table}_parts" {part}')
        for table, combine in shared:
            engine.materialize(table, combine.format(parts=f'"{table}_parts"'))
            engine.con.execute(f'DROP TABLE "{table}_parts"')

    out = engine.scratch() / f"rows-{uuid.uuid4().hex}"
    out.mkdir()
    files: list[str] = []
    present: set[str] = set()
    for bucket in range(buckets):
        _bucket_tables(engine, split, bucket, "TABLE")
        materialise_tables(engine, known, spec)
        sql, present = customer_rows(engine, known, spec, vocabulary, specs, sources, labels)
        files.append(str(out / f"bucket-{bucket:04d}.parquet"))
        engine.con.execute(f"COPY ({sql}) TO {_quoted(files[-1])} (FORMAT parquet)")
    for table in split:
        _restore(engine, table)
    rows = f"SELECT * FROM read_parquet([{', '.join(_quoted(f) for f in files)}])"
    return feature_set(engine, rows, present, known, vocabulary, specs, sources, kept=True)


__all__ = ["bucket_count", "build_in_buckets", "default_buckets", "split_table"]

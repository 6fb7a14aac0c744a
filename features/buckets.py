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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
other tables (customers, the bucket's output being written) without spilling. Two buckets
built at once (``bucket_workers``) fill the limit between them, and DuckDB spills what does not
fit. Smaller buckets bought nothing: 50 000 customers in 17 buckets, one at a time on one
thread, took 81-82 CPU s and 80 s; in 9, two at a time, 78-83 CPU s and 67 s (the same loaded
machine), at the same peak memory."""

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


WORKER_MEMORY = 256 * 2**20
"""The least memory limit per bucket built at the same time as others: below it, a bucket's
queries (each reserves memory per join and aggregate, whatever its rows) no longer fit."""


def bucket_workers(engine: DuckDBEngine) -> int:
    """How many buckets a build on ``engine`` computes at once: one per thread DuckDB may use,
    as long as each gets ``WORKER_MEMORY`` of the memory limit.

    A bucket's queries are small (a few hundred MB): split across threads, each of them spends
    about a tenth more CPU than on one thread and leaves cores idle between its steps. So each
    bucket runs on one thread, as many buckets at a time as there are threads, each on a
    connection of its own; the buckets at once share the memory limit (``BUCKET_SHARE`` each)."""
    return max(1, min(engine.threads(), engine.memory_limit() // WORKER_MEMORY))


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
        engine.con.execute(  # in the database, not the connection: workers read it too
            f'CREATE OR REPLACE VIEW "stored_{table}" AS '
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


SHARED_INPUTS = (
    "customers", "attributes", "vocabulary", "sign_in_events", "as_of_dates", "as_of_days",
    "period_days", "params",
)  # fmt: skip
"""The engine's tables every bucket reads besides its own rows (``register_inputs``,
``register_attributes``, the export's ``customers``), with ``SHARED``'s."""


def _publish(engine: DuckDBEngine, split: Sequence[str]) -> list[str]:
    """Copy the tables every bucket reads from the engine's connection (where they are
    temporary, its own) into the database, where the connections of the workers see them; the
    tables split by bucket are read from their files (``stored_<table>``). Returns the copies."""
    names = [*SHARED_INPUTS, *(table for table, _, _ in SHARED), *(f"stored_{t}" for t in split)]
    temporary = {
        str(row[0])
        for row in engine.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary"
        ).fetchall()
    }
    database = engine.database()
    published = [name for name in names if name in temporary]
    for name in published:
        engine.con.execute(f'CREATE OR REPLACE TABLE {database}.main."{name}" AS '
                           f'SELECT * FROM temp.main."{name}"')  # fmt: skip
    return published


def _in_parallel(
    engine: DuckDBEngine,
    split: Sequence[str],
    buckets: int,
    workers: int,
    one_bucket: Callable[[DuckDBEngine, int], set[str]],
) -> set[str]:
    """``one_bucket(worker, bucket)`` for every bucket, ``workers`` at a time, each worker an
    engine on a connection of its own to ``engine``'s database (its tables its own, the shared
    ones published by :func:`_publish`), each query on one thread."""
    published = _publish(engine, split)
    threads = engine.threads()
    engine.con.execute("SET threads = 1")

    def run(bucket: int) -> set[str]:
        worker = engine.connection()
        try:
            for table in split:  # the stored files, as _by_bucket reads them
                worker.con.execute(f'CREATE TEMP VIEW "all_{table}" AS '
                                   f'SELECT * FROM "stored_{table}"')  # fmt: skip
            return one_bucket(worker, bucket)
        finally:
            worker.con.close()

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(run, range(buckets)))
    finally:
        engine.con.execute(f"SET threads = {threads}")
        database = engine.database()
        for name in published:
            engine.con.execute(f'DROP TABLE {database}.main."{name}"')
    return done[0] if done else set()


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
    files = [str(out / f"bucket-{bucket:04d}.parquet") for bucket in range(buckets)]

    def one_bucket(worker: DuckDBEngine, bucket: int) -> set[str]:
        _bucket_tables(worker, split, bucket, "TABLE")
        materialise_tables(worker, known, spec)
        sql, present = customer_rows(worker, known, spec, vocabulary, specs, sources, labels)
        worker.con.execute(f"COPY ({sql}) TO {_quoted(files[bucket])} (FORMAT parquet)")
        return present

    workers = min(bucket_workers(engine), buckets)
    if stored == buckets and workers > 1:  # the tables are on disk, split as the build is
        present = _in_parallel(engine, split, buckets, workers, one_bucket)
    else:
        present = set()
        for bucket in range(buckets):
            present = one_bucket(engine, bucket)
    for table in split:
        _restore(engine, table)
    rows = f"SELECT * FROM read_parquet([{', '.join(_quoted(f) for f in files)}])"
    return feature_set(engine, rows, present, known, vocabulary, specs, sources, kept=True)


__all__ = ["bucket_count", "bucket_workers", "build_in_buckets", "default_buckets", "split_table"]

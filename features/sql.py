"""What the feature build needs from an SQL engine, and the embedded default that supplies it.

The build (``features.engine``) is written once against :class:`SqlEngine`; an engine only
registers tables, runs DuckDB-dialect SQL and hands results back. DuckDB is the default here;
Spark (``features.spark_engine``, an optional extra) transpiles the same text. Queries the build
composes (pivots, attribute columns, the final join) are built as SQLGlot expressions, so names
and values from an export are quoted, never pasted into SQL text.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import duckdb
import pandas as pd
from sqlglot import exp

from features.io import atomic_path


def definition(name: str) -> str:
    """The SQL text of ``definitions/<name>.sql``."""
    return (resources.files("features") / "definitions" / f"{name}.sql").read_text()


class SqlEngine(Protocol):
    """What a definition needs from an engine: named tables in, query results out.

    SQL is DuckDB's dialect; naive timestamps are UTC instants.
    """

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Make a pandas table readable as ``name``."""
        ...

    def materialize(self, name: str, sql: str) -> None:
        """Compute ``sql`` once and keep it as table ``name`` for later queries."""
        ...

    def fetch(self, sql: str) -> pd.DataFrame:
        """The result of ``sql`` as pandas."""
        ...

    def write_parquet(self, sql: str, uri: str) -> str:
        """Write the result of ``sql`` to ``uri`` as Parquet, whole or not at all."""
        ...


@dataclass(frozen=True)
class DuckDBLimits:
    """How a DuckDB engine may use the machine (``Settings.duckdb_*``): an export read from its
    files (``features.files``) builds every engine it needs, profiles included, with these."""

    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: Path | None = None
    preserve_order: bool = True

    def engine(self) -> DuckDBEngine:
        return DuckDBEngine(self.threads, self.memory_limit, self.temp_directory,
                            self.preserve_order)  # fmt: skip


class DuckDBEngine:
    """The embedded default: an in-process DuckDB connection (no server)."""

    def __init__(
        self,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_directory: Path | None = None,
        preserve_order: bool = True,
    ) -> None:
        """``memory_limit`` (e.g. ``"4GB"``) bounds what DuckDB holds; past it, sorts, joins
        and aggregates spill to ``temp_directory``. ``preserve_order=False`` lets DuckDB stream
        results without keeping scan order, which it needs to stay under the limit on large
        exports; every output of the build is sorted explicitly, so nothing depends on it."""
        self.temp_directory = temp_directory
        self._scratch: Path | None = None
        self._preserve_order = preserve_order
        self.con = duckdb.connect()
        self._session()
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])
        if temp_directory is not None:  # DuckDB creates it when it first spills
            self.con.execute("SET temp_directory = ?", [str(temp_directory)])

    def _session(self) -> None:
        """The settings of this engine's connection (a worker's connection repeats them)."""
        self.con.execute("SET TimeZone = 'UTC'")
        # Jupyter without ipywidgets refuses the setting: the bar is off there already
        with contextlib.suppress(duckdb.InvalidInputException):
            self.con.execute("SET enable_progress_bar = false")
        if not self._preserve_order:
            self.con.execute("SET preserve_insertion_order = false")

    def connection(self) -> DuckDBEngine:
        """An engine on a connection of its own to this engine's database: the same tables
        of the database and limits, its own temporary tables; to run queries at the same time
        as this engine's, from another thread (``features.buckets``). Close its ``con``."""
        other = object.__new__(DuckDBEngine)
        other.temp_directory = self.temp_directory
        other._scratch = self.scratch()
        other._preserve_order = self._preserve_order
        other.con = self.con.cursor()
        other._session()
        return other

    def threads(self) -> int:
        """The threads DuckDB may use."""
        rows = self.con.execute("SELECT current_setting('threads')").fetchall()
        return int(rows[0][0])

    def database(self) -> str:
        """The quoted name of this engine's database (where tables that are not temporary go)."""
        rows = self.con.execute("SELECT current_database()").fetchall()
        return '"' + str(rows[0][0]).replace('"', '""') + '"'

    def scratch(self) -> Path:
        """A folder of this engine's own under its temporary directory (files a build writes,
        e.g. tables split by customer bucket), removed with the engine."""
        if self._scratch is None:
            if self.temp_directory is not None:
                Path(self.temp_directory).mkdir(parents=True, exist_ok=True)
            made = tempfile.mkdtemp(prefix="churn-duckdb-", dir=self.temp_directory)
            weakref.finalize(self, shutil.rmtree, made, True)
            self._scratch = Path(made)
        return self._scratch

    def memory_limit(self) -> int:
        """The memory DuckDB may hold, in bytes (its own default when none was set)."""
        rows = self.con.execute("SELECT current_setting('memory_limit')").fetchall()
        return byte_count(str(rows[0][0]))

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(f"{name}__df", frame)
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT * FROM "{name}__df"')
        self.con.unregister(f"{name}__df")

    def materialize(self, name: str, sql: str) -> None:
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}')

    def fetch(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def chunks(self, sql: str, rows: int) -> Iterator[pd.DataFrame]:
        """The result of ``sql`` in pandas pieces of about ``rows`` rows, in the query's order
        (the same types as :meth:`fetch` per piece); an empty result is one empty piece.

        Run no other query on this engine until the last piece is read: it would end the result.
        """
        result = self.con.execute(sql)
        vectors = max(1, rows // duckdb.__standard_vector_size__)
        piece = result.fetch_df_chunk(vectors)
        yield piece
        while len(piece):
            piece = result.fetch_df_chunk(vectors)
            if len(piece):
                yield piece

    def write_parquet(self, sql: str, uri: str) -> str:
        with atomic_path(Path(uri)) as tmp:
            self.con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
        return uri


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip


def byte_count(size: str) -> int:
    """``"4GB"``, ``"3.7 GiB"`` (DuckDB's and the settings' spellings) in bytes."""
    text = size.strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    unit = text[len(number) :] or "B"
    if unit not in _UNITS or not number:
        raise ValueError(f"Not a memory size: {size!r} (expected e.g. 4GB or 512MiB).")
    return int(float(number) * _UNITS[unit])


# ----- building queries (names and values quoted by SQLGlot) -----


def column(name: str, table: str | None = None) -> exp.Column:
    """``table."name"``: always quoted, since export column names may hold any character."""
    return exp.column(exp.to_identifier(name, quoted=True), table=table)


def alias(node: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(node, exp.to_identifier(name, quoted=True))


def double(node: exp.Expr) -> exp.Cast:
    return exp.cast(node, exp.DataType.build("DOUBLE"))


def literal(value: str | float) -> exp.Expr:
    return exp.Literal.string(value) if isinstance(value, str) else exp.Literal.number(value)


def on_keys(left: str, right: str, keys: Sequence[str]) -> exp.Expr:
    """``left.k = right.k AND ...`` for each key."""
    return exp.and_(*[exp.EQ(this=column(k, left), expression=column(k, right)) for k in keys])


def to_sql(query: exp.Expr) -> str:
    """A built query as DuckDB-dialect text, the dialect every engine reads."""
    return query.sql(dialect="duckdb")


__all__ = [
    "DuckDBEngine",
    "DuckDBLimits",
    "SqlEngine",
    "alias",
    "byte_count",
    "column",
    "definition",
    "double",
    "to_sql",
]

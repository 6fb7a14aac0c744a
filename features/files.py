"""An export folder read by DuckDB from its files: the out-of-core :class:`~features.engine.Export`.

:class:`~features.engine.TablesExport` reads every table into pandas, parses, cleans and prepares
it there, then copies it into DuckDB: memory grows with the event log (about 0.26 GB per million
events). :class:`FileExport` instead has DuckDB read each contract table from the export's own
file (``<table>.parquet`` or ``<table>.csv``, the files ``features.contract`` accepts) into its
columnar storage, once, under the engine's memory limit (spilling to its temporary folder past
it), with the same three steps written in SQL:

- *parse* like :func:`features.contract.parse_table`: text trimmed, empty text null, categories
  lower-cased, timestamps in UTC (a naive value is UTC), dates cut to midnight UTC, numbers as
  doubles (NaN is missing), unparseable values null, absent optional columns typed nulls;
- *clean* like :func:`features.contract.clean`: rows of unknown customers dropped, a
  ``resolved_at`` before its ``opened_at`` blanked;
- *prepare* like :func:`features.engine.prepare_table`: only the columns the definitions read,
  naive-UTC microsecond timestamps, doubles and text, ``timestamp`` renamed ``ts``.

Only ``customers`` (one row per customer) is read into pandas, through the contract's parser,
so attribute types are inferred exactly as on the in-memory path. The tests build the same
world both ways and compare the labeled sets and snapshots frame for frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

import pandas as pd

from features.buckets import bucket_count, split_table
from features.contract import (
    COLUMN_ORDER,
    REQUIRED_TABLES,
    TABLE_COLUMNS,
    parse_table,
    read_file,
)
from features.contract import column_kind as contract_kind
from features.engine import column_kind, prepare_table, prepared_columns
from features.errors import ChurnError
from features.options import FeatureOptions, read_options
from features.sql import DuckDBEngine, DuckDBLimits, SqlEngine

EXPORT_SUFFIXES = (".parquet", ".csv")
"""The file types of an export folder, in the order ``features.contract`` prefers them."""

# Python's str.strip() removes these; DuckDB's TRIM(x) alone removes only spaces.
_WHITESPACE = "' \t\n\r\x0b\x0c'"
_TRUE = ("true", "t", "yes", "y", "1", "1.0")
_FALSE = ("false", "f", "no", "n", "0", "0.0")


def table_file(folder: Path, table: str) -> Path | None:
    """The file holding ``table`` in ``folder`` (Parquet before CSV, as the contract reads)."""
    for suffix in EXPORT_SUFFIXES:
        path = Path(folder) / f"{table}{suffix}"
        if path.is_file():
            return path
    return None


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def file_scan(path: Path) -> str:
    """The DuckDB table function reading one export file, every CSV column as text (the
    contract types columns itself, as ``features.contract.read_file`` does)."""
    if path.suffix == ".parquet":
        return f"read_parquet({_quoted(str(path))})"
    return (
        f"read_csv({_quoted(str(path))}, header = true, delim = ',', quote = '\"', "
        "escape = '\"', all_varchar = true, nullstr = '', encoding = 'utf-8')"
    )


def _text(value: str, source_type: str) -> str:
    """``as_text``: trimmed, empty as null; whole floats (ids read as 1.0) without ``.0``."""
    if source_type in ("FLOAT", "DOUBLE"):
        value = (
            f"CASE WHEN {value} = floor({value}) THEN CAST(CAST({value} AS BIGINT) AS VARCHAR) "
            f"ELSE CAST({value} AS VARCHAR) END"
        )
    elif source_type != "VARCHAR":
        value = f"CAST({value} AS VARCHAR)"
    # trimming is the costliest step of reading an export (a third of it): only text that
    # starts or ends with a control character or space can change, so only that is trimmed
    edge = f"ascii({value}) <= 32 OR ascii(right({value}, 1)) <= 32"
    return f"NULLIF(CASE WHEN {edge} THEN trim({value}, {_WHITESPACE}) ELSE {value} END, '')"


def _utc(instant: str) -> str:
    """A TIMESTAMPTZ as the naive TIMESTAMP of its UTC wall time: its microseconds since the
    epoch, a quarter of the CPU of DuckDB's time zone functions (which only the infinities need,
    to keep their own spelling)."""
    return (
        f"CASE WHEN isfinite({instant}) THEN make_timestamp(epoch_us({instant})) "
        f"ELSE CAST(timezone('UTC', {instant}) AS TIMESTAMP) END"
    )


def _timestamp(value: str, source_type: str) -> str:
    """``_as_timestamp``: a UTC instant as naive TIMESTAMP (microseconds); naive input is UTC."""
    if source_type.startswith(("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")):
        return _utc(f"CAST({value} AS TIMESTAMPTZ)")
    if source_type.startswith("TIMESTAMP") or source_type == "DATE":
        return f"CAST({value} AS TIMESTAMP)"
    if source_type == "VARCHAR":
        parsed = f"TRY_CAST({_text(value, source_type)} AS TIMESTAMPTZ)"
        return f"CAST(timezone('UTC', {parsed}) AS TIMESTAMP)"
    return "CAST(NULL AS TIMESTAMP)"  # numbers are no timestamps (reported as unparseable)


def _number(value: str, source_type: str) -> str:
    """``_as_number``: DOUBLE, NaN as missing (pandas reads NaN as missing too)."""
    if source_type == "VARCHAR":
        value = f"TRY_CAST({_text(value, source_type)} AS DOUBLE)"
    elif source_type == "BOOLEAN":
        return "CAST(NULL AS DOUBLE)"
    else:
        value = f"TRY_CAST({value} AS DOUBLE)"
    return f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END"


def parsed_column(table: str, name: str, source: str | None, source_type: str | None) -> str:
    """The SQL of one contract column typed as :func:`features.contract.parse_table` types it.

    ``source``: the file's column (None when the optional column is absent: a typed null).
    """
    kind = contract_kind(table, name)
    if source is None or source_type is None:
        null_type = {
            "date": "TIMESTAMP",
            "timestamp": "TIMESTAMP",
            "number": "DOUBLE",
            "integer": "DOUBLE",
            "boolean": "BOOLEAN",
        }.get(kind, "VARCHAR")
        return f"CAST(NULL AS {null_type})"
    value = _ident(source)
    if kind == "timestamp":
        return _timestamp(value, source_type)
    if kind == "date":
        return f"CAST(date_trunc('day', {_timestamp(value, source_type)}) AS TIMESTAMP)"
    if kind == "number":
        return _number(value, source_type)
    if kind == "integer":  # a fractional value counts as unparseable
        number = _number(value, source_type)
        return f"CASE WHEN {number} = floor({number}) THEN {number} END"
    if kind == "boolean":
        if source_type == "BOOLEAN":
            return value
        text = f"lower({_text(value, source_type)})"
        true, false = (", ".join(_quoted(v) for v in values) for values in (_TRUE, _FALSE))
        return f"CASE WHEN {text} IN ({true}) THEN true WHEN {text} IN ({false}) THEN false END"
    text = _text(value, source_type)
    return f"lower({text})" if kind == "category" else text


def _prepared_type(kind: str) -> str | None:
    return {"time": "TIMESTAMP", "number": "DOUBLE", "text": "VARCHAR"}.get(kind)


def prepared_sql(table: str, scan: str, schema: dict[str, str]) -> str:
    """The prepared, cleaned ``table`` as one SELECT over ``scan`` (a file's table function).

    ``schema``: the file's columns (names as in the file) -> DuckDB type. Reads the registered
    ``customers`` table: rows of customers it does not hold are dropped (``contract.clean``).
    """
    by_name = {name.strip(): name for name in schema}
    missing = [c for c in TABLE_COLUMNS[table][0] if c not in by_name]
    if missing:
        raise ChurnError(
            f"{table}: required column(s) {', '.join(missing)} missing; validate the export "
            "first (`churn validate`)."
        )
    parsed: dict[str, str] = {}
    for name in COLUMN_ORDER[table]:
        source = by_name.get(name)
        parsed[name] = parsed_column(
            table, name, source, schema[source] if source is not None else None
        )
    if table == "tickets":  # a resolution before the opening is unknown (contract.clean)
        opened, resolved = parsed["opened_at"], parsed["resolved_at"]
        parsed["resolved_at"] = f"CASE WHEN {resolved} < {opened} THEN NULL ELSE {resolved} END"
    parsed = {("ts" if name == "timestamp" else name): sql for name, sql in parsed.items()}
    selects = []
    columns = prepared_columns(table, list(parsed))
    for name in columns:
        target = _prepared_type(column_kind(name))
        value = parsed[name] if target is None else f"CAST({parsed[name]} AS {target})"
        selects.append(f"{value} AS {_ident(name)}")
    known = "SELECT customer_id FROM customers WHERE customer_id IS NOT NULL"
    if "customer_id" not in columns:
        return f"SELECT {', '.join(selects)} FROM {scan} WHERE {parsed['customer_id']} IN ({known})"
    # the filter reads the parsed column, not its expression again (a quarter of the parse)
    return (
        f"SELECT * FROM (SELECT {', '.join(selects)} FROM {scan}) AS parsed "
        f"WHERE customer_id IN ({known})"
    )


def _schema(engine: DuckDBEngine, scan: str) -> dict[str, str]:
    described = engine.con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
    return {str(row[0]): str(row[1]) for row in described}


@dataclass(frozen=True)
class FileExport:
    """An export folder whose tables DuckDB reads from the files themselves (see the module).

    Validate the folder first (``features.contract_stream.validate_export``): like
    ``contract.clean``, this trusts a folder that passed.
    """

    folder: Path
    customers: pd.DataFrame = dataclass_field(repr=False)
    """``customers`` parsed by the contract in pandas (one row per customer)."""
    options: FeatureOptions = dataclass_field(default_factory=FeatureOptions, repr=False)
    limits: DuckDBLimits = dataclass_field(default_factory=DuckDBLimits)
    """Memory limit, spill folder and threads of the engine the build opens on it."""
    _loaded: dict[str, Any] = dataclass_field(default_factory=dict, compare=False, repr=False)

    def default_engine(self) -> SqlEngine:
        """One engine per export, created on first use: the export date, the as-of dates and the
        build all read the tables parsed once (parsing 100 M events takes minutes)."""
        if "engine" not in self._loaded:
            self._loaded["engine"] = self.limits.engine()
        engine: SqlEngine = self._loaded["engine"]
        return engine

    def files(self) -> dict[str, Path]:
        """Each present contract table's file."""
        found = {table: table_file(self.folder, table) for table in TABLE_COLUMNS}
        return {table: path for table, path in found.items() if path is not None}

    def load(self, engine: SqlEngine) -> dict[str, tuple[str, ...]]:
        if not isinstance(engine, DuckDBEngine):
            raise ChurnError(
                "An export read from its files runs on DuckDB; read it with "
                "features.contract (pandas) or features.spark_engine.read_export for Spark."
            )
        if self._loaded.get("into") is engine:
            columns: dict[str, tuple[str, ...]] = self._loaded["columns"]
            return columns
        loaded = {"customers": self.register_customers(engine)}
        buckets = self.buckets(engine)
        for table, sql in self.prepared_queries(engine).items():
            if buckets > 1:  # too large for memory in one piece: on disk, split by customer
                folder = engine.scratch() / f"tables-{buckets}" / table
                loaded[table] = split_table(engine, table, sql, buckets, folder)
                continue
            # parsed once into DuckDB's own compressed columns (a view would parse the file again
            # for each of the eight definitions reading events: 3x slower); past the memory
            # limit DuckDB keeps them in its spill folder
            engine.materialize(table, sql)
            names = engine.con.execute(f'DESCRIBE "{table}"').fetchall()
            loaded[table] = tuple(str(row[0]) for row in names)
        self._loaded.update(into=engine, columns=loaded)
        return loaded

    def buckets(self, engine: DuckDBEngine) -> int:
        """The customer buckets the build on ``engine`` runs in, from the event count and the
        engine's memory limit (``features.buckets.bucket_count``); its tables are stored split
        by them (1: whole, in DuckDB's memory)."""
        if self._loaded.get("sized") is not engine:
            count = bucket_count(self.event_rows(engine), engine.memory_limit())
            self._loaded.update(sized=engine, buckets=count)
        buckets: int = self._loaded["buckets"]
        return buckets

    def register_customers(self, engine: DuckDBEngine) -> tuple[str, ...]:
        """``customers``, prepared, registered in ``engine``; its columns."""
        customers = prepare_table("customers", self.customers)
        engine.register("customers", customers)
        return tuple(str(c) for c in customers.columns)

    def prepared_queries(self, engine: DuckDBEngine) -> dict[str, str]:
        """Each present table but ``customers`` as the query that reads, parses, cleans and
        prepares it from its file (reading ``customers``: register it first). A build in
        customer buckets (``features.buckets``) writes each once, split by bucket."""
        queries: dict[str, str] = {}
        for table, path in self.files().items():
            if table != "customers":
                scan = file_scan(path)
                queries[table] = prepared_sql(table, scan, _schema(engine, scan))
        return queries

    def event_rows(self, engine: DuckDBEngine) -> int:
        """Rows of the events file (0 without one): what sizes a build's buckets. Parquet
        keeps the count in its footer; a CSV file is scanned."""
        path = self.files().get("events")
        if path is None:
            return 0
        rows = engine.con.execute(f"SELECT COUNT(*) FROM {file_scan(path)}").fetchall()
        return int(rows[0][0])


def read_file_export(folder: Path, limits: DuckDBLimits | None = None) -> FileExport:
    """The export in ``folder`` as a :class:`FileExport` (only ``customers`` is read here);
    ``limits``: how its DuckDB engines may use the machine (default: DuckDB's own)."""
    folder = Path(folder)
    missing = [t for t in REQUIRED_TABLES if table_file(folder, t) is None]
    if missing:
        raise ChurnError(
            f"{folder}: required table(s) {', '.join(missing)} not found; export "
            + ", ".join(f"{t}.parquet or {t}.csv" for t in missing)
            + " (see docs/data-contract.md)."
        )
    path = table_file(folder, "customers")
    assert path is not None
    customers, _ = parse_table("customers", read_file(path))
    return FileExport(folder, customers, read_options(folder), limits or DuckDBLimits())


__all__ = ["FileExport", "file_scan", "parsed_column", "prepared_sql", "read_file_export"]

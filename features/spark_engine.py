"""Apache Spark's primitives for the feature build, for exports past one machine.

The build (``features.engine``) is written once against the ``SqlEngine`` protocol, in DuckDB's
dialect. Here SQLGlot transpiles its SQL to Spark SQL, with three rewrites where a plain
transpile would change the answer (each is tested against DuckDB in
``tests/features/test_spark.py``):

- ``EPOCH(ts)`` (seconds, with microseconds as the fraction) becomes ``UNIX_MICROS(ts) / 1e6``;
  SQLGlot's ``UNIX_TIMESTAMP`` drops the fraction.
- ``DATE_DIFF('day', a, b)`` counts midnights crossed in DuckDB; Spark's ``DATEDIFF(DAY, a, b)``
  counts whole 24-hour periods. It becomes ``DATEDIFF(CAST(b AS DATE), CAST(a AS DATE))``.
- Decimal literals (``86400.0``, ``7.0``) are DECIMAL in both engines, but DuckDB divides
  decimals in DOUBLE while Spark keeps DECIMAL and rounds to 6 places; they become DOUBLE.

Every timestamp is Spark's ``TIMESTAMP`` (instant) in a UTC session, which is what DuckDB's
naive-UTC ``TIMESTAMP`` means here. Two ways in: ``build(raw_tables, ..., engine=SparkEngine())``
registers the pandas tables of :func:`features.engine.prepare` (tests, small data), and
:func:`read_export` is an ``Export`` of contract Parquet at any URI Spark reads, whose tables
never go through pandas (only ``customers``, one row per customer, is read into pandas to infer
attribute types). PySpark is the optional ``spark`` extra: only this module imports it.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlglot
from pyspark import SparkContext
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema
from sqlglot import exp

from features.contract import REQUIRED_TABLES, TABLE_COLUMNS, ValidationReport, parse_table
from features.contract import column_kind as contract_kind
from features.contract_stream import CHUNK_ROWS, TableSource, rechunked, validate_sources
from features.engine import column_kind, prepare_table, prepared_columns
from features.errors import ChurnError
from features.options import FeatureOptions, read_options
from features.sql import SqlEngine

# Date-part units whose DuckDB "boundaries crossed" count equals Spark's elapsed count.
_EXACT_UNITS = {"MICROSECOND", "MICROSECONDS", "US"}


class SparkDialectError(ChurnError):
    """A definition uses SQL whose Spark translation would not give DuckDB's answer."""


# --------------------------------------------------------------------------------------------
# Transpiling


def _double(node: exp.Expression) -> exp.Expression:
    return exp.cast(node, exp.DataType.build("DOUBLE"))


def _one_timestamp_type(node: exp.Expression) -> exp.Expression:
    """DuckDB's naive TIMESTAMP (UTC here) as Spark's TIMESTAMP: instants in a UTC session."""
    if isinstance(node, exp.DataType) and node.is_type(
        exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ
    ):
        return exp.DataType.build("TIMESTAMPTZ")
    return node


def _portable(node: exp.Expression) -> exp.Expression:
    """Rewrite one DuckDB node whose plain Spark translation would change the result."""
    if isinstance(node, exp.TimeToUnix):  # EPOCH(ts): seconds with the microsecond fraction
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[node.this])
        return exp.Paren(this=exp.Div(this=micros, expression=_double(exp.Literal.number(10**6))))
    if isinstance(node, exp.DateDiff):
        unit = (node.text("unit") or "DAY").upper()
        if unit in ("DAY", "DAYS", "D"):  # midnights crossed = difference of UTC calendar days
            end = exp.cast(node.this, exp.DataType.build("DATE"))
            start = exp.cast(node.expression, exp.DataType.build("DATE"))
            return exp.Anonymous(this="DATEDIFF", expressions=[end, start])
        if unit not in _EXACT_UNITS:
            raise SparkDialectError(
                f"DATE_DIFF('{unit.lower()}', ...) counts boundaries in DuckDB but elapsed units "
                "in Spark; use DATE_DIFF('day', ...) or DATE_DIFF('microsecond', ...)."
            )
    if isinstance(node, exp.Literal) and not node.is_string and not node.is_int:
        return _double(node.copy())
    return node


def to_spark_sql(sql: str) -> str:
    """A DuckDB definition as Spark SQL with DuckDB's semantics (see the module docstring)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    return tree.transform(_one_timestamp_type).transform(_portable).sql(dialect="spark")


# --------------------------------------------------------------------------------------------
# Session and engine


def local_session(
    cores: int = 2,
    memory: str = "1g",
    shuffle_partitions: int = 4,
    tiny_data: bool = False,
    app_name: str = "churn",
    master: str | None = None,
) -> SparkSession:
    """A local-mode session for tests and benchmarks: few shuffle partitions, no UI, UTC.

    Spark's default of 200 shuffle partitions costs seconds of task overhead on small data. The
    feature query joins a dozen aggregates in one task; with the default memory page (up to 64
    MB per sort or aggregation) a small driver runs out of execution memory, so pages are 2 MB.
    ``tiny_data`` also turns off adaptive execution and code generation: on a few hundred rows,
    compiling each query costs more than running it (about 3x faster in the tests). Never use it
    for real data.

    ``master``: default ``local[cores]`` (one JVM, tasks as threads); ``local-cluster[2,1,1024]``
    (:func:`cluster_master`) runs a standalone master, workers and one executor JVM per worker on
    this machine, so tasks, broadcasts and Python workers cross process boundaries as on a real
    cluster. A session whose master differs from the active one's replaces it.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    master = master or f"local[{cores}]"
    parallelism = cores
    executor: dict[str, str] = {}
    cluster = _LOCAL_CLUSTER.fullmatch(master.replace(" ", ""))
    if cluster:
        # executors are launched with $SPARK_HOME/bin scripts: the pip package holds them
        from pyspark.find_spark_home import _find_spark_home

        os.environ.setdefault("SPARK_HOME", _find_spark_home())
        workers, per_worker, megabytes = map(int, cluster.groups())
        parallelism = workers * per_worker
        # one machine: every executor reads the same disk, so waiting up to 3 s per task for
        # a "data-local" slot (the default) only adds seconds to every stage
        executor = {
            "spark.executor.memory": f"{megabytes}m",
            "spark.executor.cores": str(per_worker),
            "spark.locality.wait": "0s",
        }
    active = SparkContext._active_spark_context
    if active is not None and active.master != master:
        active.stop()  # one SparkContext per process: getOrCreate would return the old one
    builder: Any = SparkSession.builder
    for key, value in executor.items():
        builder = builder.config(key, value)
    spark: SparkSession = (
        builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(parallelism))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.buffer.pageSize", "2m")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    set_tiny_data(spark, tiny_data)
    return spark


_LOCAL_CLUSTER = re.compile(r"local-cluster\[(\d+),(\d+),(\d+)\]")


def cluster_master(workers: int = 2, cores: int = 1, memory_mb: int = 1024) -> str:
    """Spark's ``local-cluster[workers, cores per worker, MB per worker]`` master URL."""
    return f"local-cluster[{workers},{cores},{memory_mb}]"


_TINY_DATA_CONF = {
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def set_tiny_data(spark: SparkSession, on: bool) -> None:
    """Switch the interpreted, non-adaptive mode of :func:`local_session` on or off."""
    for key, value in _TINY_DATA_CONF.items():
        if on:
            spark.conf.set(key, value)
        else:
            spark.conf.unset(key)


def spark_type(dtype: Any) -> T.DataType:
    """The Spark type of a pandas dtype (text and anything else: string)."""
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return T.TimestampType()
    if pd.api.types.is_bool_dtype(dtype):
        return T.BooleanType()
    if pd.api.types.is_integer_dtype(dtype):
        return T.LongType()
    if pd.api.types.is_float_dtype(dtype):
        return T.DoubleType()
    return T.StringType()


def spark_frame(spark: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """A pandas frame as a Spark DataFrame with explicit types (naive timestamps are UTC).

    Missing values become nulls, NaN included: DuckDB reads a pandas NaN as NULL too.
    """
    schema = T.StructType(
        [T.StructField(str(c), spark_type(frame[c].dtype), True) for c in frame.columns]
    )
    plain = frame.copy()
    for column, field in zip(frame.columns, schema.fields, strict=True):
        if isinstance(field.dataType, T.StringType | T.DoubleType):
            values = plain[column].astype(object)
            plain[column] = values.where(plain[column].notna(), None)
    return spark.createDataFrame(plain, schema=schema)


class SparkEngine:
    """The ``SqlEngine`` protocol on a SparkSession: temp views in, pandas or Parquet out.

    Sets the session time zone to UTC: the definitions' timestamps are UTC instants. The views
    (``events``, ``spine``, ...) are session-wide names: one engine per session at a time, and
    :meth:`close` it to free the cached tables.
    """

    def __init__(self, spark: SparkSession | None = None, cache: bool = True) -> None:
        self.spark = spark or local_session()
        self.spark.conf.set("spark.sql.session.timeZone", "UTC")
        self.cache = cache
        self.views: dict[str, DataFrame] = {}

    def register_frame(self, name: str, frame: DataFrame) -> None:
        """Make a Spark DataFrame readable by the definitions as ``name``."""
        old = self.views.pop(name, None)
        if old is not None and old.is_cached:
            old.unpersist()
        frame.createOrReplaceTempView(name)
        self.views[name] = frame

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.register_frame(name, spark_frame(self.spark, frame))

    def query(self, sql: str) -> DataFrame:
        """A DuckDB-dialect query as a lazy Spark DataFrame."""
        return self.spark.sql(to_spark_sql(sql))

    def materialize(self, name: str, sql: str) -> None:
        frame = self.query(sql)
        self.register_frame(name, frame.cache() if self.cache else frame)

    def fetch(self, sql: str) -> pd.DataFrame:
        return self.query(sql).toPandas()

    def write_parquet(self, sql: str, uri: str) -> str:
        return write_frame(self.query(sql), uri)

    def close(self) -> None:
        """Drop the views and free cached tables (the session stays up)."""
        for name, frame in self.views.items():
            if frame.is_cached:
                frame.unpersist()
            self.spark.catalog.dropTempView(name)
        self.views.clear()


def write_frame(frame: DataFrame, uri: str) -> str:
    """Write ``frame`` as a Parquet folder at ``uri``, replacing what was there only once the
    new output is complete.

    Spark's ``mode("overwrite")`` deletes the old folder before the job runs, so a job that
    fails half-way leaves neither. Here the job writes to a hidden sibling (``.<name>.tmp-<id>``,
    which Spark and Hadoop readers skip) and the folders are swapped by Hadoop ``FileSystem``
    renames: on local disks and HDFS a rename is atomic, so readers see the old output or the
    new one (with its ``_SUCCESS``), never a part of it. A failed job deletes its temporary and
    leaves the previous output as it was. On object stores (``s3a://``, ``gs://``, ``abfss://``)
    a folder rename is a copy: use the cloud committers there (``docs/scale.md``).
    """
    spark = frame.sparkSession
    jvm: Any = spark._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path
    target = hadoop_path(uri)
    fs = target.getFileSystem(spark._jsc.hadoopConfiguration())
    target = fs.makeQualified(target)
    token = uuid.uuid4().hex[:12]
    staging = hadoop_path(target.getParent(), f".{target.getName()}.tmp-{token}")
    try:
        frame.write.mode("errorifexists").option("compression", "zstd").parquet(staging.toString())
        _swap_into_place(fs, hadoop_path, staging, target, token)
    finally:
        if fs.exists(staging):
            fs.delete(staging, True)
    return uri


def _swap_into_place(fs: Any, hadoop_path: Any, staging: Any, target: Any, token: str) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` is moved aside first and deleted
    after, or moved back if the second rename fails."""
    if not fs.exists(target):
        if not fs.rename(staging, target):
            raise ChurnError(f"Could not move the Spark output {staging} to {target}.")
        return
    old = hadoop_path(target.getParent(), f".{target.getName()}.old-{token}")
    if not fs.rename(target, old):
        raise ChurnError(f"Could not move the previous output {target} aside; it is unchanged.")
    if not fs.rename(staging, target):
        fs.rename(old, target)
        raise ChurnError(f"Could not move the Spark output {staging} to {target}; kept the old.")
    fs.delete(old, True)


# --------------------------------------------------------------------------------------------
# Contract tables from Parquet, typed in Spark


def utc_timestamp(column: str, dtype: T.DataType) -> Column:
    """A contract time column as a UTC instant, whatever type the Parquet writer chose.

    Naive timestamps and ISO strings without an offset are UTC (the session zone); dates are
    midnight UTC; 64-bit integers are nanoseconds since the epoch (see :func:`read_export`).
    """
    value = F.col(f"`{column}`")
    if isinstance(dtype, T.TimestampType):
        return value
    if isinstance(dtype, T.LongType):
        return F.timestamp_micros(F.expr(f"div(`{column}`, 1000)"))
    return value.cast(T.TimestampType())


_SPARK_KINDS: dict[str, T.DataType] = {
    "time": T.TimestampType(),
    "number": T.DoubleType(),
    "text": T.StringType(),
}


_EDGE_SPACE = r"^\s+|\s+$"
"""What Python's ``str.strip()`` removes from ASCII text (Java's ``\s``): ``as_text``'s trim."""


def parsed_frame(name: str, frame: DataFrame) -> DataFrame:
    """The Spark side of :func:`features.contract.parse_table` for what a typed Parquet file can
    still get wrong once the contract passed: text trimmed with empty text null, categories
    lower-cased (``" URGENT "`` is ``urgent``), NaN numbers missing. Other columns as read."""
    out: list[Column] = []
    for field in frame.schema.fields:
        value = F.col(f"`{field.name}`")
        kind = contract_kind(name, field.name)
        if isinstance(field.dataType, T.StringType) and kind in ("text", "category"):
            text = F.regexp_replace(value, _EDGE_SPACE, "")
            text = F.when(text == "", F.lit(None)).otherwise(text)
            value = F.lower(text) if kind == "category" else text
        elif isinstance(field.dataType, (T.DoubleType, T.FloatType)):
            value = F.when(F.isnan(value), F.lit(None)).otherwise(value)
        out.append(value.alias(field.name))
    return frame.select(*out)


def cleaned_frame(name: str, frame: DataFrame, customers: DataFrame) -> DataFrame:
    """:func:`features.contract.clean` on Spark, for a prepared table: rows of customers not in
    ``customers`` dropped (warned as ``unknown_customer``), a ticket's ``resolved_at`` before
    its ``opened_at`` blanked (``resolved_before_opened``)."""
    known = customers.select("customer_id").where(F.col("customer_id").isNotNull()).distinct()
    frame = frame.join(known, on="customer_id", how="left_semi")
    if name == "tickets" and {"opened_at", "resolved_at"} <= set(frame.columns):
        resolved = F.when(F.col("resolved_at") < F.col("opened_at"), F.lit(None))
        frame = frame.withColumn("resolved_at", resolved.otherwise(F.col("resolved_at")))
    return frame


def prepared_frame(name: str, frame: DataFrame) -> DataFrame:
    """A contract table as the definitions read it: the Spark side of
    :func:`features.engine.prepare_table`, with the same columns, kinds and nulls."""
    frame = parsed_frame(name, frame)
    types = {f.name: f.dataType for f in frame.schema.fields}
    if "timestamp" in types:
        types["ts"] = types.pop("timestamp")
        frame = frame.withColumnRenamed("timestamp", "ts")
    out: list[Column] = []
    for col in prepared_columns(name, list(types)):
        kind = column_kind(col)
        if col not in types:
            out.append(F.lit(None).cast(_SPARK_KINDS.get(kind, T.StringType())).alias(col))
        elif kind == "time":
            out.append(utc_timestamp(col, types[col]).alias(col))
        elif kind in _SPARK_KINDS:
            out.append(F.col(f"`{col}`").cast(_SPARK_KINDS[kind]).alias(col))
        else:
            out.append(F.col(f"`{col}`"))
    return frame.select(*out)


@dataclass
class SparkExport:
    """A company's contract tables as Spark DataFrames (as read): an ``Export`` of the build."""

    spark: SparkSession
    tables: dict[str, DataFrame]
    customers: pd.DataFrame = dataclass_field(repr=False)
    """``customers`` parsed with the contract's types in pandas (one row per customer, small):
    attribute types are inferred from it exactly as on DuckDB."""
    options: FeatureOptions = dataclass_field(default_factory=FeatureOptions, repr=False)

    def default_engine(self) -> SqlEngine:
        return SparkEngine(self.spark)

    def load(self, engine: SqlEngine) -> dict[str, tuple[str, ...]]:
        if not isinstance(engine, SparkEngine):
            raise ChurnError(
                "An export read by Spark runs on a SparkEngine; read it with pandas "
                "(features.contract) to build it on DuckDB."
            )
        engine.register("customers", prepare_table("customers", self.customers))
        loaded = {"customers": tuple(engine.views["customers"].columns)}
        for name, frame in self.tables.items():
            if name == "customers":
                continue
            prepared = prepared_frame(name, frame)
            engine.register_frame(name, cleaned_frame(name, prepared, engine.views["customers"]))
            loaded[name] = tuple(engine.views[name].columns)
        return loaded


def read_export(spark: SparkSession, uri: str) -> SparkExport:
    """The contract tables under ``uri`` (``<table>.parquet``: a file or a folder of parts).

    Any URI Spark reads works (local paths, ``s3a://``, ``abfss://``, ``gs://``, ``hdfs://``).
    Absent optional tables are skipped, like the DuckDB path. Nanosecond timestamps (pandas'
    default) are read as integers and converted in :func:`utc_timestamp`, since Spark's Parquet
    reader rejects them otherwise.
    """
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    tables: dict[str, DataFrame] = {}
    for name in TABLE_COLUMNS:
        path = f"{uri.rstrip('/')}/{name}.parquet"
        try:
            tables[name] = spark.read.parquet(path)
        except AnalysisException as exc:
            if "PATH_NOT_FOUND" not in str(exc) and "Path does not exist" not in str(exc):
                raise
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        raise ChurnError(
            f"{uri}: required table(s) {', '.join(missing)} not found; export "
            + ", ".join(f"{t}.parquet" for t in missing)
            + " (see docs/data-contract.md)."
        )
    customers, _ = parse_table("customers", pd.read_parquet(f"{uri.rstrip('/')}/customers.parquet"))
    options = read_options(Path(uri)) if Path(uri).is_dir() else FeatureOptions()
    return SparkExport(spark, tables, customers, options)


# --------------------------------------------------------------------------------------------
# The data contract on Spark


def _driver_batches(frame: DataFrame) -> Iterator[pa.RecordBatch]:
    """The rows of ``frame`` on the driver as Arrow batches, partition by partition in order
    (for one Parquet file, its row order). Executors encode each Arrow batch as an IPC stream in
    one binary cell; ``toLocalIterator`` holds one partition's cells on the driver at a time."""

    def encoded(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
        for batch in batches:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, batch.schema) as writer:
                writer.write_batch(batch)
            yield pa.RecordBatch.from_pydict({"ipc": [sink.getvalue().to_pybytes()]})

    for row in frame.mapInArrow(encoded, "ipc binary").toLocalIterator():
        yield from pa.ipc.open_stream(row["ipc"])


def _driver_chunks(frame: DataFrame, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """``frame``'s rows as the raw chunks the contract parses (``features.contract_stream``)."""
    batches = _driver_batches(frame)
    first = next(batches, None)
    if first is None:
        return rechunked(iter(()), to_arrow_schema(frame.schema), chunk_rows)
    return rechunked(itertools.chain([first], batches), first.schema, chunk_rows)


def _as_pandas_reads(table: str, frame: DataFrame) -> DataFrame:
    """``frame`` with the types pandas reads from the same Parquet: the nanosecond timestamps
    :func:`read_export` reads as integers are timestamps again (to the microsecond). So an
    integer in a contract time column is taken as nanoseconds here, where pandas reports it."""
    columns = []
    for field in frame.schema.fields:
        kind = contract_kind(table, field.name.strip())
        if kind in ("date", "timestamp") and isinstance(field.dataType, T.LongType):
            columns.append(utc_timestamp(field.name, field.dataType).alias(field.name))
        else:
            columns.append(F.col(f"`{field.name}`"))
    return frame.select(*columns)


def validate_spark(
    export: SparkExport, now: pd.Timestamp, *, chunk_rows: int = CHUNK_ROWS
) -> ValidationReport:
    """The data contract's report on a ``SparkExport``: the findings ``validate_folder`` gives
    on the same Parquet files.

    Driver-side and memory bounded: the per-customer tables are collected whole, events and
    marketing stream to the driver in chunks of ``chunk_rows`` rows, in file order, through the
    same validator as ``churn validate`` (``features.contract_stream.validate_sources``).
    """
    sources = {
        name: TableSource(
            whole=partial(_driver_whole, _as_pandas_reads(name, frame)),
            chunks=partial(_driver_chunks, _as_pandas_reads(name, frame)),
        )
        for name, frame in export.tables.items()
    }
    return validate_sources(sources, {}, [], now, chunk_rows)


def _driver_whole(frame: DataFrame) -> pd.DataFrame:
    return pd.concat(list(_driver_chunks(frame, CHUNK_ROWS)), ignore_index=True)


__all__ = [
    "SparkDialectError",
    "SparkEngine",
    "SparkExport",
    "cluster_master",
    "local_session",
    "prepared_frame",
    "read_export",
    "set_tiny_data",
    "spark_frame",
    "spark_type",
    "to_spark_sql",
    "validate_spark",
    "write_frame",
]

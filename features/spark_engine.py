"""Runs the same feature and label definitions on Apache Spark, for exports past one machine.

The definitions in ``definitions/*.sql`` are written once, in DuckDB's dialect. Here SQLGlot
transpiles them to Spark SQL, with three rewrites where a plain transpile would change the answer
(each is tested against DuckDB in ``tests/features/test_spark.py``):

- ``EPOCH(ts)`` (seconds, with microseconds as the fraction) becomes ``UNIX_MICROS(ts) / 1e6``;
  SQLGlot's ``UNIX_TIMESTAMP`` drops the fraction.
- ``DATE_DIFF('day', a, b)`` counts midnights crossed in DuckDB; Spark's ``DATEDIFF(DAY, a, b)``
  counts whole 24-hour periods. It becomes ``DATEDIFF(CAST(b AS DATE), CAST(a AS DATE))``.
- Decimal literals (``86400.0``, ``7.0``) are DECIMAL in both engines, but DuckDB divides
  decimals in DOUBLE while Spark keeps DECIMAL and rounds to 6 places; they become DOUBLE.

Every timestamp is Spark's ``TIMESTAMP`` (instant) in a UTC session, which is what DuckDB's
naive-UTC ``TIMESTAMP`` means here. Two ways in: :meth:`SparkEngine.register` takes the pandas
tables of :func:`features.engine.prepare` (tests, small data, the ``SqlEngine`` protocol), and
:func:`read_export` + :func:`build_labeled_set_spark` read contract Parquet from any URI Spark
can read and never go through pandas.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlglot
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sqlglot import exp

from features.attributes import OTHER, infer_attributes, static_values
from features.catalog import FEATURES, KEY_COLUMNS, SIGN_IN, available
from features.contract import MAY_BE_FUTURE, REQUIRED_TABLES, TABLE_COLUMNS, parse_table
from features.engine import (
    GROUPS,
    NUMERIC_COLUMNS,
    PREPARED_COLUMNS,
    TIME_COLUMNS,
    as_of_frame,
    definition,
    label_params,
    monthly_as_of,
)
from features.errors import ChurnError
from features.labels import LabelSpec
from features.options import FeatureOptions, read_options
from features.pipeline import HISTORY_DAYS
from features.vocabulary import METRICS, SOURCES, SQL_METRIC, Vocabulary, is_sign_in

# Date-part units whose DuckDB "boundaries crossed" count equals Spark's elapsed count.
_EXACT_UNITS = {"MICROSECOND", "MICROSECONDS", "US"}
_TEXT_COLUMNS = {"event_type", "feature", "priority", "action"}


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
) -> SparkSession:
    """A local-mode session for tests and benchmarks: few shuffle partitions, no UI, UTC.

    Spark's default of 200 shuffle partitions costs seconds of task overhead on small data. The
    feature query joins a dozen aggregates in one task; with the default memory page (up to 64
    MB per sort or aggregation) a small driver runs out of execution memory, so pages are 2 MB.
    ``tiny_data`` also turns off adaptive execution and code generation: on a few hundred rows,
    compiling each query costs more than running it (about 3x faster in the tests). Never use it
    for real data.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder: Any = SparkSession.builder
    spark: SparkSession = (
        builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(cores))
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
    """A pandas frame as a Spark DataFrame with explicit types (naive timestamps are UTC)."""
    schema = T.StructType(
        [T.StructField(str(c), spark_type(frame[c].dtype), True) for c in frame.columns]
    )
    plain = frame.copy()
    for column, field in zip(frame.columns, schema.fields, strict=True):
        if isinstance(field.dataType, T.StringType):
            values = plain[column].astype(object)
            plain[column] = values.where(plain[column].notna(), None)
    return spark.createDataFrame(plain, schema=schema)


class SparkEngine:
    """The ``SqlEngine`` protocol on a SparkSession: temp views in, pandas or Spark out.

    Sets the session time zone to UTC: the definitions' timestamps are UTC instants. The views
    (``events``, ``spine``, ...) are session-wide names: one engine per session at a time, and
    :meth:`close` it to free the cached spine and event roll-up.
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

    def close(self) -> None:
        """Drop the views and free cached tables (the session stays up)."""
        for name, frame in self.views.items():
            if frame.is_cached:
                frame.unpersist()
            self.spark.catalog.dropTempView(name)
        self.views.clear()


# --------------------------------------------------------------------------------------------
# Contract tables from Parquet, prepared in Spark (the equivalent of ``engine.prepare``)


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
    return SparkExport(tables, customers, options)


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


def prepare_spark(
    tables: Mapping[str, DataFrame], sign_in: Sequence[str] = ()
) -> dict[str, DataFrame]:
    """Spark twin of :func:`features.engine.prepare`: the columns the definitions read, typed.

    Absent optional columns become typed nulls so every definition runs; ``timestamp`` is ``ts``.
    """
    prepared: dict[str, DataFrame] = {}
    for name, frame in tables.items():
        if name == "exit_reasons":
            continue
        types = {f.name: f.dataType for f in frame.schema.fields}
        if "timestamp" in types:
            types["ts"] = types.pop("timestamp")
            frame = frame.withColumnRenamed("timestamp", "ts")
        columns = PREPARED_COLUMNS.get(name, tuple(types))
        out: list[Column] = []
        for col in columns:
            if col not in types:
                kind: T.DataType = T.DoubleType() if col in NUMERIC_COLUMNS else T.StringType()
                if col in TIME_COLUMNS:
                    kind = T.TimestampType()
                out.append(F.lit(None).cast(kind).alias(col))
            elif col in TIME_COLUMNS:
                out.append(utc_timestamp(col, types[col]).alias(col))
            elif col in NUMERIC_COLUMNS:
                out.append(F.col(col).cast(T.DoubleType()).alias(col))
            elif col.endswith("_id") or col in _TEXT_COLUMNS:
                out.append(F.col(col).cast(T.StringType()).alias(col))
            else:
                out.append(F.col(f"`{col}`"))
        if name == "events":
            out.append(
                F.coalesce(F.col("event_type").isin(list(sign_in)), F.lit(False)).alias("sign_in")
            )
        prepared[name] = frame.select(*out)
    return prepared


def _time_columns(frame: DataFrame, exclude: frozenset[str] = frozenset()) -> list[Column]:
    return [
        utc_timestamp(f.name, f.dataType)
        for f in frame.schema.fields
        if f.name in TIME_COLUMNS and f.name not in exclude
    ]


@dataclass(frozen=True)
class ExportProfile:
    """What the pipeline needs to know about an export before the definitions run."""

    sources: frozenset[str]  # ``table.column`` with at least one value (NaN counts as missing)
    observed_until: date  # the export date: latest recorded (not scheduled) time, UTC day
    data_start: date  # first event, else first subscription start


def profile_export(tables: Mapping[str, DataFrame]) -> ExportProfile:
    """One aggregation pass per table: the Spark twin of ``engine.present_sources``,
    ``engine.observed_until`` and ``pipeline.data_start``."""
    sources: set[str] = set()
    latest: list[date] = []
    starts: dict[str, date] = {}
    for name, frame in tables.items():
        fields = frame.schema.fields
        aggregates: list[Column] = []
        for field in fields:
            value = F.col(f"`{field.name}`")
            if isinstance(field.dataType, T.FloatType | T.DoubleType):
                value = F.when(~F.isnan(value), value)
            aggregates.append(F.count(value))
        times = [f for f in fields if f.name in TIME_COLUMNS and f.name not in MAY_BE_FUTURE]
        aggregates += [F.max(utc_timestamp(f.name, f.dataType)).cast(T.DateType()) for f in times]
        first = {"events": "timestamp", "subscriptions": "start_date"}.get(name)
        if first in frame.columns:
            moment = utc_timestamp(first, frame.schema[first].dataType)
            aggregates.append(F.min(moment).cast(T.DateType()))
        row = frame.select(*[a.alias(f"a{i}") for i, a in enumerate(aggregates)]).first()
        values = list(row) if row is not None else []
        sources |= {f"{name}.{f.name}" for f, n in zip(fields, values, strict=False) if n}
        latest += [v for v in values[len(fields) : len(fields) + len(times)] if v is not None]
        if first in frame.columns and values[-1] is not None:
            starts[name] = values[-1]
    if not latest:
        raise ChurnError("The export has no timestamps at all; nothing to compute features from.")
    start = starts.get("events") or starts.get("subscriptions")
    if start is None:
        raise ChurnError("The export has neither events nor subscriptions with a start date.")
    return ExportProfile(frozenset(sources), max(latest), start)


@dataclass
class SparkExport:
    """A company's contract tables as Spark DataFrames (as read), profiled once on demand."""

    tables: dict[str, DataFrame]
    customers: pd.DataFrame | None = dataclass_field(default=None, repr=False)
    """``customers`` parsed with the contract's types in pandas (one row per customer, small):
    attribute types are inferred from it exactly as on DuckDB."""
    options: FeatureOptions = dataclass_field(default_factory=FeatureOptions, repr=False)
    _profile: ExportProfile | None = dataclass_field(default=None, repr=False)

    @property
    def profile(self) -> ExportProfile:
        if self._profile is None:
            self._profile = profile_export(self.tables)
        return self._profile


def default_as_of_spark(export: SparkExport, history_days: int = HISTORY_DAYS) -> list[date]:
    """Spark twin of :func:`features.pipeline.default_as_of` (monthly, after 90 days)."""
    first = export.profile.data_start + timedelta(days=history_days)
    return monthly_as_of(first, export.profile.observed_until)


def snapshot_as_of_spark(export: SparkExport) -> date:
    """ "Now" for a snapshot: the day after the export's last record."""
    return export.profile.observed_until + timedelta(days=1)


# --------------------------------------------------------------------------------------------
# The pipeline on Spark DataFrames


def vocabulary_spark(export: SparkExport) -> Vocabulary:
    """Spark twin of :func:`features.engine.default_vocabulary`: the same ranking, in Spark."""
    options = export.options
    before = export.tables.get("events")
    if before is None:
        return Vocabulary(sign_in=tuple(options.sign_in_events or ()))

    def ranked(column: str, cap: int) -> tuple[str, ...]:
        if column not in before.columns or cap == 0:
            return ()
        counts = before.where(F.col(column).isNotNull()).groupBy(F.col(column).cast("string"))
        rows = counts.count().orderBy(F.desc("count"), F.asc(column)).limit(cap).collect()
        return tuple(str(r[0]) for r in rows)

    if options.sign_in_events is None:
        kinds = before.select(F.col("event_type").cast("string")).distinct().collect()
        sign_in = tuple(sorted(str(r[0]) for r in kinds if r[0] is not None and is_sign_in(r[0])))
    else:
        sign_in = tuple(options.sign_in_events)
    return Vocabulary(
        ranked("event_type", options.max_event_types),
        ranked("feature", options.max_product_features),
        sign_in,
    )


def _load_spark(
    engine: SparkEngine,
    export: SparkExport,
    as_of: Sequence[date],
    spec: LabelSpec,
    vocabulary: Vocabulary,
) -> None:
    """Spark twin of ``engine._load``: prepared tables, as-of dates, params, spine, event days."""
    tables = export.tables
    for name, frame in prepare_spark(tables, vocabulary.sign_in).items():
        engine.register_frame(name, frame)
    engine.register("vocabulary", vocabulary.table())
    engine.register("as_of_dates", as_of_frame(as_of))
    until = spec.observed_until or export.profile.observed_until
    engine.register("params", label_params(spec, until))
    if spec.kind == "noncontractual" and "events" not in tables:
        raise ChurnError(
            "Non-contractual labels need the events table (activity or purchases); "
            "add events.parquet or use --label contractual."
        )
    engine.materialize("spine", definition(f"spine_{spec.kind}"))
    if "events" in tables:
        engine.materialize("event_days", definition("event_days"))


def _pivot_spark(vocabulary: Vocabulary, with_users: bool) -> list[Column]:
    """Spark twin of :func:`features.vocabulary.pivot` (after a left join onto the spine)."""
    columns: list[Column] = []
    terms = vocabulary.terms()
    for source in SOURCES:
        mine = [t for t in terms if t.source == source]
        metrics = [m for m in METRICS if with_users or m != "per_user_30d"]
        for term in mine:
            for metric in metrics:
                value = F.col(f"`{term.column(metric)}`")
                if metric in ("30d", "90d"):
                    value = F.coalesce(value, F.lit(0.0))
                elif metric in ("share_90d", "per_user_30d"):
                    known = F.greatest(*[F.col(f"`{t.column(metric)}`").isNotNull() for t in mine])
                    value = F.when(value.isNull() & known, F.lit(0.0)).otherwise(value)
                columns.append(value.cast(T.DoubleType()).alias(term.column(metric)))
    return columns


def _vocabulary_wide(engine: SparkEngine, vocabulary: Vocabulary) -> DataFrame:
    """``vocabulary.sql``'s long rows, one column per term and metric (nulls where unused)."""
    long = engine.query(definition("vocabulary"))
    keys = list(KEY_COLUMNS)
    names: list[bool | float | int | str] = [t.term for t in vocabulary.terms()]
    pivoted = (
        long.groupBy(*keys)
        .pivot("term", names)
        .agg(*[F.first(f"`{sql}`").alias(metric) for metric, sql in SQL_METRIC.items()])
    )
    return pivoted.select(
        *keys,
        *[
            F.col(f"`{t.term}_{metric}`").alias(t.column(metric))
            for t in vocabulary.terms()
            for metric in METRICS
        ],
    )


def _attributes_spark(
    engine: SparkEngine, export: SparkExport, result: DataFrame
) -> tuple[DataFrame, list[str]]:
    """Spark twin of :func:`features.attributes.attribute_features`, from the same specs."""
    customers = export.customers
    if customers is None:
        return result, []
    specs = [s for s in infer_attributes(customers, export.options.attributes) if s.feature]
    if not specs:
        return result, []
    first = ~customers["customer_id"].astype("string").duplicated().to_numpy()
    static = pd.DataFrame({"customer_id": customers["customer_id"].astype("string")[first]})
    for spec in specs:
        assert spec.type is not None
        static[f"__{spec.feature}"] = static_values(customers[spec.column], spec.type)[first]
    joined = result.join(
        spark_frame(engine.spark, static.reset_index(drop=True)), on="customer_id", how="left"
    )
    as_of = F.unix_micros(F.col("as_of").cast(T.TimestampType()))
    columns: list[str] = []
    for spec in specs:
        raw = F.col(f"`__{spec.feature}`")
        if spec.type in ("date", "timestamp"):
            when = F.unix_micros(raw.cast(T.TimestampType()))
            days = (as_of - when) / F.lit(86400e6)
            value = F.when(when < as_of, days / F.lit(365.25) if spec.in_years else days)
        elif spec.type == "category":
            value = F.when(raw.isNull() | raw.isin(list(spec.levels)), raw).otherwise(F.lit(OTHER))
        else:
            value = raw.cast(T.DoubleType())
        assert spec.feature is not None
        joined = joined.withColumn(spec.feature, value)
        columns.append(spec.feature)
    return joined.drop(*[f"__{s.feature}" for s in specs]), columns


def _features_spark(engine: SparkEngine, export: SparkExport, vocabulary: Vocabulary) -> DataFrame:
    """Spine + every group's features + vocabulary + customer attributes, minus features
    without sources."""
    keys = list(KEY_COLUMNS)
    result = engine.spark.table("spine").select(*keys)
    for group, needs in GROUPS:
        if set(needs) <= set(export.tables):
            result = result.join(engine.query(definition(group)), on=keys, how="left")
    sources = set(export.profile.sources)
    if "events" in export.tables:
        events = export.tables["events"]
        if (
            vocabulary.sign_in
            and events.where(F.col("event_type").isin(list(vocabulary.sign_in))).limit(1).count()
        ):
            sources.add(SIGN_IN)
        before = result.columns
        result = result.join(_vocabulary_wide(engine, vocabulary), on=keys, how="left")
        result = result.select(*before, *_pivot_spark(vocabulary, "events.user_id" in sources))
    result, _ = _attributes_spark(engine, export, result)
    keep = {f.name for f in available(sources)}
    drop = [f.name for f in FEATURES if f.name in result.columns and f.name not in keep]
    return result.drop(*drop)


def build_features_spark(
    engine: SparkEngine,
    export: SparkExport,
    as_of: Sequence[date],
    spec: LabelSpec | None = None,
    vocabulary: Vocabulary | None = None,
) -> DataFrame:
    """Spark twin of :func:`features.engine.build_features` (lazy; write it with ``.write``).

    Same rows and values as DuckDB: one row per customer active at each as-of date, reading only
    rows stamped strictly before it.
    """
    vocabulary = vocabulary or vocabulary_spark(export)
    _load_spark(engine, export, as_of, spec or LabelSpec(), vocabulary)
    return _features_spark(engine, export, vocabulary)


def build_labeled_set_spark(
    engine: SparkEngine,
    export: SparkExport,
    as_of: Sequence[date],
    spec: LabelSpec,
    vocabulary: Vocabulary | None = None,
) -> DataFrame:
    """Spark twin of :func:`features.engine.build_labeled_set`: features + labels."""
    vocabulary = vocabulary or vocabulary_spark(export)
    _load_spark(engine, export, as_of, spec, vocabulary)
    features = _features_spark(engine, export, vocabulary)
    labels = engine.query(definition(f"labels_{spec.kind}")).select(
        *KEY_COLUMNS,
        F.col("churned").cast(T.ByteType()).alias("churned"),
        F.col("label_complete").cast(T.BooleanType()).alias("label_complete"),
        F.col("duration_days").cast(T.IntegerType()).alias("duration_days"),
        F.col("event_observed").cast(T.BooleanType()).alias("event_observed"),
        F.col("followup_days").cast(T.IntegerType()).alias("followup_days"),
    )
    return features.join(labels, on=list(KEY_COLUMNS), how="inner")


def build_snapshot_spark(
    engine: SparkEngine, export: SparkExport, as_of: date | None = None
) -> DataFrame:
    """Spark twin of :func:`features.pipeline.build_snapshot`: features as of one day."""
    day = as_of or snapshot_as_of_spark(export)
    return build_features_spark(engine, export, [day], LabelSpec())


def write_parquet_spark(frame: DataFrame, uri: str) -> str:
    """Write ``frame`` as a Parquet folder at ``uri``, replacing what was there.

    Spark's committer publishes the parts and a ``_SUCCESS`` marker only when every task
    succeeded; readers should check for ``_SUCCESS``.
    """
    frame.write.mode("overwrite").option("compression", "zstd").parquet(uri)
    return uri


__all__ = [
    "ExportProfile",
    "SparkDialectError",
    "SparkEngine",
    "SparkExport",
    "build_features_spark",
    "build_labeled_set_spark",
    "build_snapshot_spark",
    "default_as_of_spark",
    "local_session",
    "prepare_spark",
    "profile_export",
    "read_export",
    "set_tiny_data",
    "snapshot_as_of_spark",
    "spark_frame",
    "spark_type",
    "to_spark_sql",
    "vocabulary_spark",
    "write_parquet_spark",
]

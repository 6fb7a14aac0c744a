"""The feature build, written once: definitions (``definitions/*.sql``) run on any SQL engine.

An :class:`Export` (a company's contract tables, as pandas :class:`RawTables` or as Spark
DataFrames read from Parquet) loads its tables, prepared, into a :class:`~features.sql.SqlEngine`.
From there every step is SQL in DuckDB's dialect, run by whichever engine holds the tables: the
export's profile (which columns have values, the export date, its vocabulary), the spine and
event roll-up, each feature group, the vocabulary pivot, customer attributes, the labels, and
the join of them all. Engines supply only primitives (register, materialise, fetch, write);
Spark transpiles the same text with SQLGlot (``features.spark_engine``). Python never loops over
customers or dates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from pandas.api.extensions import ExtensionDtype
from sqlglot import exp

from features.attributes import (
    AttributeSpec,
    attribute_dtypes,
    attribute_query,
    attribute_table,
    infer_attributes,
)
from features.catalog import (
    FEATURES,
    KEY_COLUMNS,
    SIGN_IN,
    Feature,
    available,
    entries_from_json,
    entries_to_json,
)
from features.contract import MAY_BE_FUTURE, TABLE_COLUMNS, RawTables
from features.errors import ChurnError
from features.io import atomic_path
from features.labels import LabelSpec
from features.options import FeatureOptions
from features.sql import DuckDBEngine, SqlEngine, alias, column, definition, on_keys, to_sql
from features.vocabulary import (
    Vocabulary,
    ranked_vocabulary,
    vocabulary_catalog,
    vocabulary_query,
)

# Prepared table -> its columns (the only ones the SQL reads). ``timestamp`` becomes ``ts``.
PREPARED_COLUMNS: dict[str, tuple[str, ...]] = {
    "subscriptions": (
        "subscription_id", "customer_id", "start_date", "end_date", "mrr", "plan", "seats",
    ),
    "events": ("customer_id", "ts", "event_type", "user_id", "feature", "value"),
    "tickets": (
        "ticket_id", "customer_id", "opened_at", "resolved_at", "priority", "category", "csat",
    ),
    "invoices": ("invoice_id", "customer_id", "issued_at", "due_at", "paid_at", "amount"),
    "nps": ("customer_id", "responded_at", "score"),
    "marketing": ("customer_id", "ts", "channel", "action"),
}  # fmt: skip
TIME_COLUMNS = {
    "signup_date", "start_date", "end_date", "ts", "timestamp", "opened_at", "resolved_at",
    "issued_at", "due_at", "paid_at", "responded_at", "churned_at",
}  # fmt: skip
NUMERIC_COLUMNS = {"mrr", "seats", "value", "csat", "amount", "score"}
TEXT_COLUMNS = {"event_type", "feature", "priority", "action"}

# Tables every later definition reads: (table, definition, contract tables it needs). The spine's
# definition depends on the label kind.
MATERIALISED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("paid", "paid", ()),  # paid.sql and lives.sql: the one definition of a customer's paid
    ("lives", "lives", ()),  # lives, read by labels, spine, retention metrics and workflow facts
    ("spine", "spine_{kind}", ()),
    ("event_days", "event_days", ("events",)),
)

# Facts across customers (definition file = table, tables it needs, how the tables computed on
# disjoint customer buckets combine into the table of all customers, reading ``{parts}``): the
# one place a per-customer definition reads something other customers did. Computed once, before
# any feature group.
SHARED: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("feature_reach", ("events",),
     "SELECT as_of, feature, CAST(SUM(customers) AS BIGINT) AS customers FROM {parts} "
     "GROUP BY as_of, feature"),
    ("feature_first_use", ("events",),
     "SELECT feature, MIN(first_day) AS first_day FROM {parts} GROUP BY feature"),
)  # fmt: skip

# Feature groups: (definition file, tables it needs). A group whose tables are absent is skipped,
# and its features are absent from the output (never zero-filled).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("usage", ("events",)),
    ("users", ("events",)),
    ("product_features", ("events",)),
    ("support", ("tickets",)),
    ("commercial", ("subscriptions",)),
    ("invoices", ("invoices",)),
    ("nps", ("nps",)),
    ("marketing", ("marketing",)),
    ("profile", ("customers",)),
)

ColumnKind = Literal["time", "number", "text", "as_is"]


def column_kind(name: str) -> ColumnKind:
    """How a prepared column is typed, by its name: UTC time, double, text, or as it comes."""
    if name in TIME_COLUMNS:
        return "time"
    if name in NUMERIC_COLUMNS:
        return "number"
    if name.endswith("_id") or name in TEXT_COLUMNS:
        return "text"
    return "as_is"


def prepared_columns(table: str, present: Sequence[str]) -> tuple[str, ...]:
    """The columns the definitions read from ``table`` (``present``: the export's columns,
    ``timestamp`` already renamed ``ts``); absent ones are added as typed nulls."""
    return PREPARED_COLUMNS.get(table, tuple(present))


def _utc_naive(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC microseconds: tz-aware values are converted, naive ones are UTC."""
    out = pd.to_datetime(values, utc=True, errors="raise", format="mixed")
    return out.dt.tz_localize(None).astype("datetime64[us]")


def prepare_table(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """One contract table reduced to what the definitions read, with uniform types.

    Absent optional columns are added as nulls so every definition runs; features that need them
    are dropped afterwards (the export's ``sources``, :class:`ExportProfile`).
    """
    frame = frame.rename(columns={"timestamp": "ts"})
    out = pd.DataFrame(index=frame.index)
    for col in prepared_columns(name, list(frame.columns)):
        kind = column_kind(col)
        if col in frame.columns:
            series = frame[col]
        else:
            dtype = "float64" if kind == "number" else "string"
            series = pd.Series(pd.NA if dtype == "string" else np.nan, index=frame.index,
                               dtype=dtype)  # fmt: skip
        if kind == "time":
            series = _utc_naive(series)
        elif kind == "number":
            series = pd.to_numeric(series, errors="raise").astype("float64")
        elif kind == "text":
            series = series.astype("string")
        out[col] = series
    return out.reset_index(drop=True)


def prepare(tables: RawTables) -> dict[str, pd.DataFrame]:
    """Every present contract table, prepared (:func:`prepare_table`)."""
    return {name: prepare_table(name, frame) for name, frame in tables.present().items()}


# --------------------------------------------------------------------------------------------
# The export and what it has


class Export(Protocol):
    """A company's contract tables wherever they live, as the build reads them."""

    @property
    def options(self) -> FeatureOptions:
        """``features.yaml`` of the export: sign-in events, vocabulary caps, attribute types."""
        ...

    @property
    def customers(self) -> pd.DataFrame:
        """``customers`` in pandas, parsed by the contract (one row per customer, small):
        attribute types are inferred from it the same way on every engine."""
        ...

    def default_engine(self) -> SqlEngine:
        """The engine this export's tables are read into when the caller names none."""
        ...

    def load(self, engine: SqlEngine) -> dict[str, tuple[str, ...]]:
        """Register every present table, prepared like :func:`prepare`; name -> its columns."""
        ...


@dataclass(frozen=True)
class TablesExport:
    """An export already in pandas (:class:`RawTables`): prepared in pandas, run on DuckDB."""

    tables: RawTables

    @property
    def options(self) -> FeatureOptions:
        return self.tables.options

    @property
    def customers(self) -> pd.DataFrame:
        return self.tables.customers

    def default_engine(self) -> SqlEngine:
        return DuckDBEngine()

    def load(self, engine: SqlEngine) -> dict[str, tuple[str, ...]]:
        loaded: dict[str, tuple[str, ...]] = {}
        for name, frame in prepare(self.tables).items():
            engine.register(name, frame)
            loaded[name] = tuple(str(c) for c in frame.columns)
        return loaded


def as_export(source: RawTables | Export) -> Export:
    return TablesExport(source) if isinstance(source, RawTables) else source


@dataclass(frozen=True)
class ExportProfile:
    """What the build needs to know about an export before the definitions run."""

    tables: frozenset[str]
    """The contract tables present."""
    sources: frozenset[str]
    """``table.column`` with at least one value (NaN counts as missing)."""
    observed_until: date
    """The export date: the latest recorded (not scheduled) timestamp or date, UTC day."""
    data_start: date | None
    """The first day of product history: the first event, else the first subscription start."""
    vocabulary: Vocabulary
    """The export's default vocabulary (:func:`default_vocabulary`)."""


def _first_day(table: str) -> str | None:
    """The column whose earliest value starts a table's history (events, else subscriptions)."""
    return {"events": "ts", "subscriptions": "start_date"}.get(table)


def _recorded_times(columns: Sequence[str]) -> list[str]:
    """Time columns that record what happened (not scheduled dates): they bound the export."""
    return [c for c in columns if column_kind(c) == "time" and c not in MAY_BE_FUTURE]


def _table_profile(name: str, columns: Sequence[str]) -> exp.Select:
    """One aggregation row for a table: per column its count of values, then the latest
    recorded time of each time column, then the first day of history where the table has one."""
    counts: list[exp.Expr] = []
    for col in columns:
        value: exp.Expr = column(col)
        if column_kind(col) == "number":  # Parquet may hold NaN, which pandas reads as missing
            value = exp.case().when(exp.func("ISNAN", value).not_(), value)
        counts.append(exp.Count(this=value))
    first = _first_day(name)
    aggregates = [
        *counts,
        *[exp.Max(this=column(c)) for c in _recorded_times(columns)],
        *([exp.Min(this=column(first))] if first is not None and first in columns else []),
    ]
    return exp.select(*[alias(a, f"a{i}") for i, a in enumerate(aggregates)]).from_(name)


def profile_loaded(
    engine: SqlEngine, loaded: dict[str, tuple[str, ...]], options: FeatureOptions
) -> ExportProfile:
    sources: set[str] = set()
    latest: list[pd.Timestamp] = []
    starts: dict[str, pd.Timestamp] = {}
    for name, columns in loaded.items():
        values = list(engine.fetch(to_sql(_table_profile(name, columns))).iloc[0])
        raw = ["timestamp" if c == "ts" else c for c in columns]
        sources |= {f"{name}.{c}" for c, n in zip(raw, values, strict=False) if n}
        stamps = values[len(columns) : len(columns) + len(_recorded_times(columns))]
        latest += [pd.Timestamp(v) for v in stamps if pd.notna(v)]
        if _first_day(name) in columns and pd.notna(values[-1]):
            starts[name] = pd.Timestamp(values[-1])
    start = starts.get("events", starts.get("subscriptions"))
    vocabulary = (
        ranked_vocabulary(
            engine, options.max_event_types, options.max_product_features, options.sign_in_events
        )
        if "events" in loaded
        else Vocabulary(sign_in=tuple(options.sign_in_events or ()))
    )
    return ExportProfile(
        tables=frozenset(loaded),
        sources=frozenset(sources),
        observed_until=max(latest, default=pd.Timestamp.min).date(),
        data_start=None if start is None else start.date(),
        vocabulary=vocabulary,
    )


def load_export(
    source: RawTables | Export, engine: SqlEngine | None = None
) -> tuple[SqlEngine, ExportProfile]:
    """Load the export's prepared tables into ``engine`` (default: the export's) and profile it."""
    export = as_export(source)
    engine = engine or export.default_engine()
    return engine, profile_loaded(engine, export.load(engine), export.options)


def profile(source: RawTables | Export) -> ExportProfile:
    """What the export has (:class:`ExportProfile`), computed on its default engine."""
    return load_export(source)[1]


def observed_until(source: RawTables | Export) -> date:
    """The export date: the latest recorded timestamp or date in the contract tables.

    Scheduled dates (a subscription's planned ``end_date``, an invoice's ``due_at``) may lie in
    the future and say nothing about how far the export reaches, so they are not counted.
    """
    return profile(source).observed_until


def default_vocabulary(source: RawTables | Export) -> Vocabulary:
    """The export's vocabulary: its most frequent event types and features over the whole log.

    A schema choice, like the list of features, made once per export: the labeled set and the
    snapshot of one export get the same columns, so the model finds every column it was trained
    on. Values stay point-in-time (only events before each as-of date are counted).
    """
    return profile(source).vocabulary


def attribute_specs(source: RawTables | Export) -> tuple[AttributeSpec, ...]:
    """The inferred (or ``features.yaml``) type of every extra customer column."""
    export = as_export(source)
    return infer_attributes(export.customers, export.options.attributes)


def _generated_catalog(
    vocabulary: Vocabulary, profile: ExportProfile, specs: Sequence[AttributeSpec]
) -> tuple[Feature, ...]:
    entries: list[Feature] = []
    if "events" in profile.tables:
        entries += vocabulary_catalog(vocabulary, "events.user_id" in profile.sources)
    entries += [s.catalog_entry() for s in specs if s.feature and s.origin != "contract"]
    return tuple(entries)


def generated_catalog(source: RawTables | Export, vocabulary: Vocabulary) -> tuple[Feature, ...]:
    """Catalog entries of the features made from this export's vocabulary and attributes."""
    return _generated_catalog(vocabulary, profile(source), attribute_specs(source))


# --------------------------------------------------------------------------------------------
# Parameters the definitions read


def as_of_frame(as_of: Sequence[date]) -> pd.DataFrame:
    """The as-of dates as midnights (UTC), sorted and unique."""
    if not as_of:
        raise ChurnError("No as-of dates given: pass --as-of DATES or --monthly.")
    days = sorted({pd.Timestamp(d).normalize() for d in as_of})
    return pd.DataFrame({"as_of": pd.to_datetime(days).astype("datetime64[us]")})


WINDOW_DAYS = 90
"""The longest window (days before an as-of date) a definition reads through ``as_of_days``."""


def as_of_days_frame(as_of: Sequence[date]) -> pd.DataFrame:
    """``as_of_days``: each as-of date with the ``WINDOW_DAYS`` days before it and their age
    (1 = the day before as_of). Event days meet as-of dates on it by equality, which engines
    join by hash, instead of by a range (``day < as_of AND day >= as_of - 90``)."""
    dates = as_of_frame(as_of)["as_of"].to_numpy()
    ages = np.arange(1, WINDOW_DAYS + 1)
    repeated = np.repeat(dates, len(ages))
    age = np.tile(ages, len(dates))
    return pd.DataFrame(
        {
            "as_of": repeated.astype("datetime64[us]"),
            "day": (repeated - age.astype("timedelta64[D]")).astype("datetime64[us]"),
            "age": age.astype("int64"),
        }
    )


def period_days_frame(as_of: Sequence[date], start: date | None) -> pd.DataFrame:
    """``period_days``: each day from ``start`` (the first event) up to the last as-of date with
    the first as-of date after it: the period whose lifetime bucket the day adds to."""
    dates = as_of_frame(as_of)["as_of"]
    last = dates.iloc[-1]
    first = pd.Timestamp(start) if start is not None else last
    days = pd.date_range(min(first, last), last - pd.Timedelta(days=1), freq="D")
    period = dates.to_numpy()[np.searchsorted(dates.to_numpy(), days.to_numpy(), side="right")]
    return pd.DataFrame(
        {"day": days.to_numpy().astype("datetime64[us]"), "as_of": period.astype("datetime64[us]")}
    )


def monthly_as_of(start: date, end: date) -> list[date]:
    """First days of the months in ``[start, end]``: the usual monthly scoring calendar."""
    months = pd.date_range(pd.Timestamp(start).to_period("M").to_timestamp(), end, freq="MS")
    return [d.date() for d in months if d.date() >= start]


def load_lives(tables: RawTables, spec: LabelSpec, engine: SqlEngine | None = None) -> SqlEngine:
    """An engine holding the export's ``subscriptions``, ``params``, ``paid`` and ``lives``: where
    the retention metrics and the workflow facts start (the labels get them in :func:`build`).

    ``spec`` gives ``gap_days`` and ``free_is_churn``; without ``spec.observed_until`` the
    export date is looked up (:func:`observed_until`).
    """
    engine = engine or DuckDBEngine()
    only = RawTables(customers=tables.customers.iloc[:0], subscriptions=tables.subscriptions)
    engine.register("subscriptions", prepare(only)["subscriptions"])
    engine.register("params", label_params(spec, spec.observed_until or observed_until(tables)))
    for table in ("paid", "lives"):
        engine.materialize(table, definition(table))
    return engine


def label_params(spec: LabelSpec, until: date) -> pd.DataFrame:
    """The one-row ``params`` table the label SQL reads (day numbers keep it engine-portable)."""
    return pd.DataFrame(
        {
            "horizon_days": [spec.horizon_days],
            "lead_days": [spec.lead_days],
            "gap_days": [spec.gap_days],
            "free_is_churn": [int(spec.free_is_churn)],
            "observed_until_day": [(pd.Timestamp(until) - pd.Timestamp("1970-01-01")).days],
        }
    )


def sign_in_frame(vocabulary: Vocabulary) -> pd.DataFrame:
    """The ``sign_in_events`` table ``event_days.sql`` joins: each sign-in event type once."""
    kinds = sorted(set(vocabulary.sign_in))
    return pd.DataFrame({"event_type": pd.Series(kinds, dtype="string")})


# --------------------------------------------------------------------------------------------
# The build


ROW_GROUP_ROWS = 16_384
"""Rows per Parquet row group of a streamed output (:meth:`FeatureSet.write_frame`): with 160
feature columns, a piece is about 20 MB in pandas (and its copies in Arrow and the writer),
whatever the export's size."""


@dataclass(frozen=True)
class FeatureSet:
    """A built feature (or labeled) table, still inside its engine: fetch it or write it."""

    engine: SqlEngine
    sql: str
    """The final query, over the tables the build materialised in ``engine``."""
    catalog: tuple[Feature, ...]
    """Generated catalog entries of the columns the table has."""
    vocabulary: Vocabulary
    attributes: tuple[AttributeSpec, ...]
    kept: bool = False
    """Whether ``sql`` reads a table already computed (a build in buckets writes its rows once)."""

    def attrs(self) -> dict[str, Any]:
        """What the table carries about itself in pandas ``attrs`` (and so in Parquet)."""
        return {"catalog": entries_to_json(self.catalog), "vocabulary": self.vocabulary.to_dict()}

    def frame(self) -> pd.DataFrame:
        """The table in pandas, sorted by customer and as-of date, carrying its own catalog
        entries and vocabulary in ``attrs`` (pandas keeps them in Parquet, so a labeled set
        carries the words for its columns to training, and from there into the model)."""
        frame = _pandas_types(self.engine.fetch(self.sql), self.attributes)
        frame = frame.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)
        frame.attrs.update(self.attrs())
        return frame

    def write_parquet(self, uri: str) -> str:
        """Write the table to ``uri`` as Parquet from inside the engine, never through pandas."""
        return self.engine.write_parquet(self.sql, uri)

    def materialized(self, name: str = "build_output") -> FeatureSet:
        """The same table computed once and kept in the engine (several reads, one build)."""
        if self.kept:
            return self
        self.engine.materialize(name, self.sql)
        return replace(self, sql=f'SELECT * FROM "{name}"')

    def write_frame(
        self,
        target: Path,
        each_piece: Callable[[pd.DataFrame], None] | None = None,
        footer: Callable[[], dict[bytes, bytes]] | None = None,
        rows: int = ROW_GROUP_ROWS,
    ) -> int:
        """Write what ``frame().to_parquet(target)`` writes (columns, types, values, order,
        ``attrs``), streamed from DuckDB in row groups of ``rows``: memory stays one piece,
        whatever the number of rows. Atomic; returns the number of rows.

        ``each_piece`` sees every piece in order (a running fingerprint); ``footer`` adds
        key-value metadata to the file once all rows are written.
        """
        if not isinstance(self.engine, DuckDBEngine):
            raise ChurnError("Streamed writes need the DuckDB engine; use write_parquet.")
        types = self._types()
        missing = self._has_missing(types)
        ordered = f"SELECT * FROM ({self.sql}) ORDER BY " + ", ".join(f'"{k}"' for k in KEY_COLUMNS)
        written = 0
        with atomic_path(Path(target)) as tmp:
            writer: pq.ParquetWriter | None = None
            # a row group is compressed and written on another thread (Arrow lets go of the
            # GIL) while the next piece is fetched, typed and hashed: the stream's CPU is
            # mostly this one Python thread, so the writing came on top of it
            background = ThreadPoolExecutor(max_workers=1)
            pending: Future[None] | None = None
            try:
                for piece in self.engine.chunks(ordered, rows):
                    piece = _pandas_types(piece, self.attributes, missing)
                    if writer is None:
                        schema = _arrow_schema(piece, types, self.attrs())
                        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
                    if each_piece is not None:
                        each_piece(piece)
                    table = pa.Table.from_pandas(piece, schema=schema, preserve_index=False)
                    if pending is not None:
                        pending.result()
                    pending = background.submit(
                        writer.write_table, table, row_group_size=max(len(piece), 1)
                    )
                    written += len(piece)
                if pending is not None:
                    pending.result()
                if writer is not None and footer is not None:
                    writer.add_key_value_metadata(footer())
            finally:
                background.shutdown(wait=True)
                if writer is not None:
                    writer.close()
        return written

    def _types(self) -> dict[str, str]:
        """The output's columns -> their SQL types."""
        described = self.engine.fetch(f"DESCRIBE {self.sql}")
        return dict(zip(described["column_name"].astype(str), described["column_type"].astype(str),
                        strict=True))  # fmt: skip

    def _has_missing(self, types: dict[str, str]) -> dict[str, bool]:
        """Whether each integer or boolean column has a missing value anywhere: a piece's types
        must be the whole table's (:func:`_numpy_dtypes`), whichever rows it holds."""
        flagged = [name for name, kind in types.items() if "INT" in kind or kind == "BOOLEAN"]
        if not flagged:
            return {}
        checks = ", ".join(f'bool_or("{name}" IS NULL) AS "{i}"' for i, name in enumerate(flagged))
        found = self.engine.fetch(f"SELECT {checks} FROM ({self.sql})").iloc[0]
        return {name: bool(found[str(i)]) for i, name in enumerate(flagged)}


def _arrow_schema(piece: pd.DataFrame, types: dict[str, str], attrs: dict[str, Any]) -> pa.Schema:
    """The Arrow schema of the whole table from its first piece, carrying ``attrs`` as
    ``frame().to_parquet`` does: a text or boolean column whose values in that piece are all
    missing takes its SQL type (``types``), not Arrow's null.

    Only the schema carries ``attrs``, never a frame: pandas deep-copies a frame's ``attrs`` into
    every column it hands out, which made hashing and converting the pieces of a labeled set (a
    catalog of 160 features in ``attrs``) cost more than reading them from DuckDB. So ``attrs``
    go into the schema's pandas metadata as pyarrow writes them from a frame's."""
    schema = pa.Schema.from_pandas(piece, preserve_index=False)
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            typed = pa.bool_() if types.get(field.name) == "BOOLEAN" else pa.string()
            schema = schema.set(i, field.with_type(typed))
    metadata = dict(schema.metadata or {})
    if attrs:
        described = json.loads(metadata[b"pandas"])
        described["attributes"] = attrs
        metadata[b"pandas"] = json.dumps(described).encode("utf8")
        metadata[b"PANDAS_ATTRS"] = json.dumps(attrs).encode()
    return schema.with_metadata(metadata)


def _pandas_types(
    frame: pd.DataFrame,
    attributes: Sequence[AttributeSpec],
    missing: dict[str, bool] | None = None,
) -> pd.DataFrame:
    """A fetched build output in the pandas types every engine's frame has (see
    :func:`_numpy_dtypes`); ``missing`` says which columns have missing values in the whole
    table when ``frame`` is only a piece of it."""
    frame = _numpy_dtypes(frame, missing)
    frame = attribute_dtypes(frame, attributes)
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[us]")
    return frame


def _numpy_dtypes(frame: pd.DataFrame, missing: dict[str, bool] | None = None) -> pd.DataFrame:
    """Nullable integer and boolean columns as NumPy types, the way every engine's pandas
    output reads: float64 (NaN) and object (None) where values are missing."""
    for name in frame.columns:
        dtype = frame[name].dtype
        if missing is None:
            if not isinstance(dtype, ExtensionDtype):
                continue
            has_missing = bool(frame[name].isna().any())
        else:
            has_missing = missing.get(str(name), False)
        if pd.api.types.is_bool_dtype(dtype):
            frame[name] = frame[name].astype(object if has_missing else bool)
        elif pd.api.types.is_integer_dtype(dtype):
            whole = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype.type)
            frame[name] = frame[name].astype("float64" if has_missing else whole)
    return frame


def _selects(sql: str) -> list[str]:
    """The output columns of a definition, read off its final SELECT."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    names = tree.named_selects if isinstance(tree, exp.Query) else ["*"]
    if "*" in names:
        raise ChurnError(f"A feature definition must name its columns, not SELECT *: {sql[:80]}")
    return names


def register_inputs(
    export: Export,
    as_of: Sequence[date],
    spec: LabelSpec,
    engine: SqlEngine,
    known: ExportProfile,
    vocabulary: Vocabulary | None,
) -> Vocabulary:
    """The small inputs every definition reads: as-of dates, params, vocabulary."""
    vocabulary = vocabulary or known.vocabulary
    engine.register("vocabulary", vocabulary.table())
    engine.register("sign_in_events", sign_in_frame(vocabulary))
    engine.register("as_of_dates", as_of_frame(as_of))
    engine.register("as_of_days", as_of_days_frame(as_of))
    engine.register("period_days", period_days_frame(as_of, known.data_start))
    engine.register("params", label_params(spec, spec.observed_until or known.observed_until))
    if spec.kind == "noncontractual" and "events" not in known.tables:
        raise ChurnError(
            "Non-contractual labels need the events table (activity or purchases); "
            "add events.parquet or use --label contractual."
        )
    return vocabulary


def materialise_tables(engine: SqlEngine, known: ExportProfile, spec: LabelSpec) -> None:
    for table, name, needs in MATERIALISED:
        if set(needs) <= known.tables:
            engine.materialize(table, definition(name.format(kind=spec.kind)))


def _prepared(
    export: Export,
    as_of: Sequence[date],
    spec: LabelSpec,
    engine: SqlEngine | None,
    vocabulary: Vocabulary | None,
) -> tuple[SqlEngine, ExportProfile, Vocabulary]:
    """The export loaded into ``engine`` with the small inputs every definition reads (as-of
    dates, params, vocabulary) and the shared tables (paid, lives, spine, event_days)."""
    engine, known = load_export(export, engine)
    vocabulary = register_inputs(export, as_of, spec, engine, known, vocabulary)
    materialise_tables(engine, known, spec)
    return engine, known, vocabulary


def feature_sources(engine: SqlEngine, known: ExportProfile) -> set[str]:
    """The export's sources, plus sign-ins when any event is one (over all customers)."""
    sources = set(known.sources)
    if "events" in known.tables:
        signs = engine.fetch(
            "SELECT COUNT(*) AS n FROM events "
            "WHERE event_type IN (SELECT event_type FROM sign_in_events)"
        )
        if int(signs["n"].iloc[0]):
            sources.add(SIGN_IN)
    return sources


def customer_rows(
    engine: SqlEngine,
    known: ExportProfile,
    spec: LabelSpec,
    vocabulary: Vocabulary,
    specs: Sequence[AttributeSpec],
    sources: set[str],
    labels: bool,
) -> tuple[str, set[str]]:
    """Every feature group (and the labels) of the customers in the engine's spine, and the
    query joining them: per customer only (facts across customers are in ``SHARED``). Returns
    the query and the feature columns it has."""
    parts: list[tuple[str, list[str]]] = []  # feature tables joined onto the spine, in order
    for group, needs in GROUPS:
        if set(needs) <= known.tables:
            sql = definition(group)
            engine.materialize(f"features_{group}", sql)
            parts.append((f"features_{group}", _selects(sql)))
    if "events" in known.tables:
        engine.materialize("vocabulary_terms", definition("vocabulary"))
        sql = vocabulary_query(vocabulary, "events.user_id" in sources, "vocabulary_terms")
        engine.materialize("features_vocabulary", sql)
        parts.append(("features_vocabulary", _selects(sql)))
    if specs:
        sql = attribute_query(specs, "spine", "attributes")
        engine.materialize("features_attributes", sql)
        parts.append(("features_attributes", _selects(sql)))

    unavailable = _unavailable(sources)
    keys = list(KEY_COLUMNS)
    selected: list[exp.Expr] = [column(k, "s") for k in keys]
    query = exp.select().from_(exp.to_table("spine").as_("s"))
    for i, (table, columns) in enumerate(parts):
        selected += [column(c, f"p{i}") for c in columns if c not in keys and c not in unavailable]
        query = query.join(
            exp.to_table(table).as_(f"p{i}"), on=on_keys("s", f"p{i}", keys), join_type="left"
        )
    if labels:
        engine.materialize("labels", definition(f"labels_{spec.kind}"))
        selected += [
            alias(exp.cast(column("churned", "l"), exp.DataType.build("TINYINT")), "churned"),
            alias(
                exp.cast(column("label_complete", "l"), exp.DataType.build("BOOLEAN")),
                "label_complete",
            ),
            # the row's time to churn (survival models; see labels_*.sql)
            alias(
                exp.cast(column("duration_days", "l"), exp.DataType.build("INT")), "duration_days"
            ),
            alias(
                exp.cast(column("event_observed", "l"), exp.DataType.build("BOOLEAN")),
                "event_observed",
            ),
            alias(
                exp.cast(column("followup_days", "l"), exp.DataType.build("INT")), "followup_days"
            ),
        ]
        query = query.join(exp.to_table("labels").as_("l"), on=on_keys("s", "l", keys))
    return to_sql(query.select(*selected)), {c for _, columns in parts for c in columns}


def _unavailable(sources: set[str]) -> set[str]:
    keep = {f.name for f in available(sources)}
    return {f.name for f in FEATURES if f.name not in keep}


def feature_set(
    engine: SqlEngine,
    sql: str,
    present: set[str],
    known: ExportProfile,
    vocabulary: Vocabulary,
    specs: tuple[AttributeSpec, ...],
    sources: set[str],
    kept: bool = False,
) -> FeatureSet:
    unavailable = _unavailable(sources)
    catalog = _generated_catalog(vocabulary, known, specs)
    return FeatureSet(
        engine,
        sql,
        tuple(f for f in catalog if f.name in present and f.name not in unavailable),
        vocabulary,
        specs,
        kept,
    )


def build(
    source: RawTables | Export,
    as_of: Sequence[date],
    spec: LabelSpec | None = None,
    engine: SqlEngine | None = None,
    vocabulary: Vocabulary | None = None,
    labels: bool = False,
    buckets: int | None = None,
) -> FeatureSet:
    """One row per customer active at each as-of date with every available leading indicator,
    and with ``labels`` the label columns (rows churned during the lead time dropped).

    Reads only rows stamped strictly before each as-of date (the leakage property test proves it).
    ``vocabulary``: the event types and features with their own columns (default: the export's
    most frequent, :func:`default_vocabulary`). ``buckets``: on DuckDB, build the customers in
    this many disjoint buckets one after another (:mod:`features.buckets`), so memory holds one
    bucket's events, not the export's; the rows are the same. Default: as many as the engine's
    memory limit needs (:func:`features.buckets.bucket_count`); always 1 on other engines.
    """
    from features import buckets as bucketed

    spec = spec or LabelSpec()
    export = as_export(source)
    engine = engine or export.default_engine()
    count = bucketed.default_buckets(export, engine) if buckets is None else buckets
    if count > 1:
        return bucketed.build_in_buckets(export, as_of, spec, engine, vocabulary, labels, count)
    engine, known, vocabulary = _prepared(export, as_of, spec, engine, vocabulary)
    for table, needs, _ in SHARED:
        if set(needs) <= known.tables:
            engine.materialize(table, definition(table))
    sources = feature_sources(engine, known)
    specs = register_attributes(export, engine)
    sql, present = customer_rows(engine, known, spec, vocabulary, specs, sources, labels)
    return feature_set(engine, sql, present, known, vocabulary, specs, sources)


def register_attributes(export: Export, engine: SqlEngine) -> tuple[AttributeSpec, ...]:
    """The attribute features of the export, their table registered as ``attributes``."""
    specs = tuple(s for s in attribute_specs(export) if s.feature)
    if specs:
        engine.register("attributes", attribute_table(export.customers, specs))
    return specs


def build_features(
    tables: RawTables | Export,
    as_of: Sequence[date],
    spec: LabelSpec | None = None,
    engine: SqlEngine | None = None,
    vocabulary: Vocabulary | None = None,
) -> pd.DataFrame:
    """One row per customer active at each as-of date, with every available leading indicator
    (:func:`build`, fetched as pandas)."""
    return build(tables, as_of, spec, engine, vocabulary).frame()


def build_labeled_set(
    tables: RawTables | Export,
    as_of: Sequence[date],
    spec: LabelSpec,
    engine: SqlEngine | None = None,
    vocabulary: Vocabulary | None = None,
) -> pd.DataFrame:
    """Features plus ``churned``, ``label_complete`` and the time to churn (``duration_days``,
    ``event_observed``, ``followup_days``) for each (customer, as_of) row.

    Rows whose customer churned during the lead time are dropped (see ``features.labels``).
    """
    return build(tables, as_of, spec, engine, vocabulary, labels=True).frame()


def build_labels(
    tables: RawTables | Export, as_of: Sequence[date], spec: LabelSpec
) -> pd.DataFrame:
    """Only the labels of :func:`build_labeled_set` (customer_id, as_of, churned,
    label_complete): what the realised performance of past scorings needs from a later export,
    without computing a single feature."""
    engine, _, _ = _prepared(as_export(tables), as_of, spec, None, None)
    labels = engine.fetch(definition(f"labels_{spec.kind}"))
    labels["customer_id"] = labels["customer_id"].astype("string")
    labels["as_of"] = pd.to_datetime(labels["as_of"]).astype("datetime64[us]")
    labels["churned"] = labels["churned"].astype("int8")
    labels["label_complete"] = labels["label_complete"].astype(bool)
    return labels


def catalog_of(frame: pd.DataFrame) -> dict[str, Feature]:
    """The generated catalog entries a built set carries (empty for sets built before them)."""
    return entries_from_json(frame.attrs.get("catalog", []))


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model inputs of a built set: everything but keys and labels."""
    from features.catalog import LABEL_COLUMNS

    return [c for c in frame.columns if c not in KEY_COLUMNS and c not in LABEL_COLUMNS]


__all__ = [
    "TABLE_COLUMNS",
    "DuckDBEngine",
    "Export",
    "ExportProfile",
    "FeatureSet",
    "SqlEngine",
    "TablesExport",
    "build",
    "build_features",
    "build_labeled_set",
    "catalog_of",
    "default_vocabulary",
    "definition",
    "feature_columns",
    "generated_catalog",
    "load_export",
    "load_lives",
    "monthly_as_of",
    "observed_until",
    "profile",
]

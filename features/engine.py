"""Runs the feature and label definitions (``definitions/*.sql``) on an SQL engine.

The definitions are written once, in DuckDB's dialect, and read only a handful of prepared
tables; the Spark engine transpiles the same text with SQLGlot. Python here only prepares the
inputs (UTC, column names, absent optional columns) and joins the groups; it never loops over
customers or dates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import date
from importlib import resources
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd

from features.attributes import AttributeSpec, attribute_features, infer_attributes
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
from features.labels import LabelSpec
from features.vocabulary import (
    Vocabulary,
    drop_unavailable,
    infer_vocabulary,
    pivot,
    vocabulary_catalog,
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


def definition(name: str) -> str:
    """The SQL text of ``definitions/<name>.sql``."""
    return (resources.files("features") / "definitions" / f"{name}.sql").read_text()


class SqlEngine(Protocol):
    """What a definition needs from an engine: named tables in, query results out."""

    def register(self, name: str, frame: pd.DataFrame) -> None: ...

    def materialize(self, name: str, sql: str) -> None: ...

    def fetch(self, sql: str) -> pd.DataFrame: ...


class DuckDBEngine:
    """The embedded default: an in-process DuckDB connection (no server)."""

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        # Jupyter without ipywidgets refuses the setting: the bar is off there already
        with contextlib.suppress(duckdb.InvalidInputException):
            self.con.execute("SET enable_progress_bar = false")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(f"{name}__df", frame)
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS SELECT * FROM "{name}__df"')
        self.con.unregister(f"{name}__df")

    def materialize(self, name: str, sql: str) -> None:
        self.con.execute(f'CREATE OR REPLACE TEMP TABLE "{name}" AS {sql}')

    def fetch(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()


def _utc_naive(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC microseconds: tz-aware values are converted, naive ones are UTC."""
    out = pd.to_datetime(values, utc=True, errors="raise", format="mixed")
    return out.dt.tz_localize(None).astype("datetime64[us]")


def prepare(tables: RawTables, vocabulary: Vocabulary | None = None) -> dict[str, pd.DataFrame]:
    """The contract tables reduced to what the definitions read, with uniform types.

    Absent optional columns are added as nulls so every definition runs; features that need them
    are dropped afterwards (see :func:`present_sources`). Events get ``sign_in``: whether the
    type is one the vocabulary reads as a sign-in.
    """
    sign_in = list(vocabulary.sign_in) if vocabulary else []
    prepared: dict[str, pd.DataFrame] = {}
    for name, frame in tables.present().items():
        if name == "exit_reasons":
            continue
        frame = frame.rename(columns={"timestamp": "ts"})
        columns = PREPARED_COLUMNS.get(name, tuple(frame.columns))
        out = pd.DataFrame(index=frame.index)
        for col in columns:
            if col in frame.columns:
                series = frame[col]
            else:
                dtype = "float64" if col in NUMERIC_COLUMNS else "string"
                series = pd.Series(pd.NA if dtype == "string" else np.nan, index=frame.index,
                                   dtype=dtype)  # fmt: skip
            if col in TIME_COLUMNS:
                series = _utc_naive(series)
            elif col in NUMERIC_COLUMNS:
                series = pd.to_numeric(series, errors="raise").astype("float64")
            elif col.endswith("_id") or col in ("event_type", "feature", "priority", "action"):
                series = series.astype("string")
            out[col] = series
        if name == "events":
            out["sign_in"] = out["event_type"].isin(sign_in).fillna(False).astype(bool)
        prepared[name] = out.reset_index(drop=True)
    return prepared


def present_sources(tables: RawTables, vocabulary: Vocabulary | None = None) -> set[str]:
    """``table.column`` names that exist in the export with at least one value, and
    ``events.sign_in`` when some event type means a sign-in."""
    present: set[str] = set()
    for name, frame in tables.present().items():
        for col in frame.columns:
            if frame[col].notna().any():
                present.add(f"{name}.{col}")
    events = tables.events
    if events is not None and vocabulary and events["event_type"].isin(vocabulary.sign_in).any():
        present.add(SIGN_IN)
    return present


def default_vocabulary(tables: RawTables) -> Vocabulary:
    """The export's vocabulary: its most frequent event types and features over the whole log.

    A schema choice, like the list of features, made once per export: the labeled set and the
    snapshot of one export get the same columns, so the model finds every column it was trained
    on. Values stay point-in-time (only events before each as-of date are counted).
    """
    options = tables.options
    return infer_vocabulary(
        tables.events,
        None,
        options.max_event_types,
        options.max_product_features,
        options.sign_in_events,
    )


def attribute_specs(tables: RawTables) -> tuple[AttributeSpec, ...]:
    """The inferred (or ``features.yaml``) type of every extra customer column."""
    return infer_attributes(tables.customers, tables.options.attributes)


def generated_catalog(tables: RawTables, vocabulary: Vocabulary) -> tuple[Feature, ...]:
    """Catalog entries of the features made from this export's vocabulary and attributes."""
    entries: list[Feature] = []
    if tables.events is not None:
        events = tables.events
        with_users = "user_id" in events.columns and bool(events["user_id"].notna().any())
        entries += vocabulary_catalog(vocabulary, with_users)
    entries += [
        s.catalog_entry() for s in attribute_specs(tables) if s.feature and s.origin != "contract"
    ]
    return tuple(entries)


def as_of_frame(as_of: Sequence[date]) -> pd.DataFrame:
    """The as-of dates as midnights (UTC), sorted and unique."""
    if not as_of:
        raise ChurnError("No as-of dates given: pass --as-of DATES or --monthly.")
    days = sorted({pd.Timestamp(d).normalize() for d in as_of})
    return pd.DataFrame({"as_of": pd.to_datetime(days).astype("datetime64[us]")})


def observed_until(tables: RawTables) -> date:
    """The export date: the latest recorded timestamp or date in the contract tables.

    Scheduled dates (a subscription's planned ``end_date``, an invoice's ``due_at``) may lie in
    the future and say nothing about how far the export reaches, so they are not counted.
    """
    latest = pd.Timestamp.min.tz_localize("UTC")
    for frame in tables.present().values():
        for col in (set(frame.columns) & TIME_COLUMNS) - MAY_BE_FUTURE:
            values = pd.to_datetime(frame[col], utc=True, errors="coerce", format="mixed")
            if values.notna().any():
                latest = max(latest, values.max())
    return latest.date()


def monthly_as_of(start: date, end: date) -> list[date]:
    """First days of the months in ``[start, end]``: the usual monthly scoring calendar."""
    months = pd.date_range(pd.Timestamp(start).to_period("M").to_timestamp(), end, freq="MS")
    return [d.date() for d in months if d.date() >= start]


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


def _load(
    tables: RawTables,
    as_of: Sequence[date],
    spec: LabelSpec,
    engine: SqlEngine | None,
    vocabulary: Vocabulary,
) -> SqlEngine:
    engine = engine or DuckDBEngine()
    for name, frame in prepare(tables, vocabulary).items():
        engine.register(name, frame)
    engine.register("vocabulary", vocabulary.table())
    engine.register("as_of_dates", as_of_frame(as_of))
    engine.register("params", label_params(spec, spec.observed_until or observed_until(tables)))
    if spec.kind == "noncontractual" and tables.events is None:
        raise ChurnError(
            "Non-contractual labels need the events table (activity or purchases); "
            "add events.parquet or use --label contractual."
        )
    engine.materialize("spine", definition(f"spine_{spec.kind}"))
    if tables.events is not None:
        engine.materialize("event_days", definition("event_days"))
    return engine


def _features(engine: SqlEngine, tables: RawTables, vocabulary: Vocabulary) -> pd.DataFrame:
    present = set(tables.present())
    keys = list(KEY_COLUMNS)
    result = engine.fetch("SELECT customer_id, as_of FROM spine ORDER BY customer_id, as_of")
    for group, needs in GROUPS:
        if not set(needs) <= present:
            continue
        part = engine.fetch(definition(group))
        result = result.merge(part, on=keys, how="left", validate="one_to_one")
    sources = present_sources(tables, vocabulary)
    if tables.events is not None:
        long = engine.fetch(definition("vocabulary"))
        long["as_of"] = pd.to_datetime(long["as_of"]).astype("datetime64[us]")
        result["as_of"] = pd.to_datetime(result["as_of"]).astype("datetime64[us]")
        wide = pivot(long, vocabulary, result[keys])
        wide = drop_unavailable(wide, vocabulary, "events.user_id" in sources)
        result = result.merge(wide, on=keys, how="left", validate="one_to_one")
    specs = attribute_specs(tables)
    if any(s.feature for s in specs):
        result["as_of"] = pd.to_datetime(result["as_of"]).astype("datetime64[us]")
        attributes = attribute_features(tables.customers, specs, result[keys])
        result = result.merge(attributes, on=keys, how="left", validate="one_to_one")
    keep = {f.name for f in available(sources)}
    drop = [f.name for f in FEATURES if f.name in result.columns and f.name not in keep]
    return result.drop(columns=drop)


def build_features(
    tables: RawTables,
    as_of: Sequence[date],
    spec: LabelSpec | None = None,
    engine: SqlEngine | None = None,
    vocabulary: Vocabulary | None = None,
) -> pd.DataFrame:
    """One row per customer active at each as-of date, with every available leading indicator.

    Reads only rows stamped strictly before each as-of date (the leakage property test proves it).
    ``vocabulary``: the event types and features with their own columns (default: the export's
    most frequent, :func:`default_vocabulary`).
    """
    spec = spec or LabelSpec()
    vocabulary = vocabulary or default_vocabulary(tables)
    loaded = _load(tables, as_of, spec, engine, vocabulary)
    return _describe(_finish(_features(loaded, tables, vocabulary)), tables, vocabulary)


def build_labeled_set(
    tables: RawTables,
    as_of: Sequence[date],
    spec: LabelSpec,
    engine: SqlEngine | None = None,
    vocabulary: Vocabulary | None = None,
) -> pd.DataFrame:
    """Features plus ``churned`` and ``label_complete`` for each (customer, as_of) row.

    Rows whose customer churned during the lead time are dropped (see ``features.labels``).
    """
    vocabulary = vocabulary or default_vocabulary(tables)
    loaded = _load(tables, as_of, spec, engine, vocabulary)
    features = _features(loaded, tables, vocabulary)
    labels = loaded.fetch(definition(f"labels_{spec.kind}"))
    labels["churned"] = labels["churned"].astype("int8")
    labels["label_complete"] = labels["label_complete"].astype(bool)
    joined = features.merge(labels, on=list(KEY_COLUMNS), how="inner", validate="1:1")
    return _describe(_finish(joined), tables, vocabulary)


def build_labels(tables: RawTables, as_of: Sequence[date], spec: LabelSpec) -> pd.DataFrame:
    """Only the labels of :func:`build_labeled_set` (customer_id, as_of, churned,
    label_complete): what the realised performance of past scorings needs from a later export."""
    loaded = _load(tables, as_of, spec, None, default_vocabulary(tables))
    labels = loaded.fetch(definition(f"labels_{spec.kind}"))
    labels["churned"] = labels["churned"].astype("int8")
    labels["label_complete"] = labels["label_complete"].astype(bool)
    return labels


def _describe(frame: pd.DataFrame, tables: RawTables, vocabulary: Vocabulary) -> pd.DataFrame:
    """Attach the generated catalog entries and the vocabulary to the set (``frame.attrs``).

    pandas keeps ``attrs`` in the Parquet file, so a labeled set carries the words for its own
    columns to training, and from there into the model.
    """
    present = set(frame.columns)
    entries = [f for f in generated_catalog(tables, vocabulary) if f.name in present]
    frame.attrs["catalog"] = entries_to_json(entries)
    frame.attrs["vocabulary"] = vocabulary.to_dict()
    return frame


def catalog_of(frame: pd.DataFrame) -> dict[str, Feature]:
    """The generated catalog entries a built set carries (empty for sets built before them)."""
    return entries_from_json(frame.attrs.get("catalog", []))


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[us]")
    return frame.sort_values(list(KEY_COLUMNS), kind="stable").reset_index(drop=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model inputs of a built set: everything but keys and labels."""
    from features.catalog import LABEL_COLUMNS

    return [c for c in frame.columns if c not in KEY_COLUMNS and c not in LABEL_COLUMNS]


__all__ = [
    "TABLE_COLUMNS",
    "DuckDBEngine",
    "SqlEngine",
    "build_features",
    "build_labeled_set",
    "catalog_of",
    "default_vocabulary",
    "feature_columns",
    "generated_catalog",
    "monthly_as_of",
    "observed_until",
]

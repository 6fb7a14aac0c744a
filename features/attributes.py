"""Customer attributes beyond the contract: a type inferred from the values, then a feature.

An export's ``customers`` table often carries columns the contract does not name (``age``,
``balance``, ``date_of_birth``, ``is_active_member``, ``notes``). Read from a CSV they are text;
read from Parquet they may already be typed. Either way each column gets one type, inferred from
its values so that a CSV and a Parquet of the same table agree:

- whole number, number, true/false -> a number (true/false as 1/0);
- date, timestamp -> days since it at each as-of date, or years when the dates lie decades back
  (a date of birth becomes an age). A date on or after the as-of date is not yet known there
  and is missing: an attribute such as a cancellation date can never leak into earlier rows;
- category -> its levels, levels held by few customers pooled as ``other``;
- free text and identifier-like columns (nearly one value per customer) -> never a feature.

``features.yaml`` in the export folder may override a type or drop a column. ``churn validate``
prints what each column became (:func:`render_attributes`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.table import Table
from sqlglot import exp

from features.catalog import BY_NAME, KEY_COLUMNS, NON_FEATURE_ATTRIBUTES, Feature
from features.contract import TABLE_COLUMNS
from features.options import AttributeType, Override
from features.sql import DuckDBEngine, alias, column, double, literal, on_keys, to_sql

NULL_WORDS = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "?", "#n/a"})
TRUE_WORDS = frozenset({"true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "no", "n", "f"})
PARSE_SHARE = 0.98
"""Share of non-missing values that must parse for a column to take a type (allows stray junk)."""
UNIQUE_SHARE = 0.9
"""Text with this share of distinct values or more is free text or an id, not a category."""
MIN_LEVEL_CUSTOMERS = 5
MIN_LEVEL_SHARE = 0.005
MAX_LEVELS = 30
OTHER = "other"
YEARS_AFTER_DAYS = 3650.0
"""Dates whose median lies further back than this before the latest sign-up read in years (an
age), else in days."""
_DATE = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}$|^\d{1,2}/\d{1,2}/\d{4}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{2}")
CONTRACT_CUSTOMER_COLUMNS = frozenset(TABLE_COLUMNS["customers"][0] + TABLE_COLUMNS["customers"][1])
CONTRACT_PROFILE = tuple(
    c for c in TABLE_COLUMNS["customers"][1] if c not in NON_FEATURE_ATTRIBUTES
)
"""The contract's own customer categories (industry, plan, ...): hand-written catalog entries."""


@dataclass(frozen=True)
class AttributeSpec:
    """One extra customer column: its type, where the type came from, and the feature it gives."""

    column: str
    type: AttributeType | None
    """None: dropped in ``features.yaml``."""
    origin: str
    """``contract``, ``inferred`` or ``features.yaml``."""
    feature: str | None
    """The feature's name, None when the column is never a feature."""
    levels: tuple[str, ...] = ()
    """Category levels kept; other values become ``other``."""
    in_years: bool = False

    def becomes(self) -> str:
        """What the column turns into, in words (``churn validate``)."""
        if self.type is None:
            return "dropped (features.yaml)"
        if self.feature is None:
            return {
                "text": "not a feature (free text)",
                "identifier": "not a feature (one value per customer, like an id)",
            }.get(self.type, "not a feature (a single value)")
        if self.type in ("date", "timestamp"):
            unit = "years" if self.in_years else "days"
            return f"{self.feature}: {unit} since it at each as-of date"
        if self.type == "category":
            return f"{self.feature}: category with {len(self.levels)} levels, rare ones as 'other'"
        if self.type == "boolean":
            return f"{self.feature}: 1 for true, 0 for false"
        return f"{self.feature}: a number"

    def catalog_entry(self) -> Feature:
        """The catalog entry of the feature (a template filled with the column's name)."""
        assert self.feature is not None and self.type is not None
        label = self.column.replace("_", " ").strip()
        requires = (f"customers.{self.column}",)
        if self.type in ("date", "timestamp"):
            unit = "years" if self.in_years else "days"
            return Feature(
                self.feature, "profile", unit,
                f"{unit.capitalize()} since the customer's '{label}' at the as-of date",
                f"{{value:,.0f}} {unit} since '{label}'", requires,
            )  # fmt: skip
        if self.type == "category":
            return Feature(
                self.feature, "profile", "", f"Customer attribute '{label}'",
                f"{label.capitalize()}: {{value}}", requires, "categorical",
            )  # fmt: skip
        if self.type == "boolean":
            return Feature(
                self.feature, "profile", "flag", f"Customer attribute '{label}' (1 = true)",
                f"{label.capitalize()}: {{yes_no}}", requires,
            )  # fmt: skip
        shown = "{value:,.0f}" if self.type == "integer" else "{value:,.2f}"
        return Feature(
            self.feature, "profile", "", f"Customer attribute '{label}'",
            f"{label.capitalize()}: {shown}", requires,
        )  # fmt: skip


def extra_columns(customers: pd.DataFrame) -> list[str]:
    """Customer columns outside the contract: the ones whose type is inferred."""
    return [c for c in customers.columns if c not in CONTRACT_CUSTOMER_COLUMNS]


def unknown_overrides(customers: pd.DataFrame, overrides: Mapping[str, Override]) -> list[str]:
    """``features.yaml`` attribute names that are no column of customers."""
    return [name for name in overrides if name not in customers.columns]


def _text(values: pd.Series) -> pd.Series:
    """Non-missing values as stripped text; the usual spellings of "missing" removed."""
    text = values.dropna().astype(str).str.strip()
    return text[~text.str.lower().isin(NULL_WORDS)]


def _numbers(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text, errors="coerce")


def infer_type(values: pd.Series) -> AttributeType:
    """The type of one column, from its dtype when typed, else from its text."""
    dtype = values.dtype
    present = values.dropna()
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        stamps = pd.to_datetime(present)
        midnight = (stamps == stamps.dt.normalize()).all()
        return "date" if midnight and not isinstance(dtype, pd.DatetimeTZDtype) else "timestamp"
    if pd.api.types.is_numeric_dtype(dtype):
        return _numeric_type(present.astype("float64"))
    text = _text(values)
    if text.empty:
        return "text"
    lower = text.str.lower()
    if lower.isin(TRUE_WORDS | FALSE_WORDS).all() and lower.nunique() <= 2:
        return "boolean"
    numbers = _numbers(text)
    if numbers.notna().mean() >= PARSE_SHARE:
        return _numeric_type(numbers.dropna())
    if text.str.match(_DATE).mean() >= PARSE_SHARE:
        return "date"
    if text.str.match(_TIMESTAMP).mean() >= PARSE_SHARE:
        return "timestamp"
    if len(text) >= 20 and text.nunique() >= UNIQUE_SHARE * len(text):
        words = text.str.count(r"\s+") + 1
        return "text" if words.median() >= 3 or text.str.len().median() > 40 else "identifier"
    return "category"


def _numeric_type(numbers: pd.Series) -> AttributeType:
    if numbers.empty:
        return "number"
    if numbers.isin([0.0, 1.0]).all():
        return "boolean"
    whole = bool((numbers == np.floor(numbers)).all())
    if whole and len(numbers) >= 20 and numbers.is_unique:
        steps = np.diff(np.sort(numbers.to_numpy()))
        if (steps == 1).all():  # 1, 2, 3, ...: a row number
            return "identifier"
    return "integer" if whole else "number"


def _feature_name(column: str, kind: AttributeType, in_years: bool) -> str:
    if kind in ("date", "timestamp"):
        return f"{'years' if in_years else 'days'}_since_{column}"
    # a hand-written feature, a key or a generated vocabulary column may already use the name
    taken = column in BY_NAME or column in KEY_COLUMNS or column.startswith(("type_", "uses_"))
    return f"{column}_attribute" if taken else column


def static_values(values: pd.Series, kind: AttributeType) -> pd.Series:
    """A column in its type: float for numbers and flags, naive UTC for times, text otherwise."""
    if kind in ("integer", "number"):
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            return values.astype("float64")
        return _numbers(values.astype("string").str.strip()).astype("float64")
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
            return values.astype("float64")
        lower = values.astype("string").str.strip().str.lower()
        flags = pd.Series(np.nan, index=values.index, dtype="float64")
        flags[lower.isin(TRUE_WORDS | {"1"}).fillna(False).to_numpy(bool)] = 1.0
        flags[lower.isin(FALSE_WORDS | {"0"}).fillna(False).to_numpy(bool)] = 0.0
        return flags
    if kind in ("date", "timestamp"):
        if pd.api.types.is_datetime64_any_dtype(values.dtype):
            stamps = pd.to_datetime(values, utc=True)
        else:
            text = values.astype("string").str.strip()
            stamps = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
        return stamps.dt.tz_localize(None).astype("datetime64[us]")
    text = values.astype("string").str.strip()
    return text.mask(text.str.lower().isin(NULL_WORDS).fillna(False))


def _levels(text: pd.Series) -> tuple[str, ...]:
    counts = text.dropna().value_counts()
    floor = max(MIN_LEVEL_CUSTOMERS, math.ceil(MIN_LEVEL_SHARE * max(len(text), 1)))
    kept = (
        counts[counts >= floor]
        .sort_index(kind="stable")
        .sort_values(ascending=False, kind="stable")
    )
    return tuple(sorted(str(v) for v in kept.index[:MAX_LEVELS]))


def _reference_day(customers: pd.DataFrame, dates: pd.Series) -> pd.Timestamp:
    """The latest sign-up (else the latest date itself): "how far back" is read against it."""
    signups = pd.to_datetime(customers["signup_date"], utc=True, errors="coerce", format="mixed")
    latest = signups.max()
    return pd.Timestamp(dates.max()) if pd.isna(latest) else latest.tz_localize(None)


def infer_attributes(
    customers: pd.DataFrame, overrides: Mapping[str, Override] | None = None
) -> tuple[AttributeSpec, ...]:
    """The type and feature of every customer column outside the contract."""
    overrides = dict(overrides or {})
    specs: list[AttributeSpec] = []
    for name in CONTRACT_PROFILE:
        if name in customers.columns and name not in overrides:
            pooled = _levels(static_values(customers[name], "category"))
            if pooled:
                specs.append(AttributeSpec(name, "category", "contract", name, pooled))
    for name in extra_columns(customers):
        chosen = overrides.get(name)
        if chosen == "drop":
            specs.append(AttributeSpec(name, None, "features.yaml", None))
            continue
        kind: AttributeType = chosen if chosen is not None else infer_type(customers[name])
        origin = "features.yaml" if chosen is not None else "inferred"
        values = static_values(customers[name], kind)
        if kind in ("text", "identifier") or values.dropna().nunique() < 2:
            specs.append(AttributeSpec(name, kind, origin, None))
            continue
        in_years = False
        levels: tuple[str, ...] = ()
        if kind in ("date", "timestamp"):
            known = values.dropna()
            back = (_reference_day(customers, known) - known).dt.days.median()
            in_years = bool(back > YEARS_AFTER_DAYS)
        if kind == "category":
            levels = _levels(values)
            if not levels:
                specs.append(AttributeSpec(name, kind, origin, None))
                continue
        feature = _feature_name(name, kind, in_years)
        specs.append(AttributeSpec(name, kind, origin, feature, levels, in_years))
    return tuple(specs)


def attribute_table(customers: pd.DataFrame, specs: Sequence[AttributeSpec]) -> pd.DataFrame:
    """One row per customer (the first row of a repeated id): ``customer_id`` and each feature's
    column in its type (:func:`static_values`), named after the feature. Small: the engine joins
    it onto the spine with :func:`attribute_query`."""
    ids = customers["customer_id"].astype("string")
    first = ~ids.duplicated().to_numpy()
    table = pd.DataFrame({"customer_id": ids[first].to_numpy()})
    for spec in specs:
        if spec.feature is not None and spec.type is not None:
            table[spec.feature] = static_values(customers[spec.column], spec.type)[first].to_numpy()
    return table


def attribute_query(
    specs: Sequence[AttributeSpec], keys: str, static: str, carry: Sequence[str] = ()
) -> str:
    """``keys`` (customer_id, as_of, and the ``carry`` columns) with one column per attribute
    feature, from ``static`` (:func:`attribute_table`).

    Reads nothing stamped after an as-of date: numbers and categories are the customer's
    standing attributes; a date counts only from the day after it happened.
    """
    as_of = column("as_of", "k")
    columns: list[exp.Expr] = [column(c, "k") for c in ("customer_id", "as_of", *carry)]
    for spec in specs:
        if spec.feature is None or spec.type is None:
            continue
        raw = column(spec.feature, "a")
        value: exp.Expr
        if spec.type in ("date", "timestamp"):
            elapsed = exp.Sub(this=exp.TimeToUnix(this=as_of), expression=exp.TimeToUnix(this=raw))
            days = exp.Div(this=exp.paren(elapsed), expression=literal(86400.0))
            years = exp.Div(this=days, expression=literal(365.25)) if spec.in_years else days
            value = exp.case().when(exp.LT(this=raw, expression=as_of), years)
        elif spec.type == "category":
            known = exp.or_(raw.is_(exp.null()), raw.isin(*[literal(v) for v in spec.levels]))
            value = exp.case().when(known, raw).else_(literal(OTHER))
        else:
            value = double(raw)
        columns.append(alias(value, spec.feature))
    query = (
        exp.select(*columns)
        .from_(exp.to_table(keys).as_("k"))
        .join(
            exp.to_table(static).as_("a"),
            on=on_keys("k", "a", ["customer_id"]),
            join_type="left",
        )
    )
    return to_sql(query)


def attribute_dtypes(frame: pd.DataFrame, specs: Sequence[AttributeSpec]) -> pd.DataFrame:
    """Attribute features as pandas types: categories as text, everything else float64."""
    for spec in specs:
        if spec.feature in frame.columns and spec.type == "category":
            frame[spec.feature] = frame[spec.feature].astype("string")
        elif spec.feature in frame.columns:
            frame[spec.feature] = frame[spec.feature].astype("float64")
    return frame


def attribute_features(
    customers: pd.DataFrame, specs: Sequence[AttributeSpec], keys: pd.DataFrame
) -> pd.DataFrame:
    """``keys`` (customer_id, as_of) with one column per attribute feature (in ``keys``' order):
    :func:`attribute_query` run on an in-process DuckDB."""
    engine = DuckDBEngine()
    rows = keys[list(KEY_COLUMNS)].reset_index(drop=True)
    engine.register(
        "keys",
        pd.DataFrame(
            {
                "customer_id": rows["customer_id"].astype("string"),
                "as_of": pd.to_datetime(rows["as_of"]).astype("datetime64[us]"),
                "row": range(len(rows)),
            }
        ),
    )
    engine.register("attributes", attribute_table(customers, specs))
    query = attribute_query(specs, "keys", "attributes", carry=("row",))
    out = engine.fetch(f"{query} ORDER BY row").drop(columns="row")
    return attribute_dtypes(out, specs)


def render_attributes(customers: pd.DataFrame, overrides: Mapping[str, Override]) -> Table:
    """What ``churn validate`` shows: each customer attribute, its type and what it becomes."""
    table = Table(title="Customer attributes (types: inferred, or set in features.yaml)")
    for name in ("column", "type", "from", "becomes"):
        table.add_column(name, overflow="fold")
    for spec in infer_attributes(customers, overrides):
        table.add_row(spec.column, spec.type or "drop", spec.origin, spec.becomes())
    for name in unknown_overrides(customers, overrides):
        close = difflib.get_close_matches(name, list(customers.columns), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        table.add_row(name, overrides[name], "features.yaml", f"[yellow]no such column{hint}[/]")
    return table

"""Run a mapping file (features/mapping.py): vendor exports in a folder -> the contract folder.

Every source is read by DuckDB (CSV as text, Parquet natively, JSON lines with only the fields
the mapping names), so a large export streams instead of being loaded. Each source is first
staged to Parquet with its customer identity resolved through the crosswalk; each contract
table is then one ``COPY`` from the staged files. Everything is written into a temporary
folder that replaces ``out`` only when the whole import succeeded, with ``manifest.json``
(source files, mapping hash, export date, currency, row counts, identities that did not
resolve).

Conventions (docs/bring-your-own-data.md): times without an offset are in the mapping's
``timezone``; numbers as times are Unix epochs, told apart by magnitude (below 1e11 seconds,
below 1e14 milliseconds, else microseconds; 1e11 seconds is the year 5138, 1e11 milliseconds
March 1973); amounts in minor units are divided by the currency's minor-unit exponent; MRR is
the monthly equivalent of each price (a year is 12 months, a week 12/52 of a month, a day
12/365.25).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from features.contract import COLUMN_ORDER, TABLE_COLUMNS, column_kind
from features.io import atomic_path
from features.mapping import (
    FieldSpec,
    MappingError,
    MappingSpec,
    MrrSpec,
    SourceSpec,
    as_field,
    closest,
    load_mapping,
)

MANIFEST = "manifest.json"
SAMPLE_ROWS = 20_480
"""JSON-lines rows DuckDB reads to check that the fields a mapping names exist."""
# ISO 4217 minor-unit exponents that are not 2 (Stripe's list of zero- and three-decimal ones).
MINOR_UNIT_EXPONENT = {
    **dict.fromkeys(
        (
            "bif",
            "clp",
            "djf",
            "gnf",
            "isk",
            "jpy",
            "kmf",
            "krw",
            "mga",
            "pyg",
            "rwf",
            "ugx",
            "vnd",
            "vuv",
            "xaf",
            "xof",
            "xpf",
        ),
        0,
    ),
    **dict.fromkeys(["bhd", "jod", "kwd", "omr", "tnd", "iqd", "lyd"], 3),
}
FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_LOGIN = "login"  # the contract's sign-in event type (features/definitions/event_days.sql)

# SQL macros shared by every expression; each error() names the source, the field and the value.
_MACROS = r"""
CREATE OR REPLACE TEMP MACRO churn_epoch(v) AS to_timestamp(
    CASE WHEN abs(v) < 1e11 THEN v WHEN abs(v) < 1e14 THEN v / 1e3 ELSE v / 1e6 END);
CREATE OR REPLACE TEMP MACRO churn_has_offset(s) AS
    regexp_matches(s, '\d:\d\d(:\d\d([.,]\d*)?)?\s*(Z|z|[+-]\d\d(:?\d\d)?)$');
CREATE OR REPLACE TEMP MACRO churn_is_number(s) AS regexp_full_match(s, '-?\d+(\.\d*)?');
CREATE OR REPLACE TEMP MACRO churn_ts_auto(s, tz) AS CASE
    WHEN s IS NULL THEN NULL
    WHEN churn_is_number(s) THEN churn_epoch(CAST(s AS DOUBLE))
    WHEN churn_has_offset(s) THEN TRY_CAST(s AS TIMESTAMPTZ)
    ELSE timezone(tz, TRY_CAST(s AS TIMESTAMP)) END;
CREATE OR REPLACE TEMP MACRO churn_ts_auto_utc(s) AS
    COALESCE(churn_epoch(TRY_CAST(s AS DOUBLE)), TRY_CAST(s AS TIMESTAMPTZ));
CREATE OR REPLACE TEMP MACRO churn_ts_iso(s, tz) AS CASE
    WHEN s IS NULL OR churn_is_number(s) THEN NULL
    WHEN churn_has_offset(s) THEN TRY_CAST(s AS TIMESTAMPTZ)
    ELSE timezone(tz, TRY_CAST(s AS TIMESTAMP)) END;
CREATE OR REPLACE TEMP MACRO churn_ts_unix(s, scale) AS
    to_timestamp(TRY_CAST(s AS DOUBLE) / scale);
CREATE OR REPLACE TEMP MACRO churn_checked(parsed, raw, what) AS CASE
    WHEN raw IS NOT NULL AND parsed IS NULL
    THEN error(what || ': ' || chr(39) || raw || chr(39) || ' cannot be read. Fix the value or '
               || 'the mapping; nothing was written.')
    ELSE parsed END;
CREATE OR REPLACE TEMP MACRO churn_bool(s) AS CASE
    WHEN lower(s) IN ('true', 't', 'yes', 'y', '1', '1.0') THEN TRUE
    WHEN lower(s) IN ('false', 'f', 'no', 'n', '0', '0.0') THEN FALSE END;
CREATE OR REPLACE TEMP MACRO churn_months(interval, n) AS
    CASE lower(interval) WHEN 'month' THEN 1.0 WHEN 'year' THEN 12.0
         WHEN 'week' THEN 12.0 / 52 WHEN 'day' THEN 12.0 / 365.25 END * COALESCE(n, 1);
"""


def quote(name: str) -> str:
    """An SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """An SQL text literal (or NULL); booleans as true/false, like the contract's CSV."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        value = "true" if value else "false"
    return "'" + str(value).replace("'", "''") + "'"


# --------------------------------------------------------------------------------------------
# Field paths: "context.groupId", "domain_names[0]", "items.data" (a list)


def parse_path(path: str) -> list[str | int]:
    """``a.b[0].c`` -> ``['a', 'b', 0, 'c']`` (indexes 0-based, as in JSON)."""
    parts: list[str | int] = []
    for segment in path.split("."):
        name, _, rest = segment.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise MappingError(f"The field path {path!r} has a bad index [{index}]: use [0].")
            parts.append(int(index))
            rest = rest.removeprefix("[")
    return parts


def _access(base: str, parts: Sequence[str | int]) -> str:
    out = base
    for part in parts:
        out += f"[{part + 1}]" if isinstance(part, int) else ("." if out else "") + quote(part)
    return out


@dataclass
class _Tree:
    """The nested shape of the JSON fields a source reads: becomes read_json's ``columns``."""

    children: dict[str, _Tree] = field(default_factory=dict)
    is_list: bool = False
    leaf: bool = False

    def add(self, parts: Sequence[str | int], *, list_end: bool = False) -> _Tree:
        node = self
        for i, part in enumerate(parts):
            if isinstance(part, int):
                node.is_list = True
                continue
            node = node.children.setdefault(part, _Tree())
            if i == len(parts) - 1 and list_end:
                node.is_list = True
        if not list_end and not node.children:
            node.leaf = True
        return node

    def sql_type(self) -> str:
        if self.leaf and not self.children:
            base = "VARCHAR"  # DuckDB gives a JSON number or object as its text
        else:
            base = (
                "STRUCT("
                + ", ".join(f"{quote(k)} {v.sql_type()}" for k, v in self.children.items())
                + ")"
            )
        return base + "[]" if self.is_list else base


# --------------------------------------------------------------------------------------------
# One source


@dataclass
class _Source:
    name: str
    spec: SourceSpec
    files: list[Path]
    format: str
    mapping: MappingSpec
    schema: dict[str, Any] = field(default_factory=dict)  # top-level name -> DuckDBPyType
    leaves: dict[str, str] = field(default_factory=dict)  # field path -> column of rows()

    @property
    def label(self) -> str:
        shown = ", ".join(p.name for p in self.files[:3])
        more = f" and {len(self.files) - 3} more" if len(self.files) > 3 else ""
        return f"source {self.name} ({shown}{more})"

    def reader(self, tree: _Tree | None = None) -> str:
        files = "[" + ", ".join(literal(str(p)) for p in self.files) + "]"
        if self.format == "csv":
            return f"read_csv({files}, header = true, all_varchar = true, union_by_name = true)"
        if self.format == "parquet":
            return f"read_parquet({files}, union_by_name = true)"
        if tree is None:
            return (
                f"read_json({files}, format = 'newline_delimited', "
                f"sample_size = {SAMPLE_ROWS}, union_by_name = true)"
            )
        columns = ", ".join(
            f"{literal(k)}: {literal(v.sql_type())}" for k, v in tree.children.items()
        )
        return f"read_json({files}, format = 'newline_delimited', columns = {{{columns}}})"

    def leaf(self, path: str, base: str = "") -> str:
        """The source field as trimmed text, NULL when empty.

        A row-level field is computed once, as a column of :meth:`rows`; a field of a list
        item (``base``, inside a lambda) is computed in place.
        """
        if base:
            return self._text_of(_access(base, parse_path(path)))
        alias = self.leaves.setdefault(path, f"__f{len(self.leaves)}")
        return quote(alias)

    def _text_of(self, access: str) -> str:
        expression = access if self.format != "parquet" else f"CAST({access} AS VARCHAR)"
        return f"NULLIF(TRIM({expression}), '')"

    def rows(self, reader: str) -> str:
        """The source's rows with every field the expressions named as a text column."""
        fields = [
            f"{self._text_of(quote(p) if self.format == 'csv' else _access('', parse_path(p)))}"
            f" AS {quote(alias)}"
            for p, alias in self.leaves.items()
        ]
        return f"(SELECT *{''.join(', ' + f for f in fields)} FROM {reader})"

    def check(self, path: str, key: str, item_type: Any = None) -> None:
        """Stop with the closest name when the source has no field ``path``."""
        if self.format == "csv":
            if path not in self.schema:
                raise MappingError(
                    f"{key}: {self.label} has no column {path!r}{closest(path, self.schema)}. "
                    f"Its columns are: {', '.join(self.schema)}."
                )
            return
        node: Any = None
        children: dict[str, Any] = self.schema if item_type is None else _fields(item_type)
        where = "the top level"
        for part in parse_path(path):
            if isinstance(part, int):
                if node is None or node.id != "list":
                    raise MappingError(f"{key}: {path!r} indexes {where}, which is not a list.")
                node = node.children[0][1]
                children = _fields(node)
                continue
            if node is not None and node.id == "list":
                raise MappingError(
                    f"{key}: {where} of {self.label} is a list; pick an element, e.g. "
                    f"{where}[0].{part}."
                )
            if part not in children:
                hint = closest(part, children)
                sampled = f" (in the first {SAMPLE_ROWS:,} rows)" if self.format == "jsonl" else ""
                if self.format == "jsonl" and not hint and node is not None and node.id == "json":
                    return
                if self.format == "jsonl" and not hint:
                    return  # a rare key beyond the sample: read it, empty where absent
                raise MappingError(
                    f"{key}: {self.label} has no field {part!r} under {where}{sampled}{hint}. "
                    f"Fields there: {', '.join(children) or '(none)'}."
                )
            node = children[part]
            children = _fields(node)
            where = part if where == "the top level" else f"{where}.{part}"


def _fields(duck_type: Any) -> dict[str, Any]:
    if duck_type is None or duck_type.id != "struct":
        return {}
    return dict(duck_type.children)


def _find_files(src: Path, patterns: str | list[str], key: str) -> list[Path]:
    found: list[Path] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        found += sorted(p for p in src.glob(pattern) if p.is_file())
    if not found:
        present = sorted(str(p.relative_to(src)) for p in src.rglob("*") if p.is_file())
        pattern = patterns if isinstance(patterns, str) else patterns[0]
        raise MappingError(
            f"{key}: no file under {src} matches {pattern!r}{closest(pattern, present)}. Files "
            f"there: {', '.join(present[:12]) or '(none)'}. Set 'path' to a file or glob "
            "relative to --src."
        )
    return found


def _suffix(path: Path) -> str:
    """``.jsonl`` of ``events.jsonl.gz`` too (DuckDB reads gzip files as they are)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst") and len(suffixes) > 1:
        return suffixes[-2]
    return suffixes[-1] if suffixes else ""


def _format(files: list[Path], declared: str | None, key: str) -> str:
    if declared is not None:
        return declared
    kinds = {FORMATS.get(_suffix(p)) for p in files}
    if len(kinds) != 1 or None in kinds:
        raise MappingError(
            f"{key}: cannot tell the format of {', '.join(p.name for p in files[:3])}; add "
            "'format: csv', 'format: parquet' or 'format: jsonl'."
        )
    return kinds.pop()  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Expressions


def _text(source: _Source, spec: FieldSpec, base: str = "") -> str:
    """The value of a field as text, after transform, value map and default."""
    if spec.value is not None:
        return literal(spec.value)
    leaves = [source.leaf(p, base) for p in spec.fields]
    if spec.join is not None:
        text = f"concat_ws('-', {', '.join(leaves)})"
    else:
        text = leaves[0] if len(leaves) == 1 else f"COALESCE({', '.join(leaves)})"
    if spec.transform == "lower":
        text = f"lower({text})"
    elif spec.transform == "domain":
        text = (
            f"regexp_replace(regexp_replace(regexp_replace(lower({text}), '^[a-z]+://', ''),"
            f" '[/:?#].*$', ''), '^www\\.', '')"
        )
    elif spec.transform == "email_domain":
        text = f"CASE WHEN contains({text}, '@') THEN lower(split_part({text}, '@', -1)) END"
    if spec.map is not None:
        cases = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in spec.map.items())
        other = text
        if spec.other is not None:  # unmapped values, not empty ones
            other = f"CASE WHEN {text} IS NOT NULL THEN {literal(spec.other)} END"
        text = f"CASE {text} {cases} ELSE {other} END"
    if spec.default is not None:
        text = f"COALESCE({text}, {literal(spec.default)})"
    return text


def _what(source: _Source, spec: FieldSpec, table: str, column: str) -> str:
    origin = " or ".join(spec.fields) or "value"
    return literal(f"{source.label}, field {origin} -> {table}.{column}")


def _minor_divisor(currency: str) -> float:
    return float(10 ** MINOR_UNIT_EXPONENT.get(currency, 2))


def _currency_guard(source: _Source, path: str | None, expression: str, what: str) -> str:
    """``expression``, or an error on a row whose currency is not the mapping's."""
    if path is None:
        return expression
    cur = source.leaf(path)
    want = literal(source.mapping.currency)
    return (
        f"CASE WHEN {cur} IS NOT NULL AND lower({cur}) <> {want} THEN error({what} || "
        f"': a row in ' || {cur} || ', but the mapping says currency: ' || {want} || "
        f"'. Import one currency at a time (filter with include).') ELSE {expression} END"
    )


def typed(source: _Source, spec: FieldSpec, table: str, column: str) -> str:
    """The SQL of one output column, in its contract type, failing loudly on unreadable values."""
    kind = column_kind(table, column) if column in COLUMN_ORDER[table] else "text"
    text = _text(source, spec)
    what = _what(source, spec, table, column)
    if kind in ("id", "text"):
        return text
    if kind == "category":
        return f"lower({text})"
    if kind in ("timestamp", "date"):
        zone = literal(spec.timezone or source.mapping.timezone)
        parsed = {
            "auto": f"churn_ts_auto_utc({text})"
            if zone == "'UTC'"
            else f"churn_ts_auto({text}, {zone})",
            "iso": f"churn_ts_iso({text}, {zone})",
            "unix_s": f"churn_ts_unix({text}, 1.0)",
            "unix_ms": f"churn_ts_unix({text}, 1000.0)",
        }[spec.time]
        checked = f"churn_checked({parsed}, {text}, {what} || ' (not a time)')"
        if kind == "date":  # a calendar day stays that day; an instant is cut in UTC
            day = f"regexp_full_match({text}, '\\d{{4}}-\\d\\d-\\d\\d')"
            return f"CASE WHEN {day} THEN CAST({text} AS DATE) ELSE CAST({checked} AS DATE) END"
        return checked
    if kind == "boolean":
        return f"churn_checked(churn_bool({text}), {text}, {what} || ' (not true/false)')"
    number = f"churn_checked(TRY_CAST({text} AS DOUBLE), {text}, {what} || ' (not a number)')"
    if spec.units == "minor":
        number = f"({number} / {_minor_divisor(source.mapping.currency)})"
    number = _currency_guard(source, spec.currency, number, what)
    if kind == "integer":
        whole = f"CASE WHEN {number} = floor({number}) THEN CAST({number} AS BIGINT) END"
        return f"churn_checked({whole}, {text}, {what} || ' (not a whole number)')"
    return number


def mrr_sql(source: _Source, mrr: MrrSpec) -> str:
    """Monthly recurring revenue of a row: its price items summed, less recurring discounts."""
    what = literal(f"{source.label}, mrr")
    item = "__item" if mrr.items else ""

    def num(path: str | None, base: str, default: str) -> str:
        if path is None:
            return default
        text = source.leaf(path, base)
        checked = f"churn_checked(TRY_CAST({text} AS DOUBLE), {text}, {what} || ' {path}')"
        return f"COALESCE({checked}, {default})"

    def months(base: str) -> str:
        if mrr.interval is None:
            return "1.0"
        interval = source.leaf(mrr.interval, base)
        count = num(mrr.interval_count, base, "1.0")
        value = f"churn_months({interval}, {count})"
        return (
            f"CASE WHEN {interval} IS NULL THEN 1.0 WHEN {value} IS NULL THEN error({what} || "
            f"' interval: ' || {interval} || ' is not day, week, month or year') "
            f"ELSE {value} END"
        )

    amount = f"{num(mrr.amount, item, '0.0')} * {num(mrr.quantity, item, '1.0')} / {months(item)}"
    if mrr.items:
        items = _access("", parse_path(mrr.items))
        total = f"COALESCE(list_sum(list_transform({items}, lambda __item: {amount})), 0.0)"
        first = _access("", [*parse_path(mrr.items), 0])
        period = months(first)
    else:
        total, period = amount, months("")
    if mrr.discount_percent or mrr.discount_amount:
        recurs = "TRUE"
        if mrr.discount_duration:
            recurs = f"COALESCE({source.leaf(mrr.discount_duration)}, '') <> 'once'"
        percent = num(mrr.discount_percent, "", "0.0")
        off = num(mrr.discount_amount, "", "0.0")
        total = (
            f"CASE WHEN {recurs} THEN greatest(0.0, {total} * (1 - {percent} / 100.0) - "
            f"{off} / {period}) ELSE {total} END"
        )
    if mrr.units == "minor":
        total = f"({total}) / {_minor_divisor(source.mapping.currency)}"
    return _currency_guard(source, mrr.currency, total, what)


def _filters(source: _Source) -> str:
    """The WHERE clause of include / exclude / require."""
    spec = source.spec
    terms = ["TRUE"]
    for path, values in spec.include.items():
        terms.append(_membership(source.leaf(path), values))
    for path, values in spec.exclude.items():
        terms.append(f"NOT COALESCE({_membership(source.leaf(path), values)}, FALSE)")
    terms += [f"{source.leaf(path)} IS NOT NULL" for path in spec.require]
    return " AND ".join(terms)


def _membership(text: str, values: Iterable[object]) -> str:
    values = list(values)
    listed = [literal(v) for v in values if v is not None]
    parts = [f"{text} IN ({', '.join(listed)})"] if listed else []
    if None in values:
        parts.append(f"{text} IS NULL")
    return "(" + " OR ".join(parts or ["FALSE"]) + ")"


# --------------------------------------------------------------------------------------------
# Running a mapping


@dataclass(frozen=True)
class ImportResult:
    """What ``import_mapped`` wrote: the folder, the manifest it holds."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def warnings(self) -> list[str]:
        return list(self.manifest.get("warnings", []))


def _sources(spec: MappingSpec, src: Path) -> list[_Source]:
    sources = []
    for name, source in spec.sources.items():
        key = f"sources.{name}.path"
        files = _find_files(src, source.path, key)
        fmt = _format(files, source.format, f"sources.{name}.format")
        sources.append(_Source(name, source, files, fmt, spec))
    return sources


def _paths(source: _Source) -> list[tuple[str, str, bool]]:
    """(field path, mapping key, read per MRR item) of every field a source reads."""
    spec, name = source.spec, source.name
    out: list[tuple[str, str, bool]] = []
    for column, value in spec.columns.items():
        out += [(p, f"sources.{name}.columns.{column}", False) for p in as_field(value).fields]
        currency = as_field(value).currency
        if currency:
            out.append((currency, f"sources.{name}.columns.{column}.currency", False))
    for kind, value in spec.identity.items():
        out += [(p, f"sources.{name}.identity.{kind}", False) for p in as_field(value).fields]
    for group, key in ((spec.include, "include"), (spec.exclude, "exclude")):
        out += [(p, f"sources.{name}.{key}.{p}", False) for p in group]
    out += [(p, f"sources.{name}.require", False) for p in spec.require]
    if spec.mrr is not None:
        mrr = spec.mrr
        per_item = bool(mrr.items)
        for attr in ("amount", "quantity", "interval", "interval_count"):
            path = getattr(mrr, attr)
            if path:
                out.append((path, f"sources.{name}.mrr.{attr}", per_item))
        for attr in ("discount_percent", "discount_amount", "discount_duration", "currency"):
            path = getattr(mrr, attr)
            if path:
                out.append((path, f"sources.{name}.mrr.{attr}", False))
        if mrr.items and mrr.interval:
            out.append((f"{mrr.items}[0].{mrr.interval}", f"sources.{name}.mrr.interval", False))
            if mrr.interval_count:
                out.append(
                    (
                        f"{mrr.items}[0].{mrr.interval_count}",
                        f"sources.{name}.mrr.interval_count",
                        False,
                    )
                )
    return out


def _prepare(con: duckdb.DuckDBPyConnection, source: _Source) -> str:
    """Check the fields against the source's schema; the FROM clause that reads them."""
    described = con.sql(f"SELECT * FROM {source.reader()} LIMIT 0")
    source.schema = dict(zip(described.columns, described.types, strict=True))
    items_type: Any = None
    mrr = source.spec.mrr
    if mrr is not None and mrr.items:
        source.check(mrr.items, f"sources.{source.name}.mrr.items")
        items_type = _resolve_type(source.schema, parse_path(mrr.items))
        if items_type is not None and items_type.id != "list":
            raise MappingError(
                f"sources.{source.name}.mrr.items: {mrr.items} of {source.label} is not a list."
            )
        items_type = items_type.children[0][1] if items_type is not None else None
    for path, key, per_item in _paths(source):
        if per_item and items_type is not None:
            source.check(path, key, item_type=items_type)
        elif not per_item:
            source.check(path, key)
    if source.format != "jsonl":
        return source.reader()
    tree = _Tree()
    for path, _, per_item in _paths(source):
        if per_item and mrr is not None and mrr.items:
            tree.add(parse_path(mrr.items), list_end=True).add(parse_path(path))
        else:
            tree.add(parse_path(path))
    if mrr is not None and mrr.items:
        tree.add(parse_path(mrr.items), list_end=True)
    return source.reader(tree)


def _resolve_type(schema: dict[str, Any], parts: Sequence[str | int]) -> Any:
    node: Any = None
    children = schema
    for part in parts:
        if isinstance(part, int):
            node = node.children[0][1] if node is not None and node.id == "list" else None
        else:
            node = children.get(part)
        if node is None:
            return None
        children = _fields(node)
    return node


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> Any:
    relation: Any = con.sql(query)
    return relation.fetchall()[0][0]


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple[Any, ...]]:
    relation: Any = con.sql(query)
    return list(relation.fetchall())


def _set_aside_ambiguous(con: duckdb.DuckDBPyConnection) -> None:
    """Move aliases that name several customers out of the crosswalk, so they link nothing."""
    con.sql("""
        INSERT INTO ambiguous SELECT kind, value, count(DISTINCT customer) FROM crosswalk
        GROUP BY kind, value HAVING count(DISTINCT customer) > 1""")
    con.sql("""
        DELETE FROM crosswalk WHERE (kind, value) IN (SELECT (kind, value) FROM ambiguous)""")
    con.sql("CREATE OR REPLACE TEMP TABLE crosswalk AS SELECT DISTINCT * FROM crosswalk")


def _build_crosswalk(
    con: duckdb.DuckDBPyConnection, sources: list[_Source], readers: dict[str, str], key: str
) -> list[dict[str, Any]]:
    """alias(kind, value) -> customer: every identity linked, directly or through another.

    A value that links to more than one customer (a shared e-mail domain, say) is ambiguous: it
    is left out and reported, so no row is attached to the wrong customer.
    """
    con.sql(
        "CREATE OR REPLACE TEMP TABLE crosswalk (kind VARCHAR, value VARCHAR, customer VARCHAR)"
    )
    linking = [s for s in sources if s.spec.identity]
    for source in linking:
        kinds = {k: _text(source, as_field(v)) for k, v in source.spec.identity.items()}
        select = ", ".join(f"{expr} AS {quote(k)}" for k, expr in kinds.items())
        where = _filters(source)
        rows = source.rows(readers[source.name])
        con.sql(
            f"CREATE OR REPLACE TEMP TABLE {quote('ident_' + source.name)} AS "
            f"SELECT DISTINCT {select} FROM {rows} WHERE {where}"
        )
    for source in linking:
        if key in source.spec.identity:
            table = quote("ident_" + source.name)
            for kind in source.spec.identity:
                con.sql(
                    f"INSERT INTO crosswalk SELECT DISTINCT {literal(kind)}, {quote(kind)}, "
                    f"{quote(key)} FROM {table} WHERE {quote(kind)} IS NOT NULL AND "
                    f"{quote(key)} IS NOT NULL"
                )
    con.sql(
        "CREATE OR REPLACE TEMP TABLE ambiguous (kind VARCHAR, value VARCHAR, customers BIGINT)"
    )
    _set_aside_ambiguous(con)
    for _ in range(len(linking)):
        before = _scalar(con, "SELECT count(*) FROM crosswalk")
        for source in linking:
            if key in source.spec.identity:
                continue
            table = quote("ident_" + source.name)
            for known in source.spec.identity:
                for other in source.spec.identity:
                    if other == known:
                        continue
                    con.sql(f"""
                        INSERT INTO crosswalk
                        SELECT DISTINCT {literal(other)}, i.{quote(other)}, x.customer
                        FROM {table} i JOIN crosswalk x
                          ON x.kind = {literal(known)} AND x.value = i.{quote(known)}
                        WHERE i.{quote(other)} IS NOT NULL AND NOT EXISTS (
                          SELECT 1 FROM crosswalk y WHERE y.kind = {literal(other)}
                          AND y.value = i.{quote(other)} AND y.customer = x.customer)
                        AND NOT EXISTS (SELECT 1 FROM ambiguous a WHERE a.kind = {literal(other)}
                          AND a.value = i.{quote(other)})""")
        _set_aside_ambiguous(con)
        if _scalar(con, "SELECT count(*) FROM crosswalk") == before:
            break
    ambiguous = _rows(con, "SELECT * FROM ambiguous ORDER BY customers DESC, kind, value")
    return [{"identity": k, "value": v, "customers": n} for k, v, n in ambiguous]


def _stage(
    con: duckdb.DuckDBPyConnection, source: _Source, reader: str, key: str, target: Path
) -> None:
    """One source -> its contract columns plus ``__matched`` (identity resolved), to Parquet."""
    spec, table = source.spec, source.spec.table
    assert table is not None
    columns: dict[str, str] = {}
    for column, value in spec.columns.items():
        if column != "customer_id":
            columns[column] = typed(source, as_field(value), table, column)
    if spec.mrr is not None:
        columns["mrr"] = mrr_sql(source, spec.mrr)
    if table == "events" and source.mapping.sign_in_events and "event_type" in columns:
        names = ", ".join(literal(n) for n in source.mapping.sign_in_events)
        columns["event_type"] = (
            f"CASE WHEN {columns['event_type']} IN ({names}) THEN "
            f"{literal(_LOGIN)} ELSE {columns['event_type']} END"
        )
    join = ""
    customer = as_field(spec.columns["customer_id"])
    raw = _text(source, customer)
    if customer.identity is not None and customer.identity != key:
        join = (
            f"LEFT JOIN crosswalk __x ON __x.kind = {literal(customer.identity)} "
            f"AND __x.value = __s.__raw_customer"
        )
        resolved = "__x.customer"
    else:
        resolved = "__s.__raw_customer"
    select = ", ".join(f"{expr} AS {quote(name)}" for name, expr in columns.items())
    where = _filters(source)
    con.sql(f"""
        COPY (
          SELECT {resolved} AS customer_id, __s.__raw_customer,
                 {resolved} IS NOT NULL AS __matched, __s.* EXCLUDE (__raw_customer)
          FROM (SELECT {raw} AS __raw_customer{", " + select if select else ""}
                FROM {source.rows(reader)} WHERE {where}) __s {join}
        ) TO {literal(str(target))} (FORMAT parquet, COMPRESSION zstd)""")


def _contract_select(table: str, present: Iterable[str]) -> str:
    """Every contract column of ``table`` in order, typed NULL where no source gives it."""
    present = set(present)
    parts = []
    for column in COLUMN_ORDER[table]:
        if column in present:
            parts.append(quote(column))
        elif column in TABLE_COLUMNS[table][0]:
            parts.append(
                f"CAST(NULL AS {_SQL_TYPES[column_kind(table, column)]}) AS {quote(column)}"
            )
    extra = [c for c in present if c not in COLUMN_ORDER[table]] if table == "customers" else []
    return ", ".join(parts + [quote(c) for c in sorted(extra)])


_SQL_TYPES = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "category": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
    "number": "DOUBLE",
    "integer": "BIGINT",
    "boolean": "BOOLEAN",
}


def _write_table(
    con: duckdb.DuckDBPyConnection, table: str, staged: list[tuple[int, Path]], target: Path
) -> None:
    files = "[" + ", ".join(literal(str(p)) for _, p in staged) + "]"
    columns: list[str] = []
    for _, path in staged:
        columns += [c for c in pq.read_schema(path).names if c not in columns]
    present = [c for c in columns if not c.startswith("__")]
    if table == "customers":
        # several sources describe one customer: per column, the first source with a value wins
        rank = (
            "CASE "
            + " ".join(f"WHEN filename = {literal(str(p))} THEN {i}" for i, p in staged)
            + " END"
        )
        picks = ", ".join(
            f"arg_min({quote(c)}, __rank) FILTER (WHERE {quote(c)} IS NOT NULL) AS {quote(c)}"
            for c in present
            if c != "customer_id"
        )
        body = (
            f"SELECT customer_id{', ' + picks if picks else ''} FROM (SELECT *, {rank} AS __rank "
            f"FROM read_parquet({files}, union_by_name = true, filename = true) WHERE __matched)"
            f" GROUP BY customer_id"
        )
    else:
        body = f"SELECT * FROM read_parquet({files}, union_by_name = true) WHERE __matched"
    con.sql(
        f"COPY (SELECT {_contract_select(table, present)} FROM ({body})) TO "
        f"{literal(str(target))} (FORMAT parquet, COMPRESSION zstd)"
    )


def _unmatched(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, list[str]]:
    file = literal(str(path))
    count = int(_scalar(con, f"SELECT count(*) FROM read_parquet({file}) WHERE NOT __matched"))
    examples = _rows(
        con,
        f"""SELECT DISTINCT __raw_customer FROM read_parquet({file})
                              WHERE NOT __matched ORDER BY 1 NULLS FIRST LIMIT 5""",
    )
    return count, [str(e[0]) for e in examples]


def import_mapped(
    mapping_path: Path, src: Path, out: Path, *, memory_limit: str = "1GB", threads: int = 2
) -> ImportResult:
    """Run the mapping file on the exports under ``src``; write the contract folder ``out``.

    All or nothing: on any error (a malformed mapping, a missing field, an unreadable value)
    ``out`` is left as it was. ``memory_limit`` bounds DuckDB; larger data spills to disk.
    """
    spec, digest = load_mapping(Path(mapping_path))
    src = Path(src)
    if not src.is_dir():
        raise MappingError(f"The source folder {src} does not exist; pass --src DIR.")
    con = duckdb.connect()
    try:
        con.sql("SET TimeZone = 'UTC'")
        con.sql(f"SET memory_limit = {literal(memory_limit)}")
        con.sql(f"SET threads = {int(threads)}")
        con.sql("SET preserve_insertion_order = false")
        con.sql("SET enable_progress_bar = false")
        for statement in filter(str.strip, _MACROS.split(";\n")):
            con.sql(statement)
        sources = _sources(spec, src)
        readers = {s.name: _prepare(con, s) for s in sources}
        with atomic_path(Path(out)) as tmp:
            tmp.mkdir(parents=True)
            stage = tmp / ".stage"
            stage.mkdir()
            con.sql(f"SET temp_directory = {literal(str(stage / 'spill'))}")
            ambiguous = _build_crosswalk(con, sources, readers, spec.customer_key)
            staged: dict[str, list[tuple[int, Path]]] = {}
            unmatched: dict[str, dict[str, Any]] = {}
            for rank, source in enumerate(sources):
                if source.spec.table is None:
                    continue
                target = stage / f"{rank:03d}_{source.name}.parquet"
                try:
                    _stage(con, source, readers[source.name], spec.customer_key, target)
                except duckdb.Error as exc:
                    raise MappingError(_duck_message(exc, source)) from None
                staged.setdefault(source.spec.table, []).append((rank, target))
                count, examples = _unmatched(con, target)
                if count:
                    unmatched[source.name] = {"rows": count, "first_identities": examples}
            counts: dict[str, int] = {}
            for table, files in staged.items():
                _write_table(con, table, files, tmp / f"{table}.parquet")
                counts[table] = pq.read_metadata(tmp / f"{table}.parquet").num_rows
            manifest = _manifest(
                spec,
                digest,
                Path(mapping_path),
                sources,
                counts,
                unmatched,
                ambiguous,
                con,
                tmp,
                src,
            )
            (tmp / MANIFEST).write_text(
                json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n",
                encoding="utf-8",
            )
            con.close()
            import shutil

            shutil.rmtree(stage)
    finally:
        con.close()
    return ImportResult(Path(out), manifest)


def _duck_message(exc: duckdb.Error, source: _Source) -> str:
    text = str(exc).strip()
    for prefix in ("Invalid Input Error: ", "Conversion Error: "):
        text = text.removeprefix(prefix)
    if source.label not in text:
        text = f"{source.label}: {text}"
    return text


def _manifest(
    spec: MappingSpec,
    digest: str,
    mapping_path: Path,
    sources: list[_Source],
    counts: dict[str, int],
    unmatched: dict[str, dict[str, Any]],
    ambiguous: list[dict[str, Any]],
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    src: Path,
) -> dict[str, Any]:
    """What the import did, for features, training, the model card and a person reading it."""
    warnings = []
    for name, info in unmatched.items():
        warnings.append(
            f"{info['rows']:,} rows of source {name} name a customer no identity resolves "
            f"(first: {', '.join(info['first_identities'])}); they were left out. Link the "
            "identity through a source's 'identity' block, or check the field."
        )
    for item in ambiguous[:5]:
        warnings.append(
            f"The {item['identity']} {item['value']!r} belongs to {item['customers']} customers; "
            "it was not used to link rows (a shared e-mail domain or a reused id)."
        )
    logins = None
    if "events" in counts:
        events = literal(str(folder / "events.parquet"))
        logins = int(
            _scalar(
                con,
                f"SELECT count(*) FROM read_parquet({events}) WHERE event_type = {literal(_LOGIN)}",
            )
        )
        if not logins:
            top = _rows(
                con,
                f"SELECT event_type, count(*) n FROM read_parquet({events}) "
                "GROUP BY 1 ORDER BY n DESC LIMIT 8",
            )
            names = ", ".join(repr(t[0]) for t in top)
            warnings.append(
                "No event maps to a sign-in, so every login count will be zero. List your "
                f"sign-in event names under sign_in_events (most frequent events: {names})."
            )
    return {
        "source": {
            "folder": str(src),
            "sources": {
                s.name: {
                    "preset": s.spec.preset,
                    "table": s.spec.table,
                    "format": s.format,
                    "files": [str(p) for p in s.files],
                }
                for s in sources
            },
        },
        "importer": "features.importers.mapped",
        "mapping": str(mapping_path),
        "mapping_sha256": digest,
        "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "export_date": spec.export_date.isoformat() if spec.export_date else None,
        "currency": spec.currency,
        "money_units": "major",
        "timezone_of_naive_times": spec.timezone,
        "customer_key": spec.customer_key,
        "sign_in_events": spec.sign_in_events,
        "sign_in_rows": logins,
        "row_counts": counts,
        "unmatched_rows": unmatched,
        "ambiguous_identities": ambiguous[:20],
        "warnings": warnings,
    }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of an imported folder, or None when it was not imported by a mapping."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))

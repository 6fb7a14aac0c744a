"""``churn map suggest``: a first mapping file, proposed from the headers and sample values.

Each file under the source folder is read by DuckDB (the first rows only). A file whose fields
cover a built-in preset's is proposed as that preset; any other file is matched to the contract
table whose columns its fields name best, with a "did you mean" for near misses, a unit for
amounts (minor when the sample looks like cents) and the time format the sample shows. The
result is a starting point to read and edit, never applied blindly: every guess is commented.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from features.contract import COLUMN_KINDS, COLUMN_ORDER, TABLE_COLUMNS
from features.importers.mapped import FORMATS, _suffix, literal, parse_path
from features.importers.plausibility import minor_units
from features.mapping import MONEY_COLUMNS, FieldSpec, as_field, preset_catalog

SAMPLE = 200
PRESET_COVERAGE = 0.8  # share of a preset's fields a file must have to be proposed as it


@dataclass(frozen=True)
class FileGuess:
    path: str
    preset: str | None
    table: str | None
    columns: dict[str, str]
    notes: dict[str, str]
    score: float


def _flatten(duck_type: Any, prefix: str, out: set[str], depth: int = 0) -> None:
    out.add(prefix)
    if depth > 4:
        return
    if duck_type.id == "struct":
        for name, child in duck_type.children:
            _flatten(child, f"{prefix}.{name}", out, depth + 1)
    elif duck_type.id == "list":
        _flatten(duck_type.children[0][1], f"{prefix}[0]", out, depth + 1)


def _read(path: Path, fmt: str) -> tuple[set[str], pd.DataFrame]:
    file = literal(str(path))
    reader = {
        "csv": f"read_csv({file}, header = true, all_varchar = true)",
        "parquet": f"read_parquet({file})",
        "jsonl": f"read_json({file}, format = 'newline_delimited')",
    }[fmt]
    relation: Any = duckdb.sql(f"SELECT * FROM {reader} LIMIT {SAMPLE}")
    fields: set[str] = set()
    for name, duck_type in zip(relation.columns, relation.types, strict=True):
        _flatten(duck_type, name, fields)
    return fields, relation.df()


def _preset_fields(spec: dict[str, Any]) -> set[str]:
    """The top-level-anchored field paths a preset reads (lists as [0])."""
    paths: list[str] = []
    for group in ("columns", "identity"):
        for value in (spec.get(group) or {}).values():
            spec_value = value if isinstance(value, str) else FieldSpec.model_validate(value)
            paths += as_field(spec_value).fields
    paths += list(spec.get("include") or {}) + list(spec.get("require") or [])
    mrr = spec.get("mrr") or {}
    items = mrr.get("items")
    for key in ("amount", "quantity", "interval", "interval_count"):
        if mrr.get(key):
            paths.append(f"{items}[0].{mrr[key]}" if items else mrr[key])
    out = set()
    for path in paths:
        parts = parse_path(path)
        text = ""
        for part in parts:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        out.add(text)
    return out


def _sample_value(frame: pd.DataFrame, path: str) -> Any:
    top = path.split(".")[0].split("[")[0]
    if top not in frame.columns:
        return None
    values = frame[top].dropna()
    return values.iloc[0] if len(values) else None


def _time_note(values: pd.Series) -> str:
    text = values.dropna().astype(str).head(50)
    if text.empty:
        return ""
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all():
        unit = "Unix milliseconds" if numeric.abs().median() >= 1e11 else "Unix seconds"
        return f"looks like {unit}"
    if text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True).all():
        return "ISO 8601 with an offset"
    return "no offset: set timezone if these are not UTC"


def _generic(path: str, fields: set[str], frame: pd.DataFrame) -> FileGuess:
    leaves = sorted(f for f in fields if "[" not in f)
    names = {f.split(".")[-1].lower(): f for f in leaves}
    best: FileGuess | None = None
    for table, (required, _) in TABLE_COLUMNS.items():
        columns: dict[str, str] = {}
        notes: dict[str, str] = {}
        for column in COLUMN_ORDER[table]:
            if column in names:
                columns[column] = names[column]
                continue
            free = [n for n in names if n not in COLUMN_ORDER[table] and names[n] not in
                    columns.values()]  # fmt: skip
            close = difflib.get_close_matches(column, free, n=1, cutoff=0.6)
            if close:
                columns[column] = names[close[0]]
                notes[column] = f"did you mean this? '{names[close[0]]}' is close to {column}"
        exact = sum(1 for c in required if c in columns and c not in notes)
        near = sum(1 for c in required if c in notes)
        # exact names count fully, near misses half; more matched columns break a tie
        score = (exact + 0.5 * near) / len(required) + 0.01 * len(columns)
        if best is None or score > best.score:
            for column, source in columns.items():
                kind = COLUMN_KINDS.get(column)
                textual = source in frame.columns and frame[source].dtype == object
                if kind in ("timestamp", "date") and textual:
                    note = _time_note(frame[source])
                    notes[column] = "; ".join(filter(None, [notes.get(column), note]))
                if (table, column) in MONEY_COLUMNS and source in frame.columns:
                    amounts = pd.to_numeric(frame[source], errors="coerce")
                    unit = "minor" if minor_units(amounts) else "major"
                    guess = f"units: {unit}, from the sample; check it"
                    notes[column] = "; ".join(filter(None, [notes.get(column), guess]))
            best = FileGuess(path, None, table, columns, notes, score)
    assert best is not None
    if best.score < 0.5:
        return FileGuess(path, None, None, {}, {"": "no contract table fits; map it by hand"}, 0)
    return best


def suggest(src: Path) -> list[FileGuess]:
    """One guess per readable file under ``src``."""
    src = Path(src)
    presets = preset_catalog()
    catalog = {name: _preset_fields(spec) for name, spec in presets.items()}
    globs = {name: spec.get("path", "") for name, spec in presets.items()}
    guesses = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        fmt = FORMATS.get(_suffix(path))
        if fmt is None or path.name == "manifest.json":
            continue
        try:
            fields, frame = _read(path, fmt)
        except duckdb.Error:
            continue
        relative = str(path.relative_to(src))
        fitting = [
            (len(needed & fields) / len(needed), name)
            for name, needed in catalog.items()
            if needed and len(needed & fields) / len(needed) >= PRESET_COVERAGE
        ]
        # presets whose default path matches the file win (Segment vs RudderStack, say)
        by_path = [f for f in fitting if fnmatch(relative, str(globs[f[1]]))]
        chosen = by_path or sorted(fitting, reverse=True)[:1]
        if chosen:
            guesses += [FileGuess(relative, name, None, {}, {}, cover) for cover, name in chosen]
        else:
            guesses.append(_generic(relative, fields, frame))
    return guesses


def suggestion_yaml(guesses: list[FileGuess], currency: str = "usd") -> str:
    """The guesses as a mapping file with every guess commented."""
    presets = {g.preset for g in guesses if g.preset}
    key = "stripe_customer" if "stripe.customers" in presets else "customer"
    lines = [
        "# Proposed by `churn map suggest`: read every line, then run",
        "# churn import --map THIS_FILE --src DIR --out DIR (docs/bring-your-own-data.md)",
        f"customer_key: {key}",
        f"currency: {currency}            # check: the currency of every amount",
        "timezone: UTC",
        "sign_in_events: []           # the event names that mean a sign-in",
        "sources:",
    ]
    used: set[str] = set()
    for guess in guesses:
        parts = Path(guess.path).with_suffix("").parts[-2:]
        name = "_".join(parts).replace("-", "_").replace(".", "_")
        while name in used:
            name += "_2"
        used.add(name)
        if guess.preset:
            cover = f"# {guess.score:.0%} of its fields"
            lines += [f"  {name}:", f"    preset: {guess.preset}   {cover}",
                      f"    path: {guess.path}"]  # fmt: skip
            continue
        if guess.table is None:
            lines += [f"  # {guess.path}: no contract table fits; map it by hand"]
            continue
        lines += [f"  {name}:", f"    path: {guess.path}", f"    table: {guess.table}",
                  "    columns:"]  # fmt: skip
        for column, source in guess.columns.items():
            note = guess.notes.get(column, "")
            value = source
            if (guess.table, column) in MONEY_COLUMNS:
                unit = "minor" if "units: minor" in note else "major"
                value = f"{{from: {source}, units: {unit}}}"
            lines.append(f"      {column}: {value}" + (f"   # {note}" if note else ""))
    return "\n".join(lines) + "\n"

"""Reading a public data set strictly, and writing the contract folder it maps to.

An importer reads every source value as text and converts it column by column; a value it cannot
convert stops the import with a :class:`SourceError` naming the file, the rows (numbered from 1
under the header, like ``churn validate``), the column and the value. Nothing is written until
the whole import has succeeded, and then atomically: a failed import leaves no folder behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import COLUMN_ORDER, RawTables, parse_tables
from features.errors import ChurnError
from features.io import atomic_path

MAX_SHOWN = 5
IMPORT_NOTE = "import.json"
"""Written beside the tables: where they came from (with checksums) and how to label them."""


class SourceError(ChurnError):
    """A source file cannot be mapped to the contract: malformed rows, missing columns or files."""


def find_file(src: Path, names: Sequence[str], what: str) -> Path:
    """``src`` itself when it is a file, else the first of ``names`` inside the folder ``src``."""
    src = Path(src)
    if src.is_file():
        return src
    if src.is_dir():
        for name in names:
            if (src / name).is_file():
                return src / name
        raise SourceError(
            f"{src} holds no {what} file (looked for {', '.join(names)}). "
            "Pass the file itself with --src, or the folder that holds it."
        )
    raise SourceError(f"The source {src} does not exist. Pass the {what} file or its folder.")


def read_csv_text(path: Path, required: Iterable[str]) -> pd.DataFrame:
    """Every cell of a comma-separated file as stripped text, rows numbered from 1.

    A row with more or fewer cells than the header is an error (a shifted row would silently
    put values into the wrong columns); so is a required column missing from the header.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{path.name} cannot be read as a UTF-8 CSV file ({exc}).") from None
    if not rows:
        raise SourceError(f"{path.name} is empty; it needs a header row and data rows.")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in required if name not in header]
    if missing:
        raise SourceError(
            f"{path.name} has no column {', '.join(missing)} (the header row is: "
            f"{', '.join(header)}). Export the file with its original columns."
        )
    body = [row for row in rows[1:] if row]  # a trailing blank line is not a row
    ragged = [i for i, row in enumerate(body, start=1) if len(row) != len(header)]
    if ragged:
        first = ragged[0]
        raise SourceError(
            f"{path.name}: {_rows(ragged)} {'has' if len(ragged) == 1 else 'have'} a different "
            f"number of cells than the header ({len(header)}); row {first} (line {first + 1}) "
            f"has {len(body[first - 1])}. Check for unquoted commas or a truncated line; "
            "nothing was written."
        )
    frame = pd.DataFrame(body, columns=header, dtype=object)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame.apply(lambda column: column.str.strip())


def _rows(rows: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_SHOWN])
    more = f" and {len(rows) - MAX_SHOWN:,} more" if len(rows) > MAX_SHOWN else ""
    return f"{len(rows):,} row{'s' if len(rows) != 1 else ''} ({shown}{more})"


def fail(file: str, column: str, frame: pd.DataFrame, bad: np.ndarray, expected: str) -> None:
    """Raise the error for the rows of ``frame`` where ``bad`` is true, if any."""
    if not bad.any():
        return
    rows = frame.index[bad]
    examples = "; ".join(
        f"row {row}: {frame.at[row, column]!r}" for row in rows[:MAX_SHOWN].tolist()
    )
    raise SourceError(
        f"{file}, column {column}: {_rows(rows.tolist())} {'is' if len(rows) == 1 else 'are'} "
        f"not {expected} ({examples}). Rows are numbered from 1 under the header. Correct or "
        "remove those rows and import again; nothing was written."
    )


def text(frame: pd.DataFrame, column: str, file: str, *, allow_empty: bool = False) -> pd.Series:
    """The column as text; empty cells are errors unless ``allow_empty`` (then missing)."""
    values = frame[column].astype("string")
    empty = values.fillna("").eq("").to_numpy(dtype=bool)
    if not allow_empty:
        fail(file, column, frame, empty, "filled in (the cell is empty)")
    return values.mask(empty)


def unique_ids(frame: pd.DataFrame, column: str, file: str) -> pd.Series:
    """A filled id column whose values appear once each (duplicates are errors)."""
    values = text(frame, column, file)
    fail(file, column, frame, values.duplicated(keep=False).to_numpy(), "unique ids")
    return values


def number(
    frame: pd.DataFrame,
    column: str,
    file: str,
    *,
    allow_empty: bool = False,
    minimum: float | None = None,
    whole: bool = False,
) -> pd.Series:
    """Numbers with a dot as decimal separator; empty cells are errors unless ``allow_empty``."""
    raw = frame[column].fillna("")
    values = pd.to_numeric(raw.mask(raw.eq("")), errors="coerce").astype("float64")
    unparsed = raw.ne("").to_numpy() & values.isna().to_numpy()
    if whole:
        unparsed |= (values.notna() & (values != np.floor(values))).to_numpy()
    kind = "whole numbers" if whole else "numbers"
    fail(file, column, frame, unparsed, kind)
    if not allow_empty:
        fail(file, column, frame, raw.eq("").to_numpy(), f"{kind} (the cell is empty)")
    if minimum is not None:
        fail(file, column, frame, (values < minimum).to_numpy(), f"{kind} >= {minimum:g}")
    return values


def dates(
    frame: pd.DataFrame, column: str, file: str, fmt: str, *, allow_empty: bool = False
) -> pd.Series:
    """Calendar days (naive midnight) in the strict ``fmt``; anything else is an error."""
    raw = frame[column].fillna("")
    values = pd.to_datetime(raw.mask(raw.eq("")), format=fmt, errors="coerce")
    readable = fmt.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
    readable = readable.replace("%H", "hh").replace("%M", "mm").replace("%S", "ss")
    fail(file, column, frame, raw.ne("").to_numpy() & values.isna().to_numpy(),
         f"dates written {readable}")  # fmt: skip
    if not allow_empty:
        fail(file, column, frame, raw.eq("").to_numpy(), "dates (the cell is empty)")
    return values.dt.normalize()


def choice(
    frame: pd.DataFrame, column: str, file: str, allowed: Iterable[str], *, lower: bool = False
) -> pd.Series:
    """A column restricted to ``allowed`` values (compared lower-cased when ``lower``)."""
    allowed = tuple(allowed)
    values = frame[column].fillna("").astype("string")
    compared = values.str.lower() if lower else values
    fail(file, column, frame, ~compared.isin(allowed).to_numpy(dtype=bool),
         f"one of {', '.join(allowed)}")  # fmt: skip
    return compared


def utc_midnight(days: pd.Series) -> pd.Series:
    """Calendar days as UTC timestamps at midnight (the contract's event time convention)."""
    return pd.to_datetime(days).dt.tz_localize("UTC")


def sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (event logs can be large)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def contract_tables(**frames: pd.DataFrame | None) -> RawTables:
    """In-memory tables -> contract types and column order (``parse_tables``).

    A conversion problem here is a bug of the importer, not of the source (every source value
    was checked on the way in), so it raises instead of being reported.
    """
    tables = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    errors = [f for f in tables.read_findings if f.severity == "error"]
    if errors:
        raise ChurnError("The importer produced untyped values: " + errors[0].describe())
    return tables


def write_contract_folder(tables: RawTables, out: Path, note: Mapping[str, Any]) -> Path:
    """Write ``out/<table>.parquet`` per table and ``out/import.json``, all or nothing.

    Parquet keeps the contract types (and numeric customer attributes numeric). ``note`` says
    where the data came from and how to label it; it is written as sorted JSON.
    """
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        write_tables(tables, tmp)
        write_note(note, tmp)
    return out


def write_tables(tables: RawTables, folder: Path) -> None:
    """``folder/<table>.parquet`` per present table, contract columns first, zstd."""
    for name, frame in tables.present().items():
        contract = [c for c in COLUMN_ORDER[name] if c in frame.columns]
        extra = [c for c in frame.columns if c not in contract] if name == "customers" else []
        frame[contract + extra].to_parquet(
            Path(folder) / f"{name}.parquet", index=False, compression="zstd"
        )


def write_note(note: Mapping[str, Any], folder: Path) -> None:
    """``folder/import.json``: the note as sorted JSON (dates as ISO text)."""
    (Path(folder) / IMPORT_NOTE).write_text(
        json.dumps(note, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )

"""Validating an export folder without reading its tables into pandas whole."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract import ValidationReport, validate_folder


def validate_export(
    folder: Path, now: pd.Timestamp, *, chunk_rows: int = 1_000_000
) -> ValidationReport:
    """The findings of ``validate_folder(folder, now)`` for the out-of-core build.

    placeholder until the streamed validator lands: this one still reads the folder into pandas.
    """
    return validate_folder(folder, now)[1]

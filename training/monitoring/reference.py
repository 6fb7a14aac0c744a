"""The champion's reference window: what its inputs looked like when it was trained.

Logged with every training run (``monitoring/reference.parquet``) so the monitor compares a new
snapshot with the data the model learned from, not with whatever the labeled set holds today.
Every as-of date of the labeled set is kept, complete labels or not (the latest dates are
closest to the snapshots the model will serve); a seeded sample bounds each date's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd

from features.engine import KEY_COLUMNS

ROWS_PER_DATE = 5_000
REFERENCE_ARTIFACT = "monitoring/reference.parquet"


def reference_window(
    labeled: pd.DataFrame,
    features: Sequence[str],
    rows_per_date: int = ROWS_PER_DATE,
    seed: int = 0,
) -> pd.DataFrame:
    """customer_id, as_of and the model's features for at most ``rows_per_date`` customers of
    each as-of date (a seeded sample; all of them when there are fewer)."""
    columns = [*KEY_COLUMNS, *[f for f in features if f in labeled.columns]]
    parts = []
    for _, rows in labeled[columns].groupby("as_of", sort=True):
        take = rows if len(rows) <= rows_per_date else rows.sample(rows_per_date, random_state=seed)
        parts.append(take.sort_values("customer_id"))
    out = pd.concat(parts, ignore_index=True) if parts else labeled[columns].head(0)
    out.attrs = {}
    return out


def latest_rows(window: pd.DataFrame) -> tuple[pd.DataFrame, date]:
    """The window's rows at its latest as-of date (the reference a snapshot is compared with)."""
    when = pd.to_datetime(window["as_of"])
    latest = when.max()
    return window[when == latest].reset_index(drop=True), latest.date()

"""An export with every name made meaningless: the check that features come from the data.

Renames every event type, product feature and customer attribute column to opaque names
(``e01``, ``f01``, ``a01``) and turns the attributes into text, as a CSV export would give them.
A pipeline that reads meaning from our own vocabulary ("login", "industry") or from Parquet types
loses quality here; one that reads the export's own vocabulary and infers types does not. Used by
the vocabulary-invariance test and ``benchmarks/quality.py``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from features.attributes import CONTRACT_PROFILE, extra_columns
from features.contract import RawTables


def _codes(values: pd.Series, prefix: str, seed: int) -> dict[str, str]:
    """Each distinct value -> ``<prefix><nn>``, in a seeded random order (no hint in the order)."""
    distinct = sorted(str(v) for v in values.dropna().unique())
    order = np.random.default_rng(seed).permutation(len(distinct))
    width = max(2, len(str(len(distinct))))
    return {distinct[i]: f"{prefix}{rank + 1:0{width}d}" for rank, i in enumerate(order)}


def _as_csv_text(values: pd.Series) -> pd.Series:
    """What a CSV reader gives for a typed column: ISO dates, plain numbers, true/false."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = pd.to_datetime(values)
        midnight = bool((stamps.dropna() == stamps.dropna().dt.normalize()).all())
        text = stamps.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%dT%H:%M:%S")
    elif pd.api.types.is_bool_dtype(values.dtype):
        text = values.map({True: "true", False: "false"})
    else:
        text = values.astype("string")
    return text.astype("string")


def rename_vocabulary(tables: RawTables, seed: int = 0) -> RawTables:
    """``tables`` with opaque event types, product features and attribute columns (as text)."""
    out = tables
    if tables.events is not None:
        events = tables.events.copy()
        types = _codes(events["event_type"], "e", seed)
        events["event_type"] = events["event_type"].astype("string").map(types).astype("string")
        if "feature" in events.columns:
            names = _codes(events["feature"], "f", seed + 1)
            events["feature"] = events["feature"].astype("string").map(names).astype("string")
        out = replace(out, events=events)
    customers = tables.customers.copy()
    attributes = [c for c in CONTRACT_PROFILE if c in customers.columns]
    attributes += extra_columns(customers)
    columns = _codes(pd.Series(attributes), "a", seed + 2)
    for column in attributes:
        customers[column] = _as_csv_text(customers[column])
    return replace(out, customers=customers.rename(columns=columns))

"""Choosing as-of dates and building the latest snapshot: the glue between contract and store."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from features.contract import RawTables
from features.engine import build_features, monthly_as_of, observed_until
from features.labels import LabelSpec

HISTORY_DAYS = 90


def data_start(tables: RawTables) -> date:
    """The first day of product history: the first event, else the first subscription.

    Exports often carry years of subscriptions but only recent event logs; usage features mean
    something only once events are logged, so the events decide where history starts.
    """
    if tables.events is not None and len(tables.events):
        first = pd.to_datetime(tables.events["timestamp"], utc=True).min().tz_localize(None)
    else:
        first = pd.to_datetime(tables.subscriptions["start_date"]).min()
    return pd.Timestamp(first).date()


def default_as_of(tables: RawTables, history_days: int = HISTORY_DAYS) -> list[date]:
    """Monthly as-of dates from the first month with ``history_days`` of data to the export end.

    Dates whose horizon runs past the export stay in: their rows carry ``label_complete=False``
    and are used for scoring, never for training or evaluation.
    """
    first = data_start(tables) + timedelta(days=history_days)
    return monthly_as_of(first, observed_until(tables))


def snapshot_as_of(tables: RawTables) -> date:
    """ "Now" for a snapshot of an export: the day after its last record."""
    return observed_until(tables) + timedelta(days=1)


def build_snapshot(tables: RawTables, as_of: date | None = None) -> pd.DataFrame:
    """Each active customer's features as of ``as_of`` (default: the day after the export)."""
    day = as_of or snapshot_as_of(tables)
    return build_features(tables, [day], LabelSpec())

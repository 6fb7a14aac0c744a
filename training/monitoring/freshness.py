"""Data freshness per source: when each table (and each event type) last wrote a record.

A broken tracking pipeline does not make customers risky; it makes their features wrong. The
first sign is a source that goes quiet while the rest of the export keeps going. How long a
silence is suspicious depends on how busy the source is: the login stream of a large company
writes every day, exit surveys every few weeks. So a silence of ``g`` days before the export date
is tested against the source's own rhythm: if a record landed on a share ``q`` of the days in the
``window`` days before its last record, ``g`` silent days in a row have probability
``(1 - q) ** g``; that is the p-value, and the level is split over the sources (Bonferroni).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from features.contract import RawTables

RECORD_TIME = {
    "customers": "signup_date",
    "subscriptions": "start_date",
    "events": "timestamp",
    "tickets": "opened_at",
    "invoices": "issued_at",
    "nps": "responded_at",
    "marketing": "timestamp",
    "exit_reasons": "churned_at",
}
"""The column that says when a table's record was written (never a scheduled, future date)."""
WINDOW_DAYS = 90


def _days(values: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(values, utc=True, errors="coerce", format="mixed").dropna()
    return np.unique(stamps.dt.floor("D").dt.tz_localize(None).to_numpy(dtype="datetime64[D]"))


def _row(source: str, days: np.ndarray, export_date: date, window: int) -> dict[str, object]:
    end = np.datetime64(export_date, "D")
    days = days[days <= end]
    if not len(days):
        return {
            "source": source,
            "last_record": None,
            "silent_days": None,
            "active_day_share": 0.0,
            "p_value": float("nan"),
        }
    last = days[-1]
    silent = int((end - last).astype(int))
    recent = days[days > last - np.timedelta64(window, "D")]
    share = min(1.0, len(recent) / window)
    p = float((1 - share) ** silent) if silent > 0 else 1.0
    return {
        "source": source,
        "last_record": pd.Timestamp(last).date(),
        "silent_days": silent,
        "active_day_share": share,
        "p_value": p,
    }


def source_freshness(
    tables: RawTables, export_date: date, alpha: float = 0.01, window: int = WINDOW_DAYS
) -> pd.DataFrame:
    """One row per table (and per event type, ``events[login]``): last record, days of silence
    before ``export_date``, the share of recent days with a record, the p-value of the silence
    and ``stale`` at level ``alpha`` over all sources."""
    rows = []
    for name, frame in tables.present().items():
        column = RECORD_TIME.get(name)
        if column is None or column not in frame.columns or not len(frame):
            continue
        rows.append(_row(name, _days(frame[column]), export_date, window))
        if name == "events" and "event_type" in frame.columns:
            for event_type, part in frame.groupby(frame["event_type"].astype(str), sort=True):
                rows.append(_row(f"events[{event_type}]", _days(part[column]), export_date, window))
    out = pd.DataFrame(
        rows, columns=["source", "last_record", "silent_days", "active_day_share", "p_value"]
    )
    level = alpha / max(len(out), 1)
    out["level"] = level
    out["stale"] = out["p_value"].fillna(1.0) < level
    return out


def stale_event_types(freshness: pd.DataFrame) -> list[str]:
    """The event types whose stream stopped (``events[x]`` rows marked stale)."""
    stale = freshness[freshness["stale"] & freshness["source"].str.startswith("events[")]
    return [s[len("events[") : -1] for s in stale["source"]]


def outage_start(freshness: pd.DataFrame, source: str) -> date | None:
    """The first silent day of a source (the day after its last record)."""
    row = freshness[freshness["source"] == source]
    if row.empty or row["last_record"].iloc[0] is None:
        return None
    return pd.Timestamp(row["last_record"].iloc[0]).date() + timedelta(days=1)

"""The score history the rules read (today's customer facts are ``features.facts``).

**Score history** (:data:`HISTORY_COLUMNS`): one row per customer per scoring, appended by each
``churn score-all``. Read through :func:`read_score_history` only, so when ``serving/history.py``
(the UI's history store) settles its layout, this is the one function to point at it. The rules
then use :func:`daily_scores`: one value per customer per ``as_of`` day, the latest scoring of
that day (a rescoring with a new model replaces the day's value), and only what was scored by
``now`` (a run replayed for an earlier ``now`` sees what it would have seen then).

**Customer facts** come from ``features.facts`` (:func:`features.facts.customer_facts`), which
reads the same paid lives as the churn labels and the retention metrics.

Timestamps are UTC; ``as_of`` and days are calendar dates held as naive midnights.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.facts import day_of, utc
from features.tiers import TIER_RANK
from serving.workflows.errors import RulesError

HISTORY_COLUMNS = (
    "customer_id",  # str
    "scored_at",  # datetime64[ns, UTC]: when the scoring ran
    "as_of",  # datetime64[ns]: the day the features describe (naive midnight)
    "probability",  # float: calibrated churn probability within the model's horizon
    "health_score",  # float 0-100
    "tier",  # str: healthy / low / medium / high
    "top_drivers",  # object: list of {"feature", "contribution", "sentence"}, strongest first
    "model_version",  # str
)


def empty_history() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})
    return normalise_history(frame)


def _drivers_from_columns(frame: pd.DataFrame) -> list[list[dict[str, Any]]] | None:
    """``driver_{i}_feature/_contribution/_sentence`` columns (score store layout) -> lists."""
    ranks = sorted(
        int(c.split("_")[1])
        for c in frame.columns
        if c.startswith("driver_") and c.endswith("_feature")
    )
    if not ranks:
        return None
    out: list[list[dict[str, Any]]] = [[] for _ in range(len(frame))]
    for rank in ranks:
        names = frame[f"driver_{rank}_feature"].tolist()
        contrib_col = f"driver_{rank}_contribution"
        contribs = frame[contrib_col].tolist() if contrib_col in frame else [None] * len(frame)
        sentence_col = f"driver_{rank}_sentence"
        sentences = frame[sentence_col].tolist() if sentence_col in frame else [None] * len(frame)
        for row, (name, c, s) in enumerate(zip(names, contribs, sentences, strict=True)):
            if isinstance(name, str):
                out[row].append({"feature": name, "contribution": c, "sentence": s})
    return out


def _driver_list(value: object) -> list[dict[str, Any]]:
    """One row's ``top_drivers`` in whatever shape it was stored: JSON text, list of dicts or
    list of feature names."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else [value]
    items = list(value)  # type: ignore[call-overload]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({"feature": item, "contribution": None, "sentence": None})
        else:
            entry = dict(item)
            out.append(
                {
                    "feature": str(entry.get("feature")),
                    "contribution": entry.get("contribution"),
                    "sentence": entry.get("sentence"),
                }
            )
    return out


def normalise_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Any score-history layout -> :data:`HISTORY_COLUMNS` with their types.

    Accepts the score store's names (``churn_probability``, ``driver_i_*``, ``model`` or
    ``model_version``) so a store file can be appended as it is.
    """
    frame = frame.rename(columns={"churn_probability": "probability"})
    if "model_version" not in frame.columns:
        frame = frame.assign(model_version=frame.get("version", "unknown"))
    if "top_drivers" not in frame.columns:
        drivers = _drivers_from_columns(frame)
        filled = drivers if drivers is not None else [[] for _ in range(len(frame))]
        frame = frame.assign(top_drivers=pd.Series(filled, index=frame.index, dtype=object))
    missing = [c for c in HISTORY_COLUMNS if c not in frame.columns]
    if missing:
        raise RulesError(
            f"The score history lacks column(s) {', '.join(missing)}; it needs "
            f"{', '.join(HISTORY_COLUMNS)}. Re-run `churn score-all` to append a full scoring."
        )
    out = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "scored_at": pd.to_datetime(frame["scored_at"], utc=True),
            "as_of": pd.to_datetime(frame["as_of"], utc=True).dt.tz_localize(None).dt.normalize(),
            "probability": pd.to_numeric(frame["probability"]).astype("float64"),
            "health_score": pd.to_numeric(frame["health_score"]).astype("float64"),
            "tier": frame["tier"].astype(str).to_numpy(),
            "top_drivers": [_driver_list(v) for v in frame["top_drivers"].tolist()],
            "model_version": frame["model_version"].astype(str).to_numpy(),
        }
    )
    return out.reset_index(drop=True)


def read_score_history(path: Path, until: datetime | None = None) -> pd.DataFrame:
    """The score history under ``path`` (a Parquet file or a folder of them), with DuckDB.

    ``until`` keeps only scorings made at or before it. No history yet -> an empty frame.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*.parquet"))
    else:
        files = [str(path)] if path.exists() else []
    if not files:
        return empty_history()
    with duckdb.connect() as con:
        frame = con.execute(
            "SELECT * FROM read_parquet(?, union_by_name = true)", [files]
        ).fetch_df()
    history = normalise_history(frame)
    if until is not None:
        history = history[history["scored_at"] <= utc(until)]
    return history.reset_index(drop=True)


def daily_scores(
    history: pd.DataFrame, now: datetime, known_at: datetime | None = None
) -> pd.DataFrame:
    """One row per (customer, as_of day) up to ``now``'s day: the day's latest scoring.

    ``known_at`` (replays) also drops scorings made after it, so a run replayed for a past
    moment sees exactly what it would have seen then. Without it every recorded scoring of
    those days counts: a historical export scored today still has its as-of days.
    Sorted by customer and day, with ``prev_day`` (the customer's previous scored day, NaT for
    the first), so rules can reason about gaps.
    """
    known = history[history["as_of"] <= day_of(now)]
    if known_at is not None:
        known = known[known["scored_at"] <= utc(known_at)]
    known = known.sort_values(["customer_id", "as_of", "scored_at"], kind="stable")
    daily = known.drop_duplicates(["customer_id", "as_of"], keep="last").reset_index(drop=True)
    daily["tier_rank"] = daily["tier"].map(TIER_RANK).astype("float64")
    daily["prev_day"] = daily.groupby("customer_id", sort=False)["as_of"].shift()
    return daily


def latest_scores(daily: pd.DataFrame) -> pd.DataFrame:
    """Each customer's last daily row, indexed by ``customer_id``."""
    return daily.drop_duplicates("customer_id", keep="last").set_index("customer_id")

"""The two frames the rules read: the score history and today's customer facts.

**Score history** (:data:`HISTORY_COLUMNS`): one row per customer per scoring, appended by each
``churn score-all``. Read through :func:`read_score_history` only, so when ``serving/history.py``
(the UI's history store) settles its layout, this is the one function to point at it. The rules
then use :func:`daily_scores`: one value per customer per ``as_of`` day, the latest scoring of
that day (a rescoring with a new model replaces the day's value), and only what was scored by
``now`` (a run replayed for an earlier ``now`` sees what it would have seen then).

**Customer facts** (:func:`customer_facts`): per customer from the contract tables, as of an
explicit ``now``: name, ``csm_owner``, segment attributes, signup, current MRR, last activity,
last purchase and whether the customer has churned (no paid subscription covering ``now``;
a renewal within ``gap_days`` is not churn, as in ``features.metrics``).

Timestamps are UTC; ``as_of`` and days are calendar dates held as naive midnights.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.contract import RawTables
from features.engine import prepare
from features.labels import LabelSpec
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
SEGMENT_COLUMNS = ("industry", "company_size", "region", "plan", "acquisition_channel")
FACT_COLUMNS = (
    "customer_id",
    "name",
    "csm_owner",
    *SEGMENT_COLUMNS,
    "signup_date",
    "mrr",
    "active",
    "churned_at",
    "last_activity_at",
    "last_purchase_at",
)


def utc(moment: datetime | pd.Timestamp | str) -> pd.Timestamp:
    """A UTC timestamp; a naive value is taken as UTC (the project's convention)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def day_of(now: datetime | pd.Timestamp) -> pd.Timestamp:
    """The calendar day of ``now`` as a naive midnight, comparable with ``as_of``."""
    return utc(now).tz_localize(None).normalize()


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


FACTS_SQL = """
WITH paid AS (
  SELECT customer_id, start_date, end_date, mrr FROM subscriptions WHERE mrr > 0
),
now_mrr AS (
  SELECT customer_id, SUM(mrr) AS mrr FROM paid
  WHERE start_date <= $today AND (end_date IS NULL OR end_date > $today)
  GROUP BY customer_id
),
last_paid AS (
  SELECT customer_id,
         MAX(CASE WHEN end_date IS NULL OR end_date > $today THEN NULL ELSE end_date END)
           AS last_end,
         BOOL_OR(start_date <= $today AND (end_date IS NULL OR end_date > $today)) AS covered,
         BOOL_OR(start_date <= $today) AS started,
         MAX(CASE WHEN start_date <= $today THEN start_date END) AS last_start
  FROM paid GROUP BY customer_id
),
activity AS (
  SELECT customer_id, MAX(ts) AS last_activity_at FROM events WHERE ts < $now
  GROUP BY customer_id
),
paid_invoices AS (
  SELECT customer_id, MAX(paid_at) AS last_paid_at FROM invoices WHERE paid_at < $now
  GROUP BY customer_id
)
SELECT c.customer_id, c.signup_date,
       COALESCE(m.mrr, 0.0) AS mrr,
       COALESCE(l.covered, FALSE)
         OR (l.last_end IS NOT NULL AND l.last_end + $gap_days * INTERVAL 1 DAY > $today)
         AS active,
       CASE WHEN COALESCE(l.started, FALSE) AND NOT COALESCE(l.covered, FALSE)
                 AND l.last_end + $gap_days * INTERVAL 1 DAY <= $today
            THEN l.last_end END AS churned_at,
       a.last_activity_at,
       GREATEST(p.last_paid_at, l.last_start) AS last_purchase_at
FROM customers c
LEFT JOIN now_mrr m USING (customer_id)
LEFT JOIN last_paid l USING (customer_id)
LEFT JOIN activity a USING (customer_id)
LEFT JOIN paid_invoices p USING (customer_id)
WHERE c.signup_date <= $today
"""


def customer_facts(
    tables: RawTables, now: datetime, gap_days: int = LabelSpec().gap_days
) -> pd.DataFrame:
    """Per customer as of ``now`` (see the module docstring), indexed by ``customer_id``.

    ``mrr`` is the MRR of the paid subscriptions covering ``now``'s day (0 once churned);
    ``churned_at`` is the end of the last paid subscription when none covers ``now`` and no
    renewal came within ``gap_days``.
    """
    prepared = prepare(tables)
    customers = tables.customers
    today = day_of(now).to_pydatetime()
    moment = utc(now).tz_localize(None).to_pydatetime()
    with duckdb.connect() as con:
        con.register("customers", prepared["customers"][["customer_id", "signup_date"]])
        con.register("subscriptions", prepared["subscriptions"])
        empty_events = pd.DataFrame(
            {"customer_id": pd.Series(dtype="string"), "ts": pd.Series(dtype="datetime64[us]")}
        )
        con.register("events", prepared.get("events", empty_events))
        empty_invoices = pd.DataFrame(
            {
                "customer_id": pd.Series(dtype="string"),
                "paid_at": pd.Series(dtype="datetime64[us]"),
            }
        )
        con.register("invoices", prepared.get("invoices", empty_invoices))
        facts = con.execute(
            FACTS_SQL, {"today": today, "now": moment, "gap_days": gap_days}
        ).fetch_df()
    attributes = customers.set_index(customers["customer_id"].astype(str))
    facts["customer_id"] = facts["customer_id"].astype(str)
    facts = facts.set_index("customer_id")
    for column in ("name", "csm_owner", *SEGMENT_COLUMNS):
        if column in attributes.columns:
            facts[column] = attributes[column].reindex(facts.index).astype("object")
        else:
            facts[column] = None
    facts["active"] = facts["active"].astype(bool)
    for column in ("signup_date", "churned_at", "last_activity_at", "last_purchase_at"):
        facts[column] = pd.to_datetime(facts[column])
    return facts[list(FACT_COLUMNS[1:])]


def facts_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Customer facts from plain rows (tests, imports): missing columns become empty."""
    frame = pd.DataFrame(list(rows))
    for column in FACT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame["mrr"] = pd.to_numeric(frame["mrr"]).fillna(0.0).astype("float64")
    frame["active"] = frame["active"].astype("boolean").fillna(True).astype(bool)
    for column in ("signup_date", "churned_at", "last_activity_at", "last_purchase_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
    frame["customer_id"] = frame["customer_id"].astype(str)
    return frame.set_index("customer_id")[list(FACT_COLUMNS[1:])]

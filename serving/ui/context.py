"""What the UI reads besides the served state, and when it is rebuilt.

The API's :class:`serving.state.ServingState` holds the scores; the UI adds who the customers are
(name, CSM owner, segment: the contract's ``customers`` table), their MRR and usage at the
snapshot (the snapshot file, which carries every catalog feature, not only the model's), the
score history (``serving.history``) and the monthly indicator values of the labeled set for the
trend charts. :class:`UiData` rebuilds that :class:`UiContext` off to the side whenever the served
state or one of those files changes, like the API's reload: pages in flight keep the old one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from churn_settings import Settings
from features.contract import parse_table
from serving.history import ScoreHistory, history_stamp
from serving.state import Runtime, ServingState, file_stamp
from serving.ui.portfolio import (
    SEGMENTS,
    TIER_ORDER,
    Portfolio,
    remaining_ltv,
    revenue_at_risk,
    value_segments,
)

log = logging.getLogger("churn.ui")

# Key indicators of the trend charts: label -> catalog features, the first present is shown.
INDICATORS: dict[str, tuple[str, ...]] = {
    "Product activity (actions, 30 days)": ("events_30d", "active_days_30d", "logins_30d"),
    "Core-feature use (actions, 30 days)": ("core_events_30d", "core_breadth_30d"),
    "Support tickets opened (30 days)": ("tickets_30d", "tickets_90d"),
    "Late or overdue invoices (180 days)": ("invoices_late_180d", "unpaid_invoices"),
}
SNAPSHOT_COLUMNS = (
    "mrr", "seats", "tenure_days", "lifecycle_stage", "days_since_last_activity",
    "active_days_90d", "days_to_renewal", *SEGMENTS,
    *(name for names in INDICATORS.values() for name in names),
)  # fmt: skip
CUSTOMER_COLUMNS = ("name", "csm_owner", "signup_date", *SEGMENTS)


def contract_file(folder: Path, table: str) -> Path | None:
    """``<table>.parquet`` or ``<table>.csv`` in an export folder, as the contract reads it."""
    for suffix in (".parquet", ".csv"):
        path = Path(folder) / f"{table}{suffix}"
        if path.is_file():
            return path
    return None


def read_contract_table(folder: Path, table: str) -> pd.DataFrame | None:
    """One contract table with contract types (``features.contract.parse_table``), or None.

    The UI needs a few small tables (customers, subscriptions, exit reasons), not the event log,
    so it does not read the whole export.
    """
    path = contract_file(folder, table)
    if path is None:
        return None
    if path.suffix == ".parquet":
        raw = pd.read_parquet(path)
    else:
        raw = pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""])
    parsed, _ = parse_table(table, raw)
    return parsed


def _parquet_columns(path: Path, wanted: tuple[str, ...]) -> list[str]:
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, ValueError):
        return []
    return [c for c in dict.fromkeys(wanted) if c in names]


class IndicatorHistory:
    """Monthly indicator values per customer from the labeled set, sorted for binary search."""

    def __init__(self, frame: pd.DataFrame) -> None:
        frame = frame.sort_values(["customer_id", "as_of"], kind="stable").reset_index(drop=True)
        self.frame = frame
        self.ids = frame["customer_id"].astype(str).to_numpy()

    @classmethod
    def read(cls, path: Path) -> IndicatorHistory | None:
        wanted = ("customer_id", "as_of", *(n for names in INDICATORS.values() for n in names))
        columns = _parquet_columns(path, wanted)
        if "customer_id" not in columns or "as_of" not in columns:
            return None
        frame = pd.read_parquet(path, columns=columns)
        frame["customer_id"] = frame["customer_id"].astype(str)
        frame["as_of"] = pd.to_datetime(frame["as_of"])
        return cls(frame)

    def customer(self, customer_id: str) -> pd.DataFrame:
        lo = int(np.searchsorted(self.ids, customer_id, side="left"))
        hi = int(np.searchsorted(self.ids, customer_id, side="right"))
        return self.frame.iloc[lo:hi]


@dataclass
class UiContext:
    """Everything a page reads, consistent with one served state."""

    state: ServingState
    portfolio: Portfolio
    history: ScoreHistory
    previous: pd.DataFrame  # latest scoring before the served as_of, indexed by customer_id
    indicators: IndicatorHistory | None
    snapshot: pd.DataFrame  # SNAPSHOT_COLUMNS present, row-aligned with state.customer_ids
    as_of: date
    horizon_days: int
    stamp: tuple[Any, ...]
    build_seconds: float

    def close(self) -> None:
        self.portfolio.close()
        self.history.close()


def _aligned(frame: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame:
    if frame is None or "customer_id" not in frame:
        return pd.DataFrame(index=pd.RangeIndex(len(ids)))
    keyed = frame.assign(customer_id=frame["customer_id"].astype(str))
    indexed = keyed.drop_duplicates("customer_id").set_index("customer_id")
    return indexed.reindex(ids.astype(str)).reset_index(drop=True)


def top_driver_sentences(state: ServingState) -> list[str | None]:
    """The strongest driver of each served customer, in the catalog's words."""
    scored, explainer = state.scored, state.explainer
    if scored.top.shape[1] == 0:
        return [None] * len(scored)
    out: list[str | None] = []
    for i in range(len(scored)):
        j = int(scored.top[i, 0])
        value = explainer.value(j, state.X[i, j])
        out.append(explainer.info[j].explain(value))
    return out


def survival_money(state: ServingState) -> dict[str, np.ndarray]:
    """12-month expected revenue and revenue at risk from the precomputed time-to-churn blocks
    (NaN when the served model has none or the store was stale)."""
    n = len(state.customer_ids)
    blocks = state.survival
    if blocks is None:
        return {
            "expected_revenue_12m": np.full(n, np.nan),
            "revenue_at_risk_12m": np.full(n, np.nan),
        }

    def column(key: str) -> np.ndarray:
        return np.array([np.nan if b[key] is None else b[key] for b in blocks], dtype=float)

    return {
        "expected_revenue_12m": column("expected_revenue_12m"),
        "revenue_at_risk_12m": column("revenue_at_risk_12m"),
    }


def portfolio_frame(
    state: ServingState,
    snapshot: pd.DataFrame,
    customers: pd.DataFrame,
    previous: pd.DataFrame,
) -> pd.DataFrame:
    """The list table: one row per served customer, row i = state row i."""
    ids = state.customer_ids.astype(str)
    scored = state.scored
    horizon = state.model.horizon_days
    mrr = (
        pd.to_numeric(snapshot["mrr"], errors="coerce").to_numpy(dtype=float)
        if "mrr" in snapshot
        else np.full(len(ids), np.nan)
    )
    frame = pd.DataFrame(
        {
            "row": np.arange(len(ids)),
            "customer_id": ids,
            "name": customers["name"].astype("string") if "name" in customers else pd.NA,
            "health_score": scored.health_score,
            "tier": scored.tier.astype(str),
            "churn_probability": scored.probability,
            "mrr": mrr,
            "revenue_at_risk": revenue_at_risk(mrr, scored.probability, horizon),
            "remaining_ltv": remaining_ltv(mrr, scored.probability, horizon),
            **survival_money(state),
            "top_driver": top_driver_sentences(state),
            "csm_owner": (
                customers["csm_owner"].astype("string") if "csm_owner" in customers else pd.NA
            ),
            "as_of": state.as_of.astype(str),
            "model_version": state.ref.version,
        }
    )
    frame["tier_rank"] = frame["tier"].map(TIER_ORDER).fillna(9).astype("int8")
    recs = state.recommendations
    frame["action"] = [r.play.action + (f" Focus: {r.focus}" if r.focus else "") for r in recs]
    frame["action_owner"] = [r.play.owner for r in recs]
    frame["action_deadline_sla"] = [r.play.sla.describe() for r in recs]
    for column in (*SEGMENTS, "lifecycle_stage"):
        source = snapshot if column in snapshot else customers if column in customers else None
        frame[column] = source[column].astype("string") if source is not None else pd.NA
    prev = previous.reindex(ids) if len(previous) else None
    if prev is not None:
        frame["health_change"] = scored.health_score - prev["health_score"].to_numpy(dtype=float)
        frame["previous_as_of"] = pd.to_datetime(prev["as_of"]).dt.strftime("%Y-%m-%d").to_numpy()
    else:
        frame["health_change"] = np.nan
        frame["previous_as_of"] = None
    usage = snapshot.assign(mrr=mrr)
    frame = frame.join(value_segments(usage))
    return frame


class UiData:
    """Builds the :class:`UiContext` for the current served state; rebuilt when a source changes.

    ``current()`` is called from a worker thread by each page: it compares cheap stamps (the state
    object, file mtimes) and rebuilds under a lock only when one differs.
    """

    def __init__(self, settings: Settings, runtime_getter: Callable[[], Runtime]) -> None:
        self.settings = settings
        self.runtime_getter = runtime_getter
        self._context: UiContext | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the DuckDB connections of the current context (at shutdown)."""
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None

    def stamp(self, state: ServingState) -> tuple[Any, ...]:
        s = self.settings
        return (
            id(state),
            history_stamp(s.store_dir),
            file_stamp(s.snapshot_path),
            file_stamp(s.features_path),
            *(file_stamp(p) for p in [contract_file(s.data_dir, "customers")] if p is not None),
        )

    def current(self) -> UiContext:
        state = self.runtime_getter().current()
        context = self._context
        if context is not None and context.state is state and context.stamp == self.stamp(state):
            return context
        with self._lock:
            context = self._context
            stamp = self.stamp(state)
            if context is not None and context.state is state and context.stamp == stamp:
                return context
            fresh = self.build(state, stamp)
            self._context = fresh
            # the old context is left to the garbage collector: a page in flight may still read it
            return fresh

    def build(self, state: ServingState, stamp: tuple[Any, ...]) -> UiContext:
        started = time.perf_counter()
        s = self.settings
        ids = state.customer_ids.astype(str)
        columns = _parquet_columns(s.snapshot_path, ("customer_id", *SNAPSHOT_COLUMNS))
        snapshot_frame = (
            pd.read_parquet(s.snapshot_path, columns=columns) if "customer_id" in columns else None
        )
        snapshot = _aligned(snapshot_frame, ids)
        customers = _aligned(read_contract_table(s.data_dir, "customers"), ids)
        history = ScoreHistory(s.store_dir)
        as_of = max((date.fromisoformat(str(d)) for d in set(state.as_of.tolist())), default=None)
        previous = (
            history.latest_before(as_of).set_index("customer_id")
            if as_of is not None
            else pd.DataFrame()
        )
        for path in previous["filename"].unique() if len(previous) else []:
            history.contributions(str(path), "")  # load "what moved" data now, not on a page view
        portfolio = Portfolio(portfolio_frame(state, snapshot, customers, previous))
        indicators = IndicatorHistory.read(s.features_path) if s.features_path.is_file() else None
        seconds = time.perf_counter() - started
        log.info("UI data for %d customers built in %.2f s", len(ids), seconds)
        return UiContext(
            state=state,
            portfolio=portfolio,
            history=history,
            previous=previous,
            indicators=indicators,
            snapshot=snapshot,
            as_of=as_of or date.today(),
            horizon_days=state.model.horizon_days,
            stamp=stamp,
            build_seconds=seconds,
        )

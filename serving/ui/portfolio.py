"""The at-risk list: one row per served customer with what a CSM sorts and filters by.

Built once per served state (model + snapshot) and score-history change, then held as a DuckDB
table in process: a filtered, sorted page of 50 customers out of 50 000 is one SQL query of a
few milliseconds, and the CSV export runs the same query without the page limit.

Money rules, stated once (currency of the export; months of 365.25 / 12 days):

- **revenue at risk** = MRR x horizon months x churn probability: the revenue expected to be lost
  over the model's horizon if nothing is done. The default sort: a 40 % risk on 5 000 a month
  outranks a 90 % risk on 200.
- **expected remaining LTV** = MRR x gross margin / monthly churn: the formula of
  ``features.metrics.simple_ltv`` applied to one customer, with its monthly churn implied by the
  model's probability over the horizon, ``1 - (1 - p) ** (1 / horizon months)``, and the
  lifetime capped at ``MAX_LIFETIME_MONTHS``.
- **value segments** (RFM): R = days since the last activity, F = active days in the last 90, M
  = MRR, each scored 1-5 by quintile. The top 20 % by MRR are *high value*; a customer whose mean
  of R and F scores is 2 or less is *inactive*. High value and active = **VIP**; high value and
  inactive = **high value, inactive** (the group to save first).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.tiers import TIER_NAMES, TIER_RANK

GROSS_MARGIN = 0.8  # the default margin of features.metrics.simple_ltv
MAX_LIFETIME_MONTHS = 120.0
DAYS_PER_MONTH = 365.25 / 12
HIGH_VALUE_SHARE = 0.20
INACTIVE_RF_SCORE = 2.0
PAGE_SIZE = 50

VIP = "VIP"
HIGH_VALUE_INACTIVE = "High value, inactive"
ACTIVE = "Active"
INACTIVE = "Inactive"
VALUE_SEGMENTS = (VIP, HIGH_VALUE_INACTIVE, ACTIVE, INACTIVE)
TIER_ORDER = {name: len(TIER_NAMES) - 1 - rank for name, rank in TIER_RANK.items()}  # riskiest 0

# Customer attributes the list filters on: contract column -> label.
SEGMENTS: dict[str, str] = {
    "industry": "Industry",
    "company_size": "Size",
    "region": "Region",
    "plan": "Plan",
    "acquisition_channel": "Channel",
}

# ?sort= value -> SQL expression; every other value falls back to the default.
SORTS: dict[str, str] = {
    "revenue_at_risk": "revenue_at_risk",
    "health_score": "health_score",
    "churn_probability": "churn_probability",
    "mrr": "mrr",
    "remaining_ltv": "remaining_ltv",
    "expected_revenue_12m": "expected_revenue_12m",
    "revenue_at_risk_12m": "revenue_at_risk_12m",
    "health_change": "health_change",
    "name": "lower(name)",
    "csm_owner": "lower(csm_owner)",
    "tier": "tier_rank",
}
DEFAULT_SORT = "revenue_at_risk"

LIST_COLUMNS = (
    "customer_id", "name", "health_score", "tier", "churn_probability", "mrr", "revenue_at_risk",
    "remaining_ltv", "expected_revenue_12m", "revenue_at_risk_12m", "health_change",
    "previous_as_of", "top_driver", "csm_owner", "action", "action_owner", "value_segment",
)  # fmt: skip
EXPORT_COLUMNS = (
    *LIST_COLUMNS, "action_deadline_sla", *SEGMENTS, "lifecycle_stage", "as_of", "model_version",
)  # fmt: skip


def horizon_months(horizon_days: float) -> float:
    return float(horizon_days) / DAYS_PER_MONTH


def revenue_at_risk(mrr: np.ndarray, probability: np.ndarray, horizon_days: float) -> np.ndarray:
    """MRR x horizon months x probability (NaN MRR -> 0: nothing recorded, nothing at stake)."""
    return np.nan_to_num(mrr, nan=0.0) * horizon_months(horizon_days) * probability


def remaining_ltv(
    mrr: np.ndarray,
    probability: np.ndarray,
    horizon_days: float,
    margin: float = GROSS_MARGIN,
) -> np.ndarray:
    """Expected remaining lifetime value: MRR x margin / the customer's monthly churn."""
    months = horizon_months(horizon_days)
    p = np.clip(probability, 0.0, 1.0 - 1e-12)
    monthly = 1.0 - np.power(1.0 - p, 1.0 / months)
    lifetime = 1.0 / np.maximum(monthly, 1.0 / MAX_LIFETIME_MONTHS)
    return np.nan_to_num(mrr, nan=0.0) * margin * lifetime


def quintile_score(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """1-5 by quintile of rank (ties share the average rank); missing values score 1."""
    pct = values.rank(pct=True, method="average", ascending=higher_is_better)
    return (pct * 5).apply(np.ceil).clip(1, 5).fillna(1).astype("int8")


def value_segments(frame: pd.DataFrame) -> pd.DataFrame:
    """R, F, M scores and the value segment of each row of ``frame`` (columns ``mrr`` and, when
    the export has events, ``days_since_last_activity`` and ``active_days_90d``)."""
    n = len(frame)
    m = quintile_score(frame["mrr"]) if "mrr" in frame else pd.Series(1, index=frame.index)
    has_usage = {"days_since_last_activity", "active_days_90d"} <= set(frame.columns)
    if has_usage:
        r = quintile_score(frame["days_since_last_activity"], higher_is_better=False)
        f = quintile_score(frame["active_days_90d"])
        inactive = ((r + f) / 2.0 <= INACTIVE_RF_SCORE).to_numpy()
    else:  # no product events: nobody can be called inactive
        r = f = pd.Series(np.int8(0), index=frame.index)
        inactive = np.zeros(n, dtype=bool)
    mrr = frame["mrr"].fillna(0.0) if "mrr" in frame else pd.Series(0.0, index=frame.index)
    high = (mrr.rank(pct=True, method="first") > 1.0 - HIGH_VALUE_SHARE).to_numpy() & (mrr > 0)
    segment = np.where(
        high,
        np.where(inactive, HIGH_VALUE_INACTIVE, VIP),
        np.where(inactive, INACTIVE, ACTIVE),
    )
    return pd.DataFrame(
        {"r_score": r, "f_score": f, "m_score": m, "value_segment": segment}, index=frame.index
    )


@dataclass
class ListQuery:
    """The list's filters, sort and page, as read from the query string."""

    tier: str = ""
    segments: dict[str, str] = field(default_factory=dict)
    csm_owner: str = ""
    value_segment: str = ""
    q: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = True
    page: int = 1
    page_size: int = PAGE_SIZE

    @classmethod
    def from_params(cls, params: Any) -> ListQuery:
        """From request query params; unknown or malformed values fall back to defaults."""
        sort = params.get("sort", DEFAULT_SORT)
        try:
            page = max(1, int(params.get("page", "1")))
        except ValueError:
            page = 1
        return cls(
            tier=params.get("tier", "").strip(),
            segments={k: params.get(k, "").strip() for k in SEGMENTS if params.get(k, "").strip()},
            csm_owner=params.get("csm_owner", "").strip(),
            value_segment=params.get("value_segment", "").strip(),
            q=params.get("q", "").strip()[:100],
            sort=sort if sort in SORTS else DEFAULT_SORT,
            descending=params.get("dir", "desc") != "asc",
            page=page,
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """Query-string values of this view (for links that change one thing)."""
        values: dict[str, Any] = {
            "tier": self.tier, **self.segments, "csm_owner": self.csm_owner,
            "value_segment": self.value_segment, "q": self.q, "sort": self.sort,
            "dir": "desc" if self.descending else "asc", "page": self.page,
        }  # fmt: skip
        values |= changes
        defaults = {"sort": DEFAULT_SORT, "dir": "desc", "page": 1}
        return {
            k: str(v) for k, v in values.items() if v not in ("", None) and defaults.get(k) != v
        }

    def where(self) -> tuple[str, list[Any]]:
        """SQL condition and parameters (values are bound, never formatted into the SQL)."""
        clauses, params = ["TRUE"], []
        if self.tier:
            clauses.append("tier = ?")
            params.append(self.tier)
        for column, value in self.segments.items():
            clauses.append(f"{column} = ?")  # column names come from SEGMENTS only
            params.append(value)
        if self.csm_owner:
            clauses.append("csm_owner = ?")
            params.append(self.csm_owner)
        if self.value_segment:
            clauses.append("value_segment = ?")
            params.append(self.value_segment)
        if self.q:
            clauses.append("contains(search, ?)")  # search = lower(id || ' ' || name)
            params.append(self.q.lower())
        return " AND ".join(clauses), params

    def order_by(self) -> str:
        direction = "DESC" if self.descending else "ASC"
        return f"{SORTS[self.sort]} {direction} NULLS LAST, customer_id"


@dataclass(frozen=True)
class ListPage:
    rows: list[dict[str, Any]]
    total: int
    revenue_at_risk: float
    mrr: float
    page: int
    pages: int


class Portfolio:
    """The list table in an in-process DuckDB database; read-only after construction."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        # one thread per query: pages are small queries, and a web server runs several at once
        self.con = duckdb.connect(config={"threads": 1})
        self.con.register("portfolio_frame", frame)
        self.con.execute(
            "CREATE TABLE portfolio AS SELECT *, "
            "lower(customer_id || ' ' || coalesce(name, '')) AS search FROM portfolio_frame"
        )
        self.con.unregister("portfolio_frame")
        self.row_of: dict[str, int] = {cid: i for i, cid in enumerate(frame["customer_id"])}
        counts = frame["tier"].value_counts()
        self.tier_counts = {str(k): int(v) for k, v in counts.items()}
        self.options: dict[str, list[str]] = {
            column: sorted(frame[column].dropna().astype(str).unique().tolist())
            for column in (*SEGMENTS, "csm_owner")
            if column in frame
        }

    def _fetch(self, sql: str, params: list[Any]) -> pd.DataFrame:
        cursor = self.con.cursor()  # per call: DuckDB connections are not shared across threads
        try:
            return cursor.execute(sql, params).df()
        finally:
            cursor.close()

    def page(self, query: ListQuery) -> ListPage:
        where, params = query.where()
        head = self._fetch(
            f"SELECT count(*) AS n, coalesce(sum(revenue_at_risk), 0) AS rar, "
            f"coalesce(sum(mrr), 0) AS mrr FROM portfolio WHERE {where}",
            params,
        ).iloc[0]
        total = int(head["n"])
        pages = max(1, math.ceil(total / query.page_size))
        page = min(query.page, pages)
        # sort the narrow (row, key) pairs only, then pick the page's display columns by row
        picked = self._fetch(
            f"SELECT row FROM portfolio WHERE {where} ORDER BY {query.order_by()} LIMIT ? OFFSET ?",
            [*params, query.page_size, (page - 1) * query.page_size],
        )["row"].to_numpy()
        rows = self.frame.iloc[picked][list(LIST_COLUMNS)]
        return ListPage(
            rows=_records(rows),
            total=total,
            revenue_at_risk=float(head["rar"]),
            mrr=float(head["mrr"]),
            page=page,
            pages=pages,
        )

    def export(self, query: ListQuery) -> pd.DataFrame:
        """Every row of the current view (all pages), in the view's order."""
        where, params = query.where()
        columns = [c for c in EXPORT_COLUMNS if c in self.frame.columns]
        return self._fetch(
            f"SELECT {', '.join(columns)} FROM portfolio WHERE {where} ORDER BY {query.order_by()}",
            params,
        )

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        i = self.row_of.get(customer_id)
        return None if i is None else _records(self.frame.iloc[[i]])[0]

    def segment_summary(self) -> pd.DataFrame:
        """Customers, MRR and revenue at risk per value segment, in segment order."""
        out = self._fetch(
            "SELECT value_segment, count(*) AS customers, sum(mrr) AS mrr, "
            "sum(revenue_at_risk) AS revenue_at_risk FROM portfolio GROUP BY value_segment",
            [],
        ).set_index("value_segment")
        return out.reindex(list(VALUE_SEGMENTS)).fillna(0.0)

    def top(self, value_segment: str, limit: int = 10) -> list[dict[str, Any]]:
        """The riskiest customers of one value segment by revenue at risk."""
        return _records(
            self._fetch(
                f"SELECT {', '.join(LIST_COLUMNS)} FROM portfolio WHERE value_segment = ? "
                "ORDER BY revenue_at_risk DESC, customer_id LIMIT ?",
                [value_segment, limit],
            )
        )

    def close(self) -> None:
        self.con.close()


def _clean(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: _clean(v) for k, v in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR
    first) get a leading ``'`` (OWASP's CSV-injection advice); numbers stay numbers."""
    out = frame
    for column in frame.columns:
        values = frame[column]
        if values.dtype != object and not pd.api.types.is_string_dtype(values):
            continue
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_STARTS).fillna(False).to_numpy(dtype=bool)
        if risky.any():
            if out is frame:
                out = frame.copy()
            out[column] = values.where(~risky, "'" + text)
    return out


def iter_csv(frame: pd.DataFrame, chunk_rows: int = 5_000) -> Iterator[str]:
    """The export as CSV text in chunks (header first), so 50 000 rows stream, not buffer;
    formula-like text is defused (:func:`defuse_formulas`)."""
    for start in range(0, max(len(frame), 1), chunk_rows):
        yield defuse_formulas(frame.iloc[start : start + chunk_rows]).to_csv(
            index=False, header=start == 0, float_format="%.6g"
        )

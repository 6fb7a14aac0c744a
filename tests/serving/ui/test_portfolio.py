"""The list's money rules, value segments, and queries that bind (never format) user input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_settings import Settings
from serving.ui.auth import SessionSigner
from serving.ui.portfolio import (
    HIGH_VALUE_INACTIVE,
    VIP,
    ListQuery,
    Portfolio,
    remaining_ltv,
    revenue_at_risk,
    value_segments,
)


def test_revenue_at_risk_is_mrr_times_horizon_months_times_probability() -> None:
    risk = revenue_at_risk(np.array([1000.0, np.nan]), np.array([0.5, 0.9]), 365.25 / 4)
    assert risk == pytest.approx([1500.0, 0.0])


def test_remaining_ltv_falls_as_the_churn_probability_rises() -> None:
    ltv = remaining_ltv(np.full(3, 100.0), np.array([0.0, 0.1, 0.5]), 90)
    assert ltv[0] == pytest.approx(100 * 0.8 * 120)  # lifetime capped at 120 months
    assert ltv[0] > ltv[1] > ltv[2] > 0


def test_top_fifth_by_mrr_is_high_value_and_split_by_activity() -> None:
    n = 100
    frame = pd.DataFrame(
        {
            "mrr": np.arange(n, dtype=float),
            "days_since_last_activity": np.where(np.arange(n) % 2 == 0, 1.0, 80.0),
            "active_days_90d": np.where(np.arange(n) % 2 == 0, 60.0, 1.0),
        }
    )
    segments = value_segments(frame)["value_segment"]
    assert set(segments[80:]) == {VIP, HIGH_VALUE_INACTIVE}
    assert segments[81] == HIGH_VALUE_INACTIVE and segments[80] == VIP
    assert not segments[:80].isin([VIP, HIGH_VALUE_INACTIVE]).any()


def portfolio() -> Portfolio:
    frame = pd.DataFrame(
        {
            "row": [0, 1, 2],
            "customer_id": ["C1", "C2", "C3"],
            "name": ["Acme", "Bolt'; DROP TABLE portfolio; --", "Crane"],
            "tier": ["high", "high", "healthy"],
            "tier_rank": [0, 0, 3],
            "health_score": [20.0, 30.0, 90.0],
            "churn_probability": [0.6, 0.5, 0.02],
            "mrr": [100.0, 1000.0, 50.0],
            "revenue_at_risk": [180.0, 1500.0, 3.0],
            "remaining_ltv": [1.0, 2.0, 3.0],
            "expected_revenue_12m": [1200.0, np.nan, 600.0],
            "revenue_at_risk_12m": [300.0, np.nan, 50.0],
            "health_change": [-5.0, np.nan, 1.0],
            "previous_as_of": ["2025-01-01", None, "2025-01-01"],
            "top_driver": ["x", "y", "z"],
            "csm_owner": ["Ann", "Bo", "Ann"],
            "action": ["a", "b", "c"],
            "action_owner": ["CSM", "CSM", "AM"],
            "value_segment": [VIP, VIP, "Active"],
            "industry": ["retail", "saas", "retail"],
        }
    )
    return Portfolio(frame)


def test_default_view_is_sorted_by_revenue_at_risk_and_filters_combine() -> None:
    listing = portfolio()
    page = listing.page(ListQuery())
    assert [r["customer_id"] for r in page.rows] == ["C2", "C1", "C3"]
    high_retail = listing.page(ListQuery(tier="high", segments={"industry": "retail"}))
    assert [r["customer_id"] for r in high_retail.rows] == ["C1"]
    assert high_retail.revenue_at_risk == 180.0


def test_search_text_is_bound_as_a_value_not_sql() -> None:
    listing = portfolio()
    found = listing.page(ListQuery(q="drop table")).rows
    assert [r["customer_id"] for r in found] == ["C2"]
    assert listing.page(ListQuery()).total == 3


def test_unknown_sort_falls_back_to_revenue_at_risk() -> None:
    assert ListQuery.from_params({"sort": "1; DROP TABLE x"}).sort == "revenue_at_risk"


def test_a_tampered_or_revoked_session_cookie_is_refused() -> None:
    signer = SessionSigner(Settings(api_keys="k1,k2"))
    key = signer.check_key("k2")
    assert key is not None and signer.check_key("k3") is None
    cookie = signer.issue(key)
    assert signer.read(cookie) is not None
    assert signer.read(cookie[:-2] + "xx") is None
    assert SessionSigner(Settings(api_keys="k1")).read(cookie) is None  # key removed
    assert signer.read(cookie, now=signer.read(cookie).issued_at + 13 * 3600) is None  # type: ignore[union-attr]


def test_csv_export_defuses_formula_injection() -> None:
    import csv
    import io

    import pandas as pd

    from serving.ui.portfolio import iter_csv

    frame = pd.DataFrame(
        {
            "name": ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx", "Acme"],
            "top_driver": ["-42 % logins", "ok", None, "fine", "x", "y"],
            "mrr": [-5.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    rows = list(csv.DictReader(io.StringIO("".join(iter_csv(frame)))))
    assert [r["name"] for r in rows] == [
        "'=HYPERLINK(\"http://x\")", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "Acme",
    ]  # fmt: skip
    assert rows[0]["top_driver"] == "'-42 % logins" and rows[2]["top_driver"] == ""
    assert rows[0]["mrr"] == "-5", "numbers are not text: they stay numbers"

"""Feature values on hand-made tables: windows are half-open [as_of - w, as_of), UTC."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.contract import RawTables
from features.engine import build_features, monthly_as_of, observed_until

AS_OF = date(2024, 4, 1)
T = pd.Timestamp


def tables(events: list[tuple[str, str, str]] | None = None, **extra: pd.DataFrame) -> RawTables:
    customers = pd.DataFrame({"customer_id": ["a"], "signup_date": [T("2024-01-01")]})
    subscriptions = pd.DataFrame(
        {
            "subscription_id": ["s1"],
            "customer_id": ["a"],
            "start_date": [T("2024-01-01")],
            "end_date": [pd.NaT],
            "mrr": [100.0],
            "plan": ["pro"],
            "seats": [4.0],
        }
    )
    rows = events or []
    frame = pd.DataFrame(
        {
            "customer_id": ["a"] * len(rows),
            "timestamp": pd.to_datetime([r[0] for r in rows], utc=True),
            "event_type": [r[1] for r in rows],
            "user_id": [r[2] for r in rows],
            "feature": ["reports"] * len(rows),
            "value": [1.0] * len(rows),
        }
    )
    return RawTables(customers=customers, subscriptions=subscriptions, events=frame, **extra)


def row(t: RawTables) -> pd.Series:
    built = build_features(t, [AS_OF])
    assert len(built) == 1
    return built.iloc[0]


def test_an_event_at_midnight_of_as_of_is_not_counted_but_one_a_second_before_is() -> None:
    r = row(
        tables([("2024-04-01T00:00:00", "login", "u1"), ("2024-03-31T23:59:59", "login", "u1")])
    )
    assert r["events_7d"] == 1
    assert r["days_since_last_activity"] == pytest.approx(1 / 86400)


def test_the_30_day_window_starts_exactly_30_days_before_as_of() -> None:
    r = row(tables([("2024-03-02T00:00:00", "use", "u1"), ("2024-03-01T23:59:59", "use", "u2")]))
    assert r["events_30d"] == 1
    assert r["active_users_30d"] == 1
    assert r["events_90d"] == 2


def test_activity_change_compares_the_last_30_days_with_the_30_before() -> None:
    events = [("2024-03-20T10:00", "use", "u1")] + [("2024-02-20T10:00", "use", "u1")] * 4
    r = row(tables(events))
    assert r["activity_change_30d"] == pytest.approx((1 - 4) / 4)


def test_lifetime_active_share_counts_whole_days_from_the_first_active_day() -> None:
    # first active day 2024-03-22 (late in the day): 10 whole days before as_of, 3 of them active
    events = [("2024-03-22T23:00", "use", "u1"), ("2024-03-25T08:00", "use", "u1"),
              ("2024-03-25T09:00", "use", "u2"), ("2024-03-31T23:59", "use", "u1")]  # fmt: skip
    r = row(tables(events))
    assert r["lifetime_active_days"] == 3
    assert r["lifetime_active_share"] == pytest.approx(3 / 10)
    one_day = row(tables([("2024-03-31T00:00", "use", "u1")]))
    assert one_day["lifetime_active_share"] == 1.0


def test_no_activity_before_as_of_leaves_the_lifetime_active_share_unknown() -> None:
    built = build_features(tables([("2024-03-31T00:00", "use", "u1")]), [date(2024, 3, 1)])
    assert pd.isna(built.iloc[0]["lifetime_active_share"])


def test_seat_utilization_is_active_users_over_paid_seats() -> None:
    events = [("2024-03-20T10:00", "login", u) for u in ("u1", "u2", "u3")]
    r = row(tables(events))
    assert r["active_users_30d"] == 3
    assert r["seat_utilization_30d"] == pytest.approx(3 / 4)


def test_a_ticket_resolved_after_as_of_is_still_open_and_its_csat_unknown() -> None:
    tickets = pd.DataFrame(
        {
            "ticket_id": ["t1", "t2"],
            "customer_id": ["a", "a"],
            "opened_at": pd.to_datetime(["2024-03-10T09:00", "2024-03-01T09:00"], utc=True),
            "resolved_at": pd.to_datetime(["2024-04-03T09:00", "2024-03-02T09:00"], utc=True),
            "priority": ["urgent", "low"],
            "csat": [1.0, 5.0],
        }
    )
    r = row(tables(tickets=tickets))
    assert r["open_tickets"] == 1
    assert r["high_priority_open"] == 1
    assert r["csat_90d"] == 5.0
    assert r["resolution_hours_90d"] == pytest.approx(24.0)


def test_an_invoice_paid_after_as_of_counts_as_unpaid_and_late_at_as_of() -> None:
    invoices = pd.DataFrame(
        {
            "invoice_id": ["i1"],
            "customer_id": ["a"],
            "issued_at": pd.to_datetime(["2024-03-01"], utc=True),
            "due_at": pd.to_datetime(["2024-03-15"], utc=True),
            "paid_at": pd.to_datetime(["2024-04-10"], utc=True),
            "amount": [100.0],
        }
    )
    r = row(tables(invoices=invoices))
    assert r["unpaid_invoices"] == 1
    assert r["overdue_amount"] == 100.0
    assert r["invoices_late_180d"] == 1
    assert r["payment_delay_days_180d"] == pytest.approx(17.0)


def test_nps_change_is_the_last_answer_minus_the_one_before() -> None:
    nps = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a"],
            "responded_at": pd.to_datetime(["2024-01-10", "2024-03-10", "2024-04-02"], utc=True),
            "score": [9.0, 4.0, 10.0],
        }
    )
    r = row(tables(nps=nps))
    assert (r["nps_last"], r["nps_change"]) == (4.0, -5.0)


def test_observed_until_is_the_latest_record_and_monthly_dates_are_month_starts() -> None:
    t = tables([("2024-05-07T08:00", "login", "u1")])
    assert observed_until(t) == date(2024, 5, 7)
    assert monthly_as_of(date(2024, 1, 15), date(2024, 4, 1)) == [
        date(2024, 2, 1),
        date(2024, 3, 1),
        date(2024, 4, 1),
    ]


def test_the_calendars_join_each_day_to_the_as_of_dates_a_range_would() -> None:
    """``as_of_days`` holds exactly the days with ``as_of - 90 <= day < as_of`` and their age;
    ``period_days`` gives each day the first as-of date after it (the range joins they
    replace)."""
    from features.engine import as_of_days_frame, period_days_frame

    as_of = [date(2024, 3, 1), date(2024, 1, 1), date(2024, 2, 1)]
    days = as_of_days_frame(as_of)
    for moment in pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]):
        mine = days[days["as_of"] == moment]
        window = pd.date_range(moment - pd.Timedelta(days=90), moment - pd.Timedelta(days=1))
        assert sorted(mine["day"]) == list(window)
        assert ((moment - mine["day"]).dt.days == mine["age"]).all()
    periods = period_days_frame(as_of, date(2023, 12, 20))
    assert periods["day"].min() == pd.Timestamp("2023-12-20")
    assert periods["day"].max() == pd.Timestamp("2024-02-29")
    by_day = dict(zip(periods["day"], periods["as_of"], strict=True))
    assert by_day[pd.Timestamp("2023-12-31")] == pd.Timestamp("2024-01-01")
    assert by_day[pd.Timestamp("2024-01-01")] == pd.Timestamp("2024-02-01")
    assert by_day[pd.Timestamp("2024-02-29")] == pd.Timestamp("2024-03-01")
    assert period_days_frame(as_of, None).empty

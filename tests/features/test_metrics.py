"""Retention KPIs (``features.metrics``) on tiny hand-made companies; expected numbers by hand.

A subscription covers ``[start_date, end_date)``; a customer is active at the start of a month
when it paid on the day before; the 7-day re-subscription gap is the label's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from features import metrics
from features.contract import RawTables
from features.engine import build_labeled_set
from features.labels import LabelSpec

Sub = tuple[str, date, date | None, float]  # (customer_id, start_date, end_date, mrr)
JAN, FEB, MAR, APR, MAY = (date(2024, m, 1) for m in range(1, 6))


def _tables(
    subs: Sequence[Sub],
    nps: list[tuple[str, str, float]] | None = None,
    events: list[tuple[str, str, float]] | None = None,
) -> RawTables:
    subscriptions = pd.DataFrame(
        {
            "subscription_id": [f"s{i}" for i in range(len(subs))],
            "customer_id": pd.Series([s[0] for s in subs], dtype="string"),
            "start_date": pd.Series([s[1] for s in subs], dtype="object"),
            "end_date": pd.Series([s[2] for s in subs], dtype="object"),
            "mrr": pd.Series([s[3] for s in subs], dtype="float64"),
            "plan": "pro",
        }
    )
    ids = sorted({s[0] for s in subs})
    customers = pd.DataFrame({"customer_id": ids, "signup_date": date(2023, 1, 1)})

    def stamped(rows: list[tuple[str, str, float]], column: str, value: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "customer_id": [r[0] for r in rows],
                column: pd.to_datetime([r[1] for r in rows], utc=True, format="ISO8601"),
                value: [r[2] for r in rows],
            }
        )

    nps_frame = None if nps is None else stamped(nps, "responded_at", "score")
    event_frame = None
    if events is not None:
        event_frame = stamped(events, "timestamp", "value").assign(event_type="purchase")
    return RawTables(
        customers=customers, subscriptions=subscriptions, nps=nps_frame, events=event_frame
    )


def _ten_customers_two_lost_in_march() -> list[Sub]:
    subs: list[Sub] = [(f"c{i}", date(2024, 1, 1), None, 100.0) for i in range(7)]
    subs += [
        ("lost_mid", date(2024, 1, 1), date(2024, 3, 10), 100.0),
        ("lost_last_day", date(2024, 1, 1), date(2024, 3, 31), 100.0),  # last paid day 03-30
        ("ends_april_1", date(2024, 1, 1), date(2024, 4, 1), 100.0),  # paid all of March
        ("new_on_1st", date(2024, 3, 1), None, 100.0),  # new in March: not in the denominator
        ("new_mid", date(2024, 3, 15), None, 100.0),
    ]
    return subs


# --- customer churn ------------------------------------------------------------------------


def test_churn_rate_is_customers_lost_over_customers_active_at_month_start() -> None:
    rates = metrics.churn_rates(_tables(_ten_customers_two_lost_in_march()), MAR, MAY)
    march = rates.loc[pd.Timestamp(MAR)]
    assert march["customers_start"] == 10
    assert march["new_customers"] == 2
    assert march["lost_customers"] == 2
    assert march["customers_end"] == 10  # 10 - 2 lost + 2 new
    assert march["churn_rate"] == pytest.approx(0.20)
    assert march["retention_rate"] == pytest.approx(0.80)


def test_subscription_ending_on_the_first_is_lost_in_that_month_as_in_the_labels() -> None:
    april = metrics.churn_rates(_tables(_ten_customers_two_lost_in_march()), MAR, MAY).loc[
        pd.Timestamp(APR)
    ]
    assert (april["customers_start"], april["lost_customers"]) == (10, 1)
    assert april["churn_rate"] == pytest.approx(0.10)


def test_resubscription_within_gap_is_not_churn_and_after_it_is_churn_plus_reactivation() -> None:
    subs: list[Sub] = [
        ("renews", date(2024, 1, 1), date(2024, 3, 10), 100.0),
        ("renews", date(2024, 3, 17), None, 100.0),  # 7 days later: the same life
        ("returns", date(2024, 1, 1), date(2024, 3, 10), 100.0),
        ("returns", date(2024, 3, 18), None, 100.0),  # 8 days later: churn, then a new life
        ("steady", date(2024, 1, 1), None, 100.0),
        ("steady2", date(2024, 1, 1), None, 100.0),
    ]
    march = metrics.churn_rates(_tables(subs), MAR, APR, gap_days=7).loc[pd.Timestamp(MAR)]
    assert march["customers_start"] == 4
    assert march["lost_customers"] == 1
    assert march["new_customers"] == 1  # the reactivation
    assert march["customers_end"] == 4
    assert march["churn_rate"] == pytest.approx(0.25)


def test_renewal_gap_across_month_boundary_keeps_customer_active_with_its_last_mrr() -> None:
    subs: list[Sub] = [
        ("c", date(2024, 1, 1), date(2024, 3, 29), 100.0),
        ("c", date(2024, 4, 3), None, 120.0),  # 5-day gap spanning 04-01
    ]
    table = metrics.monthly_metrics(_tables(subs), MAR, MAY)
    march, april = table.loc[pd.Timestamp(MAR)], table.loc[pd.Timestamp(APR)]
    assert march["lost_customers"] == 0 and march["customers_end"] == 1
    assert march["end_mrr"] == 100.0  # in the gap on 03-31: the MRR of its last covered day
    assert april["customers_start"] == 1 and april["new_customers"] == 0
    assert april["expansion_mrr"] == 20.0


def test_new_customers_only_month_has_no_churn_rate() -> None:
    rates = metrics.churn_rates(_tables([("c", date(2024, 1, 10), None, 100.0)]), JAN, FEB)
    assert rates.loc[pd.Timestamp(JAN), "customers_start"] == 0
    assert math.isnan(rates.loc[pd.Timestamp(JAN), "churn_rate"])


def test_only_full_months_inside_the_period_are_reported() -> None:
    months = metrics.full_months(date(2024, 1, 15), date(2024, 4, 10))
    assert list(months) == [pd.Timestamp(FEB), pd.Timestamp(MAR)]
    assert list(metrics.full_months(JAN, APR)) == [pd.Timestamp(d) for d in (JAN, FEB, MAR)]


def test_month_is_final_once_the_renewal_gap_after_it_is_inside_the_period() -> None:
    subs: list[Sub] = [("c", date(2024, 1, 1), None, 100.0)]
    final = metrics.churn_rates(_tables(subs), JAN, date(2024, 4, 7), gap_days=7)["final"]
    assert final.tolist() == [True, True, False]  # 04-01 + 7 days = 04-08 is not before 04-07
    final = metrics.churn_rates(_tables(subs), JAN, date(2024, 4, 8), gap_days=7)["final"]
    assert final.tolist() == [True, True, True]


# --- MRR -------------------------------------------------------------------------------------


def _mrr_company() -> list[Sub]:
    """At 03-01: A, B, C, D at 100 each (400). March: A upgrades to 150, B downgrades to 60,
    C churns, D stays, E joins at 50."""
    return [
        ("A", date(2024, 1, 1), date(2024, 3, 15), 100.0),
        ("A", date(2024, 3, 15), None, 150.0),
        ("B", date(2024, 1, 1), date(2024, 3, 20), 100.0),
        ("B", date(2024, 3, 20), None, 60.0),
        ("C", date(2024, 1, 1), date(2024, 3, 10), 100.0),
        ("D", date(2024, 1, 1), None, 100.0),
        ("E", date(2024, 3, 5), None, 50.0),
    ]


def test_mrr_upgrade_is_expansion_downgrade_is_contraction_and_lost_customer_is_churned_mrr() -> (
    None
):
    march = metrics.mrr_movements(_tables(_mrr_company()), MAR, APR).loc[pd.Timestamp(MAR)]
    assert march["start_mrr"] == 400.0
    assert march["expansion_mrr"] == 50.0
    assert march["contraction_mrr"] == 40.0
    assert march["churned_mrr"] == 100.0
    assert march["new_mrr"] == 50.0
    assert march["end_mrr"] == 360.0  # 400 + 50 - 40 - 100 + 50
    assert march["gross_mrr_churn"] == pytest.approx(0.35)  # (100 + 40) / 400
    assert march["net_revenue_retention"] == pytest.approx(0.775)  # (400 + 50 - 40 - 100) / 400


@pytest.mark.parametrize(
    ("free_is_churn", "churned", "contraction", "lost"),
    [(True, 100.0, 0.0, 1), (False, 0.0, 100.0, 0)],
)
def test_downgrade_to_free_is_churned_mrr_only_with_free_is_churn(
    free_is_churn: bool, churned: float, contraction: float, lost: int
) -> None:
    subs: list[Sub] = [
        ("c", date(2024, 1, 1), date(2024, 3, 10), 100.0),
        ("c", date(2024, 3, 10), None, 0.0),
        ("d", date(2024, 1, 1), None, 100.0),
    ]
    table = metrics.monthly_metrics(_tables(subs), MAR, APR, free_is_churn=free_is_churn)
    march = table.loc[pd.Timestamp(MAR)]
    assert (march["churned_mrr"], march["contraction_mrr"]) == (churned, contraction)
    assert march["lost_customers"] == lost
    assert march["net_revenue_retention"] == pytest.approx(0.5)  # either way 100 of 200 is gone


# --- cohorts and lifetime value --------------------------------------------------------------


def test_cohort_retention_matrix_counts_share_of_cohort_active_at_each_month_end() -> None:
    subs: list[Sub] = [
        ("before", date(2023, 11, 1), None, 100.0),  # cohort before the period: not shown
        ("j1", date(2024, 1, 5), None, 100.0),
        ("j2", date(2024, 1, 6), None, 100.0),
        ("j3", date(2024, 1, 7), date(2024, 2, 10), 100.0),  # lost in February
        ("j4", date(2024, 1, 8), date(2024, 3, 20), 100.0),  # lost in March
        ("f1", date(2024, 2, 1), None, 100.0),
        ("f2", date(2024, 2, 2), date(2024, 2, 20), 100.0),  # lost in its first month
    ]
    matrix = metrics.cohort_retention(_tables(subs), JAN, APR)
    assert list(matrix.index) == [pd.Timestamp(JAN), pd.Timestamp(FEB)]
    assert matrix.loc[pd.Timestamp(JAN)].tolist() == [1.0, 0.75, 0.5]
    feb = matrix.loc[pd.Timestamp(FEB)].tolist()
    assert feb[:2] == [0.5, 0.5] and math.isnan(feb[2])  # March + 1 is not observed yet


def test_simple_ltv_is_arpa_times_margin_over_monthly_churn() -> None:
    subs: list[Sub] = [(f"c{i}", date(2024, 1, 1), None, 100.0) for i in range(8)]
    subs += [("x", date(2024, 1, 1), date(2024, 3, 5), 100.0)]
    subs += [("y", date(2024, 1, 1), date(2024, 3, 25), 100.0)]
    # Feb: 10 active, 0 lost; Mar: 10 active, 2 lost -> churn 2 / 20 = 10 %, ARPA 2000 / 20 = 100
    ltv = metrics.simple_ltv(_tables(subs), FEB, APR, margin=0.8)
    assert ltv == pytest.approx(100 * 0.8 / 0.10)  # 800


def test_simple_ltv_is_nan_without_churn() -> None:
    assert math.isnan(metrics.simple_ltv(_tables([("c", JAN, None, 10.0)]), FEB, APR))


def test_cohort_ltv_sums_prorated_revenue_and_extrapolates_with_cohort_churn() -> None:
    subs: list[Sub] = [
        ("a", date(2024, 1, 1), None, 100.0),
        ("b", date(2024, 1, 1), date(2024, 3, 1), 100.0),  # paid January and February
        ("c", date(2024, 2, 16), None, 29.0),  # February cohort, 14 of 29 days paid in February
    ]
    out = metrics.cohort_ltv(_tables(subs), JAN, MAY, margin=0.8)
    jan = out.loc[pd.Timestamp(JAN)]
    # revenue: Jan 200, Feb 200, Mar 100, Apr 100 -> 600 / 2 customers
    assert (jan["customers"], jan["observed_months"]) == (2, 4)
    assert jan["revenue_per_customer"] == pytest.approx(300.0)
    # after the first month: Feb 0/2, Mar 1/2, Apr 0/1 lost -> 1 / 5
    assert jan["churn_rate"] == pytest.approx(0.2)
    # tail: April's 100 / 2 customers x 0.8 / 0.2 = 200; ltv = 0.8 x (300 + 200)
    assert jan["ltv"] == pytest.approx(400.0)
    assert out.loc[pd.Timestamp(FEB), "revenue_per_customer"] == pytest.approx(14.0 + 29 * 2)
    observed_only = metrics.cohort_ltv(_tables(subs), JAN, MAY, extrapolate=False)
    assert observed_only.loc[pd.Timestamp(JAN), "ltv"] == pytest.approx(0.8 * 300.0)
    assert math.isnan(out.loc[pd.Timestamp(FEB), "ltv"])  # no churn seen: no finite tail


# --- non-contractual and NPS -----------------------------------------------------------------


def test_repeat_purchase_rate_is_share_of_buyers_with_two_purchase_days() -> None:
    events = [
        ("a", "2024-03-02T10:00:00", 20.0),
        ("a", "2024-03-09T10:00:00", 15.0),  # a: two days -> repeat
        ("b", "2024-03-05T08:00:00", 10.0),
        ("b", "2024-03-05T18:00:00", 10.0),  # b: twice the same day -> not repeat
        ("c", "2024-03-01T00:00:00", 5.0),
        ("c", "2024-03-20T00:00:00", 5.0),
        ("c", "2024-03-31T23:59:59", 5.0),  # c: three days -> repeat
        ("d", "2024-03-04T00:00:00", 0.0),  # a visit without value is no purchase
        ("e", "2024-03-10T00:00:00", 9.0),
        ("e", "2024-04-01T00:00:00", 9.0),  # e: second purchase outside the period
    ]
    tables = _tables([("a", JAN, None, 0.0)], events=events)
    assert metrics.repeat_purchase_rate(tables, MAR, APR) == pytest.approx(2 / 4)


def test_nps_is_percent_promoters_minus_percent_detractors() -> None:
    scores = [10, 9, 9, 10, 9, 7, 8, 0, 6, 5]  # 5 promoters, 2 passives, 3 detractors
    responses = [(f"c{i}", f"2024-03-{i + 1:02d}", float(s)) for i, s in enumerate(scores)]
    responses.append(("late", "2024-04-02", 0.0))  # April: one detractor
    tables = _tables([("c0", JAN, None, 10.0)], nps=responses)
    assert metrics.nps(tables, MAR, APR) == pytest.approx(50 - 30)
    monthly = metrics.monthly_nps(tables, FEB, MAY)
    assert monthly["nps_responses"].tolist() == [0, 10, 1]
    assert math.isnan(monthly["nps"].iloc[0])
    assert monthly["nps"].iloc[1:].tolist() == pytest.approx([20.0, -100.0])


# --- tables for the CLI ----------------------------------------------------------------------


def test_monthly_metrics_and_summary_report_the_latest_final_month() -> None:
    tables = _tables(_mrr_company(), nps=[("A", "2024-03-03", 10.0), ("B", "2024-03-04", 4.0)])
    table = metrics.monthly_metrics(tables, FEB, date(2024, 4, 5))  # April not complete
    assert list(table.index) == [pd.Timestamp(FEB), pd.Timestamp(MAR)]
    assert table["final"].tolist() == [True, False]  # 04-01 + 7 gap days is not before 04-05
    assert table.loc[pd.Timestamp(MAR), "arpa"] == pytest.approx(100.0)
    summary = metrics.retention_summary(tables, FEB, date(2024, 4, 15))
    assert summary["month"] == "2024-03-01" and summary["final"] is True
    assert summary["churn_rate"] == pytest.approx(0.25)  # C of A, B, C, D
    assert summary["mean_monthly_churn_rate"] == pytest.approx(1 / 8)  # Feb 0/4, Mar 1/4
    assert summary["gross_mrr_churn"] == pytest.approx(0.35)
    assert summary["net_revenue_retention"] == pytest.approx(0.775)
    assert summary["nps"] == pytest.approx(0.0)
    assert summary["ltv"] == pytest.approx(100.0 * 0.8 / (1 / 8))  # ARPA 800 / 8 = 100
    assert summary["customers"] == 4 and summary["mrr"] == 360.0


def test_period_without_a_full_month_is_an_error_saying_what_to_do() -> None:
    from features.errors import ChurnError

    with pytest.raises(ChurnError, match="No full calendar month"):
        metrics.churn_rates(_tables([("c", JAN, None, 1.0)]), date(2024, 1, 5), date(2024, 2, 5))


# --- invariants on random companies -----------------------------------------------------------


def _random_company(seed: int, customers: int = 40) -> RawTables:
    """Chains of subscriptions with random gaps (0-20 days), prices (including free) and ends."""
    rng = np.random.default_rng(seed)
    rows: list[Sub] = []
    for c in range(customers):
        day = date(2023, 10, 1) + timedelta(days=int(rng.integers(0, 200)))
        for _ in range(int(rng.integers(1, 4))):
            length = int(rng.integers(10, 120))
            end = day + timedelta(days=length)
            rows.append((f"c{c}", day, end, float(rng.choice([0.0, 50.0, 100.0, 200.0]))))
            day = end + timedelta(days=int(rng.choice([0, 0, 3, 7, 8, 20])))
        if rng.random() < 0.5:  # the last subscription is still running
            rows[-1] = (*rows[-1][:2], None, rows[-1][3])
    return _tables(rows)


@pytest.mark.parametrize("seed", range(4))
def test_mrr_bridge_adds_up_every_month(seed: int) -> None:
    table = metrics.monthly_metrics(_random_company(seed), date(2023, 10, 1), date(2024, 7, 1))
    bridge = (
        table["start_mrr"]
        + table["new_mrr"]
        + table["expansion_mrr"]
        - table["contraction_mrr"]
        - table["churned_mrr"]
    )
    assert np.allclose(bridge, table["end_mrr"])
    assert (table["customers_end"].iloc[:-1].to_numpy() == table["customers_start"].iloc[1:]).all()
    assert np.allclose(table["end_mrr"].iloc[:-1].to_numpy(), table["start_mrr"].iloc[1:])


@pytest.mark.parametrize("seed", range(4))
def test_monthly_churn_agrees_with_labels_with_a_one_month_horizon(seed: int) -> None:
    """For every customer in the label spine on the 1st, lost-in-month == churned label."""
    tables = _random_company(seed)
    long_months = [date(2023, 12, 1), date(2024, 1, 1), date(2024, 3, 1), date(2024, 5, 1)]
    spec = LabelSpec(horizon_days=31, observed_until=date(2025, 1, 1))
    labels = build_labeled_set(tables, long_months, spec)
    per_customer = metrics.customer_months(tables, date(2023, 12, 1), date(2024, 6, 1))
    rows = per_customer.set_index(["month", "customer_id"]).reindex(
        pd.MultiIndex.from_arrays([labels["as_of"], labels["customer_id"].astype(str)])
    )
    assert len(labels) > 10 and labels["churned"].sum() > 0
    assert (rows["active_start"] == 1).all()
    assert rows["lost"].tolist() == labels["churned"].tolist()

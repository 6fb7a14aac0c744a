"""Label edge cases (``features.labels``), each on a hand-made table of one or two customers.

Dates are chosen so the arithmetic reads off the page: as_of 2024-02-01 with a 60-day horizon
covers ``[2024-02-01, 2024-04-01)``; a subscription covers ``[start_date, end_date)``, so its
``end_date`` is the churn day when nothing follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pandas as pd
import pytest

from features.contract import RawTables
from features.engine import build_labeled_set
from features.labels import LabelSpec

AS_OF = date(2024, 2, 1)
UNTIL = date(2024, 12, 31)  # far after every horizon: labels complete unless a test says so
Sub = tuple[str, date, date | None, float]  # (customer_id, start_date, end_date, mrr)


def _tables(subs: Sequence[Sub], events: list[tuple[str, str]] | None = None) -> RawTables:
    """Contract tables from subscription tuples and (customer_id, timestamp) events."""
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
    event_frame = None
    if events is not None:
        event_frame = pd.DataFrame(
            {
                "customer_id": [e[0] for e in events],
                "timestamp": pd.to_datetime([e[1] for e in events], utc=True, format="ISO8601"),
                "event_type": "purchase",
            }
        )
    ids = sorted({s[0] for s in subs} | {e[0] for e in events or []})
    customers = pd.DataFrame({"customer_id": ids, "signup_date": date(2023, 1, 1)})
    return RawTables(customers=customers, subscriptions=subscriptions, events=event_frame)


def _labels(tables: RawTables, as_of: list[date] | None = None, **spec: Any) -> pd.DataFrame:
    """Rows indexed by (customer_id, as_of date) with ``churned`` and ``label_complete``.

    The spec defaults to a 60-day horizon and an export long after it (labels complete).
    """
    options: dict[str, Any] = {"horizon_days": 60, "observed_until": UNTIL, **spec}
    out = build_labeled_set(tables, as_of or [AS_OF], LabelSpec(**options))
    out["as_of"] = out["as_of"].dt.date
    return out.set_index(["customer_id", "as_of"])[["churned", "label_complete"]]


def _churned(labels: pd.DataFrame, customer: str, as_of: date = AS_OF) -> int:
    return int(labels.loc[(customer, as_of), "churned"])


# --- contractual ---------------------------------------------------------------------------


def test_churn_inside_horizon_is_labeled_1() -> None:
    labels = _labels(
        _tables(
            [
                ("early", date(2024, 1, 1), date(2024, 3, 1), 100.0),
                ("last_day", date(2024, 1, 1), date(2024, 3, 31), 100.0),  # day before horizon end
                ("on_as_of", date(2024, 1, 1), date(2024, 2, 1), 100.0),  # ends on as_of itself
            ]
        )
    )
    assert labels["churned"].to_dict() == {
        ("early", AS_OF): 1,
        ("last_day", AS_OF): 1,
        ("on_as_of", AS_OF): 1,
    }


def test_churn_after_horizon_is_labeled_0() -> None:
    labels = _labels(
        _tables(
            [
                ("at_horizon_end", date(2024, 1, 1), date(2024, 4, 1), 100.0),  # half-open horizon
                ("later", date(2024, 1, 1), date(2024, 6, 1), 100.0),
                ("open", date(2024, 1, 1), None, 100.0),
            ]
        )
    )
    assert labels["churned"].to_dict() == {
        ("at_horizon_end", AS_OF): 0,
        ("later", AS_OF): 0,
        ("open", AS_OF): 0,
    }


def test_resubscription_within_7_day_gap_is_not_churn() -> None:
    labels = _labels(
        _tables(
            [
                ("renews", date(2024, 1, 1), date(2024, 3, 1), 100.0),
                ("renews", date(2024, 3, 8), None, 100.0),  # exactly 7 days later: same life
                ("too_late", date(2024, 1, 1), date(2024, 3, 1), 100.0),
                ("too_late", date(2024, 3, 9), None, 100.0),  # 8 days later: a new life
            ]
        ),
        gap_days=7,
    )
    assert _churned(labels, "renews") == 0
    assert _churned(labels, "too_late") == 1


def test_resubscription_after_longer_gap_starts_new_life_labeled_by_its_own_end() -> None:
    tables = _tables(
        [
            ("c", date(2024, 1, 1), date(2024, 3, 1), 100.0),
            ("c", date(2024, 4, 1), date(2024, 8, 1), 100.0),  # second life ends 2024-08-01
        ]
    )
    first, between, second_early, second_late = (
        date(2024, 2, 1),
        date(2024, 3, 15),
        date(2024, 5, 1),
        date(2024, 7, 1),
    )
    labels = _labels(tables, [first, between, second_early, second_late])
    assert labels["churned"].to_dict() == {
        ("c", first): 1,  # first life ends 2024-03-01, inside [02-01, 04-01)
        ("c", second_early): 0,  # second life ends 08-01, after [05-01, 06-30)
        ("c", second_late): 1,  # ... and inside [07-01, 08-30)
    }
    assert ("c", between) not in labels.index  # not a customer between the lives


@pytest.mark.parametrize(("free_is_churn", "expected"), [(True, 1), (False, 0)])
def test_downgrade_to_free_counts_as_churn_only_with_free_is_churn(
    free_is_churn: bool, expected: int
) -> None:
    tables = _tables(
        [
            ("c", date(2024, 1, 1), date(2024, 3, 1), 100.0),
            ("c", date(2024, 3, 1), None, 0.0),  # free plan, never ends
        ]
    )
    labels = _labels(tables, free_is_churn=free_is_churn)
    assert _churned(labels, "c") == expected


def test_customer_on_free_plan_only_has_no_row_when_free_is_churn() -> None:
    tables = _tables([("free", date(2024, 1, 1), None, 0.0), ("paid", date(2024, 1, 1), None, 1.0)])
    assert list(_labels(tables, free_is_churn=True).index) == [("paid", AS_OF)]
    assert len(_labels(tables, free_is_churn=False)) == 2


def test_customers_who_join_after_as_of_have_no_row() -> None:
    tables = _tables(
        [("old", date(2024, 1, 1), None, 100.0), ("new", date(2024, 2, 10), None, 100.0)]
    )
    assert list(_labels(tables).index) == [("old", AS_OF)]


def test_subscription_starting_exactly_on_as_of_is_not_active_at_as_of() -> None:
    tables = _tables([("c", AS_OF, None, 100.0)])
    next_day = date(2024, 2, 2)
    assert list(_labels(tables, [AS_OF, next_day]).index) == [("c", next_day)]


def test_lead_time_shifts_horizon_and_drops_customers_churning_during_lead() -> None:
    tables = _tables(
        [
            ("during_lead", date(2024, 1, 1), date(2024, 2, 15), 100.0),
            ("lead_end", date(2024, 1, 1), date(2024, 3, 2), 100.0),  # first day of the horizon
            ("in_shifted", date(2024, 1, 1), date(2024, 4, 15), 100.0),
            ("after", date(2024, 1, 1), date(2024, 5, 1), 100.0),  # shifted horizon end
        ]
    )
    no_lead = _labels(tables)
    with_lead = _labels(tables, lead_days=30)  # horizon [2024-03-02, 2024-05-01)
    assert no_lead["churned"].to_dict() == {
        ("after", AS_OF): 0,
        ("during_lead", AS_OF): 1,
        ("in_shifted", AS_OF): 0,
        ("lead_end", AS_OF): 1,
    }
    assert with_lead["churned"].to_dict() == {
        ("after", AS_OF): 0,
        ("in_shifted", AS_OF): 1,
        ("lead_end", AS_OF): 1,
    }


def test_label_incomplete_when_horizon_runs_past_observed_until_without_churn() -> None:
    tables = _tables(
        [
            ("open", date(2024, 1, 1), None, 100.0),
            ("churns", date(2024, 1, 1), date(2024, 3, 1), 100.0),
        ]
    )
    labels = _labels(tables, observed_until=date(2024, 3, 15))  # horizon ends 2024-04-01
    assert labels.loc[("open", AS_OF)].tolist() == [0, False]
    assert labels.loc[("churns", AS_OF)].tolist() == [1, True]  # churn seen, gap observed


def test_label_complete_when_horizon_ends_on_observed_until() -> None:
    labels = _labels(
        _tables([("open", date(2024, 1, 1), None, 100.0)]), observed_until=date(2024, 4, 1)
    )
    assert labels.loc[("open", AS_OF)].tolist() == [0, True]


def test_churn_inside_unobserved_renewal_gap_is_not_yet_complete() -> None:
    """A churn on 03-12 is confirmed only once 03-19 (end + gap) is in the export.

    Regression: the label was marked complete as soon as the end date was seen, so a renewal
    arriving a few days later flipped a "complete" label from 1 to 0.
    """
    ends = [("c", date(2024, 1, 1), date(2024, 3, 12), 100.0)]
    renewed = [*ends, ("c", date(2024, 3, 17), None, 100.0)]
    before_gap_ends = _labels(_tables(ends), observed_until=date(2024, 3, 15), gap_days=7)
    gap_observed = _labels(_tables(ends), observed_until=date(2024, 3, 19), gap_days=7)
    later = _labels(_tables(renewed), observed_until=date(2024, 3, 20), gap_days=7)
    assert before_gap_ends.loc[("c", AS_OF)].tolist() == [1, False]
    assert gap_observed.loc[("c", AS_OF)].tolist() == [1, True]
    assert later.loc[("c", AS_OF)].tolist() == [0, False]


# --- non-contractual -----------------------------------------------------------------------

NO_SUBSCRIPTIONS: list[Sub] = []


def test_noncontractual_no_activity_in_horizon_is_churned() -> None:
    tables = _tables(
        NO_SUBSCRIPTIONS,
        [
            ("gone", "2024-01-05T10:00:00"),
            ("gone", "2024-04-01T00:00:00"),  # horizon end: outside [02-01, 04-01)
            ("stays", "2024-01-05T10:00:00"),
            ("stays", "2024-03-31T23:59:00"),
        ],
    )
    labels = _labels(tables, kind="noncontractual")
    assert labels["churned"].to_dict() == {("gone", AS_OF): 1, ("stays", AS_OF): 0}


def test_noncontractual_activity_in_horizon_is_not_churn() -> None:
    tables = _tables(NO_SUBSCRIPTIONS, [("c", "2023-12-20"), ("c", "2024-02-01T00:00:00")])
    assert _churned(_labels(tables, kind="noncontractual"), "c") == 0


def test_noncontractual_customer_with_first_event_on_or_after_as_of_is_absent() -> None:
    tables = _tables(
        NO_SUBSCRIPTIONS,
        [("old", "2024-01-31T23:59:59"), ("on_as_of", "2024-02-01"), ("later", "2024-02-10")],
    )
    assert list(_labels(tables, kind="noncontractual").index) == [("old", AS_OF)]


def test_noncontractual_activity_during_lead_does_not_count() -> None:
    tables = _tables(NO_SUBSCRIPTIONS, [("c", "2024-01-05"), ("c", "2024-02-20")])
    labels = _labels(tables, kind="noncontractual", lead_days=30)  # horizon [03-02, 05-01)
    assert _churned(labels, "c") == 1


def test_noncontractual_label_incomplete_when_horizon_runs_past_observed_until() -> None:
    tables = _tables(NO_SUBSCRIPTIONS, [("c", "2024-01-05"), ("c", "2024-02-20")])
    labels = _labels(tables, kind="noncontractual", observed_until=date(2024, 3, 1))
    assert labels.loc[("c", AS_OF)].tolist() == [0, False]


def test_a_scheduled_future_end_date_does_not_extend_the_export() -> None:
    """observed_until ignores planned end dates: they say nothing about how far data reaches."""
    from features.engine import observed_until

    customers = pd.DataFrame(
        {"customer_id": ["a", "b"], "signup_date": [pd.Timestamp("2024-01-01")] * 2}
    )
    subscriptions = pd.DataFrame(
        {
            "subscription_id": ["s1", "s2"],
            "customer_id": ["a", "b"],
            "start_date": [pd.Timestamp("2024-01-01")] * 2,
            "end_date": [pd.Timestamp("2025-06-01"), pd.NaT],
            "mrr": [10.0, 10.0],
            "plan": ["p", "p"],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": ["a"],
            "timestamp": [pd.Timestamp("2024-06-30T12:00", tz="UTC")],
            "event_type": ["login"],
        }
    )
    tables = RawTables(customers=customers, subscriptions=subscriptions, events=events)
    assert observed_until(tables) == date(2024, 6, 30)


def test_a_horizon_ending_on_the_last_recorded_day_is_complete_but_one_day_later_is_not() -> None:
    """observed_until is the last recorded day: [2024-02-01, 2024-04-01) ends on 2024-03-31."""
    tables = _tables([("stays", date(2024, 1, 1), None, 100.0)])
    seen = _labels(tables, observed_until=date(2024, 3, 31))
    assert bool(seen.loc[("stays", AS_OF), "label_complete"])
    unseen = _labels(tables, observed_until=date(2024, 3, 30))
    assert not bool(unseen.loc[("stays", AS_OF), "label_complete"])


# ----- time to churn: durations from the same lives -------------------------------------------
def _durations(tables: RawTables, **spec: Any) -> pd.DataFrame:
    options: dict[str, Any] = {"horizon_days": 60, "observed_until": UNTIL, **spec}
    out = build_labeled_set(tables, [AS_OF], LabelSpec(**options))
    return out.set_index("customer_id")[["duration_days", "event_observed", "followup_days"]]


def test_duration_is_days_to_the_final_churn_and_observed() -> None:
    tables = _tables([("a", date(2023, 6, 1), date(2024, 7, 20), 50.0)])
    row = _durations(tables).loc["a"]
    assert row["duration_days"] == (date(2024, 7, 20) - AS_OF).days
    assert bool(row["event_observed"])
    assert row["followup_days"] == (UNTIL - AS_OF).days - 7  # the gap must pass to be final


def test_open_life_is_censored_at_the_export_date() -> None:
    tables = _tables([("a", date(2023, 6, 1), None, 50.0)])
    row = _durations(tables).loc["a"]
    assert not bool(row["event_observed"])
    assert row["duration_days"] == (UNTIL - AS_OF).days + 1  # still paying on the export day


def test_churn_inside_the_gap_before_export_is_censored_at_its_end() -> None:
    end = date(2024, 12, 28)  # a renewal up to 7 days later could still continue the life
    tables = _tables([("a", date(2023, 6, 1), end, 50.0)])
    row = _durations(tables).loc["a"]
    assert not bool(row["event_observed"])
    assert row["duration_days"] == (end - AS_OF).days


def test_resubscription_within_gap_continues_the_duration() -> None:
    tables = _tables(
        [
            ("a", date(2023, 6, 1), date(2024, 3, 1), 50.0),
            ("a", date(2024, 3, 5), date(2024, 9, 1), 50.0),
        ]
    )
    assert _durations(tables).loc["a", "duration_days"] == (date(2024, 9, 1) - AS_OF).days


def test_noncontractual_duration_starts_at_the_first_long_silence() -> None:
    events = [("a", "2024-01-10T10:00:00Z"), ("a", "2024-02-10T10:00:00Z"),
              ("a", "2024-03-20T10:00:00Z"), ("a", "2024-08-01T10:00:00Z"),
              ("b", "2024-01-05T10:00:00Z")]  # fmt: skip
    tables = _tables([("a", date(2023, 6, 1), None, 0.0)], events)
    rows = _durations(tables, kind="noncontractual")
    # a: gaps of 38 days (< 60) then 133 days: lost the day after 2024-03-20
    assert rows.loc["a", "duration_days"] == (date(2024, 3, 21) - AS_OF).days
    assert bool(rows.loc["a", "event_observed"])
    # b: silent for the whole horizon from as_of: lost at once, like its churn label
    assert rows.loc["b", "duration_days"] == 0
    assert bool(rows.loc["b", "event_observed"])

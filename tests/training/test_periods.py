"""Person-period expansion (training/periods.py): exact censoring on hand-made rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import ChurnError
from training.periods import (
    PERIOD_RENEWAL,
    PERIOD_TO_RENEWAL,
    period_grid,
    person_periods,
    truncate_followup,
)

GRID = np.array([0, 30, 60, 90])


def _rows(*rows: tuple[int, bool, int], renewal: float | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(len(rows))],
            "as_of": pd.Timestamp("2024-01-01"),
            "duration_days": [r[0] for r in rows],
            "event_observed": [r[1] for r in rows],
            "followup_days": [r[2] for r in rows],
        }
    )
    if renewal is not None:
        frame["days_to_renewal"] = renewal
    return frame


def test_churn_falls_in_its_period_after_periods_survived() -> None:
    periods = person_periods(_rows((45, True, 200)), GRID)
    assert periods["period"].tolist() == [0, 1]
    assert periods["churned"].tolist() == [0, 1]


def test_censored_row_keeps_only_periods_wholly_inside_followup() -> None:
    # known to stay 75 days, fates known to day 70 for everyone of this as_of: periods 0, 1
    periods = person_periods(_rows((75, False, 70)), GRID)
    assert periods["period"].tolist() == [0, 1]
    assert periods["churned"].sum() == 0


def test_a_churn_in_a_period_beyond_followup_is_not_used() -> None:
    # the churn on day 65 is seen, but period [60, 90) is not wholly observable for the stayers
    # of this as_of, so using it would count churners and lose stayers
    periods = person_periods(_rows((65, True, 70), (500, False, 70)), GRID)
    assert periods.groupby("row")["period"].max().tolist() == [1, 1]
    assert periods["churned"].sum() == 0


def test_churn_on_day_zero_is_in_the_first_period() -> None:
    periods = person_periods(_rows((0, True, 200)), GRID)
    assert periods["churned"].tolist() == [1]


def test_truncating_followup_censors_later_churns() -> None:
    rows = truncate_followup(_rows((100, True, 300)), pd.Timestamp("2024-03-01"))
    assert not rows["event_observed"].iloc[0]
    assert rows["followup_days"].iloc[0] == 59  # 2024-03-01 is day 60; fates known to day 59
    assert rows["duration_days"].iloc[0] == 60
    assert person_periods(rows, GRID)["period"].tolist() == [0, 1]  # days 0..59 are known


def test_renewal_covariates_mark_the_period_holding_the_renewal() -> None:
    periods = person_periods(_rows((500, False, 400), renewal=45.0), GRID)
    assert periods[PERIOD_RENEWAL].tolist() == [0.0, 1.0, 0.0]
    assert periods[PERIOD_TO_RENEWAL].tolist() == [45.0, 15.0, 350.0]


def test_grid_has_horizon_and_cap_as_boundaries_and_no_sliver() -> None:
    grid = period_grid(95, 365)
    assert {0, 95, 365} <= set(grid.tolist())
    assert np.diff(grid).min() >= 7


def test_rows_without_durations_are_refused_with_the_fix() -> None:
    with pytest.raises(ChurnError, match="churn features"):
        person_periods(pd.DataFrame({"customer_id": ["a"]}), GRID)

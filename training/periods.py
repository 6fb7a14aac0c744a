"""Person-period expansion: one labeled row (customer, as_of) -> one row per period at risk.

The discrete-time hazard model is a classifier on these rows: "does the customer churn in this
period, given it was still a customer at its start?" (Singer & Willett's person-period form).
Periods are day ranges after ``as_of`` on a fixed grid (``period_grid``): 30-day steps to the cap,
with the classifier's horizon as a boundary so ``1 - S(horizon)`` is read off the grid exactly.

Right-censoring is exact. A labeled row carries (see ``features/definitions/labels_*.sql``):

- ``duration_days``: days from ``as_of`` to the churn when ``event_observed``, else the days
  the customer is known to have stayed (censored: the churn, if any, comes later);
- ``followup_days``: the last day offset whose fate is known for *every* row of that as-of date.

A period ``[b_k, b_k+1)`` is used only when it lies wholly inside the follow-up (``b_k+1 - 1 <=
followup_days``) and the customer was at risk at its start. The choice depends on the as-of date
and the export date only, never on the row's outcome, so each period's churn rate is unbiased:
dropping the partial period of a censored row would otherwise keep the churners in it and lose
the stayers. ``truncate_followup`` cuts follow-up at a date (an out-of-time split's test start)
the same way.

Renewals: an annual customer can often leave only at its renewal. The period covariates say where
the next renewal falls (``days_to_renewal``, the catalog's days to the next anniversary, carried
forward on the grid), so the hazard can live on renewal dates when the data say it does, and stay
flat where the export's customers leave any month.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.errors import ChurnError

DURATION = "duration_days"
OBSERVED = "event_observed"
FOLLOWUP = "followup_days"
RENEWAL_FEATURE = "days_to_renewal"
YEAR_DAYS = 365

PERIOD_START = "period_start_days"
PERIOD_LENGTH = "period_length_days"
PERIOD_RENEWAL = "period_has_renewal"
PERIOD_TO_RENEWAL = "period_days_to_renewal"
PERIOD_COVARIATES = (PERIOD_START, PERIOD_LENGTH, PERIOD_RENEWAL, PERIOD_TO_RENEWAL)
"""Columns the expansion adds to every person-period row (model inputs next to the features)."""


def period_grid(horizon_days: int, cap_days: int = YEAR_DAYS, step_days: int = 30) -> np.ndarray:
    """Period boundaries in days after ``as_of``: 0, 30, 60, ... up to ``cap_days``.

    The classifier's horizon and the cap are boundaries, so S(horizon) and S(cap) need no
    interpolation; a last period shorter than a week is merged into the one before it.
    """
    if cap_days < 1 or step_days < 1 or horizon_days < 1:
        raise ChurnError(
            f"A period grid needs a positive cap, step and horizon; got cap {cap_days}, step "
            f"{step_days}, horizon {horizon_days} days."
        )
    fixed = {0, cap_days} | ({horizon_days} if horizon_days < cap_days else set())
    steps = set(range(step_days, cap_days, step_days)) - fixed
    # a step boundary less than a week before a fixed one would leave a sliver of a period
    steps = {b for b in steps if all(not 0 < f - b < 7 and not 0 < b - f < 7 for f in fixed)}
    bounds = np.array(sorted(fixed | steps), dtype=np.int64)
    return bounds


def renewal_offsets(days_to_renewal: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Days from each period start to the next renewal (rows x periods); NaN when unknown.

    ``days_to_renewal`` counts from as_of to the next anniversary (1..365); renewals repeat
    yearly, so at a period start ``b`` the next one is ``(d - b) mod 365`` days away.
    """
    d = np.asarray(days_to_renewal, dtype=np.float64)[:, None]
    return np.mod(d - starts[None, :], YEAR_DAYS)


def period_covariates(
    days_to_renewal: np.ndarray | None, grid: np.ndarray, rows: int
) -> dict[str, np.ndarray]:
    """The period covariates of every (row, period) pair as rows x periods matrices."""
    starts = grid[:-1].astype(np.float64)
    lengths = np.diff(grid).astype(np.float64)
    shape = (rows, len(starts))
    if days_to_renewal is None:
        to_renewal = np.full(shape, np.nan)
    else:
        to_renewal = renewal_offsets(days_to_renewal, starts)
    with np.errstate(invalid="ignore"):
        has_renewal = np.where(np.isnan(to_renewal), np.nan, (to_renewal < lengths).astype(float))
    return {
        PERIOD_START: np.broadcast_to(starts, shape),
        PERIOD_LENGTH: np.broadcast_to(lengths, shape),
        PERIOD_RENEWAL: has_renewal,
        PERIOD_TO_RENEWAL: to_renewal,
    }


def require_durations(frame: pd.DataFrame, table: str = "labeled set") -> None:
    """A clear error when a labeled set has no time-to-churn columns."""
    missing = [c for c in (DURATION, OBSERVED, FOLLOWUP) if c not in frame.columns]
    if missing:
        raise ChurnError(
            f"The {table} has no {', '.join(missing)} column(s): survival needs each row's time "
            "to churn. Rebuild it with `churn features` (labeled sets built before time-to-churn "
            "columns, and imported sets without dates, lack them)."
        )


def truncate_followup(labeled: pd.DataFrame, until: pd.Timestamp) -> pd.DataFrame:
    """``labeled`` as it would look with follow-up ending the day before ``until``.

    What an out-of-time split needs: no training period may reach into the test window. A churn
    on or after ``until`` becomes a censoring at ``until``.
    """
    require_durations(labeled)
    out = labeled.copy()
    as_of = pd.to_datetime(out["as_of"])
    limit = (pd.Timestamp(until) - as_of).dt.days.to_numpy(np.int64) - 1
    follow = np.minimum(out[FOLLOWUP].to_numpy(np.int64), limit)
    duration = out[DURATION].to_numpy(np.int64)
    observed = out[OBSERVED].to_numpy(bool) & (duration <= follow)
    out[FOLLOWUP] = follow
    out[OBSERVED] = observed
    out[DURATION] = np.where(observed, duration, np.minimum(duration, limit + 1))
    return out


def person_periods(
    labeled: pd.DataFrame, grid: np.ndarray, features: Sequence[str] = ()
) -> pd.DataFrame:
    """Expand ``labeled`` into its observable person-periods (see the module docstring).

    Returns ``row`` (position in ``labeled``), ``period`` (index into the grid), the period
    covariates, ``churned`` (1 when the churn falls in the period) and the given ``features``
    of the row. Vectorised: one rows x periods mask, no loop over customers.
    """
    require_durations(labeled)
    n = len(labeled)
    starts, ends = grid[:-1], grid[1:]
    duration = labeled[DURATION].to_numpy(np.int64)[:, None]
    observed = labeled[OBSERVED].to_numpy(bool)[:, None]
    follow = labeled[FOLLOWUP].to_numpy(np.int64)[:, None]
    at_risk = duration >= starts[None, :]
    churn = observed & (duration < ends[None, :])
    fate_known = ends[None, :] - 1 <= follow
    keep = at_risk & fate_known & (churn | (duration >= ends[None, :]))
    rows, periods = np.nonzero(keep)
    renewal = labeled[RENEWAL_FEATURE].to_numpy(np.float64) if RENEWAL_FEATURE in labeled else None
    covariates = period_covariates(renewal, grid, n)
    out = pd.DataFrame({"row": rows, "period": periods})
    for name, matrix in covariates.items():
        out[name] = matrix[rows, periods]
    out["churned"] = churn[rows, periods].astype(np.int8)
    for name in features:
        out[name] = labeled[name].to_numpy()[rows]
    return out

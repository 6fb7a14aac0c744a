"""Out-of-time splits: train on the past, early-stop and calibrate later, test on the latest.

Labels of neighbouring as-of dates overlap in time (a 90-day horizon seen from March and from
April covers the same churns), so a row informs the set after it only if its whole label window
ends before that set starts. We therefore leave an embargo of one horizon between train and
validation and between validation and test: no test churn is ever seen during training.

A single-snapshot data set (one as-of date, e.g. the Telco table) cannot be split in time; it
gets a stratified random split instead, and the split's ``kind`` says so in every report.

A short history (a few as-of dates, too few for three sets one horizon apart) gets a
customer-grouped split ordered in time instead of an error: customers are dealt into train,
validation and test groups (stratified by whether they ever churn), the test set is the test
customers on the latest complete dates, and no customer is in two sets. It guards against the
leak that matters most here (a customer's own overlapping labels); it cannot guard against a
shock shared by all customers in the same months, which the report says.

Only rows of as-of dates whose whole horizon is observed are used: on a date still open the
churners are known but the customers who will stay are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.errors import InsufficientDataError

MIN_CHURNERS = 20  # per set for the out-of-time split; below this ROC-AUC and calibration are noise
MIN_CHURNERS_IN_ALL = 20  # below this nothing is learnt or measured: an error, not a fallback


@dataclass(frozen=True)
class Split:
    """Row masks of one labeled set and a plain description of how they were drawn."""

    kind: Literal["out-of-time", "stratified", "grouped"]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    description: str

    def window(self, frame: pd.DataFrame, name: str) -> tuple[str, str]:
        """First and last as-of date of one set, for reports."""
        dates = frame.loc[getattr(self, name), "as_of"]
        return f"{dates.min():%Y-%m-%d}", f"{dates.max():%Y-%m-%d}"


def _check(frame: pd.DataFrame, masks: dict[str, np.ndarray], kind: str) -> None:
    for name, mask in masks.items():
        rows = int(mask.sum())
        churners = int(frame.loc[mask, "churned"].sum())
        if rows == 0 or churners < MIN_CHURNERS or churners == rows:
            raise InsufficientDataError(
                f"The {kind} split leaves the {name} set with {rows:,} rows and {churners:,} "
                f"churners; at least {MIN_CHURNERS} churners and some retained customers are "
                "needed per set for meaningful metrics. Use more history (more as-of dates or "
                "customers), a longer horizon, or fewer test/validation dates."
            )


def closed_dates(labeled: pd.DataFrame) -> np.ndarray:
    """As-of dates whose every label is complete (the whole horizon lies inside the export)."""
    closed_by_date = labeled.groupby("as_of")["label_complete"].all()
    return np.sort(closed_by_date.index[closed_by_date.to_numpy()].to_numpy())


def usable_rows(labeled: pd.DataFrame) -> np.ndarray:
    """Rows to train and evaluate on: those of closed as-of dates."""
    return labeled["as_of"].isin(closed_dates(labeled)).to_numpy()


def make_split(
    labeled: pd.DataFrame,
    horizon_days: int,
    lead_days: int = 0,
    test_dates: int = 1,
    valid_dates: int = 2,
    seed: int = 0,
) -> Split:
    """The most honest split the history allows: out-of-time, else grouped, else stratified.

    Raises only when there is truly too little: no complete label, or fewer than
    ``MIN_CHURNERS_IN_ALL`` churners in all.
    """
    dates = closed_dates(labeled)
    if len(dates) == 0:
        raise InsufficientDataError(
            "No as-of date has its whole horizon inside the export, so no label is complete. "
            "Use earlier as-of dates, a shorter horizon, or pass the real export date with "
            "--observed-until if the export was taken after its last record."
        )
    usable = labeled["as_of"].isin(dates).to_numpy()
    churners = int(labeled.loc[usable, "churned"].sum())
    if churners < MIN_CHURNERS_IN_ALL or churners == int(usable.sum()):
        raise InsufficientDataError(
            f"The complete labels hold {churners:,} churners in {int(usable.sum()):,} rows; at "
            f"least {MIN_CHURNERS_IN_ALL} churners and some retained customers are needed to "
            "learn and measure anything. Add as-of dates (--monthly, or more --as-of dates), "
            "customers, or a longer horizon."
        )
    if len(dates) == 1:
        return stratified_split(labeled, seed=seed)
    try:
        return out_of_time_split(labeled, horizon_days, lead_days, test_dates, valid_dates, seed)
    except InsufficientDataError as exc:
        return grouped_split(labeled, test_dates, seed, reason=str(exc))


def out_of_time_split(
    labeled: pd.DataFrame,
    horizon_days: int,
    lead_days: int = 0,
    test_dates: int = 1,
    valid_dates: int = 2,
    seed: int = 0,
) -> Split:
    """Split ``labeled`` (rows with complete labels only) by as-of date with embargoes.

    test = the latest ``test_dates`` as-of dates; validation = the latest ``valid_dates`` dates
    whose label window ends before the test starts; train = every date whose label window ends
    before validation starts.
    """
    dates = closed_dates(labeled)
    complete = labeled["as_of"].isin(dates).to_numpy()
    if len(dates) < 2:
        raise InsufficientDataError(
            f"{len(dates)} as-of date(s) with complete labels: nothing to split in time."
        )
    reach = pd.Timedelta(days=horizon_days + lead_days)
    as_of = labeled["as_of"].to_numpy()
    test_start = dates[-test_dates]
    before_test = dates[dates + reach <= test_start]
    if len(before_test) < valid_dates + 1:
        raise InsufficientDataError(
            f"Only {len(dates)} as-of dates have complete labels "
            f"({pd.Timestamp(dates[0]):%Y-%m-%d} .. {pd.Timestamp(dates[-1]):%Y-%m-%d}); an "
            f"out-of-time split with a {horizon_days}-day horizon needs test, validation and "
            "training dates separated by one horizon each. Use a longer history or more "
            "frequent as-of dates."
        )
    valid_start = before_test[-valid_dates]
    train_dates = before_test[before_test + reach <= valid_start]
    if len(train_dates) == 0:
        raise InsufficientDataError(
            f"No training dates end their label window before validation starts "
            f"({pd.Timestamp(valid_start):%Y-%m-%d}); use a longer history."
        )
    masks = {
        "train": complete & np.isin(as_of, train_dates),
        "valid": complete & (as_of >= valid_start) & (as_of <= before_test[-1]),
        "test": complete & (as_of >= test_start),
    }
    _check(labeled, masks, "out-of-time")

    def day(value: object) -> str:
        return f"{pd.Timestamp(value):%Y-%m-%d}"  # type: ignore[arg-type]

    description = (
        f"out-of-time: train {day(train_dates[0])}..{day(train_dates[-1])} "
        f"({len(train_dates)} as-of dates), validation {day(valid_start)}..{day(before_test[-1])}, "
        f"test {day(test_start)}..{day(dates[-1])}; "
        f"embargo of {horizon_days + lead_days} days between sets"
    )
    return Split("out-of-time", masks["train"], masks["valid"], masks["test"], description)


def _both_classes(frame: pd.DataFrame, masks: dict[str, np.ndarray], kind: str) -> None:
    """The fallbacks' check: every set needs churners and retained customers to be scored."""
    for name, mask in masks.items():
        rows, churners = int(mask.sum()), int(frame.loc[mask, "churned"].sum())
        if churners == 0 or churners == rows:
            raise InsufficientDataError(
                f"The {kind} split leaves the {name} set with {rows:,} rows and {churners:,} "
                "churners; both churners and retained customers are needed. Add customers or "
                "as-of dates."
            )


def grouped_split(
    labeled: pd.DataFrame,
    test_dates: int = 1,
    seed: int = 0,
    valid_share: float = 0.2,
    test_share: float = 0.2,
    reason: str = "",
) -> Split:
    """Customer-grouped split for short histories (see the module docstring).

    Customers are dealt into groups stratified by whether they churn on any usable date; train
    and validation use their group's rows on every complete date, the test uses the test group
    on the latest ``test_dates`` complete dates (what scoring tomorrow looks like), widened to
    earlier dates until it holds ``MIN_CHURNERS`` churners.
    """
    dates = closed_dates(labeled)
    usable = labeled["as_of"].isin(dates).to_numpy()
    ever = labeled.loc[usable].groupby("customer_id", observed=True)["churned"].max()
    rng = np.random.default_rng(seed)
    share = pd.Series(np.nan, index=ever.index)
    for cls in (0, 1):
        ids = ever.index[ever.to_numpy() == cls]
        share.loc[ids] = (rng.permutation(len(ids)) + 0.5) / max(len(ids), 1)
    u = labeled["customer_id"].map(share).to_numpy(dtype=float)
    u[~usable] = np.inf
    as_of = labeled["as_of"].to_numpy()
    test_customers = u < test_share
    first = len(dates) - min(test_dates, len(dates))
    # widen the test back in time until it holds enough churners to be measured
    while first > 0 and labeled.loc[test_customers & (as_of >= dates[first]), "churned"].sum() < (
        MIN_CHURNERS
    ):
        first -= 1
    masks = {
        "train": (u >= test_share + valid_share) & np.isfinite(u),
        "valid": (u >= test_share) & (u < test_share + valid_share),
        "test": test_customers & (as_of >= dates[first]),
    }
    _both_classes(labeled, masks, "grouped")

    def day(value: object) -> str:
        return f"{pd.Timestamp(value):%Y-%m-%d}"  # type: ignore[arg-type]

    why = f" ({reason.split(';')[0].rstrip('.')})" if reason else ""
    description = (
        f"customer-grouped split (too short a history for an out-of-time split{why}): "
        f"{1 - valid_share - test_share:.0%} / {valid_share:.0%} / {test_share:.0%} of customers "
        f"for train / validation / test, seed {seed}; train and validation on {len(dates)} "
        f"complete as-of dates {day(dates[0])}..{day(dates[-1])}, test on the test customers "
        f"at {day(dates[first])}..{day(dates[-1])}; no customer is in two sets, but the "
        "sets share calendar months"
    )
    return Split("grouped", masks["train"], masks["valid"], masks["test"], description)


def stratified_split(
    labeled: pd.DataFrame, seed: int = 0, valid_share: float = 0.2, test_share: float = 0.2
) -> Split:
    """Stratified random split for single-snapshot data (no time to split on)."""
    dates = closed_dates(labeled)
    if len(dates) != 1:
        raise InsufficientDataError(
            f"A stratified split is for a single complete as-of date; this set has {len(dates)}."
        )
    complete = labeled["as_of"].isin(dates).to_numpy()
    rng = np.random.default_rng(seed)
    y = labeled["churned"].to_numpy()
    u = np.empty(len(labeled))
    for cls in (0, 1):  # equal shares of churners and non-churners in every set
        idx = np.flatnonzero(complete & (y == cls))
        u[idx] = (rng.permutation(len(idx)) + 0.5) / max(len(idx), 1)
    u[~complete] = np.inf
    masks = {
        "test": u < test_share,
        "valid": (u >= test_share) & (u < test_share + valid_share),
        "train": (u >= test_share + valid_share) & np.isfinite(u),
    }
    _both_classes(labeled, masks, "stratified")
    description = (
        f"stratified random split (single snapshot, no history to split in time): "
        f"{1 - valid_share - test_share:.0%} train / {valid_share:.0%} validation / "
        f"{test_share:.0%} test, seed {seed}"
    )
    return Split("stratified", masks["train"], masks["valid"], masks["test"], description)

"""Out-of-time splits: train on the past, early-stop and calibrate later, test on the latest.

Labels of neighbouring as-of dates overlap in time (a 90-day horizon seen from March and from
April covers the same churns), so a row informs the set after it only if its whole label window
ends before that set starts. We therefore leave an embargo of one horizon between train and
validation and between validation and test: no test churn is ever seen during training.

A single-snapshot data set (one as-of date, e.g. the Telco table) cannot be split in time; it
gets a stratified random split instead, and the split's ``kind`` says so in every report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.errors import InsufficientDataError

MIN_CHURNERS = 20  # per set; below this ROC-AUC and calibration are noise


@dataclass(frozen=True)
class Split:
    """Row masks of one labeled set and a plain description of how they were drawn."""

    kind: Literal["out-of-time", "stratified"]
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
    # Only as-of dates whose whole horizon is observed: on a date still open, the churners are
    # already known but the customers who will stay are not, so its labeled rows are all churn.
    closed_by_date = labeled.groupby("as_of")["label_complete"].all()
    dates = np.sort(closed_by_date.index[closed_by_date.to_numpy()].to_numpy())
    complete = labeled["as_of"].isin(dates).to_numpy()
    if len(dates) == 0:
        raise InsufficientDataError(
            "No as-of date has its whole horizon inside the export, so no label is complete. "
            "Use earlier as-of dates or a shorter horizon."
        )
    if len(dates) == 1:
        return stratified_split(labeled, seed=seed)
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


def stratified_split(
    labeled: pd.DataFrame, seed: int = 0, valid_share: float = 0.2, test_share: float = 0.2
) -> Split:
    """Stratified random split for single-snapshot data (no time to split on)."""
    complete = labeled["label_complete"].to_numpy(dtype=bool)
    if not labeled.loc[complete, "as_of"].nunique() <= 1:
        raise InsufficientDataError("A stratified split is only for single-snapshot data.")
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
    _check(labeled, masks, "stratified")
    description = (
        f"stratified random split (single snapshot, no history to split in time): "
        f"{1 - valid_share - test_share:.0%} train / {valid_share:.0%} validation / "
        f"{test_share:.0%} test, seed {seed}"
    )
    return Split("stratified", masks["train"], masks["valid"], masks["test"], description)

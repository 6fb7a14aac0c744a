"""Out-of-time splits never let a test churn inform training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import InsufficientDataError
from training.split import out_of_time_split, stratified_split


def labeled(dates: list[str], rows: int = 200, rate: float = 0.2, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = [
        pd.DataFrame(
            {
                "customer_id": [f"c{i}" for i in range(rows)],
                "as_of": pd.Timestamp(d),
                "churned": (rng.random(rows) < rate).astype(int),
                "label_complete": True,
            }
        )
        for d in dates
    ]
    return pd.concat(frames, ignore_index=True)


MONTHS = [f"2024-{m:02d}-01" for m in range(1, 13)]


def test_sets_are_separated_by_one_horizon_so_no_label_window_reaches_the_next_set() -> None:
    frame = labeled(MONTHS)
    split = out_of_time_split(frame, horizon_days=90, valid_dates=2)
    reach = pd.Timedelta(days=90)
    train_end = frame.loc[split.train, "as_of"].max()
    valid = frame.loc[split.valid, "as_of"]
    test_start = frame.loc[split.test, "as_of"].min()
    assert train_end + reach <= valid.min()
    assert valid.max() + reach <= test_start
    assert test_start == pd.Timestamp("2024-12-01")
    assert not (split.train & split.test).any() and not (split.valid & split.test).any()


def test_dates_whose_horizon_is_still_open_are_never_used() -> None:
    frame = labeled(MONTHS)
    last = frame["as_of"] == pd.Timestamp("2024-12-01")
    frame.loc[last & (frame["churned"] == 0), "label_complete"] = False  # only churners known
    split = out_of_time_split(frame, horizon_days=90, valid_dates=2)
    used = split.train | split.valid | split.test
    assert not used[last.to_numpy()].any()


def test_a_single_snapshot_gets_a_stratified_split_and_says_so() -> None:
    frame = labeled(["2024-01-01"], rows=2000)
    split = out_of_time_split(frame, horizon_days=30)
    assert split.kind == "stratified" and "stratified" in split.description
    rates = [frame.loc[m, "churned"].mean() for m in (split.train, split.valid, split.test)]
    assert max(rates) - min(rates) < 0.01
    assert stratified_split(frame, seed=1).test.sum() == pytest.approx(400, abs=2)


def test_too_little_history_is_refused_with_a_reason() -> None:
    with pytest.raises(InsufficientDataError, match="as-of dates"):
        out_of_time_split(labeled(MONTHS[:4]), horizon_days=90)


def test_too_few_churners_is_refused_instead_of_reporting_noise() -> None:
    with pytest.raises(InsufficientDataError, match="churners"):
        out_of_time_split(labeled(MONTHS, rows=50, rate=0.02), horizon_days=90)

"""Splits never let a test churn inform training; short histories get an honest fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import InsufficientDataError
from training.split import make_split, out_of_time_split, stratified_split


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
    split = make_split(frame, horizon_days=30)
    assert split.kind == "stratified" and "stratified" in split.description
    rates = [frame.loc[m, "churned"].mean() for m in (split.train, split.valid, split.test)]
    assert max(rates) - min(rates) < 0.01
    assert stratified_split(frame, seed=1).test.sum() == pytest.approx(400, abs=2)


def test_too_little_history_for_out_of_time_is_refused_by_that_split() -> None:
    with pytest.raises(InsufficientDataError, match="as-of dates"):
        out_of_time_split(labeled(MONTHS[:4]), horizon_days=90)


def test_three_monthly_dates_with_one_complete_fall_back_to_a_stratified_split() -> None:
    frame = labeled(MONTHS[:3], rows=1000)
    open_dates = frame["as_of"] > pd.Timestamp(MONTHS[0])
    frame.loc[open_dates & (frame["churned"] == 0), "label_complete"] = False
    split = make_split(frame, horizon_days=90)
    assert split.kind == "stratified"
    used = split.train | split.valid | split.test
    assert not used[open_dates.to_numpy()].any()  # the open dates' churner-only rows stay out


def test_a_short_history_gets_a_customer_grouped_split_that_says_so() -> None:
    frame = labeled(MONTHS[:4], rows=1000)
    split = make_split(frame, horizon_days=90)
    assert split.kind == "grouped" and "customer-grouped" in split.description
    ids = {name: set(frame.loc[getattr(split, name), "customer_id"])
           for name in ("train", "valid", "test")}  # fmt: skip
    assert not ids["train"] & ids["test"] and not ids["valid"] & ids["test"]
    assert not ids["train"] & ids["valid"]
    assert set(frame.loc[split.test, "as_of"]) == {pd.Timestamp(MONTHS[3])}
    assert frame.loc[split.train, "as_of"].nunique() == 4


def test_fewer_than_20_churners_in_all_is_refused_saying_what_to_do() -> None:
    with pytest.raises(InsufficientDataError, match=r"at least 20 churners.*Add as-of dates"):
        make_split(labeled(MONTHS[:3], rows=100, rate=0.05), horizon_days=90)


def test_too_few_churners_per_set_falls_back_instead_of_reporting_noise() -> None:
    frame = labeled(MONTHS, rows=50, rate=0.05)
    with pytest.raises(InsufficientDataError, match="churners"):
        out_of_time_split(frame, horizon_days=90)
    assert make_split(frame, horizon_days=90).kind == "grouped"

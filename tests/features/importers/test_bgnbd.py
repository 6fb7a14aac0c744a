"""BG/NBD: the fit reproduces Fader, Hardie & Lee (2005) on the CDNOW sample; scores are sane."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.importers import cdnow
from features.importers.bgnbd import (
    BgNbdParams,
    bgnbd_scores,
    fit_bgnbd,
    p_alive,
    p_no_purchase,
    rfm_summary,
)
from features.importers.cdnow import import_cdnow

PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}


def test_fit_on_the_39_week_calibration_reproduces_the_published_parameters(
    shared: Path,
) -> None:
    events = import_cdnow(shared / "cdnow" / "CDNOW_sample.txt").events
    assert events is not None
    summary = rfm_summary(events, cdnow.HOLDOUT_START)
    assert len(summary) == 2357
    params = fit_bgnbd(summary)
    for name, published in PUBLISHED.items():
        assert getattr(params, name) == pytest.approx(published, rel=0.01), name
    assert params.log_likelihood == pytest.approx(-9582.4, abs=1.0)


def _events(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [c for c, _ in rows],
            "timestamp": pd.to_datetime([d for _, d in rows]).tz_localize("UTC"),
        }
    )


def test_summary_reads_only_purchases_before_as_of_and_merges_same_day() -> None:
    events = _events([("a", "2024-01-01"), ("a", "2024-01-01"), ("a", "2024-01-15"),
                      ("a", "2024-02-01"), ("b", "2024-02-01")])  # fmt: skip
    summary = rfm_summary(events, date(2024, 2, 1))
    assert summary.index.tolist() == ["a"]  # b's only purchase is on the as-of date
    assert summary.loc["a"].tolist() == [1.0, 2.0, 30 / 7]  # x, t_x, T to 2024-01-31


def test_p_alive_is_one_without_repeat_purchase_and_falls_with_silence() -> None:
    params = BgNbdParams(0.243, 4.414, 0.793, 2.426, 0.0)
    summary = pd.DataFrame(
        {"x": [0.0, 3.0, 3.0], "t_x": [0.0, 10.0, 10.0], "T": [30.0, 12.0, 30.0]}
    )
    alive = p_alive(params, summary)
    assert alive[0] == 1.0
    assert alive[1] > alive[2]
    silent = p_no_purchase(params, summary, 39.0)
    assert np.all((silent >= 1 - alive) & (silent <= 1))


def test_scores_join_a_labeled_set_on_its_keys() -> None:
    rng = np.random.default_rng(0)
    months, days = rng.integers(1, 6, (40, 3)), rng.integers(1, 28, (40, 3))
    rows = [(f"c{i}", f"2024-{m:02d}-{d:02d}") for i in range(40)
            for m, d in zip(months[i], days[i], strict=True)]  # fmt: skip
    scores, params = bgnbd_scores(_events(rows), date(2024, 6, 1), 91)
    assert list(scores.columns) == ["customer_id", "as_of", "bgnbd_p_alive", "bgnbd_p_churn"]
    assert (scores["as_of"] == pd.Timestamp("2024-06-01")).all()
    assert params.r > 0 and scores["bgnbd_p_churn"].between(0, 1).all()

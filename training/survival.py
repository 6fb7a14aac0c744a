"""Time to churn: a discrete-time hazard model on the classifier's point-in-time features.

LightGBM has no survival objective, so the hazard is fitted in its person-period logistic form
(``training.periods``): one row per customer and period at risk, label "churned in this period",
inputs = the customer's features at ``as_of`` plus where the period lies (days after as_of,
length, next renewal). Platt-calibrated on held-out person-periods like the classifier, so
TreeSHAP contributions sum to the calibrated log-odds of a period's hazard.

From the per-period hazards ``h_k`` every number a CFO asks for follows, with the hazard spread
evenly over each period's days (constant within a period, a geometric decay):

- ``S(b_k) = prod_{j<k} (1 - h_j)``: the chance the customer is still paying ``b_k`` days on;
- median time to churn (where S crosses 1/2; none within the cap when it never does) and the
  expected time to churn within the cap (the restricted mean ``integral_0^cap S(t) dt``);
- P(renew at the next renewal) = ``1 - h`` of the period holding the next renewal;
- expected revenue over the next 12 months = MRR x the expected months of service in them;
- expected LTV = margin x MRR x sum over months of S(month) discounted monthly, the hazard beyond
  the grid held at its average over the grid's last half year (the tail).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.errors import ChurnError
from training.capacity import refit_calibrated
from training.fit import FitConfig, fit_booster, fit_platt
from training.model import encode_frame, platt_contributions
from training.periods import (
    DURATION,
    OBSERVED,
    PERIOD_COVARIATES,
    RENEWAL_FEATURE,
    YEAR_DAYS,
    period_covariates,
    period_grid,
    person_periods,
    require_durations,
    truncate_followup,
)

OUTPUT_DAYS = (30, 60, 90, 180, 365)
"""Days at which every customer's survival is reported (score store, API, UI)."""
MONTH_DAYS = YEAR_DAYS / 12
GROSS_MARGIN = 0.8
ANNUAL_DISCOUNT_RATE = 0.10
LTV_YEARS = 10  # the discounted sum stops here: a cap, not a forecast horizon anyone believes
CONSISTENCY_TOLERANCE = 0.05
"""Largest mean |(1 - S(horizon)) - classifier probability| over customers we accept, and
``PORTFOLIO_TOLERANCE`` the largest gap between their means: the two models are fitted
separately on the same features and labels, so they agree on the portfolio and closely per
customer, not to the decimal (measured: 0.019 and 0.003 on a 2,000-customer generated world, 0.031
on the 1,500-customer test world). Tested (tests/training/test_survival.py) and reported by every
training run."""
PORTFOLIO_TOLERANCE = 0.02

SURVIVAL_FILE = "survival.txt"
SURVIVAL_META = "survival.json"


@dataclass
class SurvivalConfig:
    """Options of the hazard model; the value numbers' margin and discount rate come from the
    settings at scoring time (``outcomes``)."""

    cap_days: int = YEAR_DAYS
    step_days: int = 30
    max_person_periods: int = 600_000
    fit: FitConfig = field(default_factory=FitConfig)
    valid_share: float = 0.2


@dataclass
class SurvivalModel:
    """Booster on person-periods + the encoding of the row features + Platt + the grid."""

    booster: lgb.Booster
    features: list[str]
    categories: dict[str, list[str]]
    platt: tuple[float, float]
    grid: np.ndarray
    horizon_days: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> list[str]:
        """Booster columns: the row features, then the period covariates."""
        return [*self.features, *PERIOD_COVARIATES]

    @property
    def periods(self) -> int:
        return len(self.grid) - 1

    def design(self, frame: pd.DataFrame) -> np.ndarray:
        """The (rows x periods) person-period matrix of ``frame``, row-major by customer."""
        rows = encode_frame(frame, self.features, self.categories)
        renewal = frame[RENEWAL_FEATURE].to_numpy(np.float64) if RENEWAL_FEATURE in frame else None
        covariates = period_covariates(renewal, self.grid, len(frame))
        n, k = len(frame), self.periods
        X = np.empty((n * k, len(self.inputs)), dtype=np.float64)
        X[:, : len(self.features)] = np.repeat(rows, k, axis=0)
        for j, name in enumerate(PERIOD_COVARIATES):
            X[:, len(self.features) + j] = covariates[name].reshape(-1)
        return X

    def logit(self, X: np.ndarray, num_threads: int = 0) -> np.ndarray:
        a, b = self.platt
        return a * np.asarray(self.booster.predict(X, raw_score=True, num_threads=num_threads)) + b

    def hazards(self, frame: pd.DataFrame, num_threads: int = 0) -> np.ndarray:
        """Calibrated chance of churning in each period, given a customer at its start."""
        logit = self.logit(self.design(frame), num_threads)
        return (1.0 / (1.0 + np.exp(-logit))).reshape(len(frame), self.periods)

    def contributions(self, frame: pd.DataFrame, period: int) -> np.ndarray:
        """Exact TreeSHAP of period ``period``'s hazard on the calibrated log-odds scale.

        Columns: ``inputs`` then the base value; each row sums to the calibrated logit.
        """
        X = self.design(frame).reshape(len(frame), self.periods, -1)[:, period, :]
        raw = np.asarray(self.booster.predict(X, pred_contrib=True))
        return platt_contributions(raw, self.platt)

    # ----- persistence, beside the classifier's files -----
    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / SURVIVAL_FILE))
        meta = {
            "features": self.features,
            "categories": self.categories,
            "platt": list(self.platt),
            "grid": [int(b) for b in self.grid],
            "horizon_days": self.horizon_days,
            "meta": self.meta,
        }
        (folder / SURVIVAL_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> SurvivalModel:
        folder = Path(folder)
        meta = json.loads((folder / SURVIVAL_META).read_text())
        return cls(
            booster=lgb.Booster(model_file=str(folder / SURVIVAL_FILE)),
            features=list(meta["features"]),
            categories={k: list(v) for k, v in meta["categories"].items()},
            platt=(float(meta["platt"][0]), float(meta["platt"][1])),
            grid=np.asarray(meta["grid"], dtype=np.int64),
            horizon_days=int(meta["horizon_days"]),
            meta=dict(meta.get("meta", {})),
        )

    @staticmethod
    def exists(folder: Path) -> bool:
        return (Path(folder) / SURVIVAL_META).is_file()


# ----- curves from hazards --------------------------------------------------------------------
def survival_at_bounds(hazards: np.ndarray) -> np.ndarray:
    """S at every grid boundary (rows x periods + 1), S(0) = 1."""
    log_keep = np.log1p(-np.clip(hazards, 0.0, 1.0 - 1e-12))
    return np.exp(np.concatenate([np.zeros((len(hazards), 1)), np.cumsum(log_keep, axis=1)], 1))


def survival_at(hazards: np.ndarray, grid: np.ndarray, days: np.ndarray) -> np.ndarray:
    """S(t) at ``days`` (rows x len(days)); constant daily hazard within each period.

    Beyond the grid the last period's daily hazard continues.
    """
    days = np.asarray(days, dtype=np.float64)
    bounds = survival_at_bounds(hazards)
    lengths = np.diff(grid).astype(np.float64)
    k = np.clip(np.searchsorted(grid, days, side="right") - 1, 0, len(lengths) - 1)
    into = (days - grid[k]) / lengths[k]
    keep = np.clip(1.0 - hazards[:, k], 1e-12, 1.0)
    return np.asarray(bounds[:, k] * keep**into)


def restricted_mean(hazards: np.ndarray, grid: np.ndarray, cap: float) -> np.ndarray:
    """Expected days as a customer within ``[0, cap)``: the integral of S (exact per period)."""
    bounds = survival_at_bounds(hazards)
    total = np.zeros(len(hazards))
    for k in range(len(grid) - 1):
        lo, hi = float(grid[k]), min(float(grid[k + 1]), cap)
        if hi <= lo:
            break
        length = float(grid[k + 1] - grid[k])
        q = np.clip(1.0 - hazards[:, k], 1e-12, 1.0)
        rate = -np.log(q) / length  # daily hazard rate
        span = hi - lo
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(rate > 1e-12, (1.0 - np.exp(-rate * span)) / rate, span)
        total += bounds[:, k] * part
    if cap > grid[-1]:  # the last period's rate continues
        q = np.clip(1.0 - hazards[:, -1], 1e-12, 1.0)
        rate = -np.log(q) / float(grid[-1] - grid[-2])
        span = cap - float(grid[-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            part = np.where(rate > 1e-12, (1.0 - np.exp(-rate * span)) / rate, span)
        total += bounds[:, -1] * part
    return total


def median_days(hazards: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Day at which S falls to 1/2; NaN when it stays above within the grid."""
    bounds = survival_at_bounds(hazards)
    below = bounds <= 0.5
    out = np.full(len(hazards), np.nan)
    hit = below.any(axis=1)
    if not hit.any():
        return out
    first = np.argmax(below[hit], axis=1)  # first boundary at or below 1/2 (>= 1)
    k = first - 1
    s0 = bounds[hit, k]
    q = np.clip(1.0 - hazards[hit, k], 1e-12, 1.0 - 1e-12)
    length = (grid[k + 1] - grid[k]).astype(np.float64)
    out[hit] = grid[k] + length * np.log(0.5 / s0) / np.log(q)
    return out


def renewal_probability(
    hazards: np.ndarray, grid: np.ndarray, days_to_renewal: np.ndarray | None
) -> np.ndarray:
    """P(the customer renews at its next renewal, given it reaches it) = 1 - that period's hazard.

    NaN without a renewal date or when the renewal lies beyond the grid.
    """
    out = np.full(len(hazards), np.nan)
    if days_to_renewal is None:
        return out
    d = np.asarray(days_to_renewal, dtype=np.float64)
    known = np.isfinite(d) & (d >= 0) & (d < grid[-1])
    k = np.clip(np.searchsorted(grid, np.where(known, d, 0), side="right") - 1, 0, None)
    k = np.minimum(k, len(grid) - 2)
    out[known] = 1.0 - hazards[np.flatnonzero(known), k[known]]
    return out


def discounted_months(
    hazards: np.ndarray, grid: np.ndarray, annual_rate: float, years: int = LTV_YEARS
) -> np.ndarray:
    """Expected discounted months of service: sum over months m of S(m) / (1 + r)^(m / 12).

    Within the grid S comes from the hazards; after it, the monthly hazard is the grid's average
    over its last half year, a tail that neither the data nor anyone else can check.
    """
    months = np.arange(years * 12, dtype=np.float64)
    days = months * MONTH_DAYS
    inside = days <= grid[-1]
    s_in = survival_at(hazards, grid, days[inside])
    end = survival_at(hazards, grid, np.array([float(grid[-1])]))[:, 0]
    half = survival_at(hazards, grid, np.array([float(grid[-1]) - YEAR_DAYS / 2]))[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        monthly_keep = np.where(half > 0, (end / half) ** (1 / 6), 0.0)
    beyond = months[~inside]
    s_out = end[:, None] * monthly_keep[:, None] ** ((beyond * MONTH_DAYS - grid[-1]) / MONTH_DAYS)
    survival = np.concatenate([s_in, s_out], axis=1)
    discount = (1.0 + annual_rate) ** (-months / 12.0)
    return np.asarray(survival @ discount)


def outcomes(
    model: SurvivalModel,
    frame: pd.DataFrame,
    gross_margin: float = GROSS_MARGIN,
    annual_discount_rate: float = ANNUAL_DISCOUNT_RATE,
    hazards: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every customer's survival numbers (one row per row of ``frame``, same order).

    Money is in the export's currency per month (``mrr``); days count from ``as_of``.
    """
    if not 0 <= gross_margin <= 1:
        raise ChurnError(f"gross_margin must be between 0 and 1, got {gross_margin}.")
    if annual_discount_rate <= -1:
        raise ChurnError(f"annual_discount_rate must exceed -1, got {annual_discount_rate}.")
    h = model.hazards(frame) if hazards is None else hazards
    grid = model.grid
    curve = survival_at(h, grid, np.array(OUTPUT_DAYS, dtype=np.float64))
    out = pd.DataFrame({f"survival_{d}d": curve[:, i] for i, d in enumerate(OUTPUT_DAYS)},
                       index=frame.index)  # fmt: skip
    out[f"p_churn_{model.horizon_days}d"] = (
        1.0 - survival_at(h, grid, np.array([float(model.horizon_days)]))[:, 0]
    )
    cap = float(grid[-1])
    out["median_days_to_churn"] = median_days(h, grid)
    out["expected_days_to_churn"] = restricted_mean(h, grid, cap)
    renewal = frame[RENEWAL_FEATURE].to_numpy(np.float64) if RENEWAL_FEATURE in frame else None
    out["p_renew_next"] = renewal_probability(h, grid, renewal)
    mrr = (
        pd.to_numeric(frame["mrr"], errors="coerce").fillna(0.0).to_numpy(np.float64)
        if "mrr" in frame
        else np.zeros(len(frame))
    )
    months_12 = restricted_mean(h, grid, float(YEAR_DAYS)) / MONTH_DAYS
    out["expected_revenue_12m"] = mrr * months_12
    out["revenue_at_risk_12m"] = mrr * 12.0 - out["expected_revenue_12m"]
    out["expected_ltv"] = gross_margin * mrr * discounted_months(h, grid, annual_discount_rate)
    return out


# ----- fitting ------------------------------------------------------------------------------
def _sample_rows(periods: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """Whole labeled rows drawn at random until ``limit`` person-periods: unbiased, smaller."""
    if len(periods) <= limit:
        return periods
    rows = periods["row"].unique()
    rng = np.random.default_rng(seed)
    share = limit / len(periods)
    chosen = rng.choice(rows, max(1, int(len(rows) * share)), replace=False)
    return periods[periods["row"].isin(chosen)]


def _matrix(
    model: SurvivalModel, labeled: pd.DataFrame, periods: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    rows = encode_frame(labeled, model.features, model.categories)[periods["row"].to_numpy()]
    cov = periods[list(PERIOD_COVARIATES)].to_numpy(np.float64)
    return np.hstack([rows, cov]), periods["churned"].to_numpy(np.int64)


def _valid_customers(labeled: pd.DataFrame, share: float, seed: int) -> np.ndarray:
    """A seeded customer-grouped validation mask (no customer on both sides)."""
    ids = labeled["customer_id"].astype("string").unique()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(ids, max(1, int(len(ids) * share)), replace=False))
    return labeled["customer_id"].astype("string").isin(held).to_numpy()


def fit_survival(
    labeled: pd.DataFrame,
    features: list[str],
    categories: dict[str, list[str]],
    horizon_days: int,
    config: SurvivalConfig | None = None,
    refit: pd.DataFrame | None = None,
) -> tuple[SurvivalModel, SurvivalModel | None]:
    """Fit the hazard model on ``labeled`` (its follow-up already cut where it must end).

    Early stopping and Platt on person-periods of a seeded 20 % of customers. With ``refit`` (a
    labeled set), the served model is ``refit_survival`` of it; returns (served, held-out), else
    (held-out, None).
    """
    config = config or SurvivalConfig()
    cap = max(config.cap_days, horizon_days)
    grid = period_grid(horizon_days, cap, config.step_days)
    fit = config.fit
    labeled = labeled.reset_index(drop=True)
    valid = _valid_customers(labeled, config.valid_share, fit.seed)
    model = SurvivalModel(None, list(features), categories, (1.0, 0.0), grid, horizon_days)  # type: ignore[arg-type]
    inputs = model.inputs
    categorical = [c for c in features if c in categories]
    periods = _sample_rows(person_periods(labeled, grid), config.max_person_periods, fit.seed)
    in_valid = valid[periods["row"].to_numpy()]
    X, y = _matrix(model, labeled, periods)
    if y[~in_valid].sum() < 10 or y[in_valid].sum() < 5:
        raise ChurnError(
            f"The survival model sees {int(y.sum())} churns in {len(y):,} person-periods; at "
            "least 15 are needed. Use more history or customers."
        )
    model.booster = fit_booster(
        X[~in_valid], y[~in_valid], X[in_valid], y[in_valid], inputs, categorical, fit
    )
    model.platt = fit_platt(
        np.asarray(model.booster.predict(X[in_valid], raw_score=True)), y[in_valid]
    )
    trees = int(model.booster.num_trees())
    model.meta.update(
        {"trees": trees, "person_periods": len(periods), "period_churns": int(y.sum())}
    )
    if refit is None:
        return model, None
    return refit_survival(model, refit, config), model


def refit_survival(
    heldout: SurvivalModel, labeled: pd.DataFrame, config: SurvivalConfig | None = None
) -> SurvivalModel:
    """The served recipe (the classifier's): ``heldout``'s number of trees fitted on every
    person-period of ``labeled``, Platt map from customer-grouped out-of-fold margins.

    The early-stopped model saw 80 % of the customers; refit on all of them it is the model that
    is served, so an out-of-time measurement refits it on the rows before the test date too.
    """
    config = config or SurvivalConfig()
    fit = config.fit
    labeled = labeled.reset_index(drop=True)
    categorical = [c for c in heldout.features if c in heldout.categories]
    trees = int(heldout.meta.get("trees", heldout.booster.num_trees()))
    periods = _sample_rows(person_periods(labeled, heldout.grid), config.max_person_periods,
                           fit.seed)  # fmt: skip
    X, y = _matrix(heldout, labeled, periods)
    ids = labeled["customer_id"].astype("string").to_numpy()[periods["row"].to_numpy()]
    booster, platt = refit_calibrated(X, y, ids, heldout.inputs, categorical, fit, trees)
    served = SurvivalModel(booster, list(heldout.features), heldout.categories, platt,
                           heldout.grid, heldout.horizon_days)  # fmt: skip
    served.meta.update(
        {"trees": trees, "person_periods": len(periods), "period_churns": int(y.sum())}
    )
    return served


def survival_test_date(labeled: pd.DataFrame, cap_days: int, horizon_days: int) -> pd.Timestamp:
    """The survival test window: the latest as-of date whose follow-up covers the cap (a whole
    year of fates known), else the latest whose follow-up covers the horizon."""
    follow = labeled.groupby("as_of")["followup_days"].min()
    for need in (cap_days - 1, horizon_days - 1):
        ok = follow[follow >= need]
        if len(ok):
            return pd.Timestamp(ok.index.max())
    raise ChurnError(
        f"No as-of date has {horizon_days} days of follow-up inside the export; survival needs "
        "at least one horizon of history after an as-of date."
    )


# ----- one run: fit, baselines, metrics on the out-of-time test window -------------------------
TrueSurvival = Callable[[pd.DataFrame, np.ndarray], np.ndarray]
"""Synthetic worlds only: (test rows, days) -> the true S(days) of each row (rows x days)."""


@dataclass
class SurvivalResult:
    """The served hazard model, the held-out one, and how both compare on the test window.

    ``heldout`` is the served recipe (``refit_survival``) applied to the rows before the test
    date: the model the metrics measure. Without refit the two are the same model.
    """

    model: SurvivalModel
    heldout: SurvivalModel
    metrics: dict[str, dict[str, float]]
    test: pd.DataFrame  # customer_id, as_of, duration_days, event_observed, mrr?, outcomes
    test_date: pd.Timestamp
    description: str


def train_survival(
    labeled: pd.DataFrame,
    features: list[str],
    categories: dict[str, list[str]],
    horizon_days: int,
    config: SurvivalConfig | None = None,
    truth: TrueSurvival | None = None,
    refit: bool = True,
    references: Mapping[str, TrueSurvival] | None = None,
) -> SurvivalResult:
    """Out-of-time: train on as-of dates before the test date with follow-up cut there, test on
    the test date's rows; Kaplan–Meier per segment and Cox on the same rows as baselines. The
    measured model is made as the served one is (early stopping on 20 % of customers, then
    refit on all of them): measuring the early-stopped 80 % model understated it (Uno's C
    0.733 vs 0.740 on the benchmark world).
    ``truth``: the oracle the model is measured against (``c_index_vs_oracle``, revenue);
    ``references``: more known curves, each reported under its name (benchmarks).

    ``labeled``: a labeled set with time-to-churn columns (``churn features``); every row counts,
    complete label or not, since censoring is handled exactly.
    """
    from training.survival_eval import (
        CoxBaseline,
        KaplanMeier,
        default_segment,
        evaluation_times,
        outcomes_array,
        survival_metrics,
    )

    config = config or SurvivalConfig()
    require_durations(labeled)
    labeled = labeled.reset_index(drop=True)
    cap = max(config.cap_days, horizon_days)
    test_date = survival_test_date(labeled, cap, horizon_days)
    as_of = pd.to_datetime(labeled["as_of"])
    before = (as_of < test_date).to_numpy()
    if not before.any():
        raise ChurnError(
            f"No as-of date precedes the survival test date {test_date:%Y-%m-%d}; survival "
            "needs earlier history to train on."
        )
    train_rows = truncate_followup(labeled.loc[before], test_date).reset_index(drop=True)
    test_rows = labeled.loc[(as_of == test_date).to_numpy()].reset_index(drop=True)
    early, _ = fit_survival(train_rows, features, categories, horizon_days, config)
    heldout = refit_survival(early, train_rows, config)  # the served recipe, before test_date
    served = refit_survival(early, labeled, config) if refit else heldout
    y_test = outcomes_array(test_rows)
    usable = y_test["time"] > 0
    test_rows, y_test = test_rows.loc[usable].reset_index(drop=True), y_test[usable]
    times = evaluation_times(y_test, float(cap), float(config.step_days) / 2)
    tau = float(times[-1])
    h = heldout.hazards(test_rows)
    model_s = survival_at(h, heldout.grid, times)
    at_tau = survival_at(h, heldout.grid, np.array([tau]))[:, 0]
    metrics = {"survival_model": survival_metrics(y_test, model_s, times, 1 - at_tau, tau)}
    segment = default_segment(train_rows)
    km = KaplanMeier.fit(train_rows, segment)
    km_s = km.survival(test_rows, times)
    km_tau = km.survival(test_rows, np.array([tau]))[:, 0]
    metrics["kaplan_meier"] = survival_metrics(y_test, km_s, times, 1 - km_tau, tau)
    categorical = [f for f in features if f in categories]
    cox = CoxBaseline.fit(train_rows, features, categorical, config.fit.seed)
    metrics["cox"] = survival_metrics(y_test, cox.survival(test_rows, times), times,
                                      cox.risk(test_rows), tau)  # fmt: skip
    test = test_rows[["customer_id", "as_of", DURATION, OBSERVED]].copy()
    if "mrr" in test_rows:
        test["mrr"] = test_rows["mrr"].to_numpy()
    test = pd.concat([test, outcomes(heldout, test_rows, hazards=h).reset_index(drop=True)], axis=1)
    if truth is not None:
        true_s = truth(test_rows, times)
        true_tau = truth(test_rows, np.array([tau]))[:, 0]
        metrics["oracle"] = survival_metrics(y_test, true_s, times, 1 - true_tau, tau)
        metrics["survival_model"]["c_index_vs_oracle"] = (
            metrics["survival_model"]["c_index_ipcw"] / metrics["oracle"]["c_index_ipcw"]
        )
        year = np.arange(0.5, YEAR_DAYS, 1.0)
        true_months = truth(test_rows, year).sum(axis=1) / MONTH_DAYS
        mrr = test.get("mrr", pd.Series(0.0, index=test.index)).fillna(0.0).to_numpy()
        test["true_revenue_12m"] = mrr * true_months
        total_true = float(test["true_revenue_12m"].sum())
        metrics["survival_model"]["revenue_12m_vs_truth"] = (
            float(test["expected_revenue_12m"].sum()) / total_true if total_true else np.nan
        )
    for name, other in (references or {}).items():
        curves, at_tau = other(test_rows, times), other(test_rows, np.array([tau]))[:, 0]
        metrics[name] = survival_metrics(y_test, curves, times, 1 - at_tau, tau)
    metrics["survival_model"].update(
        {
            "test_rows": float(len(test_rows)),
            "person_periods": float(heldout.meta["person_periods"]),
        }
    )
    description = (
        f"survival out-of-time: train {as_of[before].min():%Y-%m-%d}.."
        f"{as_of[before].max():%Y-%m-%d}"
        f" with follow-up cut at {test_date:%Y-%m-%d} ({early.meta['trees']} trees early-stopped "
        f"on {config.valid_share:.0%} of customers, then refit on all), test {test_date:%Y-%m-%d} "
        f"({len(test_rows):,} rows, follow-up to {tau:.0f} days); KM by "
        f"{segment or 'all customers'}"
    )
    served.meta.update({"split": description, "heldout": metrics["survival_model"]})
    return SurvivalResult(served, heldout, metrics, test, test_date, description)


def consistency(survival: SurvivalModel, classifier: Any, rows: pd.DataFrame) -> dict[str, float]:
    """How far ``1 - S(horizon)`` is from the classifier's probability on ``rows``."""
    p = classifier.probability(classifier.encode(rows))
    q = (
        1.0
        - survival_at(
            survival.hazards(rows), survival.grid, np.array([float(classifier.horizon_days)])
        )[:, 0]
    )
    return {
        "classifier_mean_abs_gap": float(np.abs(q - p).mean()),
        "classifier_mean_gap": float(q.mean() - p.mean()),
        "classifier_tolerance": CONSISTENCY_TOLERANCE,
    }


def fit_beside(
    result: Any,
    labeled: pd.DataFrame,
    fit: FitConfig | None = None,
    cap_days: int = YEAR_DAYS,
    truth: TrueSurvival | None = None,
) -> Any:
    """Fit the time-to-churn model beside a classifier run (``training.pipeline.TrainResult``)
    on the same features and attach it to the served model; the run's note says why not when
    the labeled set cannot carry one (no durations, too short a follow-up)."""
    model = result.model
    seed, threads = (fit.seed, fit.num_threads) if fit else (42, 1)
    try:
        require_durations(labeled)
        fitted = train_survival(
            labeled,
            model.features,
            model.categories,
            model.horizon_days,
            SurvivalConfig(cap_days=cap_days, fit=FitConfig(seed=seed, num_threads=threads)),
            truth=truth,
        )
    except ChurnError as exc:
        result.survival_note = f"no time-to-churn model: {exc}"
        return result
    latest = labeled[labeled["as_of"] == labeled["as_of"].max()]
    fitted.metrics["survival_model"].update(consistency(fitted.model, model, latest))
    model.survival = fitted.model
    result.survival = fitted
    return result

"""BG/NBD (Fader, Hardie & Lee 2005): the classic "is this customer still alive?" baseline.

A non-contractual customer buys at a Poisson rate λ while alive and may drop out for good after
each repeat purchase with probability p; λ ~ Gamma(r, α) and p ~ Beta(a, b) across customers.
The model needs only each customer's repeat purchases before a cut-off: ``x`` (repeat purchase
days), ``t_x`` (weeks from the first to the last purchase) and ``T`` (weeks from the first
purchase to the end of the calibration period). It never sees a label, so fitting it on every
customer's calibration history is fair beside a supervised model tested on held-out customers.

Conventions of Fader & Hardie's CDNOW summary, with which the fit reproduces the published
r = 0.243, α = 4.414, a = 0.793, b = 2.426 (log-likelihood -9,582.4) on the 2,357-customer sample:
purchases on the same day count once; time is in weeks of 7 days between calendar days; the
calibration period ends on the last day *before* the as-of date (1997-09-30 for 1997-10-01).

Implemented here with SciPy maximum likelihood until a maintained library (pymc-marketing's CLV
module) is a dependency; the closed-form likelihood is short and the test pins the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, gammaln

from features.errors import InsufficientDataError

WEEK_DAYS = 7.0


@dataclass(frozen=True)
class BgNbdParams:
    """Fitted BG/NBD parameters and the maximised log-likelihood (natural log, summed)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b,
                "log_likelihood": self.log_likelihood}  # fmt: skip


def rfm_summary(events: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """Per customer with a purchase before ``as_of``: ``x``, ``t_x`` and ``T`` (weeks).

    ``events`` is the contract's events table (``customer_id``, ``timestamp``); only purchases
    strictly before ``as_of`` are read, so the summary is point-in-time like every feature.
    """
    days = pd.to_datetime(events["timestamp"], utc=True).dt.tz_localize(None).dt.normalize()
    cut = pd.Timestamp(as_of)
    purchases = pd.DataFrame({"customer_id": events["customer_id"].astype(str), "day": days})
    purchases = purchases[purchases["day"] < cut].drop_duplicates()
    grouped = purchases.groupby("customer_id", sort=True)["day"]
    first, last, count = grouped.min(), grouped.max(), grouped.size()
    end = cut - pd.Timedelta(days=1)  # the last day of the calibration period
    return pd.DataFrame(
        {
            "x": (count - 1).astype("float64"),
            "t_x": (last - first).dt.days / WEEK_DAYS,
            "T": (end - first).dt.days / WEEK_DAYS,
        }
    )


def log_likelihood(r: float, alpha: float, a: float, b: float, summary: pd.DataFrame) -> np.ndarray:
    """Each customer's BG/NBD log-likelihood (FHL 2005, equation 6)."""
    x, t_x, T = (summary[c].to_numpy(np.float64) for c in ("x", "t_x", "T"))
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.full_like(x, -np.inf)
    a4[repeat] = (
        np.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    )
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4))


def fit_bgnbd(summary: pd.DataFrame) -> BgNbdParams:
    """Maximum-likelihood parameters (optimised on the log scale, so all stay positive)."""
    if len(summary) < 10:
        raise InsufficientDataError(
            f"BG/NBD needs purchase histories of at least 10 customers, got {len(summary)}."
        )

    def negative(log_params: np.ndarray) -> float:
        r, alpha, a, b = np.exp(log_params)
        return -float(log_likelihood(r, alpha, a, b, summary).sum())

    result = minimize(negative, np.zeros(4), method="L-BFGS-B")
    if not result.success:  # pragma: no cover - L-BFGS-B converges on every data set tried
        result = minimize(negative, result.x, method="Nelder-Mead", options={"maxiter": 4000})
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbdParams(r, alpha, a, b, -float(result.fun))


def p_alive(params: BgNbdParams, summary: pd.DataFrame) -> np.ndarray:
    """P(still alive at the end of the calibration period | x, t_x, T) (FHL 2005, eq. 11)."""
    x, t_x, T = (summary[c].to_numpy(np.float64) for c in ("x", "t_x", "T"))
    odds = np.full_like(x, -np.inf)  # no repeat purchase: cannot have dropped out yet
    repeat = x > 0
    odds[repeat] = (
        np.log(params.a)
        - np.log(params.b + x[repeat] - 1)
        + (params.r + x[repeat])
        * (np.log(params.alpha + T[repeat]) - np.log(params.alpha + t_x[repeat]))
    )
    return np.asarray(expit(-odds))


def p_no_purchase(params: BgNbdParams, summary: pd.DataFrame, weeks: float) -> np.ndarray:
    """P(no purchase in the next ``weeks`` | history): the BG/NBD's own churn probability.

    Dead customers never buy; an alive one stays silent with the posterior Gamma(r + x, α + T)
    expectation of exp(-λ t). (Dropping out happens only right after a purchase.)
    """
    x, T = summary["x"].to_numpy(np.float64), summary["T"].to_numpy(np.float64)
    alive = p_alive(params, summary)
    silent = np.exp((params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + weeks)))
    return np.asarray(1.0 - alive + alive * silent)


def bgnbd_scores(
    events: pd.DataFrame, as_of: date, horizon_days: int
) -> tuple[pd.DataFrame, BgNbdParams]:
    """Fit on purchases before ``as_of``; score every customer seen before it.

    Returns ``customer_id``, ``as_of``, ``bgnbd_p_alive`` and ``bgnbd_p_churn`` (no purchase in
    ``[as_of, as_of + horizon_days)``), ready to join a labeled set on its keys.
    """
    summary = rfm_summary(events, as_of)
    params = fit_bgnbd(summary)
    scores = pd.DataFrame(
        {
            "customer_id": summary.index.astype("string"),
            "as_of": pd.Timestamp(as_of),
            "bgnbd_p_alive": p_alive(params, summary),
            "bgnbd_p_churn": p_no_purchase(params, summary, horizon_days / WEEK_DAYS),
        }
    )
    scores["as_of"] = scores["as_of"].astype("datetime64[us]")
    return scores.reset_index(drop=True), params

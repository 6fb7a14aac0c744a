"""The champion's quality on live customers: estimated before the labels exist, realised after.

Before labels (confidence-based performance estimation, NannyML's CBPE): if the probabilities are
calibrated, each customer churns with the probability the model gives it, so the expected
confusion counts, and hence the expected ROC-AUC, Brier score and lift, follow from the scores
alone. The ROC-AUC estimate here is the ratio of expected pair counts,

    sum_{i != j, s_i > s_j} p_i (1 - p_j)  (+ half the tied pairs)  /  sum_{i != j} p_i (1 - p_j),

which is NannyML's area under the expected ROC curve without its self-pair term (an O(1/n)
difference). Its spread is that of the AUC a calibrated model would realise on these customers
(labels drawn as Bernoulli(p)). It holds under covariate shift while the calibration holds; it
does not see a change in what the inputs mean (a concept change, a broken source): the report
says when the drift checks make it untrustworthy.

After labels: once ``as_of + lead + horizon`` has passed in a later export, each scoring in the
score history is joined to the labels built from that export, and the realised metrics are those
of ``training.evaluation.evaluate`` (the ones the model card promised), per scoring and per tier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy import stats

from features.errors import InsufficientDataError
from training.evaluation import evaluate
from training.gate import auc_interval

SIMULATIONS = 400
CONFIDENCE = 0.95
REALISED_KEYS = ("roc_auc", "pr_auc", "brier", "ece", "lift_top10")


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks, ties averaged (what the Mann-Whitney form of the AUC reads)."""
    return stats.rankdata(scores, method="average")


def estimated_roc_auc(p: np.ndarray) -> float:
    """Expected ROC-AUC of calibrated probabilities ``p`` on these customers (ratio of expected
    concordant pairs to expected positive-negative pairs, ties counting one half)."""
    p = np.asarray(p, dtype=np.float64)
    # per tie group of scores: expected positives times the expected negatives ranked below,
    # plus half of those tied with them
    order = np.argsort(p, kind="stable")
    q = 1.0 - p[order]
    sorted_p = p[order]
    starts = np.flatnonzero(np.r_[True, np.diff(sorted_p) > 0])
    group_neg = np.add.reduceat(q, starts)
    group_pos = np.add.reduceat(sorted_p, starts)
    below = np.cumsum(group_neg) - group_neg
    concordant = np.sum(group_pos * (below + 0.5 * group_neg))
    # remove the self pairs (i, i): each sits in its own tie group with weight 1/2 p_i (1 - p_i)
    self_pairs = float(np.sum(p * (1 - p)))
    concordant -= 0.5 * self_pairs
    total = p.sum() * (1 - p).sum() - self_pairs
    return float(concordant / total) if total > 0 else float("nan")


def simulated_roc_auc(p: np.ndarray, simulations: int = SIMULATIONS, seed: int = 0) -> np.ndarray:
    """ROC-AUCs a calibrated model would realise: labels drawn Bernoulli(p), ``simulations``
    times (the spread of the estimate, and the reference computation its test checks)."""
    p = np.asarray(p, dtype=np.float64)
    ranks = _ranks(p)
    rng = np.random.default_rng(seed)
    out = np.empty(simulations)
    for start in range(0, simulations, 50):
        size = min(50, simulations - start)
        y = rng.random((size, len(p))) < p[None, :]
        pos = y.sum(axis=1).astype(np.float64)
        neg = len(p) - pos
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + size] = (y @ ranks - pos * (pos + 1) / 2) / (pos * neg)
    return out


@dataclass(frozen=True)
class Estimate:
    """Expected metrics of the current scores and the spread of the realised ROC-AUC."""

    rows: int
    churn_rate: float
    roc_auc: float
    roc_auc_low: float
    roc_auc_high: float
    brier: float
    lift_top10: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.__dict__.items()}


def estimate_performance(p: np.ndarray, seed: int = 0) -> Estimate:
    """CBPE for one scoring: expected churn rate, ROC-AUC (with the interval a calibrated model
    would realise), Brier score ``mean p (1 - p)`` and lift of the top 10 %."""
    p = np.asarray(p, dtype=np.float64)
    p = p[np.isfinite(p)]
    if len(p) < 2:
        raise InsufficientDataError("Performance estimation needs at least 2 scored customers.")
    draws = simulated_roc_auc(p, seed=seed)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.nanquantile(draws, [tail, 1 - tail])
    top = np.sort(p)[::-1][: max(1, round(0.1 * len(p)))]
    rate = float(p.mean())
    return Estimate(
        len(p),
        rate,
        estimated_roc_auc(p),
        float(low),
        float(high),
        float(np.mean(p * (1 - p))),
        float(top.mean() / rate) if rate > 0 else float("nan"),
    )


def closed_scorings(
    as_of_dates: list[date], horizon_days: int, lead_days: int, observed_until: date
) -> list[date]:
    """The scorings whose horizon ``[as_of + lead, as_of + lead + horizon)`` has ended by the
    export date: only their labels are known."""
    reach = timedelta(days=lead_days + horizon_days)
    return sorted(d for d in set(as_of_dates) if d + reach <= observed_until)


def realised_performance(
    history: pd.DataFrame,
    labels: pd.DataFrame,
    promised: Mapping[str, float] | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Realised metrics per scoring (as_of, model_version) and per tier.

    ``history``: score-history rows (customer_id, as_of, model_version, churn_probability, tier);
    ``labels``: customer_id, as_of, churned, label_complete from a later export. Rows without a
    complete label (the customer churned in the lead time, or a late renewal may still undo it)
    are left out. ``promised``: the model card's test-window metrics; each scoring gets
    ``below_promised`` when its ROC-AUC interval lies under the promised ROC-AUC.
    """
    keys = ["customer_id", "as_of"]
    hist = history.assign(
        as_of=pd.to_datetime(history["as_of"]).dt.date,
        customer_id=history["customer_id"].astype(str),
    )
    lab = labels.assign(
        as_of=pd.to_datetime(labels["as_of"]).dt.date, customer_id=labels["customer_id"].astype(str)
    )
    lab = lab[lab["label_complete"].astype(bool)][[*keys, "churned"]]
    joined = hist.merge(lab, on=keys, how="inner", validate="many_to_one")
    rows, tiers = [], []
    for (as_of, version), group in joined.groupby(["as_of", "model_version"], sort=True):
        y = group["churned"].to_numpy(np.int64)
        p = group["churn_probability"].to_numpy(np.float64)
        record: dict[str, object] = {
            "as_of": as_of,
            "model_version": str(version),
            "rows": len(group),
            "churn_rate": float(y.mean()),
        }
        try:
            metrics = evaluate(y, p)
        except InsufficientDataError:
            metrics = {}
        for key in REALISED_KEYS:
            record[key] = float(metrics.get(key, np.nan))
        low, high = auc_interval(y, p, 500, CONFIDENCE, seed) if metrics else (np.nan, np.nan)
        record["roc_auc_low"], record["roc_auc_high"] = low, high
        record["estimated_roc_auc"] = estimated_roc_auc(p)
        if promised is not None and "roc_auc" in promised:
            record["promised_roc_auc"] = float(promised["roc_auc"])
            record["below_promised"] = bool(np.isfinite(high) and high < promised["roc_auc"])
        rows.append(record)
        for tier, part in group.groupby("tier", sort=True):
            ty = part["churned"].to_numpy(np.float64)
            tp = part["churn_probability"].to_numpy(np.float64)
            tiers.append(
                {
                    "as_of": as_of,
                    "model_version": str(version),
                    "tier": str(tier),
                    "rows": len(part),
                    "churn_rate": float(ty.mean()),
                    "predicted_rate": float(tp.mean()),
                    "brier": float(np.mean((tp - ty) ** 2)),
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(tiers)

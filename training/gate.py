"""The promotion gate's statistics: paired bootstrap of the ROC-AUC gain on the same rows.

Two models scored on the same test rows are compared by resampling those rows (Poisson
weights, the same for both models, so the comparison is paired) and reading the interval of
the ROC-AUC difference. A gain whose lower bound is not above zero is inside the noise.
"""

from __future__ import annotations

import numpy as np


def _weighted_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``scores`` under each row of ``weights`` (b x n); ties count one half."""
    order = np.argsort(scores, kind="stable")
    s, labels, w = scores[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, np.diff(s) > 0])  # first row of each tie group
    pos = np.add.reduceat(w * labels, starts, axis=1)
    neg = np.add.reduceat(w * (1 - labels), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    total = pos.sum(axis=1) * neg.sum(axis=1)
    return np.asarray((pos * (below + 0.5 * neg)).sum(axis=1) / np.where(total > 0, total, np.nan))


def paired_auc_gain(
    y: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
    replicates: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(gain, lower, upper): challenger minus champion ROC-AUC and its bootstrap interval."""
    y = np.asarray(y, dtype=np.float64)
    ones = np.ones((1, len(y)))
    gain = float(_weighted_auc(challenger, y, ones)[0] - _weighted_auc(champion, y, ones)[0])
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, replicates, 100):
        weights = rng.poisson(1.0, (min(100, replicates - start), len(y))).astype(np.float64)
        diffs.append(_weighted_auc(challenger, y, weights) - _weighted_auc(champion, y, weights))
    spread = np.concatenate(diffs)
    tail = (1 - confidence) / 2
    lower, upper = np.nanquantile(spread, [tail, 1 - tail])
    return gain, float(lower), float(upper)


def auc_interval(
    y: np.ndarray,
    scores: np.ndarray,
    replicates: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap interval of one model's ROC-AUC (Poisson weights, as for the gain)."""
    y = np.asarray(y, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = [
        _weighted_auc(np.asarray(scores, dtype=np.float64), y,
                      rng.poisson(1.0, (min(100, replicates - start), len(y))).astype(np.float64))
        for start in range(0, replicates, 100)
    ]  # fmt: skip
    tail = (1 - confidence) / 2
    lower, upper = np.nanquantile(np.concatenate(draws), [tail, 1 - tail])
    return float(lower), float(upper)

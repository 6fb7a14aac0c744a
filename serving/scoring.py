"""The one scoring core: feature matrix in; probability, health score, tier and drivers out.

``churn score-all``, the API's batch and live paths and Spark all call :func:`score_matrix`, so a
number in a ``/score`` response is computed the same way wherever it comes from:

- contributions: exact TreeSHAP from LightGBM (``pred_contrib``) on the calibrated log-odds
  scale (``ChurnModel.contributions``), in chunks of rows across all cores for batches and with
  ``num_threads=1`` for one live row;
- probability: the sigmoid of each row's contribution sum (= Platt's ``a * margin + b``), so the
  explanation adds up to exactly the probability shown and no second tree walk is needed;
- health score and tier: the model's score map (a vectorised ``np.interp``) and ``tier_of``;
- top drivers: ``np.argpartition`` on ``|contribution|``, then the k picked sorted, strongest
  first (``top_drivers``).

Units: contributions and the base value are calibrated log-odds; the probability is the chance
of churning within ``model.horizon_days`` after ``as_of``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import Feature
from features.tiers import tier_of
from training.model import ChurnModel

CHUNK_ROWS = 20_000  # rows per pred_contrib call: large enough for all cores, bounded memory


@dataclass(frozen=True, eq=False)
class ScoredBatch:
    """Scores of n customers, row-aligned with the matrix they came from."""

    probability: np.ndarray  # (n,) calibrated churn probability within the horizon
    health_score: np.ndarray  # (n,) 0-100, higher = healthier, one decimal
    tier: np.ndarray  # (n,) object: healthy / low / medium / high
    contributions: np.ndarray  # (n, f + 1) calibrated log-odds; last column = base value
    top: np.ndarray  # (n, k) feature indices, strongest |contribution| first

    def __len__(self) -> int:
        return len(self.probability)


def top_drivers(contributions: np.ndarray, k: int, missing: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` largest ``|contribution|`` per row, strongest first.

    ``contributions`` holds the feature columns only. ``argpartition`` picks the k in linear time;
    only those k are sorted. The result of a row depends on that row alone (batch == single).
    ``missing`` (n x f, :func:`unknown_values`) ranks those features after every known one:
    "no data" is not a reason a CSM can act on, and a CRM that sends ``null`` for what it does
    not hold must not see its own gaps as the top drivers (:meth:`Explainer.drivers` drops them
    from the list).
    """
    n, f = contributions.shape
    k = max(0, min(k, f))
    if k == 0:
        return np.empty((n, 0), dtype=np.intp)
    strength = -np.abs(contributions)
    if missing is not None:
        strength = np.where(missing, np.inf, strength)
    if k == f:
        return np.argsort(strength, axis=1, kind="stable")
    picked = np.argpartition(strength, k - 1, axis=1)[:, :k]
    order = np.argsort(np.take_along_axis(strength, picked, axis=1), axis=1, kind="stable")
    return np.take_along_axis(picked, order, axis=1)


def score_matrix(
    model: ChurnModel,
    X: np.ndarray,
    k: int,
    num_threads: int = 0,
    chunk_rows: int = CHUNK_ROWS,
) -> ScoredBatch:
    """Score an encoded feature matrix (``model.encode`` / ``encode_row``)."""
    n, f = X.shape[0], len(model.features)
    contributions = np.empty((n, f + 1), dtype=np.float64)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        contributions[start:stop] = model.contributions(X[start:stop], num_threads)
    return from_contributions(model, contributions, k, X)


def from_contributions(
    model: ChurnModel, contributions: np.ndarray, k: int, X: np.ndarray | None = None
) -> ScoredBatch:
    """Probability, health, tier and top drivers of precomputed contributions (score store);
    ``X``, the encoded values, ranks missing values last (:func:`top_drivers`)."""
    f = len(model.features)
    logit = contributions.sum(axis=1)
    probability = 1.0 / (1.0 + np.exp(-logit))
    health = model.health(probability)
    return ScoredBatch(
        probability=probability,
        health_score=health,
        tier=np.asarray(tier_of(health), dtype=object),
        contributions=contributions,
        top=top_drivers(contributions[:, :f], k, None if X is None else unknown_values(model, X)),
    )


def unknown_values(model: ChurnModel, X: np.ndarray) -> np.ndarray:
    """True where a value is missing and its catalog entry gives missing no meaning (no
    ``missing`` sentence): those never rank as drivers. A missing value that means something
    ("no NPS answer yet") still may."""
    silent = np.array([not model.info(name).missing for name in model.features], dtype=bool)
    return np.isnan(X) & silent


def score_frame(
    model: ChurnModel, frame: pd.DataFrame, k: int, num_threads: int = 0
) -> ScoredBatch:
    """Score the feature columns of ``frame`` (a snapshot or any table with them)."""
    return score_matrix(model, model.encode(frame), k, num_threads)


def direction(contribution: float) -> str:
    """How a contribution moves the churn risk, in words."""
    if contribution > 0:
        return "raises risk"
    if contribution < 0:
        return "lowers risk"
    return "no effect"


class Explainer:
    """Turns a model's encoded values and contributions into catalog words.

    Built once per loaded model: the catalog entry and category levels of each feature are looked
    up here, not per request.
    """

    def __init__(self, model: ChurnModel) -> None:
        self.features = list(model.features)
        self.info: list[Feature] = [model.info(name) for name in self.features]
        self.levels: list[list[str] | None] = [model.categories.get(n) for n in self.features]
        self.silent = np.array([not info.missing for info in self.info], dtype=bool)

    def value(self, j: int, encoded: float) -> float | str | None:
        """The value the model saw: a number, a category level, or None for missing."""
        if encoded != encoded:  # NaN
            return None
        levels = self.levels[j]
        if levels is not None:
            return levels[int(encoded)]
        return float(encoded)

    def sentence(self, j: int, encoded: float) -> str:
        """The catalog sentence of feature ``j`` at one encoded value (what :meth:`driver`
        says), without building the rest of the driver: the score store writes millions."""
        return self.info[j].explain(self.value(j, encoded))

    def driver(self, j: int, encoded: float, contribution: float) -> dict[str, Any]:
        value = self.value(j, encoded)
        info = self.info[j]
        return {
            "feature": info.name,
            "group": info.group,
            "value": value,
            "contribution": float(contribution),
            "direction": direction(contribution),
            "sentence": info.explain(value),
        }

    def drivers(self, x: np.ndarray, contributions: np.ndarray, top: np.ndarray) -> list[dict]:
        """The ``top_drivers`` list of one row (``top`` = indices from :func:`top_drivers`),
        without missing values (ranked last there, dropped here)."""
        return [
            self.driver(int(j), x[j], contributions[j])
            for j in top
            if x[j] == x[j] or not self.silent[j]
        ]

    def risk_drivers(self, x: np.ndarray, contributions: np.ndarray, n: int) -> list[str]:
        """Names of the ``n`` strongest risk-raising features of one row with a value (for the
        playbook: a refinement is never chosen by a value nobody knows)."""
        f = len(self.features)
        rising = np.flatnonzero((contributions[:f] > 0) & ~(np.isnan(x[:f]) & self.silent))
        if rising.size == 0:
            return []
        order = rising[np.argsort(-contributions[rising], kind="stable")][:n]
        return [self.features[j] for j in order]


def scores_table(
    model: ChurnModel,
    customer_ids: np.ndarray,
    as_of: np.ndarray,
    X: np.ndarray,
    scored: ScoredBatch,
) -> pd.DataFrame:
    """The score store as a table: one row per customer with scores, every contribution and the
    top drivers in words (``driver_i_*``), for Parquet, Spark and CRM exports."""
    f = len(model.features)
    columns: dict[str, Any] = {
        "customer_id": pd.array(customer_ids, dtype="string"),
        "as_of": as_of,
        "churn_probability": scored.probability,
        "health_score": scored.health_score,
        "tier": pd.array(scored.tier.astype(str), dtype="string"),
        "base_value": scored.contributions[:, f],
    }
    for j, name in enumerate(model.features):
        columns[f"contribution.{name}"] = scored.contributions[:, j]
    explainer = Explainer(model)
    rows = np.arange(len(scored))
    for rank in range(scored.top.shape[1]):
        idx = scored.top[:, rank]
        contribution = scored.contributions[rows, idx]
        columns[f"driver_{rank + 1}_feature"] = np.asarray(model.features, dtype=object)[idx]
        columns[f"driver_{rank + 1}_contribution"] = contribution
        sentence = explainer.sentence
        columns[f"driver_{rank + 1}_sentence"] = [
            sentence(j, value) for j, value in zip(idx.tolist(), X[rows, idx].tolist(), strict=True)
        ]
    return pd.DataFrame(columns)

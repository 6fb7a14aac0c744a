"""The churn model as served: a LightGBM booster, its Platt calibration and the health-score map.

One object, saved as two small files (``model.txt`` from LightGBM, ``model.json`` with the
feature list, categories, calibration and score anchors), loaded by the MLflow pyfunc, the API,
batch scoring and Spark alike, so every path computes the same numbers.

Why Platt scaling: the calibrated log-odds are ``a * margin + b``, an affine map of the booster's
margin. TreeSHAP contributions sum to the margin, so ``a * contribution`` sum exactly to the
calibrated log-odds (with base value ``a * base + b``): the explanation adds up to the
probability the user sees. Isotonic regression would break that identity.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalog import (
    CATALOG_VERSION,
    Feature,
    entries_from_json,
    entries_to_json,
    feature_info,
)
from features.tiers import TIER_NAMES, TIER_THRESHOLDS


@dataclass
class ScoreMap:
    """Probability -> health score, piecewise linear through the tier boundaries.

    ``anchors`` are the probabilities at the tier thresholds (health 80, 60 and 40). By default
    they are the training base rate r, 2r and 4r: *healthy* means no riskier than the average
    customer, *low risk* up to twice, *medium* up to four times, *high risk* more. Absolute
    probabilities can be configured.
    """

    anchors: tuple[float, float, float]

    @classmethod
    def from_base_rate(cls, rate: float) -> ScoreMap:
        r = float(np.clip(rate, 1e-4, 0.2))
        return cls((r, 2 * r, 4 * r))

    def health(self, probability: np.ndarray) -> np.ndarray:
        xs = np.array([0.0, *self.anchors, 1.0])
        ys = np.array([100.0, *TIER_THRESHOLDS, 0.0])
        # whole points, like the hand-weighted scores it replaces; the tier is read from the same
        # rounded number, so a displayed 40 is never "high risk"
        return np.round(np.interp(probability, xs, ys))


def platt_contributions(raw: np.ndarray, platt: tuple[float, float]) -> np.ndarray:
    """TreeSHAP contributions of the raw margin moved to the Platt-calibrated log-odds: Platt is
    affine in the margin, so each column scales by ``a`` and the base value takes ``b``."""
    a, b = platt
    scaled = raw * a
    scaled[:, -1] += b
    return scaled


def encode_frame(
    frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]
) -> np.ndarray:
    """``features`` of ``frame`` as a float64 matrix, categoricals as codes of ``categories``
    (unseen or missing -> NaN): the one encoding of the classifier and the hazard model."""
    out = np.empty((len(frame), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        column = frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)
        if name in categories:
            codes = pd.Categorical(column.astype("string"), categories=categories[name])
            out[:, j] = np.where(codes.codes < 0, np.nan, codes.codes)
        else:
            out[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    return out


@dataclass
class ChurnModel:
    """Booster + encoding + calibration; numbers in, probabilities and explanations out."""

    booster: lgb.Booster
    features: list[str]
    categories: dict[str, list[str]]
    platt: tuple[float, float]
    score_map: ScoreMap
    horizon_days: int
    label: str
    meta: dict[str, Any] = field(default_factory=dict)
    catalog: dict[str, Feature] = field(default_factory=dict)
    """Catalog entries of the features generated from the training export's vocabulary and
    attributes: the model keeps explaining itself when a later export's vocabulary differs."""
    vocabulary: dict[str, list[str]] = field(default_factory=dict)
    """The event types and features that had their own columns (``features.vocabulary``): a
    snapshot of a later export is built with it (``churn snapshot --model``), so the model
    finds every column it was trained on."""
    survival: Any = None
    """The time-to-churn model fitted beside it (``training.survival.SurvivalModel``), saved
    in the same folder under ``survival/``; None for models trained without durations."""
    _code_cache: dict[str, dict[Any, float]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    # ----- encoding: one float matrix, categoricals as codes (unseen or missing -> NaN) -----
    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Feature columns of ``frame`` as the float64 matrix the booster reads."""
        return encode_frame(frame, self.features, self.categories)

    def encode_row(self, values: dict[str, Any]) -> np.ndarray:
        """One customer's features (already validated) as a 1 x k matrix, with no DataFrame."""
        return self.encode_rows([values])

    def encode_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Several customers' validated features as one n x k matrix (one allocation)."""
        codes = self._codes()
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for i, values in enumerate(rows):
            for j, name in enumerate(self.features):
                value = values.get(name)
                if name in codes:
                    out[i, j] = codes[name].get(value, np.nan)  # unseen or missing -> NaN
                else:
                    out[i, j] = np.nan if value is None else float(value)
        return out

    def _codes(self) -> dict[str, dict[Any, float]]:
        """Category -> code lookups, built once: the live path must not scan level lists."""
        if self._code_cache is None:
            self._code_cache = {
                name: {level: float(i) for i, level in enumerate(levels)}
                for name, levels in self.categories.items()
            }
        return self._code_cache

    # ----- scores -----
    def margin(self, X: np.ndarray, num_threads: int = 0) -> np.ndarray:
        return np.asarray(self.booster.predict(X, raw_score=True, num_threads=num_threads))

    def calibrated_logit(self, margin: np.ndarray) -> np.ndarray:
        a, b = self.platt
        return a * margin + b

    def probability(self, X: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """Calibrated chance of churning within the horizon."""
        return 1.0 / (1.0 + np.exp(-self.calibrated_logit(self.margin(X, num_threads))))

    def health(self, probability: np.ndarray) -> np.ndarray:
        return self.score_map.health(probability)

    def contributions(self, X: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """Exact TreeSHAP on the calibrated log-odds scale: k feature columns + the base value.

        Each row sums to the calibrated log-odds (see the module docstring).
        """
        raw = np.asarray(self.booster.predict(X, pred_contrib=True, num_threads=num_threads))
        return platt_contributions(raw, self.platt)

    # ----- persistence -----
    def save(self, folder: Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "model.txt"))
        meta = {
            "features": self.features,
            "categories": self.categories,
            "platt": list(self.platt),
            "score_anchors": list(self.score_map.anchors),
            "tier_thresholds": list(TIER_THRESHOLDS),
            "tiers": list(TIER_NAMES),
            "horizon_days": self.horizon_days,
            "label": self.label,
            "catalog_version": CATALOG_VERSION,
            "catalog": entries_to_json(self.catalog.values()),
            "vocabulary": self.vocabulary,
            "meta": self.meta,
        }
        (folder / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if self.survival is not None:
            self.survival.save(folder / "survival")
        return folder

    @classmethod
    def load(cls, folder: Path) -> ChurnModel:
        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        booster = lgb.Booster(model_file=str(folder / "model.txt"))
        from training.survival import SurvivalModel  # it encodes with this module's function

        survival = (
            SurvivalModel.load(folder / "survival")
            if SurvivalModel.exists(folder / "survival")
            else None
        )
        return cls(
            booster=booster,
            features=list(meta["features"]),
            categories={k: list(v) for k, v in meta["categories"].items()},
            platt=(float(meta["platt"][0]), float(meta["platt"][1])),
            score_map=ScoreMap(tuple(meta["score_anchors"])),
            horizon_days=int(meta["horizon_days"]),
            label=str(meta["label"]),
            meta=dict(meta.get("meta", {})),
            catalog=entries_from_json(meta.get("catalog", [])),
            vocabulary={k: list(v) for k, v in meta.get("vocabulary", {}).items()},
            survival=survival,
        )

    def info(self, name: str) -> Feature:
        """The catalog entry of one of the model's features."""
        return feature_info(name, self.catalog)

    def describe(self) -> dict[str, Any]:
        return {
            "features": len(self.features),
            "trees": self.booster.num_trees(),
            "platt": asdict(self.score_map) | {"a": self.platt[0], "b": self.platt[1]},
        }

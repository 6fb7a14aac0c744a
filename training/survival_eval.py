"""Survival metrics and baselines on a held-out window: Uno's C, the integrated Brier score,
Kaplan–Meier per segment and Cox proportional hazards (scikit-survival's implementations).

Time convention: a labeled row's churn on day ``T`` after as_of (``duration_days``) is an event
at ``T + 1`` here, so ``S(t)`` = P(still a customer on day t) = P(time > t), scikit-survival's
convention; a censored row known to stay ``c`` days is censored at ``c``. Censoring weights
(IPCW) are estimated on the evaluated rows themselves: their censoring comes from the export
date, which training rows cut at the test start do not share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_ipcw, integrated_brier_score
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from features.errors import InsufficientDataError
from training.fit import logistic_frame
from training.periods import DURATION, OBSERVED

COX_MAX_ROWS = 20_000
COX_RIDGE = 1.0
SEGMENT_MIN_ROWS = 50  # a segment with fewer training rows uses the pooled curve


def outcomes_array(labeled: pd.DataFrame) -> np.ndarray:
    """scikit-survival's structured (event, time) array of labeled rows."""
    event = labeled[OBSERVED].to_numpy(bool)
    duration = labeled[DURATION].to_numpy(np.float64)
    return Surv.from_arrays(event, np.where(event, duration + 1.0, duration))


def evaluation_times(test: np.ndarray, cap: float, step: float = 15.0) -> np.ndarray:
    """Times for the integrated Brier score: every ``step`` days inside the test follow-up."""
    upper = min(cap, float(np.max(test["time"])) - 1.0)
    lower = max(step, float(np.min(test["time"])))
    times = np.arange(lower, upper, step)
    if len(times) < 2:
        raise InsufficientDataError(
            f"The test window's follow-up ({upper:.0f} days) is too short to integrate a Brier "
            "score; use a longer export or an earlier test window."
        )
    return times


def survival_metrics(
    test: np.ndarray, survival: np.ndarray, times: np.ndarray, risk: np.ndarray, tau: float
) -> dict[str, float]:
    """Uno's IPCW concordance of ``risk`` up to ``tau`` and the IBS of ``survival`` at ``times``."""
    c_index = concordance_index_ipcw(test, test, risk, tau=tau)[0]
    ibs = integrated_brier_score(test, test, np.clip(survival, 0.0, 1.0), times)
    return {"c_index_ipcw": float(c_index), "ibs": float(ibs), "tau_days": float(tau)}


def _step(x: np.ndarray, y: np.ndarray, times: np.ndarray) -> np.ndarray:
    """A right-continuous step function (KM's) at ``times``; 1 before the first step."""
    idx = np.searchsorted(x, times, side="right") - 1
    return np.where(idx >= 0, y[np.clip(idx, 0, None)], 1.0)


@dataclass
class KaplanMeier:
    """Kaplan–Meier curves per segment (a categorical column), pooled for small segments."""

    segment: str | None
    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    pooled: tuple[np.ndarray, np.ndarray]

    @classmethod
    def fit(cls, train: pd.DataFrame, segment: str | None) -> KaplanMeier:
        y = outcomes_array(train)
        pooled = kaplan_meier_estimator(y["event"], y["time"])[:2]
        curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if segment is not None and segment in train:
            keys = train[segment].astype("string").fillna("(missing)").to_numpy()
            for key in np.unique(keys):
                mask = keys == key
                if mask.sum() >= SEGMENT_MIN_ROWS:
                    curves[str(key)] = kaplan_meier_estimator(y["event"][mask], y["time"][mask])[:2]
        return cls(segment, curves, (np.asarray(pooled[0]), np.asarray(pooled[1])))

    def survival(self, frame: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        out = np.tile(_step(*self.pooled, times), (len(frame), 1))
        if self.segment is None or self.segment not in frame:
            return out
        keys = frame[self.segment].astype("string").fillna("(missing)").to_numpy()
        for key, (x, y) in self.curves.items():
            out[keys == key] = _step(x, y, times)
        return out


def default_segment(frame: pd.DataFrame) -> str | None:
    """The segment KM is stratified by: ``plan`` when the export has one, else none."""
    return "plan" if "plan" in frame and frame["plan"].notna().any() else None


@dataclass
class CoxBaseline:
    """Cox PH on standardized, median-imputed features (one-hot categoricals), lightly ridged."""

    prep: Pipeline
    model: CoxPHSurvivalAnalysis
    features: list[str]
    categorical: list[str]

    @classmethod
    def fit(
        cls, train: pd.DataFrame, features: list[str], categorical: list[str], seed: int
    ) -> CoxBaseline:
        if len(train) > COX_MAX_ROWS:
            train = train.sample(COX_MAX_ROWS, random_state=seed)
        numeric = [f for f in features if f not in categorical]
        prep = Pipeline([("prep", ColumnTransformer([
            ("num", make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                StandardScaler()), numeric),
            ("cat", make_pipeline(
                SimpleImputer(strategy="constant", fill_value="missing"),
                OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False)),
             categorical),
        ]))])  # fmt: skip
        X = prep.fit_transform(logistic_frame(train, features, categorical))
        model = CoxPHSurvivalAnalysis(alpha=COX_RIDGE, n_iter=100)
        model.fit(X, outcomes_array(train))
        return cls(prep, model, features, categorical)

    def _x(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(
            self.prep.transform(logistic_frame(frame, self.features, self.categorical))
        )

    def survival(self, frame: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        functions = self.model.predict_survival_function(self._x(frame), return_array=True)
        grid = self.model.unique_times_
        return np.asarray([_step(grid, f, times) for f in functions])

    def risk(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(self._x(frame)))

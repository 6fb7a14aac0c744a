"""The hand-weighted health score: the baseline a customer-success team builds without a model.

Four sub-scores (usage, support, commercial, engagement by default), each the mean of a few
indicators scaled 0-100, combined by fixed weights into a 0-100 score (higher = healthier). The
model has to beat this to be worth its complexity, so it is built the way CS teams build theirs,
with one guard against leakage: every scaling rule is fitted on the *training* rows only.

Scaling rule: an indicator's score is the share of training rows (x 100) that the value is at
least as healthy as, in the direction the config gives. For ``lower`` (e.g. open tickets) a
customer with none scores 100 even when most customers have none: ties count in the customer's
favour, so a common healthy value is not penalised for being common.

Missing data: an indicator that is NaN for a row is skipped in that row's sub-score; a sub-score
with no indicator is skipped and the other weights renormalised, so a data set without an NPS
table still gets a score. Definition, defaults and how to change them: ``docs/health-score.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.catalog import BY_NAME
from features.errors import ChurnError, InsufficientDataError
from features.tiers import TIER_NAMES, TIER_THRESHOLDS, UNKNOWN_TIER, tier_of
from features.yaml_config import ConfigFile, first_repeat

Direction = Literal["higher", "lower"]

DEFAULT_CONFIG_PATH = Path(__file__).with_name("health_score.yaml")

TIERS = TIER_NAMES  # healthiest to riskiest; the tier table is features/tiers.py


class HealthScoreConfigError(ChurnError):
    """The health-score config file is missing, unreadable or invalid."""


class SubScoreConfig(BaseModel):
    """One sub-score: its relative weight and its indicators with their healthy direction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(ge=0, allow_inf_nan=False)
    indicators: dict[str, Direction] = Field(min_length=1)

    @field_validator("indicators")
    @classmethod
    def _numeric_catalog_features(cls, indicators: dict[str, Direction]) -> dict[str, Direction]:
        for name in indicators:
            feature = BY_NAME.get(name)
            if feature is None:
                raise ValueError(
                    f"'{name}' is not a feature of features/catalog.py; use a catalog name"
                )
            if feature.kind != "numeric":
                raise ValueError(f"'{name}' is categorical; indicators must be numeric")
        return indicators


class TierThresholds(BaseModel):
    """Lower bound of each tier on the 0-100 score; below ``medium`` is high risk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    healthy: float = TIER_THRESHOLDS[0]
    low: float = TIER_THRESHOLDS[1]
    medium: float = TIER_THRESHOLDS[2]

    @model_validator(mode="after")
    def _decreasing(self) -> TierThresholds:
        if not 100 >= self.healthy > self.low > self.medium >= 0:
            raise ValueError(
                "tier thresholds must satisfy 100 >= healthy > low > medium >= 0, got "
                f"healthy={self.healthy}, low={self.low}, medium={self.medium}"
            )
        return self

    @property
    def bounds(self) -> tuple[float, float, float]:
        """The thresholds as ``tier_of`` takes them."""
        return (self.healthy, self.low, self.medium)


class HealthScoreConfig(BaseModel):
    """Sub-scores with weights and indicators, and tier thresholds (``health_score.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sub_scores: dict[str, SubScoreConfig] = Field(min_length=1)
    tiers: TierThresholds = Field(default_factory=TierThresholds)

    @model_validator(mode="after")
    def _consistent(self) -> HealthScoreConfig:
        if sum(s.weight for s in self.sub_scores.values()) <= 0:
            raise ValueError("at least one sub-score needs a weight above 0")
        repeat = first_repeat({g: s.indicators for g, s in self.sub_scores.items()})
        if repeat is not None:
            name, first, second = repeat
            raise ValueError(
                f"indicator '{name}' is in both '{first}' and '{second}'; "
                "list it in one sub-score only"
            )
        return self


HEALTH_SCORE_FILE = ConfigFile(
    HealthScoreConfig, "health-score config", "docs/health-score.md", HealthScoreConfigError
)


def config_from_mapping(raw: object, source: str = "<mapping>") -> HealthScoreConfig:
    """Validate a parsed config; errors name the offending key and the ``source`` file."""
    return HEALTH_SCORE_FILE.validate(raw, source)


def load_config(path: str | Path | None = None) -> HealthScoreConfig:
    """Read a health-score config from YAML; ``None`` reads the packaged default."""
    return HEALTH_SCORE_FILE.read(
        Path(path) if path is not None else DEFAULT_CONFIG_PATH,
        hint=f"Pass an existing YAML file, or no path for the packaged default "
        f"({DEFAULT_CONFIG_PATH.name}).",
    )


@dataclass(frozen=True, eq=False)  # numpy fields: compare by identity
class IndicatorScale:
    """One indicator's 0-100 rule, fitted on training rows: the empirical CDF of its values.

    ``at_most[i]`` is the share of training rows with a value ``<= values[i - 1]``
    (``at_most[0] = 0``), so scaling a value is one ``searchsorted``.
    """

    name: str
    direction: Direction
    values: np.ndarray  # distinct training values, ascending
    at_most: np.ndarray  # len(values) + 1 shares, starting at 0

    @classmethod
    def fit(cls, name: str, direction: Direction, train_values: np.ndarray) -> IndicatorScale:
        """The rule for ``name`` from its non-missing training values (at least one)."""
        present = train_values[~np.isnan(train_values)]
        values, counts = np.unique(present, return_counts=True)
        at_most = np.concatenate(([0.0], np.cumsum(counts) / present.size))
        return cls(name, direction, values, at_most)

    def scale(self, x: np.ndarray) -> np.ndarray:
        """0-100: the share of training rows ``x`` is at least as healthy as; NaN stays NaN."""
        if self.direction == "higher":
            share = self.at_most[np.searchsorted(self.values, x, side="right")]
        else:
            share = 1.0 - self.at_most[np.searchsorted(self.values, x, side="left")]
        return np.where(np.isnan(x), np.nan, np.clip(100.0 * share, 0.0, 100.0))


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    try:
        return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise ChurnError(
            f"Health-score indicator '{name}' must be numeric, got dtype {frame[name].dtype}: {exc}"
        ) from None


def _row_mean(columns: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted mean over the non-missing entries of each row; NaN where all are missing."""
    stacked = np.column_stack(columns)
    present = ~np.isnan(stacked)
    total = np.where(present, stacked, 0.0) @ weights
    weight = present.astype(np.float64) @ weights
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)


@dataclass(frozen=True, eq=False)
class HealthScore:
    """A fitted hand-weighted health score; build it with :meth:`fit`.

    ``scales`` holds the fitted indicators by sub-score; ``skipped`` the configured indicators
    that are absent or empty in the training rows (hence never used).
    """

    config: HealthScoreConfig
    scales: dict[str, tuple[IndicatorScale, ...]]
    skipped: tuple[str, ...]

    @classmethod
    def fit(cls, train: pd.DataFrame, config: HealthScoreConfig | None = None) -> HealthScore:
        """Fit every indicator's scaling rule on the training rows (never on test rows).

        Labels are not used: the rule is a percentile against the training population.
        """
        config = config or load_config()
        if len(train) == 0:
            raise InsufficientDataError("Cannot fit the health score on an empty training set.")
        scales: dict[str, tuple[IndicatorScale, ...]] = {}
        skipped: list[str] = []
        for group, sub in config.sub_scores.items():
            fitted = []
            for name, direction in sub.indicators.items():
                if name not in train.columns:
                    skipped.append(name)
                    continue
                values = _column(train, name)
                if np.isnan(values).all():
                    skipped.append(name)
                    continue
                fitted.append(IndicatorScale.fit(name, direction, values))
            if fitted:
                scales[group] = tuple(fitted)
        if not scales:
            configured = [n for s in config.sub_scores.values() for n in s.indicators]
            raise InsufficientDataError(
                "None of the health-score indicators has data in the training rows "
                f"(looked for {', '.join(configured)}). Check the export or the config."
            )
        if sum(config.sub_scores[g].weight for g in scales) <= 0:
            raise HealthScoreConfigError(
                f"Every sub-score with data ({', '.join(scales)}) has weight 0; give one a weight."
            )
        return cls(config, scales, tuple(skipped))

    @property
    def indicators(self) -> list[str]:
        """The indicators in use, in config order."""
        return [s.name for group in self.scales.values() for s in group]

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [name for name in self.indicators if name not in frame.columns]
        if missing:
            raise ChurnError(
                f"Cannot compute the health score: column(s) {', '.join(missing)} were in the "
                "training rows but are missing here. Score data built from the same export."
            )

    def indicator_scores(self, frame: pd.DataFrame) -> pd.DataFrame:
        """0-100 score of every indicator in use (NaN where the value is missing)."""
        self._check_columns(frame)
        return pd.DataFrame(
            {s.name: s.scale(_column(frame, s.name)) for g in self.scales.values() for s in g},
            index=frame.index,
        )

    def sub_scores(self, frame: pd.DataFrame) -> pd.DataFrame:
        """0-100 sub-scores: the plain mean of each group's non-missing indicator scores."""
        indicators = self.indicator_scores(frame)
        columns = {}
        for group, scales in self.scales.items():
            parts = [indicators[s.name].to_numpy() for s in scales]
            columns[group] = _row_mean(parts, np.ones(len(parts)))
        return pd.DataFrame(columns, index=frame.index)

    def score(self, frame: pd.DataFrame) -> pd.Series:
        """The 0-100 health score (higher = healthier): weighted mean of the available sub-scores.

        NaN only for a row with no indicator at all.
        """
        subs = self.sub_scores(frame)
        weights = np.array([self.config.sub_scores[g].weight for g in subs.columns])
        parts = [subs[g].to_numpy() for g in subs.columns]
        return pd.Series(_row_mean(parts, weights), index=frame.index, name="health_score")

    def risk(self, frame: pd.DataFrame) -> pd.Series:
        """``1 - score / 100``: a ranking score for ROC-AUC and lift, not a probability."""
        return (1.0 - self.score(frame) / 100.0).rename("health_risk")

    def tier(self, frame: pd.DataFrame) -> pd.Series:
        """Tier of each row under the config's thresholds."""
        scores = self.score(frame).to_numpy()
        return pd.Series(tier_of(scores, self.config.tiers.bounds), index=frame.index, name="tier")


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "TIERS",
    "TIER_THRESHOLDS",
    "UNKNOWN_TIER",
    "HealthScore",
    "HealthScoreConfig",
    "HealthScoreConfigError",
    "IndicatorScale",
    "SubScoreConfig",
    "TierThresholds",
    "config_from_mapping",
    "load_config",
    "tier_of",
]

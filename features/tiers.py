"""The health tiers: their names, the 0-100 health-score bounds, their labels and colours.

One table, read by the hand-weighted score and the model's score map (health score -> tier), the
rules (``rules.yaml`` tier filters), the playbook (one play per tier), the API schemas, the UI
(labels, chart bands, the colours of ``tier_stylesheet``) and checked against the docs by a test.
It lives in ``features/`` because every package above reads it.

What the team *does* per tier is not here: it is the CS team's to edit, in ``playbook.yaml``.
A tier ``low``, ``medium`` or ``high`` names a level of churn risk; a score exactly on a bound is
in the upper (healthier) tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args, overload

if TYPE_CHECKING:  # numpy is imported by tier_of only: rules.yaml readers start without it
    import numpy as np
    import pandas as pd

TierName = Literal["healthy", "low", "medium", "high"]


@dataclass(frozen=True)
class Tier:
    """One tier: scores ``>= floor`` (and below the tier above) belong to it."""

    name: TierName
    label: str  # what the UI and reports call it
    floor: float  # lower bound on the 0-100 health score
    colour: str  # charts, bands, edges
    text: str  # the tier as coloured text on white (readable, so darker where ``colour`` is pale)
    background: str  # chip background
    ink: str  # chip text
    border: str  # chip border


# Healthiest first. The floors of all but the last are the thresholds (80, 60, 40).
TIER_TABLE: tuple[Tier, ...] = (
    Tier("healthy", "Healthy", 80.0, "#2da44e", "#2da44e", "#dafbe1", "#116329", "#aceebb"),
    Tier("low", "Low risk", 60.0, "#d4a72c", "#b08800", "#fff8c5", "#7d4e00", "#eac54f"),
    Tier("medium", "Medium risk", 40.0, "#e16f24", "#e16f24", "#fff1e5", "#953800", "#ffb77c"),
    Tier("high", "High risk", 0.0, "#cf222e", "#cf222e", "#ffebe9", "#a40e26", "#ffcecb"),
)
TIER_NAMES: tuple[TierName, ...] = tuple(t.name for t in TIER_TABLE)
RISK_TIERS: tuple[TierName, ...] = TIER_NAMES[1:]  # the tiers that carry churn risk
# Lower bounds of every tier but the last, as ``tier_of`` takes them.
TIER_THRESHOLDS: tuple[float, float, float] = (
    TIER_TABLE[0].floor,
    TIER_TABLE[1].floor,
    TIER_TABLE[2].floor,
)
# 0 = healthiest; a drop of one step is a rank + 1.
TIER_RANK: dict[str, int] = {t.name: i for i, t in enumerate(TIER_TABLE)}
# Tier of a row with no score at all (every indicator missing).
UNKNOWN_TIER = "unknown"

if get_args(TierName) != TIER_NAMES:  # the static type must list the table's names, in order
    raise AssertionError(f"TierName {get_args(TierName)} differs from TIER_TABLE {TIER_NAMES}")


def tier_rule() -> str:
    """``healthy >= 80 > low >= 60 > medium >= 40 > high``: the bounds in one line (API docs)."""
    parts = [f"{t.name} >= {t.floor:g} >" for t in TIER_TABLE[:-1]]
    return " ".join([*parts, TIER_TABLE[-1].name])


@overload
def tier_of(score: float, thresholds: tuple[float, ...] = TIER_THRESHOLDS) -> str: ...
@overload
def tier_of(
    score: np.ndarray | pd.Series, thresholds: tuple[float, ...] = TIER_THRESHOLDS
) -> np.ndarray: ...
def tier_of(
    score: float | np.ndarray | pd.Series, thresholds: tuple[float, ...] = TIER_THRESHOLDS
) -> str | np.ndarray:
    """Tier names of 0-100 health scores; a score on a bound is in the upper tier.

    Shared by the hand-weighted score and the model's health score. No rounding: 79.99 is
    ``low``, 80 is ``healthy``. NaN (no data) gives ``UNKNOWN_TIER``. Arrays give an object array.
    """
    import numpy as np

    if len(thresholds) != len(TIER_NAMES) - 1:
        raise ValueError(f"need {len(TIER_NAMES) - 1} tier thresholds, got {len(thresholds)}")
    scores = np.asarray(score, dtype=np.float64)
    # On the negated (increasing) bounds, side="left" puts a score equal to a bound in the tier
    # above it.
    index = np.searchsorted(-np.asarray(thresholds, dtype=np.float64), -scores, side="left")
    index = np.where(np.isnan(scores), len(TIER_NAMES), index)
    names = np.asarray((*TIER_NAMES, UNKNOWN_TIER), dtype=object)
    if scores.ndim == 0:
        return str(names[int(index)])
    return names[index]


__all__ = [
    "RISK_TIERS",
    "TIER_NAMES",
    "TIER_RANK",
    "TIER_TABLE",
    "TIER_THRESHOLDS",
    "UNKNOWN_TIER",
    "Tier",
    "TierName",
    "tier_of",
    "tier_rule",
]

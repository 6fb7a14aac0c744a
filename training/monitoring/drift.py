"""Drift of the model's inputs and outputs: the champion's reference window against a new snapshot.

Why thresholds come from the sample sizes: a fixed PSI cut-off (0.1 / 0.25) ignores that the PSI
of two samples of one distribution shrinks like ``(1/n + 1/m) * (bins - 1)``. With 100 rows it
fires on most unchanged samples, with 10 000 it misses real shifts. Here every check is a test
with a p-value under "nothing changed", and the threshold is a significance level:

- numeric feature: PSI over equal-frequency bins of the pooled values, the effect reported; the
  p-value is Pearson's chi-square test of the same 2 x bins table. ``PSI * n m / (n + m)`` has
  the same chi-square null asymptotically (Yurdakul 2018, "Statistical properties of the
  population stability index"), but with a few rows per cell it runs large (a log of small
  counts): at 100 customers and the small per-feature levels Bonferroni asks for, the PSI null
  rejected 1.1-1.8x its level on unchanged data, Pearson's at most its level; missing values
  are a separate check;
- categorical feature: the same PSI over its levels (rare ones pooled), and levels never seen in
  the reference tested on their own (all ``c`` rows of a new level falling in the new sample has
  probability ``(m / (n + m)) ** c`` when both samples share one distribution);
- every feature: the missing rate (hypergeometric test on the 2 x 2 table) and a collapse to one
  value, the signature of a source that stopped (``share_of_that_value_in_reference ** m``).

A feature's checks are combined by Bonferroni (its smallest p-value times the number of checks).
Across features the level is split by the feature's share of the model's explanation (mean
|SHAP|), a weighted Bonferroni: the family-wise false-alarm rate stays below ``alpha`` while the
features the model leans on get most of the power, and a drifting unused feature is reported
but pages nobody (``alarm`` needs a share of at least ``min_share``), except for levels the model
never saw, which page whatever the share of a feature the model uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import special, stats

from churn_settings import MonitoringSettings

BINS = 10
RARE_LEVEL_ROWS = 5  # levels with fewer pooled rows join one "other" cell in the PSI test
SMOOTHING = 0.5  # added to each cell so an empty bin gives a finite PSI
FLOOR_WEIGHT = 0.2  # share of the level spread evenly, so unused features keep some power
KINDS = ("drift", "missing", "new_level", "collapsed")  # in the order of Check._ps


@dataclass(frozen=True)
class DriftConfig:
    """Significance and paging: ``alpha`` is the family-wise false-alarm rate of one run."""

    alpha: float = MonitoringSettings.model_fields["alpha"].default
    bins: int = BINS
    min_share: float = 0.02  # share of mean |SHAP| below which a drifting feature does not page


@dataclass(frozen=True)
class Check:
    """One feature's drift: the effect (PSI), the p-values of each check and the finding."""

    psi: float
    p_distribution: float
    p_missing: float
    p_new_level: float
    p_collapsed: float
    missing_reference: float
    missing_current: float
    new_levels: tuple[str, ...]

    @property
    def p_value(self) -> float:
        """Bonferroni over the checks that apply (NaN for a check that does not)."""
        ps = [p for p in self._ps() if np.isfinite(p)]
        return float(min(1.0, min(ps) * len(ps))) if ps else 1.0

    def _ps(self) -> tuple[float, float, float, float]:
        return (self.p_distribution, self.p_missing, self.p_new_level, self.p_collapsed)

    @property
    def kind(self) -> str:
        """What the smallest p-value says: drift, a new level, missing values, a collapse."""
        ps = np.array([p if np.isfinite(p) else 2.0 for p in self._ps()])
        return KINDS[int(np.argmin(ps))]


def unseen_levels(check: Check, level: float) -> bool:
    """Levels the model never saw, significant on their own: they page whatever the feature's
    share, since every row holding one is scored as unknown (a new plan, region, channel)."""
    ps = [p for p in check._ps() if np.isfinite(p)]
    return bool(check.new_levels) and check.p_new_level * len(ps) < level


def psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two count vectors over the same cells (smoothed)."""
    p = (reference + SMOOTHING) / (reference.sum() + SMOOTHING * len(reference))
    q = (current + SMOOTHING) / (current.sum() + SMOOTHING * len(current))
    return float(np.sum((q - p) * np.log(q / p)))


def chi_square_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """Pearson's chi-square test that two count vectors over the same (non-empty) cells come
    from one distribution; NaN when there is nothing to compare."""
    n, m = float(reference.sum()), float(current.sum())
    if len(reference) < 2 or n == 0 or m == 0:
        return float("nan")
    pooled = (reference + current) / (n + m)
    statistic = np.sum((reference - n * pooled) ** 2 / (n * pooled))
    statistic += np.sum((current - m * pooled) ** 2 / (m * pooled))
    return float(special.chdtrc(len(reference) - 1, statistic))


def equal_frequency_codes(
    reference: np.ndarray, current: np.ndarray, bins: int = BINS
) -> tuple[np.ndarray, np.ndarray, int]:
    """Bin codes of both samples over equal-frequency bins of the pooled values.

    Pooled, not reference-only, edges: the cells do not depend on which sample is which, so the
    chi-square null holds. Ties (a feature that is zero for most customers) merge bins; a bin
    is ``(edge_{i-1}, edge_i]`` so the tied value keeps a bin of its own.
    """
    pooled = np.concatenate([reference, current])
    edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)[1:-1]))
    return (
        np.searchsorted(edges, reference, side="left"),
        np.searchsorted(edges, current, side="left"),
        len(edges) + 1,
    )


def _missing_p(n_missing: int, n: int, m_missing: int, m: int) -> float:
    """Two-sided hypergeometric test of equal missing rates (Fisher's exact test)."""
    total = n_missing + m_missing
    if total == 0 or total == n + m:
        return float("nan")
    tail = min(
        stats.hypergeom.sf(m_missing - 1, n + m, total, m),
        stats.hypergeom.cdf(m_missing, n + m, total, m),
    )
    return float(min(1.0, 2 * tail))


def _collapsed_p(reference: np.ndarray, current: np.ndarray) -> float:
    """P(every current value equals the one it takes) if the reference's share of that value held.

    NaN unless the current sample is constant and the reference was not: only then can a
    collapse be told apart from a feature that is always one value.
    """
    if len(current) < 2 or len(np.unique(current)) != 1 or len(np.unique(reference)) < 2:
        return float("nan")
    share = float(np.mean(reference == current[0]))
    return float(share ** len(current))


def numeric_check(reference: pd.Series, current: pd.Series, bins: int = BINS) -> Check:
    """Drift of one numeric feature (missing values tested apart from the distribution)."""
    ref = reference.to_numpy(dtype=np.float64, na_value=np.nan)
    cur = current.to_numpy(dtype=np.float64, na_value=np.nan)
    ref_ok, cur_ok = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    psi, p_dist, p_collapse = 0.0, float("nan"), float("nan")
    if len(ref_ok) and len(cur_ok):
        ref_codes, cur_codes, cells = equal_frequency_codes(ref_ok, cur_ok, bins)
        ref_counts = np.bincount(ref_codes, minlength=cells).astype(np.float64)
        cur_counts = np.bincount(cur_codes, minlength=cells).astype(np.float64)
        used = (ref_counts + cur_counts) > 0
        psi = psi_from_counts(ref_counts[used], cur_counts[used])
        p_dist = chi_square_p_value(ref_counts[used], cur_counts[used])
        p_collapse = _collapsed_p(ref_ok, cur_ok)
    n_miss, m_miss = len(ref) - len(ref_ok), len(cur) - len(cur_ok)
    return Check(
        psi,
        p_dist,
        _missing_p(n_miss, len(ref), m_miss, len(cur)),
        float("nan"),
        p_collapse,
        n_miss / max(len(ref), 1),
        m_miss / max(len(cur), 1),
        (),
    )


def categorical_check(reference: pd.Series, current: pd.Series) -> Check:
    """Drift of one categorical feature: level shares, levels never seen, missing values."""
    ref = reference.astype("string")
    cur = current.astype("string")
    ref_ok, cur_ok = ref.dropna(), cur.dropna()
    ref_counts, cur_counts = ref_ok.value_counts(), cur_ok.value_counts()
    levels = ref_counts.index.union(cur_counts.index)
    r = ref_counts.reindex(levels, fill_value=0).to_numpy(np.float64)
    c = cur_counts.reindex(levels, fill_value=0).to_numpy(np.float64)
    new = (r == 0) & (c > 0)
    n, m = len(ref_ok), len(cur_ok)
    rare = (r + c) < RARE_LEVEL_ROWS
    cells_r = np.append(r[~rare], r[rare].sum())
    cells_c = np.append(c[~rare], c[rare].sum())
    keep = (cells_r + cells_c) > 0
    psi = psi_from_counts(cells_r[keep], cells_c[keep]) if n and m else 0.0
    p_dist = chi_square_p_value(cells_r[keep], cells_c[keep])
    p_new = float("nan")
    if new.any() and n and m:
        # the most surprising new level, Bonferroni over the new levels seen
        p_new = float(min(1.0, (m / (n + m)) ** c[new].max() * new.sum()))
    n_miss, m_miss = len(ref) - n, len(cur) - m
    collapsed = _collapsed_p(ref_ok.to_numpy(dtype=object), cur_ok.to_numpy(dtype=object))
    return Check(
        psi,
        p_dist,
        _missing_p(n_miss, len(ref), m_miss, len(cur)),
        p_new,
        collapsed,
        n_miss / max(len(ref), 1),
        m_miss / max(len(cur), 1),
        tuple(str(v) for v in levels[new]),
    )


def is_categorical(values: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def check_column(reference: pd.Series, current: pd.Series, bins: int = BINS) -> Check:
    """The check that fits the column's type (an all-missing column takes the other's)."""
    filled = [s for s in (reference, current) if s.notna().any()]
    if filled and all(is_categorical(s) for s in filled):
        return categorical_check(reference, current)
    return numeric_check(
        pd.to_numeric(reference, errors="coerce"), pd.to_numeric(current, errors="coerce"), bins
    )


def _bare(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without ``attrs`` (the catalog rides along in a snapshot's; pandas would copy it
    on every column read)."""
    out = frame.copy(deep=False)
    out.attrs = {}
    return out


def explanation_shares(importance: Mapping[str, float], features: Sequence[str]) -> pd.Series:
    """Each feature's share of the model's explanation (mean |SHAP|), summing to 1 over
    ``features``; uniform when the model gives no importance (nothing to rank by)."""
    values = pd.Series({f: float(importance.get(f, 0.0)) for f in features}, dtype=np.float64)
    values = values.clip(lower=0).fillna(0.0)
    total = values.sum()
    if not len(values):
        return values
    return values / total if total > 0 else pd.Series(1.0 / len(values), index=values.index)


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    importance: Mapping[str, float] | None = None,
    config: DriftConfig | None = None,
    alpha: float | None = None,
    tolerance: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per feature, most important first: PSI, p-values, the level it was tested at,
    whether it drifted (``significant``) and whether that pages (``alarm``).

    ``importance``: mean |SHAP| per feature (the model card's drivers); ``alpha``: the part of
    the run's false-alarm budget these features share (default ``config.alpha``);
    ``tolerance``: per feature, the PSI of the natural changes the model was trained through
    (:func:`natural_tolerance`); a distribution change no larger is not drift.
    """
    config = config or DriftConfig()
    level = config.alpha if alpha is None else alpha
    present = [f for f in features if f in reference.columns and f in current.columns]
    reference, current = _bare(reference[present]), _bare(current[present])
    shares = explanation_shares(importance or {}, present)
    weights = (1 - FLOOR_WEIGHT) * shares + FLOOR_WEIGHT / max(len(present), 1)
    rows = []
    for name in present:
        check = check_column(reference[name], current[name], config.bins)
        allowed = float(tolerance.get(name, 0.0)) if tolerance is not None else 0.0
        if check.psi <= allowed:  # within the changes the model was trained through
            check = replace(check, p_distribution=float("nan"))
        tested_at = level * float(weights[name])
        significant = check.p_value < tested_at
        rows.append(
            {
                "feature": name,
                "share": float(shares[name]),
                "kind": check.kind if significant else "",
                "psi": check.psi,
                "tolerance": allowed,
                "p_value": check.p_value,
                "level": tested_at,
                "significant": significant,
                "alarm": significant
                and (
                    float(shares[name]) >= config.min_share
                    or (float(shares[name]) > 0 and unseen_levels(check, tested_at))
                ),
                "missing_reference": check.missing_reference,
                "missing_current": check.missing_current,
                "new_levels": ", ".join(check.new_levels),
                "reference_rows": len(reference),
                "current_rows": len(current),
            }
        )
    columns = [
        "feature",
        "share",
        "kind",
        "psi",
        "tolerance",
        "p_value",
        "level",
        "significant",
        "alarm",
        "missing_reference",
        "missing_current",
        "new_levels",
        "reference_rows",
        "current_rows",
    ]
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values(["share", "feature"], ascending=[False, True], ignore_index=True)


def output_drift(
    reference: pd.Series, current: pd.Series, name: str, alpha: float, bins: int = BINS
) -> dict[str, object]:
    """The same test for one model output (the probability, the tier mix) at level ``alpha``."""
    check = check_column(reference, current, bins)
    return {
        "output": name,
        "psi": check.psi,
        "p_value": check.p_value,
        "level": alpha,
        "significant": check.p_value < alpha,
        "reference_rows": len(reference),
        "current_rows": len(current),
    }


def fixed_psi_alarms(
    reference: pd.DataFrame, current: pd.DataFrame, features: Sequence[str], bins: int = BINS
) -> pd.Series:
    """Common practice, for comparison only: PSI over the reference's deciles, per feature
    (the 0.1 / 0.25 rules read it); not used to alarm."""
    out = {}
    for name in features:
        ref, cur = reference[name], current[name]
        if is_categorical(ref):
            out[name] = categorical_check(ref, cur).psi
            continue
        r = pd.to_numeric(ref, errors="coerce").to_numpy(np.float64)
        c = pd.to_numeric(cur, errors="coerce").to_numpy(np.float64)
        r, c = r[np.isfinite(r)], c[np.isfinite(c)]
        if not len(r) or not len(c):
            out[name] = 0.0
            continue
        edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
        cells = len(edges) + 1
        rc = np.bincount(np.searchsorted(edges, r, side="left"), minlength=cells)
        cc = np.bincount(np.searchsorted(edges, c, side="left"), minlength=cells)
        out[name] = psi_from_counts(rc.astype(np.float64), cc.astype(np.float64))
    return pd.Series(out, dtype=np.float64)


def natural_tolerance(
    window: pd.DataFrame, features: Sequence[str], lag_days: int, bins: int = BINS
) -> pd.Series:
    """Per feature, the largest PSI between two as-of dates of the reference ``window`` that lie
    about ``lag_days`` apart: the seasonal and growth changes the model was trained through.

    Why: a snapshot a month after the reference differs from it for reasons that are not drift
    (December is quieter, every tenure is a month older); a test alone flags those at any size.
    Pairs are the as-of dates whose gap is nearest to ``lag_days``; a window of one date gives 0.
    """
    dates = sorted(pd.to_datetime(window["as_of"]).unique())
    present = [f for f in features if f in window.columns]
    if len(dates) < 2:
        return pd.Series(0.0, index=present, dtype=np.float64)
    gaps = {
        (a, b): abs((b - a).days - lag_days) for i, a in enumerate(dates) for b in dates[i + 1 :]
    }
    nearest = min(gaps.values())
    pairs = [pair for pair, gap in gaps.items() if gap <= nearest + 16]
    frame = _bare(window[[*present, "as_of"]])
    when = pd.to_datetime(frame["as_of"])
    largest = dict.fromkeys(present, 0.0)
    for a, b in pairs:
        before, after = frame[when == a], frame[when == b]
        for name in present:
            largest[name] = max(largest[name], check_column(before[name], after[name], bins).psi)
    return pd.Series(largest, dtype=np.float64)

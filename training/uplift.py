"""Who to contact: effects of retention actions estimated from randomised hold-outs.

Sign convention (as in ``features.interventions``): **effect = reduction in the churn
probability over the horizon, P(churn | no contact) - P(churn | action); positive = helps.**

Tables in, tables out. The input is a *campaign*: one row per flagged customer with
``customer_id``, ``action`` (the action received, or ``"holdout"`` for the randomised
hold-out), ``churned`` (the outcome over the horizon, bool) and the feature columns the risk
model reads (point-in-time at the flagging date).

- :func:`average_effects` -> per action: a doubly robust (AIPW) average effect with its 95 %
  interval and an overlap check, or a status saying why there is no figure.
- :func:`fit_uplift` -> :class:`UpliftModel`: per action a cross-fitted effect model (the
  average, a share of the risk, the DR-learner, a relative-effect learner, the plug-in or the
  calibrated risk score; revenue-weighted variants when the campaign has ``revenue_12m``) chosen
  by the DR loss on the revenue-saved scale with a one-standard-error rule, calibrated by the
  best linear predictor (BLP) and with group average effects (GATES) by quintile of the
  predicted effect. ``UpliftModel.predict(frame)``
  -> one row per customer and action: ``effect`` (calibrated), ``effect_low``/``effect_high``
  (the 95 % interval of the customer's GATES group: a customer-level figure is a ranking, its
  interval is that of customers ranked like it), ``status``. ``UpliftModel.explain(frame,
  action)`` -> the top drivers of the predicted effect in the risk model's catalog sentences.
- :func:`target` -> who gets which action under a contact budget, by expected revenue saved
  (``effect x revenue_12m - cost``), predicted sleeping dogs suppressed, a seeded hold-out kept
  in every play.

Assumptions: the assignment is randomised (the workflows' seeded hold-out), so the propensity
is known up to estimation and every customer had a chance of each arm (overlap, checked); the
outcome is observed for every flagged customer over the same horizon. Nuisance models are
cross-fitted (seeded folds) so no customer's pseudo-outcome uses a model that saw it.

Why not EconML or causalml: ``uv pip install --dry-run`` showed econml 0.17 pulls statsmodels,
sparse, formulaic, shap and numba, causalml adds xgboost, matplotlib, seaborn, pathos and a CUDA
NCCL wheel; the DR-learner is a few LightGBM fits, and we need LightGBM's own ``pred_contrib``
on the final model for the plain-language drivers, which their wrappers hide.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from features.catalog import Feature, feature_info
from features.errors import ChurnError
from features.interventions import CONTROL
from training.model import encode_frame

Z95 = float(stats.norm.ppf(0.975))

Status = str
OK: Status = "ok"
NOT_ENOUGH: Status = "not_enough_holdout_data"
POOR_OVERLAP: Status = "poor_overlap"
RISK_LEARNER = "risk"  # the effect as a calibrated linear function of the risk score
AVERAGE_LEARNER = "average"  # no heterogeneity: every customer gets the action's average
PROPORTIONAL_LEARNER = "proportional"  # one relative effect for all: effect = theta x risk
RELATIVE_LEARNER = "relative"  # a relative effect model times the risk score
VALUE_WEIGHTED = "_value"  # suffix of a learner fitted with revenue-squared weights


RISK_INPUT = Feature(
    "churn_probability", "profile", "probability",
    "The risk model's churn probability at the flagging date",
    "Churn risk {pct:.0f} % in the horizon", ("model.churn_probability",),
)  # fmt: skip
"""The risk score as an input of the effect models (``with_risk``): effects of an action on
the churn probability scale with how much churn there is to prevent, an axis the trees would
otherwise rebuild from dozens of features with noisy pseudo-outcomes."""


def with_risk(
    features: list[str], catalog: dict[str, Feature] | None = None
) -> tuple[list[str], dict[str, Feature]]:
    """``features`` plus ``churn_probability`` (a column the caller adds from the risk model,
    e.g. the score store's), and the catalog entry that explains it."""
    return [*features, RISK_INPUT.name], {**(catalog or {}), RISK_INPUT.name: RISK_INPUT}


@dataclass(frozen=True)
class UpliftConfig:
    """Seeds, folds and the minimum data for an effect figure.

    ``min_per_arm``/``min_churners_per_arm``: below them (in the action's arm or the hold-out)
    there is no figure, only ``not_enough_holdout_data``: the normal interval of a difference of
    two proportions needs about ten events per arm to be trusted, and a hundred customers per
    arm keeps its half-width near the size of the effects worth acting on. ``overlap``: the
    estimated propensity of every arm must lie inside it for a share ``1 - max_outside`` of
    customers; else ``poor_overlap`` (the hold-out was not random for them).
    """

    folds: int = 5
    seed: int = 42
    min_per_arm: int = 100
    min_churners_per_arm: int = 10
    overlap: tuple[float, float] = (0.05, 0.95)
    max_outside: float = 0.01
    groups: int = 5  # GATES groups (quintiles of the predicted effect)
    outcome_params: dict[str, Any] = field(
        default_factory=lambda: {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 40,
            "feature_fraction": 0.8,
            "lambda_l2": 1.0,
        }
    )
    outcome_trees: int = 150
    effect_params: dict[str, Any] = field(
        default_factory=lambda: {
            "objective": "regression",
            "learning_rate": 0.03,
            "num_leaves": 7,
            "min_data_in_leaf": 100,
            "feature_fraction": 0.8,
            "lambda_l2": 10.0,
        }
    )
    effect_trees: int = 150
    propensity_trees: int = 50
    num_threads: int = 1
    # Column of the campaign with each customer's 12-month expected revenue (not a feature):
    # when present, effect models are also fitted and all are judged on the revenue-saved scale
    revenue: str = "revenue_12m"
    min_risk: float = 0.01  # floor of the risk score a relative effect is divided by
    # A learner replaces the action's average only if its DR loss is lower by more than this
    # many standard errors of the paired loss difference (the one-standard-error rule): with a
    # few hundred churners per arm most differences are noise, and chasing them misranks
    min_gain_se: float = 1.0


def _check_campaign(campaign: pd.DataFrame, features: list[str]) -> None:
    missing = [c for c in ("customer_id", "action", "churned", *features) if c not in campaign]
    if missing:
        raise ChurnError(
            f"campaign table lacks column(s) {', '.join(missing)}: it needs customer_id, action "
            f"('{CONTROL}' for the hold-out), churned and the feature columns"
        )
    if campaign["customer_id"].duplicated().any():
        dup = campaign.loc[campaign["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise ChurnError(f"campaign table: customer_id {dup!r} appears twice; one row each")
    if campaign["churned"].isna().any():
        row = int(np.flatnonzero(campaign["churned"].isna().to_numpy())[0])
        raise ChurnError(
            f"campaign table: churned is missing in row {row}; only customers whose horizon "
            "has passed can be analysed"
        )


def _params(params: dict[str, Any], config: UpliftConfig, seed: int) -> dict[str, Any]:
    return {
        **params,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": config.num_threads,
        "verbosity": -1,
    }


def _fit(
    X: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    trees: int,
    features: list[str],
    categorical: list[int],
    weight: np.ndarray | None = None,
) -> lgb.Booster:
    data = lgb.Dataset(X, y, weight=weight, feature_name=features, categorical_feature=categorical)
    return lgb.train(params, data, num_boost_round=trees)


@dataclass(frozen=True, eq=False)
class Nuisances:
    """Cross-fitted nuisance predictions, row-aligned with the campaign."""

    arms: list[str]  # CONTROL first, then the actions in the campaign
    arm: npt.NDArray[np.int64]  # index into ``arms`` per row
    y: npt.NDArray[np.float64]  # churned (1.0) or not
    outcome: npt.NDArray[np.float64]  # (n, arms) P(churn | x, arm), from models blind to the row
    propensity: npt.NDArray[np.float64]  # (n, arms) P(arm | x), idem
    fold: npt.NDArray[np.int64]

    def pseudo_outcome(self, j: int) -> npt.NDArray[np.float64]:
        """AIPW pseudo-outcome of arm ``j`` vs the hold-out: its mean is the average effect
        (reduction in churn), unbiased if either the outcome or the propensity model is right."""
        mu0, mu1 = self.outcome[:, 0], self.outcome[:, j]
        in0, in1 = self.arm == 0, self.arm == j
        return (
            mu0
            - mu1
            + in0 * (self.y - mu0) / self.propensity[:, 0]
            - in1 * (self.y - mu1) / self.propensity[:, j]
        )


def fit_nuisances(
    X: np.ndarray,
    arm: np.ndarray,
    y: np.ndarray,
    arms: list[str],
    features: list[str],
    categorical: list[int],
    config: UpliftConfig,
) -> Nuisances:
    """An outcome model and a multiclass propensity model, cross-fitted on seeded folds.

    One outcome model for all arms, the arm an input (a categorical the trees may split on
    anywhere): with a few hundred customers per arm, separate models per arm would each see
    too few churners. AIPW corrects whatever bias this sharing brings to the averages."""
    n, k = len(y), len(arms)
    fold = np.random.default_rng(config.seed).permutation(n) % config.folds
    outcome = np.empty((n, k))
    propensity = np.empty((n, k))
    with_arm = np.column_stack([X, arm.astype(np.float64)])  # the arm as one more input
    names, cats = [*features, "__arm__"], [*categorical, len(features)]
    for f in range(config.folds):
        test, train = fold == f, fold != f
        params = _params(config.outcome_params, config, config.seed + 31 * f)
        model = _fit(with_arm[train], y[train], params, config.outcome_trees, names, cats)
        for j in range(k):
            rows = np.column_stack([X[test], np.full(int(test.sum()), float(j))])
            outcome[test, j] = model.predict(rows, num_threads=config.num_threads)
        params = _params(
            {"objective": "multiclass", "num_class": k, "learning_rate": 0.05, "num_leaves": 7,
             "min_data_in_leaf": 200, "lambda_l2": 10.0},
            config, config.seed + 97 * f,
        )  # fmt: skip
        model = _fit(X[train], arm[train], params, config.propensity_trees, features, categorical)
        propensity[test] = model.predict(X[test], num_threads=config.num_threads)
    return Nuisances(arms, arm.astype(np.int64), y, outcome, propensity, fold)


def _prepare(
    campaign: pd.DataFrame,
    features: list[str],
    categories: dict[str, list[str]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[int]]:
    actions = sorted(set(campaign["action"].astype(str)) - {CONTROL})
    arms = [CONTROL, *actions]
    arm = pd.Index(arms).get_indexer(pd.Index(campaign["action"].astype(str)))
    X = encode_frame(campaign, features, categories)
    y = campaign["churned"].astype(bool).to_numpy(np.float64)
    categorical = [features.index(c) for c in categories if c in features]
    return X, arm.astype(np.int64), y, arms, categorical


def _arm_status(nuis: Nuisances, j: int, config: UpliftConfig) -> tuple[Status, str, dict]:
    """Enough data and overlap for arm ``j`` vs the hold-out? (status, message, diagnostics)"""
    counts = {}
    for name, idx in (("n_treated", j), ("n_control", 0)):
        counts[name] = int((nuis.arm == idx).sum())
        counts[name.replace("n_", "churners_")] = int(nuis.y[nuis.arm == idx].sum())
    lo, hi = config.overlap
    e = nuis.propensity[:, [0, j]]
    outside = float(((e < lo) | (e > hi)).any(axis=1).mean())
    diag = counts | {
        "propensity_min": float(e.min()),
        "propensity_max": float(e.max()),
        "share_outside_overlap": outside,
    }
    small = [
        f"{counts[c]} {c.replace('_', ' ')}"
        for c, need in (
            ("n_treated", config.min_per_arm),
            ("n_control", config.min_per_arm),
            ("churners_treated", config.min_churners_per_arm),
            ("churners_control", config.min_churners_per_arm),
        )
        if counts[c] < need
    ]
    if small:
        return (
            NOT_ENOUGH,
            f"Not enough hold-out data for {nuis.arms[j]}: {', '.join(small)} (needs at least "
            f"{config.min_per_arm} customers and {config.min_churners_per_arm} churners in the "
            "action and in the hold-out); rank by risk until the hold-out has grown.",
            diag,
        )
    if outside > config.max_outside:
        return (
            POOR_OVERLAP,
            f"Poor overlap for {nuis.arms[j]}: {outside:.1%} of customers have an estimated "
            f"chance outside [{lo}, {hi}] of the action or the hold-out; the hold-out was not "
            "random for them (check the assignment), so no effect is reported.",
            diag,
        )
    return OK, "", diag


def _aipw(pseudo: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the pseudo-outcomes (influence-function variance)."""
    return float(pseudo.mean()), float(pseudo.std(ddof=1) / np.sqrt(len(pseudo)))


AVERAGE_COLUMNS = [
    "action", "status", "effect", "ci_low", "ci_high", "se", "n_treated", "n_control",
    "churners_treated", "churners_control", "propensity_min", "propensity_max",
    "share_outside_overlap", "message",
]  # fmt: skip


def _average_table(nuis: Nuisances, config: UpliftConfig) -> pd.DataFrame:
    rows = []
    for j in range(1, len(nuis.arms)):
        status, message, diag = _arm_status(nuis, j, config)
        effect = se = np.nan
        if status == OK:
            effect, se = _aipw(nuis.pseudo_outcome(j))
        rows.append(
            {
                "action": nuis.arms[j],
                "status": status,
                "effect": effect,
                "ci_low": effect - Z95 * se,
                "ci_high": effect + Z95 * se,
                "se": se,
                **diag,
                "message": message,
            }
        )
    return pd.DataFrame(rows, columns=AVERAGE_COLUMNS)


def average_effects(
    campaign: pd.DataFrame,
    features: list[str],
    categories: dict[str, list[str]],
    config: UpliftConfig = UpliftConfig(),
) -> pd.DataFrame:
    """Per action: the AIPW average effect vs the hold-out with its 95 % interval.

    Columns: ``action, status ('ok' | 'not_enough_holdout_data' | 'poor_overlap'), effect,
    ci_low, ci_high, se`` (NaN unless ok: never a figure without its interval), the arm counts,
    the estimated propensity range and the share of customers outside the overlap bounds, and a
    ``message`` saying what to do when there is no figure.
    """
    _check_campaign(campaign, features)
    X, arm, y, arms, categorical = _prepare(campaign, features, categories)
    if len(arms) < 2 or not (arm == 0).any():
        raise ChurnError(
            f"campaign table: needs rows with action '{CONTROL}' (the hold-out) and at least "
            "one action"
        )
    return _average_table(fit_nuisances(X, arm, y, arms, features, categorical, config), config)


@dataclass(frozen=True)
class Calibration:
    """BLP check of one action's DR-learner on cross-fitted predictions: pseudo-outcome =
    intercept + slope x (prediction - mean prediction). slope 1: the predicted differences are
    right; 0: no heterogeneity found; its interval says whether heterogeneity is established.
    ``groups``: GATES, the AIPW mean effect per quintile of the prediction, with 95 % bounds."""

    intercept: float
    slope: float
    slope_low: float
    slope_high: float
    mean_prediction: float
    edges: tuple[float, ...]  # inner quantile edges of the (raw) prediction
    groups: pd.DataFrame  # group, effect, ci_low, ci_high, n

    def rescale(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated effect: slope clipped at 0 (a negative slope is no evidence to rank)."""
        return self.intercept + max(self.slope, 0.0) * (raw - self.mean_prediction)


def _blp(pseudo: np.ndarray, raw: np.ndarray, groups: int) -> Calibration:
    centred = raw - raw.mean()
    design = np.column_stack([np.ones_like(centred), centred])
    coef, *_ = np.linalg.lstsq(design, pseudo, rcond=None)
    resid = pseudo - design @ coef
    bread = np.linalg.pinv(design.T @ design)
    meat = design.T @ (design * (resid**2)[:, None])
    se = np.sqrt(np.diag(bread @ meat @ bread))  # HC0 robust: pseudo-outcomes are heteroskedastic
    edges = np.quantile(raw, np.linspace(0, 1, groups + 1)[1:-1])
    group = np.searchsorted(edges, raw, side="right")
    rows = []
    for g in range(groups):
        effect, s = _aipw(pseudo[group == g]) if (group == g).sum() > 1 else (np.nan, np.nan)
        rows.append({"group": g + 1, "effect": effect, "ci_low": effect - Z95 * s,
                     "ci_high": effect + Z95 * s, "n": int((group == g).sum())})  # fmt: skip
    return Calibration(
        float(coef[0]), float(coef[1]), float(coef[1] - Z95 * se[1]), float(coef[1] + Z95 * se[1]),
        float(raw.mean()), tuple(float(e) for e in edges), pd.DataFrame(rows),
    )  # fmt: skip


def _proportional(pseudo: np.ndarray, risk: np.ndarray, groups: int) -> Calibration:
    """The effect as one share of the risk, ``theta x risk``, in :class:`Calibration`'s form
    (intercept ``theta x mean risk``, slope theta).

    An action that lowers the hazard by a share saves that share of the churn there is, so with
    no heterogeneity of the relative effect found this is the null model on the hazard scale: one
    parameter, like the average, but the effect scales with the risk. ``theta = mean(phi) /
    mean(risk)``: the weighted least squares estimate when the pseudo-outcomes' variance grows
    with the risk (binomial, small p), and its mean effect is the AIPW average itself; delta
    method interval."""
    theta = float(pseudo.mean() / max(float(risk.mean()), 1e-12))
    resid = pseudo - theta * risk
    se = float(resid.std(ddof=1) / np.sqrt(len(resid)) / max(float(risk.mean()), 1e-12))
    shape = _blp(pseudo, risk, groups)  # for the GATES groups by risk quintile
    return replace(
        shape, intercept=float(pseudo.mean()), slope=theta,
        slope_low=theta - Z95 * se, slope_high=theta + Z95 * se,
    )  # fmt: skip


@dataclass(eq=False)
class UpliftModel:
    """Per action: a DR-learner booster on all campaign rows, its calibration and status."""

    features: list[str]
    categories: dict[str, list[str]]
    averages: pd.DataFrame  # average_effects' table
    boosters: dict[str, lgb.Booster]  # per action with a tree effect model (not "risk")
    calibration: dict[str, Calibration]
    learners: dict[str, str]  # per action: the candidate chosen by the DR loss (fit_uplift)
    catalog: dict[str, Feature] = field(default_factory=dict)
    min_risk: float = UpliftConfig.min_risk  # the relative learner's floor of the risk score

    @property
    def actions(self) -> list[str]:
        return list(self.averages["action"])

    def status(self, action: str) -> Status:
        return str(self.averages.set_index("action").loc[action, "status"])

    def raw(self, frame: pd.DataFrame, action: str) -> np.ndarray:
        """The effect model's prediction before calibration (the risk score for "risk")."""
        X = encode_frame(frame, self.features, self.categories)
        if self.learners[action] in (RISK_LEARNER, PROPORTIONAL_LEARNER):
            return X[:, self.features.index(RISK_INPUT.name)]
        if self.learners[action] == AVERAGE_LEARNER:
            return np.zeros(len(X))
        return self._scale(X, action) * self.boosters[action].predict(X, num_threads=1)

    def _scale(self, X: np.ndarray, action: str) -> np.ndarray:
        """What the booster's prediction is multiplied by: the floored risk score for the
        relative learner, else 1."""
        if self.learners[action].startswith(RELATIVE_LEARNER):
            j = self.features.index(RISK_INPUT.name)
            return np.maximum(X[:, j], self.min_risk)
        return np.ones(len(X))

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One row per customer of ``frame`` (customer_id + the features) and action:
        ``customer_id, action, status, effect, effect_low, effect_high, gates_group``. effect
        and bounds are NaN when the action's status is not ok (rank by risk instead)."""
        if "customer_id" not in frame:
            raise ChurnError("predict: the table needs a customer_id column")
        out = []
        for action in self.actions:
            n = len(frame)
            effect, low, high = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
            group = np.zeros(n, dtype=np.int64)
            if action in self.calibration:
                cal = self.calibration[action]
                raw = self.raw(frame, action)
                effect = cal.rescale(raw)
                group = np.searchsorted(np.asarray(cal.edges), raw, side="right") + 1
                bounds = cal.groups.set_index("group").loc[group]
                low, high = bounds["ci_low"].to_numpy(), bounds["ci_high"].to_numpy()
            out.append(pd.DataFrame({
                "customer_id": frame["customer_id"].to_numpy(), "action": action,
                "status": self.status(action), "effect": effect, "effect_low": low,
                "effect_high": high, "gates_group": group,
            }))  # fmt: skip
        return pd.concat(out, ignore_index=True)

    def contributions(self, frame: pd.DataFrame, action: str) -> np.ndarray:
        """TreeSHAP of the calibrated effect: (n, features + 1), last column the base value;
        each row sums to ``predict``'s effect."""
        if action not in self.calibration:
            raise ChurnError(f"No effect model for {action!r}: {self.status(action)}")
        X = encode_frame(frame, self.features, self.categories)
        if self.learners[action] in (RISK_LEARNER, PROPORTIONAL_LEARNER):  # the risk score's
            raw = np.zeros((len(X), len(self.features) + 1))
            j = self.features.index(RISK_INPUT.name)
            raw[:, j] = X[:, j]
        elif self.learners[action] == AVERAGE_LEARNER:  # all of it is the base value
            raw = np.zeros((len(X), len(self.features) + 1))
        else:
            raw = np.asarray(self.boosters[action].predict(X, pred_contrib=True, num_threads=1))
            raw = raw * self._scale(X, action)[:, None]  # sums to raw(): theta x risk
        cal = self.calibration[action]
        slope = max(cal.slope, 0.0)
        out = raw * slope
        out[:, -1] += cal.intercept - slope * cal.mean_prediction
        return out

    def explain(self, frame: pd.DataFrame, action: str, k: int = 3) -> pd.DataFrame:
        """Why the action is expected to work (or not) for each customer: the ``k`` features
        moving the predicted effect most, with the risk model's catalog sentences.
        Columns ``customer_id, rank, feature, contribution, direction, sentence``."""
        contrib = self.contributions(frame, action)[:, :-1]
        top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        rows = []
        ids = frame["customer_id"].to_numpy()
        for i, picks in enumerate(top):
            for rank, j in enumerate(picks):
                name = self.features[j]
                value = frame[name].iloc[i]
                c = float(contrib[i, j])
                rows.append({
                    "customer_id": ids[i], "rank": rank + 1, "feature": name, "contribution": c,
                    "direction": "raises the effect" if c > 0
                    else "lowers the effect" if c < 0 else "no difference found",
                    "sentence": feature_info(name, self.catalog).explain(
                        None if pd.isna(value) else value
                    ),
                })  # fmt: skip
        return pd.DataFrame(rows)


def _crossfit(
    X: np.ndarray,
    target: np.ndarray,
    fold: np.ndarray,
    features: list[str],
    categorical: list[int],
    config: UpliftConfig,
    j: int,
    weight: np.ndarray | None = None,
) -> np.ndarray:
    out = np.empty(len(target))
    for f in range(config.folds):
        test = fold == f
        params = _params(config.effect_params, config, config.seed + 7 * f + j)
        w = None if weight is None else weight[~test]
        model = _fit(X[~test], target[~test], params, config.effect_trees, features, categorical, w)
        out[test] = model.predict(X[test], num_threads=config.num_threads)
    return out


def _risk_scale(X: np.ndarray, features: list[str], config: UpliftConfig) -> np.ndarray:
    """The risk score, floored: a relative effect times it is an effect."""
    return np.maximum(X[:, features.index(RISK_INPUT.name)], config.min_risk)


def _value_weight(campaign: pd.DataFrame, config: UpliftConfig) -> np.ndarray | None:
    """(revenue / mean revenue)^2 when the campaign has the revenue column: a squared error of
    the effect times revenue is a squared error of the revenue saved, the scale targeting ranks
    on (Lemmens & Gupta 2020). None without the column or without any revenue."""
    if config.revenue not in campaign:
        return None
    revenue = pd.to_numeric(campaign[config.revenue], errors="coerce").to_numpy(np.float64)
    if np.isnan(revenue).any() or (revenue < 0).any():
        row = int(np.flatnonzero(np.isnan(revenue) | (revenue < 0))[0])
        raise ChurnError(
            f"campaign table: {config.revenue} is missing or negative in row {row}; give every "
            f"customer's expected 12-month revenue (MRR x 12 if no survival model) or drop the "
            "column"
        )
    if revenue.mean() <= 0:
        return None
    return np.asarray((revenue / revenue.mean()) ** 2)


def fit_uplift(
    campaign: pd.DataFrame,
    features: list[str],
    categories: dict[str, list[str]],
    config: UpliftConfig = UpliftConfig(),
    catalog: dict[str, Feature] | None = None,
) -> UpliftModel:
    """Average effects, and per action with status ok a calibrated effect model.

    Candidates, each judged on predictions blind to the row: the DR-learner, a LightGBM
    regression of each customer's AIPW pseudo-outcome on the features (unbiased, very noisy: a
    hold-out share of 20 % multiplies each residual by 5); the plug-in, the cross-fitted outcome
    models' difference ``mu0 - mu_a`` (smooth, shrunk towards no difference), distilled into a
    LightGBM regression for new customers and explanations; and, when ``churn_probability`` is
    an input (:func:`with_risk`), the risk score itself and the *relative* learner: a model of
    the effect relative to the risk, ``theta(x)``, fitted on ``phi / risk`` with weights
    ``risk^2`` (so its loss is the DR loss of ``theta x risk``), times the risk. Actions lower a
    hazard by a share, so the relative effect varies far less across customers than the effect
    and is learnt with fewer churners. When the campaign has ``config.revenue`` (12-month
    expected revenue), the DR-learner and the relative learner are also fitted with weights
    ``revenue^2`` (``_value``: their loss is the squared error of the revenue saved), and every
    candidate is judged on that scale, so the model that ranks revenue saved best is kept
    (Lemmens & Gupta 2020) rather than one whose errors are multiplied by revenues afterwards.
    Each is calibrated by BLP; the one with the lowest DR loss is kept: the risk ranking wins
    unless a learner beats it on the data.
    """
    _check_campaign(campaign, features)
    X, arm, y, arms, categorical = _prepare(campaign, features, categories)
    if len(arms) < 2 or not (arm == 0).any():
        raise ChurnError(
            f"campaign table: needs rows with action '{CONTROL}' (the hold-out) and at least "
            "one action"
        )
    value = _value_weight(campaign, config)
    nuis = fit_nuisances(X, arm, y, arms, features, categorical, config)
    averages = _average_table(nuis, config)
    boosters: dict[str, lgb.Booster] = {}
    calibration: dict[str, Calibration] = {}
    learners: dict[str, str] = {}
    has_risk = RISK_INPUT.name in features
    scale = _risk_scale(X, features, config) if has_risk else np.ones(len(X))
    for j, action in enumerate(arms[1:], start=1):
        if averages.loc[j - 1, "status"] != OK:
            continue
        pseudo = nuis.pseudo_outcome(j)
        # name -> (target, weight, scale): the booster fits target with weight; its prediction
        # times scale is the effect
        trees: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {
            "dr_learner": (pseudo, None, np.ones(len(X)))
        }
        if has_risk:
            trees[RELATIVE_LEARNER] = (pseudo / scale, scale**2, scale)
        if value is not None:
            for name, (t, w, sc) in list(trees.items()):
                trees[name + VALUE_WEIGHTED] = (t, value * (1.0 if w is None else w), sc)
        crossfit = {
            name: sc * _crossfit(X, t, nuis.fold, features, categorical, config, j, w)
            for name, (t, w, sc) in trees.items()
        }
        # the plug-in's cross-fitted prediction is the nuisance difference itself (a second fit
        # on other folds' targets would read this fold's outcomes through their nuisance models)
        plug_in = nuis.outcome[:, 0] - nuis.outcome[:, j]
        trees["plug_in"] = (plug_in, None, np.ones(len(X)))
        crossfit["plug_in"] = plug_in
        if has_risk:  # the risk ranking, calibrated: the rival to beat
            crossfit[RISK_LEARNER] = X[:, features.index(RISK_INPUT.name)]
        fits = {name: _blp(pseudo, pred, config.groups) for name, pred in crossfit.items()}
        # DR loss (Kennedy 2023; Mahajan et al. 2023): the mean squared distance of calibrated
        # cross-fitted predictions to the pseudo-outcomes ranks effect models without the truth;
        # weighted by revenue^2 it is the squared error of the revenue saved
        weight = np.ones(len(X)) if value is None else value
        crossfit[AVERAGE_LEARNER] = np.zeros(len(X))
        fits[AVERAGE_LEARNER] = _blp(pseudo, crossfit[AVERAGE_LEARNER], config.groups)
        nulls = [AVERAGE_LEARNER]  # one parameter each: no heterogeneity beyond the risk
        if has_risk:
            crossfit[PROPORTIONAL_LEARNER] = X[:, features.index(RISK_INPUT.name)]
            fits[PROPORTIONAL_LEARNER] = _proportional(
                pseudo, crossfit[PROPORTIONAL_LEARNER], config.groups
            )
            nulls.append(PROPORTIONAL_LEARNER)
        rows = {
            name: weight * (pseudo - fits[name].rescale(pred)) ** 2
            for name, pred in crossfit.items()
        }
        loss = {name: float(r.mean()) for name, r in rows.items()}
        null = min(nulls, key=lambda n: (loss[n], n))
        base = rows[null]
        gain = {
            name: float((base - r).mean() / max((base - r).std(ddof=1) / np.sqrt(len(r)), 1e-12))
            for name, r in rows.items()
        }
        passed = [n for n in loss if n not in nulls and gain[n] > config.min_gain_se]
        learners[action] = min(passed or [null], key=lambda n: (loss[n], n))
        calibration[action] = fits[learners[action]]
        if learners[action] not in (RISK_LEARNER, AVERAGE_LEARNER, PROPORTIONAL_LEARNER):
            t, w, _ = trees[learners[action]]
            params = _params(config.effect_params, config, config.seed + j)
            boosters[action] = _fit(X, t, params, config.effect_trees, features, categorical, w)
    return UpliftModel(
        features, categories, averages, boosters, calibration, learners, dict(catalog or {}),
        config.min_risk,
    )  # fmt: skip


TARGET_COLUMNS = [
    "customer_id", "action", "effect", "effect_low", "effect_high", "revenue_12m", "cost",
    "revenue_saved", "sleeping_dog", "selected", "holdout", "contact", "reason",
]  # fmt: skip


def target(
    options: pd.DataFrame,
    budget: int,
    holdout_share: float,
    seed: int,
    group_by: str | None = None,
) -> pd.DataFrame:
    """Who to contact, with which action, under a contact budget.

    ``options``: one row per customer and action with ``customer_id, action, effect,
    effect_low, effect_high`` (``UpliftModel.predict``), ``cost`` (of that action for that
    customer) and ``revenue_12m`` (the survival model's expected_revenue_12m, or MRR x 12), plus
    ``group_by`` if given (e.g. ``csm_owner``: then ``budget`` applies within each group).
    Rows whose effect is NaN (not enough hold-out data) are ignored: the caller ranks those
    customers by risk.

    Per customer the best action by expected revenue saved = ``effect x revenue_12m - cost``.
    A predicted sleeping dog is never selected: a customer whose every action has a predicted
    (point estimate) effect below 0, or whose every action's group interval (``effect_high``)
    lies below 0. The ``budget`` best positive savings are selected;
    a seeded ``holdout_share`` of the selected in every action is held out (``contact`` False,
    ``holdout`` True) so the estimates keep learning. One row per customer, best first.
    """
    need = ["customer_id", "action", "effect", "effect_low", "effect_high", "cost", "revenue_12m"]
    missing = [c for c in [*need, *([group_by] if group_by else [])] if c not in options]
    if missing:
        raise ChurnError(f"target: the options table lacks column(s) {', '.join(missing)}")
    if budget < 0 or not 0.0 <= holdout_share < 1.0:
        raise ChurnError(f"target: budget must be >= 0 and holdout_share in [0, 1), got "
                         f"{budget}, {holdout_share}")  # fmt: skip
    known = options[options["effect"].notna()].copy()
    known["revenue_saved"] = known["effect"] * known["revenue_12m"] - known["cost"]
    # a sleeping dog: every action is expected to raise churn, by the customer's own estimate or
    # because the whole group of customers ranked like them is shown (95 %) to be harmed
    by = known.groupby("customer_id")
    dog = (by["effect"].transform("max") < 0) | (by["effect_high"].transform("max") < 0)
    known["sleeping_dog"] = dog.to_numpy()
    best = (
        known.sort_values(["revenue_saved", "action"], ascending=[False, True], kind="stable")
        .drop_duplicates("customer_id")
        .reset_index(drop=True)
    )
    eligible = ~best["sleeping_dog"] & (best["revenue_saved"] > 0)
    if group_by:
        rank = best[eligible].groupby(group_by).cumcount()
        chosen = rank.index[rank.to_numpy() < budget]
    else:
        chosen = best.index[eligible.to_numpy()][:budget]
    best["selected"] = best.index.isin(chosen)
    rng = np.random.default_rng(seed)
    best["holdout"] = best["selected"] & (rng.random(len(best)) < holdout_share)
    best["contact"] = best["selected"] & ~best["holdout"]
    best["reason"] = np.select(
        [best["sleeping_dog"], best["revenue_saved"] <= 0, best["holdout"], best["selected"]],
        [
            "predicted sleeping dog: every action is expected to raise churn; do not contact",
            "no action is expected to save more than it costs",
            "selected, drawn into the hold-out to keep measuring the effect",
            "contact: highest expected revenue saved",
        ],
        default="below the budget",
    )
    columns = TARGET_COLUMNS + ([group_by] if group_by and group_by not in TARGET_COLUMNS else [])
    return best[columns]

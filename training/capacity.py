"""Capacity chosen on the validation window, within an explanation budget; refit and calibration.

The search is small on purpose: a few tree shapes (leaf count, depth, minimum child size), each
grown to at most ``max_trees`` trees with early stopping on the validation log loss. Serving
explains every score, so an explanation we cannot afford is not a model we can serve: each
shape's exact TreeSHAP cost per tree is measured on the spot (``PROBE_TREES`` trees, one
thread, validation rows, the fastest of ``SHAP_REPEATS`` short runs) and its tree count
capped, on a coarse grid of steps, so the whole model stays within ``explain_budget_ms`` per
customer; the finished candidate is measured again for the record. The coarse grid keeps the
choice reproducible: timing noise rarely moves a cap from one step to the next. The shape with
the lowest validation log loss wins; the test window is never looked at.

The served model is then refit on every complete labeled row with the chosen shape and
iteration count. Its Platt map is fitted on out-of-fold margins: the same recipe fitted on two
customer-grouped thirds of those rows scores the third, so the map never sees a margin of a row
the booster was fitted on (sklearn's ``CalibratedClassifierCV(ensemble=False)`` idea).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.metrics import log_loss

from training.fit import FitConfig, fit_booster, fit_fixed, fit_platt

SHAPES: tuple[dict[str, Any], ...] = (
    {"num_leaves": 4, "max_depth": 2, "min_child_samples": 20},
    {"num_leaves": 7, "max_depth": 3, "min_child_samples": 40},
    {"num_leaves": 15, "max_depth": 4, "min_child_samples": 40},
    {"num_leaves": 15, "max_depth": -1, "min_child_samples": 100},
    {"num_leaves": 31, "max_depth": -1, "min_child_samples": 50},
)
"""The searched tree shapes, cheapest first; every other parameter is the config's."""
SHAP_PROBE_ROWS = 100  # rows per timed run: short runs, see ``shap_cost_ms``
SHAP_REPEATS = 15  # timed runs; the fastest one counts
PROBE_TREES = 10  # trees fitted to measure a shape's TreeSHAP cost per tree
MIN_TREES = 20  # a shape whose budget allows fewer trees is skipped
OOF_FOLDS = 3


@dataclass(frozen=True)
class Candidate:
    """One searched shape: its parameters, trees kept, validation loss and explanation cost."""

    params: dict[str, Any]
    trees: int
    valid_log_loss: float
    shap_ms: float
    within_budget: bool

    def describe(self) -> str:
        shape = ", ".join(f"{k} {v}" for k, v in self.params.items())
        return (
            f"{shape}: {self.trees} trees, validation log loss {self.valid_log_loss:.4f}, "
            f"TreeSHAP {self.shap_ms:.3f} ms/customer"
        )


def shap_cost_ms(booster: lgb.Booster, X: np.ndarray) -> float:
    """Exact TreeSHAP time per customer on one thread: the fastest of many short runs.

    On a shared machine a run is slowed by whatever else holds the cores, never sped up, so
    the fastest run is the estimate of the algorithm's own cost. Runs are kept short (a few
    milliseconds at budget) so that some of them fit in one scheduler slice: measured on the
    loaded 2-core machine, the former best of two 500-row runs read 2-5x the cost and swung
    from run to run (a shape's tree cap from 30 to 500), while the fastest of 15 100-row runs
    varied by a few per cent. A noisy, inflated reading caps shapes below their budget and
    makes the chosen model depend on the neighbours' load.
    """
    rows = X[:SHAP_PROBE_ROWS]
    runs = []
    for _ in range(SHAP_REPEATS):
        start = time.perf_counter()
        booster.predict(rows, pred_contrib=True, num_threads=1)
        runs.append(time.perf_counter() - start)
    return per_customer_ms(runs, len(rows))


def per_customer_ms(run_seconds: list[float], rows: int) -> float:
    """Milliseconds per customer from repeated timings of the same ``rows``: the fastest run."""
    return float(min(run_seconds) * 1000 / max(rows, 1))


TREE_STEPS = (20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000)
"""Tree caps a shape may get. A timing only picks a step, so the timing noise of a loaded machine
rarely changes the cap, and the same data then gives the same model (reproducibility)."""


def tree_cap(budget_ms: float, per_tree_ms: float, max_trees: int) -> int:
    """The largest step whose estimated TreeSHAP cost (steps x cost per tree) fits the budget."""
    if per_tree_ms <= 0:
        return max_trees
    fits = [step for step in TREE_STEPS if step * per_tree_ms <= budget_ms and step <= max_trees]
    if max_trees * per_tree_ms <= budget_ms:
        return max_trees
    return fits[-1] if fits else 0


def search_capacity(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    features: list[str],
    categorical: list[str],
    config: FitConfig,
    budget_ms: float,
) -> tuple[lgb.Booster, Candidate, list[Candidate]]:
    """The booster of the best shape within budget (else the cheapest), and every candidate."""
    fitted: list[tuple[lgb.Booster, Candidate]] = []
    for shape in SHAPES:
        params = {**config.params, **shape}
        fit = FitConfig(**{**config.__dict__, "params": params})
        # TreeSHAP time grows linearly with the trees: measure a few, cap the count to the budget
        probe = fit_fixed(X_train, y_train, features, categorical, fit, PROBE_TREES)
        per_tree = shap_cost_ms(probe, X_valid) / max(probe.num_trees(), 1)
        cap = tree_cap(budget_ms, per_tree, config.max_trees)
        if cap < MIN_TREES:
            continue  # this shape cannot be explained in budget even with a handful of trees
        fit = replace(fit, max_trees=cap)
        booster = fit_booster(X_train, y_train, X_valid, y_valid, features, categorical, fit)
        margin = np.asarray(booster.predict(X_valid, raw_score=True))
        loss = float(log_loss(y_valid, 1 / (1 + np.exp(-margin)), labels=[0, 1]))
        cost = shap_cost_ms(booster, X_valid)  # logged; the cap already keeps it in budget
        fitted.append((booster, Candidate(dict(shape), booster.num_trees(), loss, cost, True)))
    if not fitted:  # not even the smallest shape fits the budget: fit it anyway, say so
        fit = FitConfig(**{**config.__dict__, "params": {**config.params, **SHAPES[0]}})
        booster = fit_booster(X_train, y_train, X_valid, y_valid, features, categorical, fit)
        cost = shap_cost_ms(booster, X_valid)
        candidate = Candidate(dict(SHAPES[0]), booster.num_trees(), np.nan, cost, False)
        return booster, candidate, [candidate]
    eligible = [pair for pair in fitted if pair[1].within_budget]
    if eligible:
        booster, chosen = min(eligible, key=lambda pair: pair[1].valid_log_loss)
    else:
        booster, chosen = min(fitted, key=lambda pair: pair[1].shap_ms)
    return booster, chosen, [candidate for _, candidate in fitted]


def customer_folds(customer_ids: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per row; all rows of a customer share it."""
    unique, inverse = np.unique(customer_ids.astype(str), return_inverse=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    return np.asarray(order % folds)[inverse]


def refit_calibrated(
    X: np.ndarray,
    y: np.ndarray,
    customer_ids: np.ndarray,
    features: list[str],
    categorical: list[str],
    config: FitConfig,
    trees: int,
) -> tuple[lgb.Booster, tuple[float, float]]:
    """The served booster on all rows ``X`` and its Platt map from out-of-fold margins."""
    booster = fit_fixed(X, y, features, categorical, config, trees)
    fold = customer_folds(customer_ids, OOF_FOLDS, config.seed)
    oof = np.empty(len(y))
    for k in range(OOF_FOLDS):
        held = fold == k
        part = fit_fixed(X[~held], y[~held], features, categorical, config, trees)
        oof[held] = np.asarray(part.predict(X[held], raw_score=True))
    return booster, fit_platt(oof, y)

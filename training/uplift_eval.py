"""How good is a targeting ranking? Qini curve, Qini coefficient and AUUC on held-out customers.

Outcome ``churned`` (1 = churned); an effect is a *reduction* in churn (``training.uplift``), so
the curves count churners saved. For the top ``k`` customers of a ranking, with ``n_t, n_c``
treated and hold-out customers among them and ``y_t, y_c`` their churners:

- Qini curve ``Q(k) = y_c * n_t / n_c - y_t``: churners saved among the treated of the top k,
  against the hold-out's rate scaled to their number (Radcliffe 2007);
- uplift curve ``U(k) = (y_c / n_c - y_t / n_t) * k``: the effect of treating all top k;
- Qini coefficient: the mean of ``Q(k) - (k / n) Q(n)`` over k, divided by n (area between the
  curve and random targeting, in churners saved per customer); AUUC: the mean of ``U(k)`` / n.

Both curves use observed outcomes only, as a data scientist would; ``revenue_saved`` uses the
true effects of the synthetic world instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.errors import ChurnError


def _cumulative(
    score: np.ndarray, treated: np.ndarray, churned: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not (len(score) == len(treated) == len(churned)) or len(score) == 0:
        raise ChurnError("qini: score, treated and churned must be non-empty and equally long")
    if treated.all() or not treated.any():
        raise ChurnError("qini: needs both treated and hold-out customers")
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    y = np.asarray(churned, dtype=np.float64)[order]
    return np.cumsum(t), np.cumsum(~t), np.cumsum(y * t), np.cumsum(y * ~t)


def qini_curve(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> pd.DataFrame:
    """``fraction`` targeted (k / n), ``qini`` Q(k) and ``uplift`` U(k), k = 1..n; plus k = 0."""
    n_t, n_c, y_t, y_c = _cumulative(score, treated, churned)
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = np.where(n_c > 0, y_c * n_t / n_c, 0.0) - y_t
        rate_t = np.where(n_t > 0, y_t / n_t, 0.0)
        rate_c = np.where(n_c > 0, y_c / n_c, 0.0)
    k = np.arange(1, len(n_t) + 1)
    return pd.DataFrame(
        {
            "fraction": np.concatenate([[0.0], k / len(k)]),
            "qini": np.concatenate([[0.0], qini]),
            "uplift": np.concatenate([[0.0], (rate_c - rate_t) * k]),
        }
    )


def qini_coefficient(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> float:
    """Area between the Qini curve and random targeting, per customer (0 = random)."""
    curve = qini_curve(score, treated, churned)
    n = len(curve) - 1
    gain = curve["qini"].to_numpy() - curve["fraction"].to_numpy() * curve["qini"].iloc[-1]
    return float(gain[1:].mean() / n)


def auuc(score: np.ndarray, treated: np.ndarray, churned: np.ndarray) -> float:
    """Area under the uplift curve, per customer (churners saved by treating the top k)."""
    curve = qini_curve(score, treated, churned)
    return float(curve["uplift"].iloc[1:].mean() / (len(curve) - 1))


def revenue_saved(plan: pd.DataFrame, truth: pd.DataFrame) -> float:
    """True revenue saved by contacting ``plan``'s customers with its actions.

    ``plan``: ``customer_id, action, revenue_12m`` of the customers contacted; ``truth``: one
    row per customer and action with ``true_effect`` and ``cost``
    (``features.interventions.true_effects``). Sum of ``true_effect x revenue_12m - cost``.
    """
    merged = plan.merge(
        truth[["customer_id", "action", "true_effect", "cost"]],
        on=["customer_id", "action"],
        how="left",
        validate="one_to_one",
    )
    if merged["true_effect"].isna().any():
        raise ChurnError("revenue_saved: some planned (customer, action) pairs have no truth")
    return float((merged["true_effect"] * merged["revenue_12m"] - merged["cost"]).sum())

"""Who to contact: uplift targeting vs risk targeting on the synthetic world, against the truth.

    .venv/bin/python benchmarks/uplift.py [--customers 20000] [--months 24] [--replications 50]
        [--cache FILE]

A world is generated (``features.generator``); the risk model is trained on as-of dates whose
horizon ends before the campaign; the customers the risk rules would flag at the campaign date
(a risk tier: churn probability above the base rate; ``--flag all`` for every active customer)
are randomised over the actions and a 20 % hold-out (``features.interventions``, the true
effects);
the uplift model is fitted on a seeded half of the customers and judged on the other half:

- Qini coefficient and AUUC per action (held-out treated vs hold-out customers, observed
  outcomes) of the uplift ranking, the risk ranking and a random one;
- revenue saved with the *true* effects at a budget of 10 % of the held-out customers: uplift
  targeting (best action by expected revenue saved, sleeping dogs suppressed) vs risk targeting
  (the riskiest, each given the action with the best average effect) vs the oracle;
- the predicted sleeping dogs and their true effect;
- the AIPW 95 % interval's coverage of the true average effect over replications of the
  hold-out assignment (all flagged customers, a new seed each).

The true process is not tuned to these bars; the numbers are what the method achieves.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import pickle
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta

import numpy as np
import pandas as pd

from features.catalog import Feature
from features.engine import build_labeled_set
from features.generator import World, generate_world
from features.interventions import CONTROL, simulate_campaign, true_effects
from features.labels import LabelSpec
from features.pipeline import default_as_of
from training.pipeline import TrainConfig, train
from training.uplift import UpliftConfig, average_effects, fit_uplift, target, with_risk
from training.uplift_eval import auuc, qini_coefficient, revenue_saved

HOLDOUT_SHARE = 0.2
BUDGET_SHARE = 0.10


def yes(ok: bool) -> str:
    return "yes" if ok else "no"


@dataclass(frozen=True, eq=False)
class Prepared:
    """The world, the flagged customers' features at the campaign date, the risk model."""

    world: World
    as_of: date
    frame: pd.DataFrame  # flagged customers' features at as_of (+ churn_probability)
    features: list[str]
    categories: dict[str, list[str]]
    catalog: dict[str, Feature]
    effects: pd.DataFrame  # features.interventions.true_effects of the flagged customers
    seconds: float


def prepare(customers: int, months: int, seed: int) -> Prepared:
    started = time.perf_counter()
    world = generate_world(customers, months, seed=seed)
    as_of = (pd.Timestamp(world.start) + pd.DateOffset(months=months - 3)).date()
    dates = [d for d in default_as_of(world.tables) if d <= as_of][-9:]  # 6 to train on
    labeled = build_labeled_set(world.tables, dates, LabelSpec())
    stamp = pd.to_datetime(labeled["as_of"])
    past = labeled[(stamp <= pd.Timestamp(as_of - timedelta(days=92))).to_numpy()]
    config = TrainConfig(capacity_search=False, refit=False)
    risk_model = train(past.reset_index(drop=True), config).model
    frame = labeled[(stamp == pd.Timestamp(as_of)).to_numpy()].reset_index(drop=True)
    month = world.truth_hazard[world.truth_hazard["month"] == as_of]
    active = set(month.loc[month["at_risk"], "customer_id"])
    frame = frame[frame["customer_id"].isin(active)].drop(columns=["churned"])
    frame = frame.reset_index(drop=True)
    frame["churn_probability"] = risk_model.probability(risk_model.encode(frame))
    features, catalog = with_risk(risk_model.features, risk_model.catalog)
    ids = frame["customer_id"].astype(str).tolist()
    effects = true_effects(world, as_of, ids)
    seconds = time.perf_counter() - started
    return Prepared(world, as_of, frame, features, risk_model.categories, catalog, effects,
                    seconds)  # fmt: skip


def with_outcomes(frame: pd.DataFrame, campaign: pd.DataFrame) -> pd.DataFrame:
    rows = frame.merge(
        campaign[["customer_id", "action", "churned"]], on="customer_id", validate="one_to_one"
    )
    rows["action"] = rows["action"].astype(str)
    return rows


def at_risk(frame: pd.DataFrame) -> np.ndarray:
    """The customers the risk rules flag: a risk tier (low, medium or high), i.e. a churn
    probability above the base rate (``training.model.ScoreMap``: *healthy* = no riskier than
    the average customer); the base rate is the mean score of the active customers."""
    risk = frame["churn_probability"].to_numpy(np.float64)
    return np.asarray(risk > risk.mean())


def run(prepared: Prepared, replications: int, seed: int = 7, flag: str = "risk") -> list[str]:
    started = time.perf_counter()
    p = prepared
    world, as_of, effects, features, categories = (
        p.world, p.as_of, p.effects, p.features, p.categories
    )  # fmt: skip
    flagged = p.frame if flag == "all" else p.frame[at_risk(p.frame)].reset_index(drop=True)
    ids = flagged["customer_id"].astype(str).tolist()
    effects = effects[effects["customer_id"].isin(ids)].reset_index(drop=True)
    campaign = simulate_campaign(world, as_of, ids, HOLDOUT_SHARE, seed=1, effects=effects)
    data = with_outcomes(flagged, campaign)
    data["risk"] = data["churn_probability"]
    data["revenue_12m"] = 12.0 * data["mrr"].fillna(0.0)
    held = np.random.default_rng(seed).random(len(data)) < 0.5
    fit_rows, test = data[~held].reset_index(drop=True), data[held].reset_index(drop=True)
    config = UpliftConfig()
    model = fit_uplift(fit_rows, features, categories, config, p.catalog)
    fit_seconds = time.perf_counter() - started

    # --- Qini per action on held-out customers -------------------------------------------------
    predicted = model.predict(test)
    wide = predicted.pivot(index="customer_id", columns="action", values="effect")
    rng = np.random.default_rng(seed + 1)
    qini_rows, totals = [], {"uplift": 0.0, "risk": 0.0, "random": 0.0}
    for action in model.calibration:  # actions with an effect model (status ok)
        arm = test[test["action"].isin([action, CONTROL])]
        treated = (arm["action"] == action).to_numpy()
        y = arm["churned"].to_numpy(bool)
        scores = {
            "uplift": wide.loc[arm["customer_id"], action].to_numpy(),
            "risk": arm["risk"].to_numpy(),
            "random": rng.random(len(arm)),
        }
        q = {k: qini_coefficient(s, treated, y) for k, s in scores.items()}
        a = {k: auuc(s, treated, y) for k, s in scores.items()}
        for k in totals:
            totals[k] += q[k]
        qini_rows.append(
            f"| {action} | {len(arm):,} | {q['uplift']:.4f} | {q['risk']:.4f} | "
            f"{q['random']:.4f} | {a['uplift']:.4f} | {a['risk']:.4f} |"
        )

    # --- revenue saved at a 10 % budget, true effects -------------------------------------------
    budget = round(BUDGET_SHARE * len(test))
    truth = effects[effects["customer_id"].isin(test["customer_id"])]
    options = predicted.merge(
        truth[["customer_id", "action", "cost"]], on=["customer_id", "action"]
    )
    options = options.merge(test[["customer_id", "revenue_12m"]], on="customer_id")
    plan = target(options, budget, holdout_share=0.0, seed=seed)
    chosen = plan[plan["selected"]]
    uplift_saved = revenue_saved(chosen[["customer_id", "action", "revenue_12m"]], truth)
    averages = model.averages.set_index("action")
    mean_revenue = test["revenue_12m"].mean()
    value = {
        a: float(averages.loc[a, "effect"]) * mean_revenue
        - truth.loc[truth["action"] == a, "cost"].mean()
        for a in model.calibration
    }
    best_average = max(value, key=lambda a: value[a])
    riskiest = test.nlargest(budget, "risk")[["customer_id", "revenue_12m"]].assign(
        action=best_average
    )
    risk_saved = revenue_saved(riskiest, truth)
    oracle = truth.merge(test[["customer_id", "revenue_12m"]], on="customer_id")
    oracle["saved"] = oracle["true_effect"] * oracle["revenue_12m"] - oracle["cost"]
    oracle_best = oracle.sort_values("saved", ascending=False).drop_duplicates("customer_id")
    oracle_saved = float(oracle_best["saved"].head(budget).clip(lower=0).sum())

    # --- sleeping dogs ---------------------------------------------------------------------------
    dogs = plan.loc[plan["sleeping_dog"], "customer_id"]
    dog_truth = truth[truth["customer_id"].isin(dogs)]
    dog_effect = float(dog_truth["true_effect"].mean()) if len(dog_truth) else float("nan")
    best_true = truth.groupby("customer_id")["true_effect"].max()
    true_dogs = int((best_true < 0).sum())
    dog_in_risk = int(riskiest["customer_id"].isin(dogs).sum())

    # --- AIPW coverage over replications of the assignment ---------------------------------------
    rep_config = replace(config, folds=3, outcome_trees=100)
    true_ate = effects.groupby("action")["true_effect"].mean()
    covered = {a: 0 for a in model.actions}
    widths = {a: [] for a in model.actions}
    estimates = {a: [] for a in model.actions}
    for r in range(replications):
        rep = simulate_campaign(world, as_of, ids, HOLDOUT_SHARE, seed=1000 + r, effects=effects)
        rows = with_outcomes(flagged, rep)
        table = average_effects(rows, features, categories, rep_config).set_index("action")
        for a in model.actions:
            lo, hi = table.loc[a, "ci_low"], table.loc[a, "ci_high"]
            covered[a] += int(lo <= true_ate[a] <= hi)
            widths[a].append(hi - lo)
            estimates[a].append(table.loc[a, "effect"])
    coverage = sum(covered.values()) / max(replications * len(covered), 1)

    ratio_q = totals["uplift"] / totals["risk"] if totals["risk"] > 0 else float("inf")
    ratio_r = uplift_saved / risk_saved if risk_saved > 0 else float("inf")
    lines = [
        f"Campaign on {as_of}: {len(ids):,} of {len(p.frame):,} active customers flagged ("
        f"{'all' if flag == 'all' else 'a risk tier: churn probability above the base rate'}), "
        f"{HOLDOUT_SHARE:.0%} "
        f"hold-out, the rest spread over {', '.join(model.actions)}; horizon 3 months. Fit on "
        f"{len(fit_rows):,} customers, evaluated on {len(test):,} others. "
        f"(world, features and risk model {p.seconds:.0f} s; uplift fit {fit_seconds:.0f} s)",
        "",
        "Average effects (AIPW, fit half) beside the truth (mean true effect, same customers):",
        "",
        "| Action | Status | AIPW effect | 95 % interval | True effect | Effect model "
        "| BLP slope [95 %] |",
        "|---|---|---:|---|---:|---|---|",
    ]
    fit_truth = effects[effects["customer_id"].isin(fit_rows["customer_id"])]
    for a in model.actions:
        row = averages.loc[a]
        cal = model.calibration.get(a)
        slope = f"{cal.slope:.2f} [{cal.slope_low:.2f}, {cal.slope_high:.2f}]" if cal else "-"
        true_a = fit_truth.loc[fit_truth["action"] == a, "true_effect"].mean()
        lines.append(
            f"| {a} | {row['status']} | {row['effect']:.4f} | [{row['ci_low']:.4f}, "
            f"{row['ci_high']:.4f}] | {true_a:.4f} | {model.learners.get(a, '-')} | {slope} |"
        )
    lines += [
        "",
        "Qini coefficient and AUUC on held-out customers (churners saved per customer; observed "
        "outcomes, each action's arm vs the hold-out):",
        "",
        "| Action | Customers | Qini uplift | Qini risk | Qini random | AUUC uplift | AUUC risk |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *qini_rows,
        f"| **sum** | | {totals['uplift']:.4f} | {totals['risk']:.4f} | {totals['random']:.4f} "
        "| | |",
        "",
        f"Revenue saved at a budget of {budget:,} contacts ({BUDGET_SHARE:.0%} of held-out "
        f"customers), true effects, 12-month revenue = MRR x 12: uplift targeting "
        f"**{uplift_saved:,.0f}**; risk targeting (top risk, each given `{best_average}`, the "
        f"best average action) **{risk_saved:,.0f}**; oracle (true best action, true ranking) "
        f"{oracle_saved:,.0f}.",
        "",
        f"Predicted sleeping dogs (for every action the calibrated effect < 0, or the upper "
        f"bound of the customer's GATES group < 0): "
        f"{len(dogs):,} of {len(test):,}; none contacted by uplift targeting, {dog_in_risk} "
        f"among the risk targeting's contacts. Their mean true effect over all actions: "
        f"**{dog_effect:.4f}**. True sleeping dogs (every true effect < 0): {true_dogs:,}.",
        "",
        f"AIPW coverage over {replications} replications of the hold-out assignment (all "
        f"{len(ids):,} flagged customers, 3 folds):",
        "",
        "| Action | True average effect | Mean estimate | Mean interval width | Coverage |",
        "|---|---:|---:|---:|---:|",
    ]
    for a in model.actions:
        lines.append(
            f"| {a} | {true_ate[a]:.4f} | {np.mean(estimates[a]):.4f} | "
            f"{np.mean(widths[a]):.4f} | {covered[a] / max(replications, 1):.0%} |"
        )
    lines += [
        "",
        "| Bar | Measured | Holds |",
        "|---|---:|:---:|",
        f"| Qini (sum over actions): uplift >= 1.5 x risk | {ratio_q:.2f} x | "
        f"{yes(ratio_q >= 1.5)} |",
        f"| Revenue saved at 10 %: uplift >= 1.25 x risk targeting | {ratio_r:.2f} x | "
        f"{yes(ratio_r >= 1.25)} |",
        f"| Predicted sleeping dogs suppressed, true mean effect < 0 | {dog_effect:.4f} | "
        f"{yes(len(dogs) > 0 and dog_effect < 0)} |",
        f"| AIPW 95 % coverage >= 90 % | {coverage:.0%} | {yes(coverage >= 0.9)} |",
        "",
        f"(evaluation {time.perf_counter() - started:.0f} s.)",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--replications", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, help="pickle of the prepared world (re-runs)")
    parser.add_argument(
        "--flag", choices=["risk", "all"], default="risk",
        help="who the campaign reaches: customers in a risk tier (as the rules flag) or all",
    )  # fmt: skip
    args = parser.parse_args()
    if args.cache and args.cache.exists():
        prepared = pickle.loads(args.cache.read_bytes())
    else:
        prepared = prepare(args.customers, args.months, args.seed)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(prepared))
    n, m, s = len(prepared.world.tables.customers), prepared.world.months, prepared.world.seed
    header = ["## Who to contact (benchmarks/uplift.py)", "",
              f"### Synthetic world ({n:,} customers, {m} months, seed {s})", ""]  # fmt: skip
    print("\n".join(header + run(prepared, args.replications, args.seed, args.flag)))


if __name__ == "__main__":
    main()

"""Time to churn: the hazard model vs Kaplan–Meier, Cox and (synthetic world) the truth.

    .venv/bin/python benchmarks/survival.py [--customers 3000] [--months 30] [--paths 60]
        [--data ../shared/data]

Three sections, each printed as a Markdown table (``benchmarks/results.py`` puts them in
docs/results.md):

- synthetic world (``features.generator``): Uno's C and IBS on the out-of-time survival test
  window vs the oracle's, Cox and KM; the 12-month expected revenue of the test customers vs
  the true expected revenue. The oracle is point-in-time: the mean true curve over ``--paths``
  futures forked from the world at each as-of date (``features.generator.futures``), i.e.
  everything knowable then; the realised hazards (which include the future's draws) are
  printed beside it. Bars: C >= 0.97 x the oracle's, IBS below Cox and KM, revenue within 5 %.
- Telco: tenure-based survival (time since signup, the only time the snapshot has): the hazard
  model on the customer attributes vs KM by contract type and Cox, on a seeded 30 % of customers.
- CDNOW (non-contractual): the expected share still "alive" (no final silence yet) after the
  holdout start vs BG/NBD's P(alive) and what happened. Reported, never tuned to.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import time
from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from features.engine import build_labeled_set
from features.generator import futures, generate_world, oracle_survival, point_in_time_survival
from features.importers import cdnow, import_cdnow, import_telco, shared_data_dir, telco
from features.importers.bgnbd import bgnbd_scores
from features.labels import LabelSpec
from features.pipeline import default_as_of
from training.fit import categorical_levels
from training.pipeline import TrainConfig, train, usable_features
from training.survival import (
    SurvivalConfig,
    fit_survival,
    survival_at,
    train_survival,
)
from training.survival_eval import (
    CoxBaseline,
    KaplanMeier,
    evaluation_times,
    outcomes_array,
    survival_metrics,
)

NAMES = {"survival_model": "Hazard model (LightGBM person-period, Platt)",
         "cox": "Cox PH (same features)", "kaplan_meier": "Kaplan–Meier",
         "oracle": "Oracle (point-in-time: mean of the futures forked at each as-of)",
         "oracle_realised": "Oracle (realised hazards, future draws included)"}  # fmt: skip


SYNTHETIC_ROWS = ("survival_model", "cox", "kaplan_meier", "oracle", "oracle_realised")
ORACLE_PATHS = 60
"""Futures the point-in-time oracle averages. Its curve is a Monte Carlo mean, and the noise of a
mean over few paths scrambles its ranking, so a small count understates the oracle's C and
flatters the model's ratio: measured on the default world, Uno's C 0.760 / 0.766 / 0.769 / 0.773
at 10 / 20 / 40 / 60 paths. 60 costs about two minutes of generation."""


def table(metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    lines = ["| Method | Uno's C (IPCW) | IBS |", "|---|---:|---:|"]
    for name, values in metrics.items():
        lines.append(
            f"| {NAMES.get(name, name)} | {values['c_index_ipcw']:.3f} | {values['ibs']:.4f} |"
        )
    return lines


def synthetic_section(
    customers: int, months: int, seed: int = 11, paths: int = ORACLE_PATHS
) -> list[str]:
    start = time.perf_counter()
    world = generate_world(customers, months, seed=seed)
    labeled = build_labeled_set(world.tables, default_as_of(world.tables), LabelSpec())
    classifier = train(labeled, TrainConfig(capacity_search=False, refit=False)).model

    forks: dict[date, list[pd.DataFrame]] = {}

    def fair(rows: pd.DataFrame, days: np.ndarray) -> np.ndarray:
        """E[S | the world up to as_of]: the mean over futures forked at each as-of date."""
        out = np.empty((len(rows), len(days)))
        for as_of, index in rows.groupby("as_of").indices.items():
            day = pd.Timestamp(str(as_of)).date()
            if day not in forks:
                forks[day] = futures(customers, months, seed, day, paths)
            ids = rows["customer_id"].astype(str).iloc[index].tolist()
            out[index] = point_in_time_survival(forks[day], day, days, ids)
        return out

    def clairvoyant(rows: pd.DataFrame, days: np.ndarray) -> np.ndarray:
        """The hazards the world drew, future noise included: a bar no forecaster can reach."""
        out = np.empty((len(rows), len(days)))
        for as_of, index in rows.groupby("as_of").indices.items():
            ids = rows["customer_id"].astype(str).iloc[index].tolist()
            out[index] = oracle_survival(
                world.truth_hazard, pd.Timestamp(str(as_of)).date(), days, ids
            )
        return out

    result = train_survival(
        labeled, classifier.features, classifier.categories, 90, truth=fair, refit=False,
        references={"oracle_realised": clairvoyant},
    )  # fmt: skip
    m = result.metrics
    ratio = m["survival_model"]["c_index_vs_oracle"]
    revenue = m["survival_model"]["revenue_12m_vs_truth"]
    ibs_ok = m["survival_model"]["ibs"] < min(m["cox"]["ibs"], m["kaplan_meier"]["ibs"])
    return [
        f"### Synthetic world ({customers:,} customers, {months} months, seed {seed})",
        "",
        f"{result.description}. tau = {m['survival_model']['tau_days']:.0f} days; the oracle "
        f"averages {paths} futures.",
        "",
        *table({k: m[k] for k in SYNTHETIC_ROWS}),
        "",
        "| Bar | Measured | Holds |",
        "|---|---:|:---:|",
        f"| C >= 0.97 x oracle's C | {ratio:.3f} x | {'yes' if ratio >= 0.97 else 'no'} |",
        f"| IBS below Cox and KM | {m['survival_model']['ibs']:.4f} | "
        f"{'yes' if ibs_ok else 'no'} |",
        f"| 12-month expected revenue within 5 % of the truth | {revenue:.3f} x | "
        f"{'yes' if abs(revenue - 1) <= 0.05 else 'no'} |",
        "",
        f"({time.perf_counter() - start:.0f} s.)",
        "",
    ]


def telco_section(data: Path, seed: int = 0) -> list[str]:
    """Tenure as the time scale: signup is time 0, Churn the event, everyone else censored at
    their tenure. Features known at signup only (no tenure, no total charges)."""
    tables = import_telco(data / "telco" / telco.FILE_NAMES[0])
    labeled = build_labeled_set(tables, [telco.AS_OF], telco.label_spec())
    tenure = labeled["tenure_days"].to_numpy(np.int64)
    churned = labeled["churned"].to_numpy(bool)
    frame = labeled.drop(columns=["tenure_days", "lifecycle_stage", "days_to_renewal",
                                  "total_charges"], errors="ignore").copy()  # fmt: skip
    churn_day = (pd.Timestamp(telco.CHURN_DAY) - pd.Timestamp(telco.AS_OF)).days
    frame["duration_days"] = np.where(churned, tenure + churn_day, tenure)
    frame["event_observed"] = churned
    big = int(frame["duration_days"].max()) + 400
    frame["followup_days"] = np.where(churned, big, frame["duration_days"] - 1)
    rng = np.random.default_rng(seed)
    test = rng.random(len(frame)) < 0.3
    train_rows, test_rows = frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)
    features, _ = usable_features(train_rows, np.ones(len(train_rows), dtype=bool))
    levels = categorical_levels(frame, features)
    cap = 6 * 365
    config = SurvivalConfig(cap_days=cap)  # the served recipe: early-stopped, refit on all
    model, _ = fit_survival(train_rows, features, levels, 365, config, refit=train_rows)
    y = outcomes_array(test_rows)
    times = evaluation_times(y, float(cap), 30.0)
    tau = float(times[-1])
    h = model.hazards(test_rows)
    at_tau = survival_at(h, model.grid, np.array([tau]))[:, 0]
    metrics = {"survival_model": survival_metrics(y, survival_at(h, model.grid, times), times,
                                                  1 - at_tau, tau)}  # fmt: skip
    cox = CoxBaseline.fit(train_rows, features, list(levels), seed)
    metrics["cox"] = survival_metrics(y, cox.survival(test_rows, times), times,
                                      cox.risk(test_rows), tau)  # fmt: skip
    km = KaplanMeier.fit(train_rows, "plan")  # plan = the Telco contract type
    km_tau = km.survival(test_rows, np.array([tau]))[:, 0]
    metrics["kaplan_meier"] = survival_metrics(y, km.survival(test_rows, times), times,
                                               1 - km_tau, tau)  # fmt: skip
    return [
        "### Telco: tenure-based survival",
        "",
        "Time since signup (the snapshot's tenure) is the time scale: `Churn == Yes` is an event "
        "at the tenure, every other customer is censored at theirs. Inputs known at signup only "
        f"(tenure, lifecycle stage and total charges removed). Seeded ({seed}) 30 % of customers "
        f"held out ({int(test.sum()):,}); KM by contract type; tau = {tau:.0f} days.",
        "",
        *table(metrics),
        "",
    ]


def cdnow_section(data: Path, silence_days: int = 90) -> list[str]:
    """Share of customers not yet in their final silence, t days after the holdout start."""
    tables = import_cdnow(data / "cdnow" / "CDNOW_master.txt")
    spec = cdnow.label_spec(silence_days)
    dates = cdnow.training_as_of(silence_days)
    labeled = build_labeled_set(tables, [*dates, cdnow.HOLDOUT_START], spec)
    as_of = pd.to_datetime(labeled["as_of"])
    before = as_of < pd.Timestamp(cdnow.HOLDOUT_START)
    from training.periods import truncate_followup

    train_rows = truncate_followup(labeled[before.to_numpy()], pd.Timestamp(cdnow.HOLDOUT_START))
    features, _ = usable_features(train_rows, np.ones(len(train_rows), dtype=bool))
    model, _ = fit_survival(
        train_rows, features, categorical_levels(labeled, features), silence_days,
        SurvivalConfig(cap_days=270), refit=train_rows,
    )  # fmt: skip
    test = labeled[(as_of == pd.Timestamp(cdnow.HOLDOUT_START)).to_numpy()].reset_index(drop=True)
    days = np.array([30.0, 60.0, 90.0, 180.0])  # grid boundaries: no interpolation
    curve = survival_at(model.hazards(test), model.grid, days).mean(axis=0)
    scores, _ = bgnbd_scores(tables.events, cdnow.HOLDOUT_START, silence_days)
    p_alive = float(scores["bgnbd_p_alive"].mean())
    duration = test["duration_days"].to_numpy()
    follow = test["followup_days"].to_numpy()
    seen = [float((duration[follow >= d] >= d).mean()) for d in days]
    rows = [f"| {d:.0f} | {c:.3f} | {s:.3f} |" for d, c, s in zip(days, curve, seen, strict=True)]
    return [
        "### CDNOW: expected share alive after the holdout start (report, not tuned)",
        "",
        f"Lost = the first silence of {silence_days} days or more; hazard model fitted on monthly "
        f"as-of dates before {cdnow.HOLDOUT_START} (follow-up cut there), scored on its "
        f"{len(test):,} customers. BG/NBD's mean P(alive) at {cdnow.HOLDOUT_START}: "
        f"**{p_alive:.3f}** (its alive means 'has not dropped out for good', ours 'will buy "
        f"again before a {silence_days}-day silence', a stricter event). Customers already "
        "silent at the holdout start are lost on day 0, a point mass inside the first period: "
        "the curve is read at period boundaries only.",
        "",
        "| Days after holdout start | Hazard model: mean S(t) | Observed share not yet lost |",
        "|---:|---:|---:|",
        *rows,
        "",
    ]


def render(data: Path, customers: int, months: int, paths: int = ORACLE_PATHS) -> str:
    sections = [synthetic_section(customers, months, paths=paths), telco_section(data),
                cdnow_section(data)]  # fmt: skip
    header = ["## Time to churn (benchmarks/survival.py)", ""]
    return "\n".join(header + [line for s in sections for line in s])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=30)
    parser.add_argument(
        "--paths", type=int, default=ORACLE_PATHS, help="Futures per as-of (oracle)."
    )
    args = parser.parse_args()
    print(render(args.data, args.customers, args.months, args.paths))


if __name__ == "__main__":
    main()

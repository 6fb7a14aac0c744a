"""Monitoring that does not cry wolf, and a performance estimate that holds: measured.

    .venv/bin/python benchmarks/monitoring.py [--repetitions 200] [--pool-cache FILE]

1. False alarms on unchanged data at 100, 1 000 and 10 000 customers: the share of repetitions
   in which ``training.monitoring.drift.feature_drift`` (all features, default family-wise level,
   no tolerance: the test alone) finds any drift, beside the fixed-threshold PSI rules (PSI of
   any feature over 0.1 / 0.25, and the mean per-feature rate) on the same samples.
   The null, cheaply: one generated world (40 000 customers, seed 11) as of 2025-12-01 is the
   population; each repetition draws 2n distinct active customers at random, n for the
   reference and n for the new snapshot. The generator simulates customers independently given
   the process, so two disjoint random sets of its customers are distributed as two worlds of
   that size with new seeds, at the same date, without regenerating 200 worlds.
2. Estimated (CBPE) vs realised ROC-AUC on 5 later monthly snapshots of one synthetic world: a
   model trained on the export cut at month 24 (labels complete by then only), scoring
   snapshots 1-5 months later whose horizons close inside the simulated period.
3. The drift scenarios: the same model on the first snapshot after each change, the estimate
   beside the realised ROC-AUC and the trust level the monitoring report gives it.
Several minutes on 2 cores (most of it building the population's features).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import time
from datetime import date

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import roc_auc_score

from features.engine import build_features, build_labeled_set, feature_columns
from features.generator import SCENARIOS, generate_world, scenario
from features.labels import LabelSpec
from features.pipeline import build_snapshot, default_as_of
from serving.monitoring import model_scores
from training.fit import FitConfig
from training.monitoring.drift import (
    DriftConfig,
    feature_drift,
    fixed_psi_alarms,
    natural_tolerance,
)
from training.monitoring.freshness import source_freshness
from training.monitoring.performance import estimated_roc_auc
from training.monitoring.report import monitoring_report
from training.pipeline import TrainConfig, train

SIZES = (100, 1_000, 10_000)
POOL_CUSTOMERS, POOL_MONTHS, POOL_SEED = 40_000, 24, 11
WORLD_CUSTOMERS, WORLD_MONTHS, WORLD_SEED, CUT_MONTH = 4_000, 33, 5, 24
console = Console(width=160)


def population(cache: Path | None) -> pd.DataFrame:
    if cache is not None and cache.exists():
        return pd.read_parquet(cache)
    world = generate_world(POOL_CUSTOMERS, POOL_MONTHS, POOL_SEED)
    snapshot = build_snapshot(world.tables, date(2025, 12, 1), date(2025, 11, 30))
    if cache is not None:
        snapshot.to_parquet(cache)
    return snapshot


def false_alarms(
    pool: pd.DataFrame, repetitions: int, sizes: tuple[int, ...] = SIZES, seed: int = 0
) -> Table:
    features = [c for c in feature_columns(pool) if pool[c].nunique(dropna=False) > 1]
    rng = np.random.default_rng(seed)
    table = Table(
        title=f"False alarms on unchanged data ({repetitions} repetitions per size, "
        f"{len(features)} features, any feature alarming counts)"
    )
    for column in (
        "customers",
        f"sample-size test (alpha {DriftConfig().alpha})",
        "PSI > 0.1 rule",
        "PSI > 0.25 rule",
        "PSI > 0.1, per feature",
        "seconds",
    ):
        table.add_column(column, justify="right")
    for n in sizes:
        start = time.perf_counter()
        ours = psi_10 = psi_25 = 0
        per_feature = 0.0
        for _ in range(repetitions):
            rows = rng.choice(len(pool), 2 * n, replace=False)
            reference, current = pool.iloc[rows[:n]], pool.iloc[rows[n:]]
            drift = feature_drift(reference, current, features, None, DriftConfig())
            ours += bool(drift["significant"].any())
            psi = fixed_psi_alarms(reference, current, features)
            psi_10 += bool((psi > 0.1).any())
            psi_25 += bool((psi > 0.25).any())
            per_feature += float((psi > 0.1).mean())
        table.add_row(
            f"{n:,}",
            f"{ours / repetitions:.1%}",
            f"{psi_10 / repetitions:.1%}",
            f"{psi_25 / repetitions:.1%}",
            f"{per_feature / repetitions:.1%}",
            f"{time.perf_counter() - start:.0f}",
        )
    return table


def top_finding(drift: pd.DataFrame) -> str:
    """The most significant drifting feature of the report, paging or not: a change in a
    feature the model does not use (share 0) is detected and reported without paging."""
    found = drift[drift["significant"]].sort_values("p_value", kind="stable")
    if found.empty:
        return "-"
    row = found.iloc[0]
    levels = f", new level {row['new_levels']}" if row["new_levels"] else ""
    return f"{row['feature']} ({row['kind']}{levels}; share {row['share']:.3f})"


def month_start(index: int) -> date:
    return (pd.Timestamp("2024-01-01") + pd.DateOffset(months=index)).date()


def champion_of(tables: object) -> object:
    cut = month_start(CUT_MONTH) - pd.Timedelta(days=1)
    spec = LabelSpec(observed_until=cut)
    dates = [d for d in default_as_of(tables, until=cut) if d <= cut]  # type: ignore[arg-type]
    labeled = build_labeled_set(tables, dates, spec)  # type: ignore[arg-type]
    config = TrainConfig(valid_dates=2, fit=FitConfig(max_trees=300))
    return train(labeled, config), labeled


def estimate_vs_realised(tables: object, model: object, dates: list[date]) -> pd.DataFrame:
    labeled = build_labeled_set(tables, dates, LabelSpec())  # type: ignore[arg-type]
    labeled = labeled[labeled["label_complete"]]
    rows = []
    for day, group in labeled.groupby("as_of"):
        p = model.probability(model.encode(group))  # type: ignore[attr-defined]
        y = group["churned"].to_numpy()
        rows.append(
            {
                "as_of": pd.Timestamp(str(day)).date(),
                "rows": len(group),
                "estimated": estimated_roc_auc(p),
                "realised": roc_auc_score(y, p),
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--pool-cache", type=Path, default=None)
    parser.add_argument("--sizes", default="100,1000,10000", help="Customers per sample.")
    args = parser.parse_args()

    sizes = tuple(int(v) for v in args.sizes.split(","))
    console.print(false_alarms(population(args.pool_cache), args.repetitions, sizes))

    world = generate_world(WORLD_CUSTOMERS, WORLD_MONTHS, WORLD_SEED)
    result, window = champion_of(world.tables)
    model = result.model
    later = [month_start(CUT_MONTH + k) for k in range(1, 6)]
    frame = estimate_vs_realised(world.tables, model, later)
    promised = result.metrics["model"]["roc_auc"]
    table = Table(
        title=f"Estimated vs realised ROC-AUC, 5 later snapshots (model trained on the "
        f"export cut at {month_start(CUT_MONTH)}; promised {promised:.3f})"
    )
    for column in (
        "as_of",
        "customers",
        "estimated (CBPE)",
        "realised",
        "difference",
        "within 0.03",
    ):
        table.add_column(column, justify="right")
    for row in frame.itertuples():
        gap = row.estimated - row.realised
        table.add_row(
            str(row.as_of),
            f"{row.rows:,}",
            f"{row.estimated:.3f}",
            f"{row.realised:.3f}",
            f"{gap:+.3f}",
            "yes" if abs(gap) <= 0.03 else "NO",
        )
    console.print(table)

    reference = window[pd.to_datetime(window["as_of"]) == pd.to_datetime(window["as_of"]).max()]
    ref_scores = model_scores(model, reference)
    importance = dict(
        zip(result.importance["feature"], result.importance["mean_abs_contribution"], strict=True)
    )
    first_after = month_start(CUT_MONTH + 1)
    scenarios = Table(
        title=f"Drift scenarios (change at {month_start(CUT_MONTH)}, snapshot "
        f"{first_after}): how far the estimate is still trustworthy"
    )
    for column in ("scenario", "top alarm", "top finding (reported, may not page)", "estimated",
                   "realised", "difference", "trust"):  # fmt: skip
        scenarios.add_column(column)
    lag = (pd.Timestamp(first_after) - pd.to_datetime(reference["as_of"]).max()).days
    tolerance = natural_tolerance(window, model.features, lag)
    for name in ("none", *SCENARIOS):
        change = None if name == "none" else scenario(name, CUT_MONTH)
        changed = (
            world
            if change is None
            else generate_world(WORLD_CUSTOMERS, WORLD_MONTHS, WORLD_SEED, change=change)
        )
        current = build_features(changed.tables, [first_after])
        scores = model_scores(model, current)
        cut = first_after - pd.Timedelta(days=1)  # the export behind the snapshot
        fresh = source_freshness(changed.tables, cut)
        report = monitoring_report(
            model_name="benchmark",
            model_version="1",
            reference=reference,
            current=current,
            features=model.features,
            reference_scores=ref_scores,
            current_scores=scores,
            importance=importance,
            requires={f: model.info(f).requires for f in model.features},
            freshness=fresh,
            promised={"roc_auc": promised},
            tolerance=tolerance.to_dict(),
        )
        realised = estimate_vs_realised(changed.tables, model, [first_after]).iloc[0]
        top = report.alarms[0].subject + f" ({report.alarms[0].kind})" if report.alarms else "-"
        scenarios.add_row(
            name,
            top,
            top_finding(report.features),
            f"{realised.estimated:.3f}",
            f"{realised.realised:.3f}",
            f"{realised.estimated - realised.realised:+.3f}",
            report.trust,
        )
    console.print(scenarios)


if __name__ == "__main__":
    main()

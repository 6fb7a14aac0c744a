"""ROC-AUC vs per-customer explanation cost over a grid of LightGBM complexities.

    .venv/bin/python benchmarks/explain.py [--customers 5000 --months 24]

Exact TreeSHAP cost grows with trees x leaves x depth^2, so the default complexity must sit on the
Pareto front: within 0.005 ROC-AUC of the best grid point at a fraction of its cost. Prints, per
grid point, the test ROC-AUC (same out-of-time split as `churn train`), the trees kept by early
stopping, and the time of one customer's contributions (1-row `pred_contrib`, one thread) and of
the prediction alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import time
from dataclasses import replace
from functools import partial

import numpy as np
from rich.console import Console
from rich.table import Table

from features.engine import build_labeled_set
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import default_as_of
from training.fit import DEFAULT_PARAMS, FitConfig
from training.pipeline import TrainConfig, train

GRID = [  # (max trees, leaves, max depth)
    (100, 7, 3), (200, 7, 3), (400, 7, 3),
    (100, 15, 5), (200, 15, 5), (400, 15, 5),
    (300, 31, -1), (600, 31, -1), (300, 63, -1),
]  # fmt: skip


def per_row_ms(fn, rows: np.ndarray, repeat: int = 300) -> float:  # type: ignore[no-untyped-def]
    times = []
    for i in range(repeat):
        row = rows[i % len(rows)].reshape(1, -1)
        t0 = time.perf_counter()
        fn(row)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--no-grid", action="store_true", help="Only the default model's row.")
    args = parser.parse_args()
    console = Console(width=150)
    tables = generate_world(args.customers, args.months, seed=42).tables
    from features.contract import parse_tables

    tables = parse_tables(tables)
    labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec())
    table = Table(title="Explanation cost vs accuracy (exact TreeSHAP, LightGBM pred_contrib)")
    for col in ("max trees", "leaves", "depth", "trees kept", "ROC-AUC", "predict ms",
                "contrib ms", "contrib / predict", "default"):  # fmt: skip
        table.add_column(col, justify="right")
    rows = []
    configs = [] if args.no_grid else [
        (f"{trees}", leaves, depth, TrainConfig(
            fit=replace(FitConfig(), params={**DEFAULT_PARAMS, "num_leaves": leaves,
                                             "max_depth": depth}, max_trees=trees),
            capacity_search=False))
        for trees, leaves, depth in GRID
    ]  # fmt: skip
    # the served default: the capacity search of `churn train`, within its TreeSHAP budget
    configs.append(("search", "search", "search", TrainConfig()))
    for trees, leaves, depth, config in configs:
        result = train(labeled, config)
        model = result.model  # the served model: its explanations are what a request pays for
        booster = model.booster
        X = model.encode(labeled.head(500))
        predict = per_row_ms(partial(booster.predict, raw_score=True, num_threads=1), X)
        contrib = per_row_ms(partial(booster.predict, pred_contrib=True, num_threads=1), X)
        if config.capacity_search:
            leaves = str(booster.params.get("num_leaves", leaves))
            depth = str(booster.params.get("max_depth", depth))
        rows.append((trees, leaves, depth, booster.num_trees(), result.metrics["model"]["roc_auc"],
                     predict, contrib, config.capacity_search))  # fmt: skip
    best = max(r[4] for r in rows)
    for trees, leaves, depth, kept, auc, predict, contrib, default in rows:
        table.add_row(str(trees), str(leaves), str(depth), str(kept), f"{auc:.4f}",
                      f"{predict:.3f}", f"{contrib:.3f}", f"{contrib / predict:.0f}x",
                      "<- default (churn train)" if default else "")  # fmt: skip
    console.print(table)
    budget = TrainConfig().explain_budget_ms
    console.print(f"best ROC-AUC {best:.4f}; the default's TreeSHAP per customer must stay "
                  f"<= {budget} ms (its explanation budget).")  # fmt: skip


if __name__ == "__main__":
    main()

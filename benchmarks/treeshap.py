"""Exact TreeSHAP: LightGBM ``pred_contrib`` vs ``fasttreeshap``, per row and per batch.

    .venv/bin/python benchmarks/treeshap.py --workdir /tmp/churn-bench \
        --other-python /tmp/tsvenv/bin/python

Issue 7 asks to adopt a faster exact TreeSHAP only if it is exact to 1e-9 and faster. Neither
candidate is a project dependency: ``fasttreeshap`` (C, a fork of shap 0.39) is measured in a
throwaway virtualenv given by ``--other-python``, because its wheels are built against NumPy 1
(this project runs NumPy 2); ``treeshap`` (Rust) is an sdist that needs crates.io to build. Make
the throwaway venv with (same LightGBM as the project, so both read the same trees)::

    python3 -m venv /tmp/tsvenv
    /tmp/tsvenv/bin/pip install "numpy<2" "pandas==2.2.3" "scikit-learn<1.6" "numba<0.61" \
        "llvmlite<0.44" lightgbm==4.7.0 setuptools wheel
    /tmp/tsvenv/bin/pip install --no-build-isolation fasttreeshap

Models: the champion of a deployment built by ``benchmarks/serve.py --workdir`` (the served
model, early-stopped, with categorical splits) and a 300-tree, 31-leaf booster fitted on the same
labeled set (the reference complexity quoted in the issue); each also refitted with the category
codes as plain numbers, because fasttreeshap (like shap 0.39 it forks) cannot parse LightGBM's
categorical splits. Rows: the deployment's snapshot.
Per-row time: median of single-row calls, one thread. Batch time: best of 3 over all snapshot
rows, one thread and all cores. Exactness: largest absolute difference to ``pred_contrib`` on the
booster's raw margin scale, feature columns and base value.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script's folder holds features.py, training.py, ...: keep it from shadowing the packages
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

PER_ROW_CALLS = 200
EXACT = 1e-9


def per_row_ms(contrib: Callable[[np.ndarray], Any], X: np.ndarray) -> float:
    times = []
    for i in range(min(PER_ROW_CALLS, len(X))):
        row = X[i : i + 1]
        started = time.perf_counter()
        contrib(row)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def batch_ms(contrib: Callable[[np.ndarray], Any], X: np.ndarray, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        contrib(X)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def lightgbm_timings(booster: Any, X: np.ndarray) -> dict[str, Any]:
    """``pred_contrib`` on the booster, as ``ChurnModel.contributions`` calls it."""

    def contrib(threads: int) -> Callable[[np.ndarray], Any]:
        return lambda rows: booster.predict(rows, pred_contrib=True, num_threads=threads)

    def predict(rows: np.ndarray) -> Any:
        return booster.predict(rows, raw_score=True, num_threads=1)

    return {
        "predict row ms": per_row_ms(predict, X),
        "row ms": per_row_ms(contrib(1), X),
        "batch ms 1 thread": batch_ms(contrib(1), X),
        "batch ms all cores": batch_ms(contrib(0), X),
    }


def worker(folder: Path) -> None:
    """In the throwaway venv: time fasttreeshap on ``model_*.txt`` x ``X.npy``; save its values."""
    import fasttreeshap
    import lightgbm as lgb

    X = np.load(folder / "X.npy")
    report: dict[str, Any] = {
        "fasttreeshap": fasttreeshap.__version__,
        "lightgbm": lgb.__version__,
        "numpy": np.__version__,
    }
    for model_file in sorted(folder.glob("model_*.txt")):
        booster = lgb.Booster(model_file=str(model_file))
        for algorithm in ("v1", "v2"):
            key = f"{model_file.stem}.{algorithm}"
            try:
                one = fasttreeshap.TreeExplainer(booster, algorithm=algorithm, n_jobs=1)
                if getattr(one.model, "trees", None) is None:  # shap's parser gave up
                    raise ValueError("cannot parse LightGBM categorical splits (trees is None)")
                every = fasttreeshap.TreeExplainer(booster, algorithm=algorithm, n_jobs=-1)

                def values(explainer: Any, rows: np.ndarray) -> np.ndarray:
                    phi = explainer.shap_values(rows, check_additivity=False)
                    phi = phi[-1] if isinstance(phi, list) else phi
                    base = np.atleast_1d(explainer.expected_value)[-1]
                    return np.column_stack([phi, np.full(len(rows), base)])

                np.save(folder / f"{key}.npy", values(one, X))
                report[key] = {
                    "row ms": per_row_ms(lambda rows, e=one: values(e, rows), X),
                    "batch ms 1 thread": batch_ms(lambda rows, e=one: values(e, rows), X),
                    "batch ms all cores": batch_ms(lambda rows, e=every: values(e, rows), X),
                }
            except Exception as exc:  # reported, not hidden: an algorithm that cannot run
                report[key] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    (folder / "fasttreeshap.json").write_text(json.dumps(report, indent=2))


def models_and_rows(workdir: Path, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """The deployment's champion booster, a 300 x 31 booster on its labeled set, snapshot rows."""
    import lightgbm as lgb
    import pandas as pd

    from training.registry import configure, load_registered

    configure(f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}", workdir / "mlruns" / "artifacts")
    model, version = load_registered("churn-model", "champion")
    snapshot = pd.read_parquet(workdir / "store" / "snapshot.parquet")
    X = model.encode(snapshot)
    labeled = pd.read_parquet(workdir / "features" / "labeled.parquet")
    labeled = labeled[labeled["label_complete"]]
    categorical = [j for j, name in enumerate(model.features) if name in model.categories]
    encoded, label = model.encode(labeled), labeled["churned"].astype(int).to_numpy()
    trees = model.booster.num_trees()

    def fit(params: dict[str, Any], rounds: int, as_categories: bool) -> lgb.Booster:
        """``as_categories=False``: category codes as plain numbers, no categorical splits."""
        data = lgb.Dataset(
            encoded, label, categorical_feature=categorical if as_categories else [],
            free_raw_data=False,
        )  # fmt: skip
        base = {"objective": "binary", "verbose": -1, "seed": seed, "num_threads": 2}
        return lgb.train(base | params, data, num_boost_round=rounds)

    champion_params = {"num_leaves": 15, "max_depth": 5, "learning_rate": 0.05}
    reference_params = {"num_leaves": 31, "learning_rate": 0.05}
    boosters = {
        f"champion v{version} ({trees} trees, categorical splits)": model.booster,
        "300 trees x 31 leaves, categorical splits": fit(reference_params, 300, True),
        f"{trees} trees x 15 leaves, codes as numbers": fit(champion_params, trees, False),
        "300 trees x 31 leaves, codes as numbers": fit(reference_params, 300, False),
    }
    return boosters, X


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="Deployment from benchmarks/serve.py.")
    parser.add_argument(
        "--other-python",
        type=Path,
        default=None,
        help="Python of a throwaway venv with fasttreeshap installed.",
    )
    parser.add_argument("--rows", type=int, default=2000, help="Snapshot rows per batch.")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()  # fmt: skip
    if args.worker is not None:
        worker(args.worker)
        return
    if args.workdir is None:
        parser.error("--workdir is required (build one with benchmarks/serve.py --workdir DIR)")

    import lightgbm as lgb
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(f"load: {os.getloadavg()} on {os.cpu_count()} cores; lightgbm {lgb.__version__}")
    boosters, X = models_and_rows(args.workdir.resolve(), 42)
    X = np.ascontiguousarray(X[: args.rows])
    table = Table(title=f"Exact TreeSHAP on {len(X):,} snapshot rows, {X.shape[1]} features (ms)")
    columns = ("model", "method", "row", "batch 1 thread", "batch all cores",
               "per customer (all cores)", "max |diff| vs pred_contrib", "exact 1e-9")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in ("model", "method") else "right")
    other: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "X.npy", X)
        exact: dict[str, np.ndarray] = {}
        for i, (name, booster) in enumerate(boosters.items()):
            booster.save_model(str(folder / f"model_{i}.txt"))
            exact[f"model_{i}"] = booster.predict(X, pred_contrib=True, num_threads=0)
            t = lightgbm_timings(booster, X)
            table.add_row(
                name, "LightGBM pred_contrib", f"{t['row ms']:.3f}",
                f"{t['batch ms 1 thread']:.1f}", f"{t['batch ms all cores']:.1f}",
                f"{t['batch ms all cores'] / len(X):.4f}", "0 (reference)", "-",
            )  # fmt: skip
            table.add_row(name, "LightGBM predict (no SHAP)", f"{t['predict row ms']:.3f}",
                          "", "", "", "", "")  # fmt: skip
        if args.other_python is None:
            other = {"error": "not measured: pass --other-python (see the docstring)"}
        else:
            run = subprocess.run(
                [str(args.other_python), str(Path(__file__).resolve()), "--worker", tmp],
                capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            report = folder / "fasttreeshap.json"
            if run.returncode != 0 or not report.exists():
                other = {"error": (run.stderr or run.stdout).strip().splitlines()[-1:]}
            else:
                other = json.loads(report.read_text())
        for i, name in enumerate(boosters):
            for algorithm in ("v1", "v2"):
                key = f"model_{i}.{algorithm}"
                t = other.get(key)
                if not t or "error" in t:
                    reason = (t or other).get("error", "not run")
                    table.add_row(name, f"fasttreeshap {algorithm}", f"[red]{reason}", *[""] * 5)
                    continue
                diff = float(np.max(np.abs(np.load(folder / f"{key}.npy") - exact[f"model_{i}"])))
                table.add_row(
                    name, f"fasttreeshap {algorithm}", f"{t['row ms']:.3f}",
                    f"{t['batch ms 1 thread']:.1f}", f"{t['batch ms all cores']:.1f}",
                    f"{t['batch ms all cores'] / len(X):.4f}", f"{diff:.2e}",
                    "[green]yes" if diff <= EXACT else "[red]no",
                )  # fmt: skip
    console.print(table)
    missing = float(np.isnan(X).any(axis=1).mean())
    console.print(f"{missing:.0%} of the rows have at least one missing value (NaN)")
    versions = {k: other[k] for k in ("fasttreeshap", "lightgbm", "numpy") if k in other}
    console.print(f"throwaway venv: {versions or other.get('error')}")
    console.print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()

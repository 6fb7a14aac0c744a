"""``churn score-all`` at a million customers: seconds and peak memory, streamed vs whole.

    .venv/bin/python benchmarks/score_all.py --customers 1000000 --top-k 5

Builds a snapshot cheaply: a generated company (``--base`` customers, 12 months) gives the
labeled set a model is trained on (``training.pipeline.train``: the champion's recipe, with its
survival model) and one real snapshot, whose rows are repeated under new customer ids up to
``--customers``. The inputs are built in a child process, and each scoring runs in another that
reports its own wall time, CPU time and peak RSS (``ru_maxrss``; the parent stays small, since a
forked child's peak starts at its parent's size): the streamed :func:`serving.store.score_all`,
then the history append of its store (``serving.history.append_store``), then the old
whole-snapshot path (``read_snapshot`` + ``score_matrix`` + ``write_score_store``) as the
reference. The bar of
issue 23: streamed score-all of 1 000 000 customers with 5 drivers in at most 120 s and 3 GB.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script's folder holds features.py, training.py, ...: keep it from shadowing the packages
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import resource
import subprocess
import tempfile
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

BAR_SECONDS = 120.0
BAR_GB = 3.0


def build_inputs(base: int, customers: int, work: Path) -> tuple[Path, Path]:
    """A trained model folder and a ``customers``-row snapshot built from a ``base`` company."""
    from features.engine import build_labeled_set, monthly_as_of
    from features.generator import generate_world
    from features.labels import LabelSpec
    from features.pipeline import build_snapshot
    from training.fit import FitConfig
    from training.pipeline import TrainConfig, train

    world = generate_world(base, 12, seed=42)
    tables = world.tables
    assert tables.events is not None
    end = pd.to_datetime(tables.events["timestamp"]).max().date()
    as_of = monthly_as_of(end.replace(year=end.year - 1, day=1), end)[-6:]
    labeled = build_labeled_set(tables, as_of, LabelSpec())
    config = TrainConfig(valid_dates=1, fit=FitConfig(), capacity_search=False, gate_bootstrap=50)
    model = train(labeled, config).model
    model_dir = model.save(work / "model")
    snapshot = build_snapshot(tables).reset_index(drop=True)
    repeats = -(-customers // len(snapshot))
    rows = np.tile(np.arange(len(snapshot)), repeats)[:customers]
    big = snapshot.iloc[rows].reset_index(drop=True)
    copy = np.repeat(np.arange(repeats), len(snapshot))[:customers]
    big["customer_id"] = big["customer_id"].astype(str) + "-" + pd.Series(copy).astype(str)
    path = work / "snapshot.parquet"
    big.to_parquet(path, index=False, compression="zstd")
    return model_dir, path


def child(mode: str, model_dir: Path, snapshot: Path, out: Path, k: int, batch_rows: int) -> None:
    """One measured run (in its own process): prints seconds and peak RSS as JSON."""
    from serving.history import append_store
    from serving.scoring import score_matrix
    from serving.store import ModelRef, read_snapshot, score_all, survival_columns
    from serving.store import write_score_store as write_whole
    from training.model import ChurnModel

    model = ChurnModel.load(model_dir)
    ref = ModelRef("churn-model", "1", "champion")
    t0 = time.perf_counter()
    if mode == "streamed":
        score_all(model, ref, snapshot, out, k, batch_rows=batch_rows)
    elif mode == "history":
        append_store(out.parent, out, "1", datetime.now(UTC))
    else:
        whole = read_snapshot(snapshot, model)
        frame = pd.read_parquet(snapshot)
        write_whole(model, ref, whole, score_matrix(model, whole.X, k), out,
                    survival_columns(model, frame, 0.8, 0.10))  # fmt: skip
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_gb = usage.ru_maxrss / 1024**2  # KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"seconds": seconds, "peak_gb": peak_gb, "cpu_seconds": cpu}))


def measure(mode: str, model_dir: Path, snapshot: Path, out: Path, k: int, batch: int) -> dict:
    command = [sys.executable, __file__, "--child", mode, str(model_dir), str(snapshot), str(out),
               str(k), str(batch)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        nan = float("nan")
        return {"seconds": nan, "peak_gb": nan, "cpu_seconds": nan, "error": done.stderr[-400:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--base", type=int, default=20_000, help="Generated customers.")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--batch-rows", type=int, default=None, help="Default: SCORE_BATCH_ROWS.")
    parser.add_argument("--no-whole", action="store_true", help="Skip the whole-snapshot path.")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--build", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        base, customers, work = args.build
        build_inputs(int(base), int(customers), Path(work))
        return
    if args.child:
        mode, model_dir, snapshot, out, k, batch = args.child
        child(mode, Path(model_dir), Path(snapshot), Path(out), int(k), int(batch))
        return
    from serving.store import SCORE_BATCH_ROWS

    batch = args.batch_rows or SCORE_BATCH_ROWS
    console = Console(width=max(Console().width, 120))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        command = [sys.executable, __file__, "--build", str(args.base), str(args.customers), tmp]
        subprocess.run(command, check=True)
        model_dir, snapshot = work / "model", work / "snapshot.parquet"
        console.print(f"inputs built in {time.perf_counter() - t0:.0f} s: {args.customers:,} "
                      f"snapshot rows ({snapshot.stat().st_size / 1e6:.0f} MB)")  # fmt: skip
        store = work / "store" / "scores.parquet"
        runs = {
            "streamed score-all": measure(
                "streamed", model_dir, snapshot, store, args.top_k, batch
            ),
            "history append": measure("history", model_dir, snapshot, store, args.top_k, batch),
        }
        if not args.no_whole:
            whole = work / "whole.parquet"
            runs["whole snapshot (old)"] = measure("whole", model_dir, snapshot, whole, args.top_k,
                                                   batch)  # fmt: skip
    table = Table(title=f"score-all of {args.customers:,} customers, top {args.top_k} drivers, "
                        f"batches of {batch:,}")  # fmt: skip
    for column in ("path", "seconds", "CPU seconds", "peak RSS (GB)", "bar"):
        table.add_column(column, justify="right")
    for name, run in runs.items():
        bar = ""
        if name == "streamed score-all":
            ok = run["seconds"] <= BAR_SECONDS and run["peak_gb"] <= BAR_GB
            bar = f"{'PASS' if ok else 'FAIL'} (<= {BAR_SECONDS:.0f} s, <= {BAR_GB:.0f} GB)"
        table.add_row(name, f"{run['seconds']:.1f}", f"{run['cpu_seconds']:.1f}",
                      f"{run['peak_gb']:.2f}", bar)  # fmt: skip
    console.print(table)
    for name, run in runs.items():
        if "error" in run:
            console.print(f"{name} failed: {run['error']}")


if __name__ == "__main__":
    main()

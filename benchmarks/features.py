"""Time 12 monthly feature snapshots (labeled set) on a generated world.

    .venv/bin/python benchmarks/features.py --customers 50000 --months 12

Prints seconds, events/s and peak memory (target on 2 cores: <= 60 s and <= 4 GB for 50 000
customers, about 10 M events). Generates the world into a temporary folder unless --data is given.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script's folder holds features.py, training.py, ...: keep it from shadowing the packages
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import resource
import subprocess
import tempfile
import time
from datetime import date

import pandas as pd
from rich.console import Console
from rich.table import Table

from features.contract import TABLE_COLUMNS, RawTables
from features.engine import build_labeled_set, monthly_as_of
from features.labels import LabelSpec


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--snapshots", type=int, default=12)
    args = parser.parse_args()
    console = Console(width=150)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data
        if folder is None:
            folder = Path(tmp) / "world"
            t0 = time.perf_counter()
            # in a child process, so the peak memory below is the feature build's alone
            subprocess.run(
                [sys.executable, "-m", "churn.cli", "generate", "--customers", str(args.customers),
                 "--months", str(args.months), "--out", str(folder)],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            console.print(f"generated in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        tables = RawTables(
            **{
                name: pd.read_parquet(folder / f"{name}.parquet")
                for name in TABLE_COLUMNS
                if (folder / f"{name}.parquet").exists()
            }
        )
        read_s = time.perf_counter() - t0
        assert tables.events is not None
        events = len(tables.events)
        end = pd.to_datetime(tables.events["timestamp"]).max().date()
        as_of = monthly_as_of(date(end.year - 1, end.month, 1), end)[-args.snapshots :]
        t0 = time.perf_counter()
        labeled = build_labeled_set(tables, as_of, LabelSpec())
        build_s = time.perf_counter() - t0
    table = Table(title="Point-in-time labeled set (DuckDB, in-process)")
    for col in ("customers", "events", "as-of dates", "rows", "features", "read s", "build s",
                "events/s", "peak GB"):  # fmt: skip
        table.add_column(col, justify="right")
    table.add_row(
        f"{len(tables.customers):,}", f"{events:,}", str(len(as_of)), f"{len(labeled):,}",
        str(labeled.shape[1] - 4), f"{read_s:.1f}", f"{build_s:.1f}",
        f"{events / build_s:,.0f}", f"{peak_gb():.2f}",
    )  # fmt: skip
    console.print(table)
    console.print("targets: build <= 60 s and peak <= 4 GB for 50 000 customers x 12 snapshots")


if __name__ == "__main__":
    main()

"""The data contract in memory and out of core: seconds and peak memory on one export folder.

    .venv/bin/churn generate --customers 50000 --months 12 --seed 42 --out /tmp/c50k
    .venv/bin/python benchmarks/contract.py /tmp/c50k [--chunk-rows 1000000]

Runs ``validate_folder`` (every table read whole into pandas) and ``validate_export`` (events
and marketing in chunks, features/contract_stream.py) each in a child process, prints the
seconds and the child's peak resident memory (``ru_maxrss``), and checks that both reports are
the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import pickle
import resource
import tempfile
import time

import pandas as pd
from rich.console import Console
from rich.table import Table

NOW = pd.Timestamp("2030-01-01", tz="UTC")


def child(mode: str, folder: Path, chunk_rows: int, out: Path) -> None:
    """One validation in this process; writes the report, seconds and peak RSS to ``out``."""
    start = time.perf_counter()
    if mode == "validate_folder":
        from features.contract import validate_folder

        report = validate_folder(folder, NOW)[1]
    else:
        from features.contract_stream import validate_export

        report = validate_export(folder, NOW, chunk_rows=chunk_rows)
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    out.write_bytes(pickle.dumps((report, seconds, peak_gb)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["validate_folder", "validate_export"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder, args.chunk_rows, args.out)
        return
    import subprocess

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for mode in ("validate_folder", "validate_export"):
            out = Path(scratch) / f"{mode}.pickle"
            subprocess.run(
                [sys.executable, __file__, str(args.folder), "--child", mode, "--out", str(out),
                 "--chunk-rows", str(args.chunk_rows)],
                check=True,
            )  # fmt: skip
            rows.append((mode, *pickle.loads(out.read_bytes())))
    table = Table(title=f"Data contract on {args.folder} (chunks of {args.chunk_rows:,} rows)")
    for column in ("validator", "seconds", "peak RSS (GB)", "findings"):
        table.add_column(column)
    for mode, report, seconds, peak_gb in rows:
        table.add_row(mode, f"{seconds:.1f}", f"{peak_gb:.2f}", report.summary())
    console = Console()
    console.print(table)
    same = rows[0][1] == rows[1][1]
    console.print("same findings" if same else "[bold red]the findings differ[/]")


if __name__ == "__main__":
    main()

"""Time the synthetic world generator: generate + write, rows per table, events/s, peak memory.

Usage: ``python benchmarks/generate.py [--sizes 5000x24,50000x12] [--seed 42]``. Each size runs in
its own child process so the peak resident memory (``getrusage``) belongs to that size alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TABLES = ("subscriptions", "events", "tickets", "invoices", "nps", "marketing", "exit_reasons")


def measure(customers: int, months: int, seed: int) -> dict[str, float | int]:
    """Generate and write one world into a temporary folder; return timings and row counts."""
    from features.generator import generate_world, write_world

    started = time.perf_counter()
    world = generate_world(customers, months, seed)
    generated = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        write_world(world, Path(folder) / "world")
    written = time.perf_counter()
    rows = {name: len(frame) for name, frame in world.tables.present().items()}
    return {
        "customers": customers,
        "months": months,
        **rows,
        "generate_s": generated - started,
        "write_s": written - generated,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "churn_rate": world.drivers["measured"]["monthly_churn_rate"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000x24,50000x12", help="CUSTOMERSxMONTHS, comma list")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: print one JSON result
    args = parser.parse_args()
    if args.one:
        customers, months = (int(v) for v in args.one.split("x"))
        print(json.dumps(measure(customers, months, args.seed)))
        return

    table = Table(title="generate_world + write_world")
    for column in ("customers", "months", *TABLES, "generate s", "write s", "total s"):
        table.add_column(column, justify="right")
    for column in ("events/s", "peak MB", "churn/month"):
        table.add_column(column, justify="right")
    for size in args.sizes.split(","):
        child = subprocess.run(
            # -P: keep benchmarks/ off sys.path, so its scripts never shadow the packages
            [sys.executable, "-P", __file__, "--one", size, "--seed", str(args.seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        total = result["generate_s"] + result["write_s"]
        table.add_row(
            f"{result['customers']:,}",
            str(result["months"]),
            *(f"{result[name]:,}" for name in TABLES),
            f"{result['generate_s']:.1f}",
            f"{result['write_s']:.1f}",
            f"{total:.1f}",
            f"{result['events'] / total:,.0f}",
            f"{result['peak_mb']:,.0f}",
            f"{result['churn_rate']:.2%}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()

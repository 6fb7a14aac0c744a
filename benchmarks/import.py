"""Import speed and peak memory of ``churn import --map`` on a large Segment JSON-lines export.

    .venv/bin/python benchmarks/import.py [--events 2000000 --customers 20000 --memory 1GB]

Writes a Stripe customers + subscriptions export and a Segment track log of ``--events`` lines
(with DuckDB, so the writer is not what is measured), then runs the preset-based mapping in a
child process and prints rows/s and the child's peak resident memory (``ru_maxrss``). The target
is 20 M events within 2 GB: the sources stream through DuckDB under ``--memory``; nothing is
loaded whole into Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
import time

import duckdb
from rich.console import Console
from rich.table import Table

MAPPING = """\
customer_key: stripe_customer
currency: usd
sign_in_events: ["Signed In"]
sources:
  customers:
    preset: stripe.customers
    identity: {account: metadata.account_id}
  subscriptions: {preset: stripe.subscriptions}
  events:
    preset: segment.tracks
    columns: {feature: properties.feature}
"""


def write_export(folder: Path, events: int, customers: int) -> None:
    """Stripe customers/subscriptions and a Segment log, in the vendors' JSON shapes."""
    (folder / "stripe").mkdir(parents=True)
    (folder / "segment").mkdir()
    con = duckdb.connect()
    con.sql(f"""COPY (SELECT 'cus_' || i AS id, 1704067200 + i * 60 AS created,
                  'billing@company-' || i || '.com' AS email, 'Company ' || i AS name,
                  {{'account_id': 'acct_' || i}} AS metadata
                  FROM range({customers}) t(i))
               TO '{folder}/stripe/customers.jsonl' (FORMAT json)""")
    con.sql(f"""COPY (SELECT 'sub_' || i AS id, 'cus_' || i AS customer, 'active' AS status,
                  1704067200 + i * 60 AS start_date, NULL::BIGINT AS ended_at,
                  NULL::BIGINT AS cancel_at, 'usd' AS currency,
                  {{'data': [{{'quantity': 1 + i % 9, 'price': {{'nickname': 'pro',
                    'unit_amount': 1500, 'recurring': {{'interval': 'month',
                    'interval_count': 1}}}}}}]}} AS items
                  FROM range({customers}) t(i))
               TO '{folder}/stripe/subscriptions.jsonl' (FORMAT json)""")
    con.sql(f"""COPY (SELECT 'track' AS type,
                  CASE WHEN i % 3 = 0 THEN 'Signed In' ELSE 'Feature Used' END AS event,
                  'u_' || (i % 97) || '_' || (i % {customers}) AS userId,
                  'msg-' || i AS messageId,
                  strftime(TIMESTAMP '2024-01-01' + INTERVAL (i % 31536000) SECOND,
                           '%Y-%m-%dT%H:%M:%S.000Z') AS timestamp,
                  {{'feature': CASE WHEN i % 3 = 0 THEN NULL ELSE 'Reports' END}} AS properties,
                  {{'groupId': 'acct_' || (hash(i) % {customers}),
                    'library': {{'name': 'analytics.js', 'version': '4.1.0'}}}} AS context
                  FROM range({events}) t(i))
               TO '{folder}/segment/tracks.jsonl' (FORMAT json)""")
    con.close()
    (folder / "mapping.yaml").write_text(MAPPING, encoding="utf-8")


CHILD = """
import json, resource, sys, time
from pathlib import Path
from features.importers.mapped import import_mapped
src, out, memory = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
result = import_mapped(src / "mapping.yaml", src, out, memory_limit=memory)
seconds = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024,
                  "rows": result.manifest["row_counts"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--memory", default="1GB", help="DuckDB memory_limit for the import.")
    parser.add_argument(
        "--keep", type=Path, default=None, help="Write the export here and keep it."
    )
    args = parser.parse_args()
    console = Console(width=140)
    root = Path(tempfile.mkdtemp(prefix="churn-import-bench-"))
    src = args.keep or root / "exports"
    try:
        started = time.perf_counter()
        if not (src / "mapping.yaml").exists():
            write_export(src, args.events, args.customers)
        written = time.perf_counter() - started
        size = sum(p.stat().st_size for p in src.rglob("*.jsonl"))
        child = subprocess.run(
            [sys.executable, "-c", CHILD, str(src), str(root / "contract"), args.memory],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if child.returncode != 0:
            console.print(child.stderr)
            raise SystemExit(child.returncode)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        rows = result["rows"]
        table = Table(title=f"churn import --map: {args.events:,} Segment events (JSON lines)")
        for column in ("events", "customers", "input", "seconds", "events/s", "rows/s",
                       "peak RSS", "memory_limit"):  # fmt: skip
            table.add_column(column, justify="right")
        total = sum(rows.values())
        table.add_row(
            f"{rows.get('events', 0):,}", f"{rows.get('customers', 0):,}",
            f"{size / 1e9:.2f} GB", f"{result['seconds']:.1f}",
            f"{rows.get('events', 0) / result['seconds']:,.0f}",
            f"{total / result['seconds']:,.0f}", f"{result['peak_mb']:,.0f} MB", args.memory,
        )  # fmt: skip
        console.print(table)
        children_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        console.print(f"(export written in {written:.1f} s; peak RSS of the import process, "
                      f"from the parent: {children_mb:,.0f} MB)")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

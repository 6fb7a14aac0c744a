"""Soak the service: steady /score traffic while clients pull reports and the service reloads.

    .venv/bin/python benchmarks/soak.py [--workdir /tmp/churn-soak] [--seconds 600] [--rate 1000]
        [--report-clients 8] [--reload-every 30] [--window 10]

Builds (or reuses) a deployment with ``benchmarks/serve.py``'s builder (generate -> features ->
snapshot -> train -> score-all, which also records the history and runs the rules), starts
``churn serve`` on 127.0.0.1 in its own process, and for a bounded time:

- sends ``POST /score`` by id at ``--rate`` requests/s (open loop: requests are scheduled on a
  clock, so a slow server cannot slow the offered load down); latency is measured from the
  moment the request is handed to the HTTP client, and how far the client itself fell behind
  its schedule is printed as "client lag" (on a busy machine the generator is the bottleneck);
- runs ``--report-clients`` closed-loop clients pulling ``GET /workflows/report``;
- calls ``POST /admin/reload`` every ``--reload-every`` seconds.

Every ``--window`` seconds it prints one row: /score requests, errors (non-200 or transport),
p50 and p99 latency, report calls and their errors, reloads, and the server's RSS (VmRSS of the
process). At the end: totals, overall p50/p99/max, and RSS growth from the first to the last
sample. Targets (issue 16): 0 errors, /score p99 <= 10 ms, RSS growth <= 10 %. The load
generator shares the machine with the server: on a small machine the client is part of what is
measured, and the load average is printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script's folder holds features.py, training.py, ...: keep it from shadowing the packages
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import importlib.util
import os
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def bench_serve() -> ModuleType:
    """``benchmarks/serve.py`` (deployment builder, server runner), loaded by path."""
    spec = importlib.util.spec_from_file_location("bench_serve", HERE / "serve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_serve"] = module
    spec.loader.exec_module(module)
    return module


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (uvicorn workers), in MB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@dataclass
class Window:
    score_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)  # client behind its schedule
    score_errors: int = 0
    reports: int = 0
    report_errors: int = 0
    reloads: int = 0
    reload_errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        if len(self.error_samples) < 3:
            self.error_samples.append(text[:160])


class Soak:
    def __init__(self, port: int, key: str, ids: list[str], args: argparse.Namespace) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.headers = {"X-API-Key": key}
        self.ids, self.args = ids, args
        self.window = Window()
        self.all_ms: list[float] = []
        self.totals = Window()
        self.stop_at = 0.0

    async def score_traffic(self, client: Any) -> None:
        import httpx

        interval = 1.0 / self.args.rate
        started = time.perf_counter()
        n = 0
        pending: set[asyncio.Task[None]] = set()
        rng = random.Random(7)

        async def one(scheduled: float) -> None:
            body = {"customer_id": rng.choice(self.ids)}
            sent = time.perf_counter()
            self.window.lag_ms.append((sent - scheduled) * 1000)
            try:
                response = await client.post("/score", json=body, headers=self.headers)
                elapsed = (time.perf_counter() - sent) * 1000
                if response.status_code != 200:
                    self.window.score_errors += 1
                    self.window.error(f"/score {response.status_code} {response.text}")
                else:
                    self.window.score_ms.append(elapsed)
            except httpx.HTTPError as exc:
                self.window.score_errors += 1
                self.window.error(f"/score {type(exc).__name__}: {exc}")

        while time.perf_counter() < self.stop_at:
            scheduled = started + n * interval
            # always yield: a client behind schedule must still let responses be read
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            due = int((time.perf_counter() - started) / interval) + 1
            for _ in range(max(1, min(due - n, 50))):  # catch up in bursts of at most 50
                task = asyncio.create_task(one(started + n * interval))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
        if pending:
            await asyncio.wait(pending, timeout=30)

    async def report_client(self, client: Any) -> None:
        import httpx

        while time.perf_counter() < self.stop_at:
            try:
                response = await client.get("/workflows/report", headers=self.headers)
                self.window.reports += 1
                if response.status_code != 200:
                    self.window.report_errors += 1
                    self.window.error(f"/workflows/report {response.status_code}")
            except httpx.HTTPError as exc:
                self.window.report_errors += 1
                self.window.error(f"/workflows/report {type(exc).__name__}")

    async def reloader(self, client: Any) -> None:
        import httpx

        while True:
            await asyncio.sleep(self.args.reload_every)
            if time.perf_counter() >= self.stop_at:
                return
            try:
                response = await client.post("/admin/reload", headers=self.headers, timeout=120)
                self.window.reloads += 1
                if response.status_code != 200:
                    self.window.reload_errors += 1
                    self.window.error(f"/admin/reload {response.status_code} {response.text}")
            except httpx.HTTPError as exc:
                self.window.reload_errors += 1
                self.window.error(f"/admin/reload {type(exc).__name__}")

    async def run(self, pid: int, console: Any) -> list[dict[str, Any]]:
        import httpx

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        self.stop_at = started + self.args.seconds
        async with (
            httpx.AsyncClient(base_url=self.base, limits=limits, timeout=30) as scores,
            httpx.AsyncClient(base_url=self.base, timeout=120) as others,
        ):
            tasks = [asyncio.create_task(self.score_traffic(scores))]
            tasks += [asyncio.create_task(self.report_client(others))
                      for _ in range(self.args.report_clients)]  # fmt: skip
            if self.args.reload_every > 0:
                tasks.append(asyncio.create_task(self.reloader(others)))
            rows.append(self.sample(0.0, pid, console))
            while not all(t.done() for t in tasks):
                await asyncio.sleep(self.args.window)
                rows.append(self.sample(time.perf_counter() - started, pid, console))
            for task in tasks:
                task.result()  # a bug in the generator must not pass silently
        if self.window.score_ms or self.window.score_errors:
            rows.append(self.sample(time.perf_counter() - started, pid, console))
        return rows

    def sample(self, t: float, pid: int, console: Any) -> dict[str, Any]:
        w, self.window = self.window, Window()
        self.all_ms += w.score_ms
        for name in ("score_errors", "reports", "report_errors", "reloads", "reload_errors"):
            setattr(self.totals, name, getattr(self.totals, name) + getattr(w, name))
        self.totals.error_samples += w.error_samples
        row = {
            "t": t, "scores": len(w.score_ms) + w.score_errors, "errors": w.score_errors,
            "p50": percentile(w.score_ms, 50), "p99": percentile(w.score_ms, 99),
            "reports": w.reports, "report_errors": w.report_errors, "reloads": w.reloads,
            "reload_errors": w.reload_errors, "rss": rss_mb(pid),
            "lag99": percentile(w.lag_ms, 99),
        }  # fmt: skip
        console.print(
            f"{t:6.0f} s  /score {row['scores']:6d}  err {row['errors']:3d}  "
            f"p50 {row['p50']:7.2f} ms  p99 {row['p99']:8.2f} ms  reports {w.reports:4d} "
            f"(err {w.report_errors})  reloads {w.reloads} (err {w.reload_errors})  "
            f"RSS {row['rss']:7.1f} MB  client lag p99 {row['lag99']:7.1f} ms"
        )
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=None, help="Build or reuse here.")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--seconds", type=float, default=600.0, help="Soak duration.")
    parser.add_argument("--rate", type=float, default=1000.0, help="/score requests per second.")
    parser.add_argument("--report-clients", type=int, default=8)
    parser.add_argument("--reload-every", type=float, default=30.0, help="0 = no reloads.")
    parser.add_argument("--window", type=float, default=10.0, help="Seconds per printed row.")
    parser.add_argument("--workers", type=int, default=1, help="`churn serve --workers`.")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    serve = bench_serve()
    console = Console(width=None if sys.stdout.isatty() else 170)
    temp = None if args.workdir else Path(tempfile.mkdtemp(prefix="churn-soak-"))
    work = (args.workdir or temp).resolve()  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    serve.build_deployment(work, args.customers, args.months, console)
    import pandas as pd

    ids = pd.read_parquet(work / "store" / "snapshot.parquet", columns=["customer_id"])
    ids_list = ids["customer_id"].astype(str).tolist()
    port = serve.free_port()
    argv = [str(serve.BIN / "churn"), "serve", "--port", str(port),
            "--workers", str(args.workers)]  # fmt: skip
    load_before = os.getloadavg()
    console.print(
        f"soak {args.seconds:.0f} s: /score at {args.rate:.0f}/s over {len(ids_list):,} ids, "
        f"{args.report_clients} report clients, reload every {args.reload_every:.0f} s; "
        f"load {load_before[0]:.2f} on {os.cpu_count()} cores"
    )
    with serve.running(argv, serve.deployment_env(work), "/readyz", work / "soak-server.log") as p:
        soak = Soak(port, serve.API_KEY, ids_list, args)
        rows = asyncio.run(soak.run(p.pid, console))
    totals = soak.totals
    first, last = rows[0]["rss"], rows[-1]["rss"]
    peak = max(r["rss"] for r in rows)
    growth = (last / first - 1) * 100 if first else float("nan")
    elapsed = max(rows[-1]["t"], 1e-9)
    table = Table(title="soak summary")
    for column in ("metric", "value"):
        table.add_column(column)
    summary = [
        ("/score requests", f"{len(soak.all_ms) + totals.score_errors:,}"),
        ("/score rate achieved", f"{(len(soak.all_ms) + totals.score_errors) / elapsed:,.0f}/s"),
        ("/score errors", str(totals.score_errors)),
        ("/score p50", f"{percentile(soak.all_ms, 50):.2f} ms"),
        ("/score p99", f"{percentile(soak.all_ms, 99):.2f} ms"),
        ("/score max", f"{max(soak.all_ms, default=float('nan')):.1f} ms"),
        ("report calls (errors)", f"{totals.reports} ({totals.report_errors})"),
        ("reloads (errors)", f"{totals.reloads} ({totals.reload_errors})"),
        ("RSS first / peak / last", f"{first:.0f} / {peak:.0f} / {last:.0f} MB"),
        ("RSS growth first -> last", f"{growth:+.1f} %"),
        ("load average (1 min) after", f"{os.getloadavg()[0]:.2f}"),
    ]  # fmt: skip
    for name, value in summary:
        table.add_row(name, value)
    console.print(table)
    for sample in totals.error_samples[:10]:
        console.print(f"error sample: {sample}")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    console.print(f"after: {uptime}")


if __name__ == "__main__":
    main()

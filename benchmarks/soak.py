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
sample, and the server-side /score latency from the service's own histogram (``/metrics``
before and after), which a starved load generator cannot inflate. Targets (issue 16): 0
errors, /score p99 <= 10 ms, RSS growth <= 10 %. The load generator shares the machine with the
server: on a small machine the client is part of what is measured, and the load average is
printed.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script's folder holds features.py, training.py, ...: keep it from shadowing the packages
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import importlib.util
import json
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


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory in MB of the server process itself, and of its children (the report
    worker, uvicorn workers)."""

    def one(p: int) -> float:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return one(pid), sum(one(k) for k in kids)


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


class HttpError(Exception):
    """A transport failure on a raw connection (reset, closed, malformed response)."""


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams.

    httpx's pool serialises thousands of waiting requests at a few dozen per second on one core
    (the first soak measured the client, not the server: 10-25 req/s with the server 90 % idle),
    so the load generator speaks HTTP itself: a request is prebuilt bytes, a response is its
    status line, headers and a Content-Length or chunked body that is read and discarded.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"", timeout: float = 30.0) -> int:  # fmt: skip
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 f"Content-Length: {len(body)}"]  # fmt: skip
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append("Content-Type: application/json")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        try:
            return await asyncio.wait_for(self._exchange(raw), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, raw: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (h.partition(":") for h in header_lines if h)}  # fmt: skip
        if fields.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            await self.reader.readexactly(int(fields.get("content-length", "0")))
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Soak:
    def __init__(self, port: int, key: str, ids: list[str], args: argparse.Namespace) -> None:
        self.port = port
        self.headers = {"X-API-Key": key}
        self.ids, self.args = ids, args
        self.window = Window()
        self.all_ms: list[float] = []
        self.totals = Window()
        self.stop_at = 0.0

    async def score_traffic(self, connections: int = 32) -> None:
        """Open loop: request i is due at ``start + i / rate``; ``connections`` workers take the
        next due slot in turn, so a slow server shows as latency and client lag, never as a
        lower offered rate hidden from the numbers (coordinated omission)."""
        interval = 1.0 / self.args.rate
        started = time.perf_counter()
        rng = random.Random(7)
        bodies = [json.dumps({"customer_id": i}).encode() for i in self.ids]
        slot = 0

        async def worker() -> None:
            nonlocal slot
            connection = Connection(self.port)
            while True:
                scheduled = started + slot * interval
                slot += 1
                if scheduled >= self.stop_at:
                    break
                await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                sent = time.perf_counter()
                self.window.lag_ms.append((sent - scheduled) * 1000)
                try:
                    status = await connection.request(
                        "POST", "/score", self.headers, rng.choice(bodies)
                    )
                except HttpError as exc:
                    self.window.score_errors += 1
                    self.window.error(f"/score {exc}")
                    continue
                elapsed = (time.perf_counter() - sent) * 1000
                if status != 200:
                    self.window.score_errors += 1
                    self.window.error(f"/score {status}")
                else:
                    self.window.score_ms.append(elapsed)
            connection.close()

        await asyncio.gather(*(worker() for _ in range(connections)))

    async def report_client(self) -> None:
        connection = Connection(self.port)
        while time.perf_counter() < self.stop_at:
            try:
                status = await connection.request(
                    "GET", "/workflows/report", self.headers, timeout=120
                )
                self.window.reports += 1
                if status != 200:
                    self.window.report_errors += 1
                    self.window.error(f"/workflows/report {status}")
            except HttpError as exc:
                self.window.reports += 1
                self.window.report_errors += 1
                self.window.error(f"/workflows/report {exc}")
        connection.close()

    async def reloader(self) -> None:
        while True:
            left = self.stop_at - time.perf_counter()
            await asyncio.sleep(min(self.args.reload_every, max(0.0, left)))
            if time.perf_counter() >= self.stop_at:
                return
            # a new connection each time: an idle one races the server's keep-alive timeout
            connection = Connection(self.port)
            try:
                status = await connection.request("POST", "/admin/reload", self.headers,
                                                  timeout=120)  # fmt: skip
                self.window.reloads += 1
                if status != 200:
                    self.window.reload_errors += 1
                    self.window.error(f"/admin/reload {status}")
            except HttpError as exc:
                self.window.reloads += 1
                self.window.reload_errors += 1
                self.window.error(f"/admin/reload {exc}")
            connection.close()

    async def run(self, pid: int, console: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        self.stop_at = started + self.args.seconds
        tasks = [asyncio.create_task(self.score_traffic())]
        tasks += [asyncio.create_task(self.report_client())
                  for _ in range(self.args.report_clients)]  # fmt: skip
        if self.args.reload_every > 0:
            tasks.append(asyncio.create_task(self.reloader()))
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
        own, children = rss_mb(pid)
        row = {
            "t": t, "scores": len(w.score_ms) + w.score_errors, "errors": w.score_errors,
            "p50": percentile(w.score_ms, 50), "p99": percentile(w.score_ms, 99),
            "reports": w.reports, "report_errors": w.report_errors, "reloads": w.reloads,
            "reload_errors": w.reload_errors, "rss": own, "rss_children": children,
            "lag99": percentile(w.lag_ms, 99),
        }  # fmt: skip
        console.print(
            f"{t:6.0f} s  /score {row['scores']:6d}  err {row['errors']:3d}  "
            f"p50 {row['p50']:7.2f} ms  p99 {row['p99']:8.2f} ms  reports {w.reports:4d} "
            f"(err {w.report_errors})  reloads {w.reloads} (err {w.reload_errors})  "
            f"RSS {row['rss']:6.0f} MB (+{row['rss_children']:.0f} MB worker)  "
            f"client lag p99 {row['lag99']:7.1f} ms"
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
        before = serve.scrape(port)
        rows = asyncio.run(soak.run(p.pid, console))
        server = serve.server_timing(before, serve.scrape(port), "/score")
    totals = soak.totals
    # the first sample after warm-up (the report worker starts with the first report)
    first, last = rows[min(1, len(rows) - 1)]["rss"], rows[-1]["rss"]
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
        ("/score server-side p50 / p99 (histogram)",
         "-" if server is None
         else f"{server.quantile(0.5) * 1000:.2f} / {server.quantile(0.99) * 1000:.2f} ms"),
        ("/score server-side mean, within 10 ms",
         "-" if server is None
         else f"{server.mean * 1000:.2f} ms, {server.share_within(0.01):.2%}"),
        ("report calls (errors)", f"{totals.reports} ({totals.report_errors})"),
        ("reloads (errors)", f"{totals.reloads} ({totals.reload_errors})"),
        ("server RSS first / peak / last", f"{first:.0f} / {peak:.0f} / {last:.0f} MB"),
        ("report worker RSS last", f"{rows[-1]['rss_children']:.0f} MB"),
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

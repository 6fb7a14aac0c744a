"""Load-test this service and `mlflow models serve` on the same registered model.

    .venv/bin/python benchmarks/serve.py [--workdir /tmp/churn-bench] [--scale 1] [--seconds 8]

In one run: builds a demo deployment in a temporary folder (or reuses ``--workdir``): a
5 000-customer, 24-month world, the labeled set, the snapshot, a model trained and registered in
a SQLite MLflow store there, and the score store, all through the ``churn`` CLI. Then, one server
at a time on 127.0.0.1 and a free port:

- ``churn serve --workers 1`` and ``--workers 2`` (uvicorn, httptools, uvloop, TCP_NODELAY forced);
- stock ``uvicorn serving.server:app_from_env --workers 2`` (no forced TCP_NODELAY), with uvloop +
  httptools and with ``--loop asyncio --http h11``: controls for the ~40 ms Nagle / delayed-ACK
  stall on keep-alive connections at concurrency 1 (only ``/score`` by id, concurrency 1);
- ``mlflow models serve -m models:/churn-model@champion --env-manager local``.

A load generator in a separate process (asyncio over raw keep-alive HTTP/1.1 sockets, one
connection per concurrent client, closed loop) sends a bounded number of requests for a bounded
time at concurrency 1 and 16: ``/score`` by id (5 drivers, from the score store), ``/score`` with
live features, ``/score/batch`` of 1 000 (live features, and by id), and mlflow ``/invocations``
with ``dataframe_split`` of 1 and 1 000 rows. Latencies are client-side wall times per request;
server-side times come from the service's ``churn_http_request_seconds`` histogram in ``/metrics``
(difference of two scrapes around each phase; quantiles interpolated within buckets as
Prometheus' ``histogram_quantile`` does, the mean exact from ``_sum / _count``). mlflow exposes no
server-side timing, so it is measured client-side only.

Targets (2-core machine, issue 7): ``/score`` by id server-side p50 <= 1 ms, p99 <= 5 ms and
>= 2 000 req/s at concurrency 16; live features server-side p50 <= 2 ms; batch with drivers
>= 5 000 customers/s; >= 10x the single-customer throughput of ``mlflow models serve``. Load
generator and servers share the machine's cores, and the load average is printed: on a busy
machine every number is pessimistic.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script's folder holds features.py, training.py, ...: keep it from shadowing the packages
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
API_KEY = "bench-key"
MODEL_URI = "models:/churn-model@champion"
BATCH_ROWS = 1000
STALL_MS = 20.0  # a keep-alive p50 above this at concurrency 1 means the Nagle stall is back


# ----------------------------------------------------------------------------------------------
# Load generator: runs in its own process, so its CPU is not the server's event loop.
# ----------------------------------------------------------------------------------------------
class _Run:
    """Shared state of one closed-loop run: what to send, when to stop, what came back."""

    def __init__(self, requests: list[bytes], max_requests: int, max_seconds: float) -> None:
        self.requests, self.max_requests = requests, max_requests
        self.deadline = time.perf_counter() + max_seconds
        self.issued = 0
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def take(self) -> bytes | None:
        if self.issued >= self.max_requests or time.perf_counter() >= self.deadline:
            return None
        request = self.requests[self.issued % len(self.requests)]
        self.issued += 1
        return request


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client: send, read the whole response, send the next one."""

    def __init__(self, run: _Run, done: asyncio.Future[None]) -> None:
        self.run, self.done = run, done
        self.buffer = bytearray()
        self.started = 0.0
        self.body_start = -1
        self.length: int | None = None  # None: chunked
        self.status = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport  # type: ignore[assignment]
        self.send_next()

    def send_next(self) -> None:
        assert self.transport is not None
        request = self.run.take()
        if request is None:
            self.transport.close()
            if not self.done.done():
                self.done.set_result(None)
            return
        self.buffer.clear()
        self.body_start, self.length = -1, None
        self.started = time.perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.body_start < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            self.status = int(head[9:12])
            self.body_start = end + 4
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
            self.length = int(match.group(1)) if match else None
        if self.length is not None:
            complete = len(self.buffer) - self.body_start >= self.length
        else:  # chunked: the last chunk has size 0
            complete = self.buffer.endswith(b"\r\n0\r\n\r\n")
        if complete:
            self.run.latencies.append(time.perf_counter() - self.started)
            self.run.statuses[self.status] += 1
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():  # the server closed it, not us
            self.run.failures.append(f"connection lost: {exc!r}")
            self.done.set_result(None)


async def _closed_loop(
    port: int, requests: list[bytes], concurrency: int, max_requests: int, max_seconds: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    run = _Run(requests, max_requests, max_seconds)
    started = time.perf_counter()
    done = [loop.create_future() for _ in range(concurrency)]
    for future in done:
        await loop.create_connection(lambda f=future: _Connection(run, f), "127.0.0.1", port)
    # bounded: every connection stops issuing at the deadline; allow slow last responses 60 s
    await asyncio.wait_for(asyncio.gather(*done), timeout=max_seconds + 60)
    return {
        "elapsed": time.perf_counter() - started,
        "latencies": run.latencies,
        "statuses": dict(run.statuses),
        "failures": run.failures[:5],
    }


def _load_process(spec: dict[str, Any], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Child process entry: an unrecorded warm-up, then the measured run."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        port, requests, c = spec["port"], spec["requests"], spec["concurrency"]
        if spec["warmup"]:
            asyncio.run(_closed_loop(port, requests, c, spec["warmup"], 5.0))
        out.put(asyncio.run(_closed_loop(port, requests, c, spec["max_requests"], spec["seconds"])))
    except Exception as exc:  # reported by the parent as a failed phase
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def load_test(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one phase in a fresh process; never waits longer than its time bound."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=_load_process, args=(spec, out), daemon=True)
    child.start()
    try:
        return out.get(timeout=spec["seconds"] + 120)  # type: ignore[no-any-return]
    except queue.Empty:
        return {"error": "the load generator did not finish in time"}
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join(timeout=5)


# ----------------------------------------------------------------------------------------------
# Servers: started in their own session, stopped in ``finally`` with their workers.
# ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (supervisor + workers), SIGKILL if it hangs."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # a worker that outlived its supervisor
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    argv: list[str], env: dict[str, str], ready_path: str, log: Path, timeout: float = 300
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, ready (``ready_path`` answers 200) for the duration of the block."""
    import httpx

    port = int(argv[argv.index("--port") + 1])
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited with {process.returncode}; see {log}")
                with contextlib.suppress(httpx.TransportError):
                    url = f"http://127.0.0.1:{port}{ready_path}"
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} not ready after {timeout:.0f} s; see {log}")
                time.sleep(0.5)
            yield process
        finally:
            stop(process)


# ----------------------------------------------------------------------------------------------
# Server-side latency: the service's Prometheus histogram, before and after a phase.
# ----------------------------------------------------------------------------------------------
_SAMPLE = re.compile(r"^churn_http_request_seconds_(bucket|sum|count)\{([^}]*)\}\s+(\S+)$")


def scrape(port: int) -> dict[str, dict[str, float]]:
    """route -> {"le=<bound>": cumulative count, "sum": s, "count": n}."""
    import httpx

    text = httpx.get(
        f"http://127.0.0.1:{port}/metrics", headers={"X-API-Key": API_KEY}, timeout=10
    ).text
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        kind, labels, value = match.groups()
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        series = out.setdefault(label["route"], {})
        key = f"le={float(label['le'])}" if kind == "bucket" else kind
        series[key] = series.get(key, 0.0) + float(value)
    return out


@dataclass
class ServerTiming:
    """Server-side latency of one route over one phase, in seconds."""

    count: float
    mean: float
    buckets: list[tuple[float, float]]  # (upper bound, cumulative count), ascending, with inf

    def quantile(self, q: float) -> float:
        rank, lower, below = q * self.count, 0.0, 0.0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower  # above the largest finite bucket: report its bound
                share = (rank - below) / (cumulative - below) if cumulative > below else 1.0
                return lower + (bound - lower) * share
            lower, below = bound, cumulative
        return lower

    def share_within(self, seconds: float) -> float:
        """Exact share of requests at or under a bucket bound."""
        for bound, cumulative in self.buckets:
            if math.isclose(bound, seconds):
                return cumulative / self.count if self.count else math.nan
        return math.nan


def server_timing(before: dict, after: dict, route: str) -> ServerTiming | None:
    a, b = after.get(route, {}), before.get(route, {})
    count = a.get("count", 0.0) - b.get("count", 0.0)
    if count <= 0:
        return None
    buckets = sorted(
        (float(key[3:]), value - b.get(key, 0.0)) for key, value in a.items() if key[:3] == "le="
    )
    return ServerTiming(count, (a["sum"] - b.get("sum", 0.0)) / count, buckets)


# ----------------------------------------------------------------------------------------------
# The deployment: built once through the CLI, shared by every server.
# ----------------------------------------------------------------------------------------------
def deployment_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "MLFLOW_"))}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env | {
        "CHURN_DATA_DIR": str(work / "world"),
        "CHURN_FEATURES_PATH": str(work / "features" / "labeled.parquet"),
        "CHURN_STORE_DIR": str(work / "store"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
        "CHURN_MLFLOW_ARTIFACT_ROOT": str(work / "mlruns" / "artifacts"),
        "CHURN_PLAYBOOK_PATH": str(REPO / "playbook.yaml"),
        "CHURN_API_KEYS": API_KEY,
        "CHURN_RELOAD_POLL_SECONDS": "0",
        "PYTHONPATH": str(REPO),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # mlflow execs `uvicorn` from PATH
    }


def build_deployment(work: Path, customers: int, months: int, console: Any) -> None:
    """generate -> features -> snapshot -> train/register -> score-all, unless already there."""
    if (work / "store" / "scores.parquet").exists() and (work / "mlruns" / "mlflow.db").exists():
        console.print(f"reusing the deployment in {work}")
        return
    env, churn, world = deployment_env(work), str(BIN / "churn"), str(work / "world")
    steps = [
        ["generate", "--customers", str(customers), "--months", str(months), "--seed", "42",
         "--out", world],
        ["features", "--data", world, "--monthly", "--horizon", "90d"],
        ["snapshot", "--data", world],
        ["train", "--data", world, "--features", str(work / "features" / "labeled.parquet")],
        ["score-all"],
    ]  # fmt: skip
    for step in steps:
        started = time.perf_counter()
        with (work / f"build-{step[0]}.log").open("wb") as sink:
            subprocess.run(
                [churn, *step], env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT,
                check=True, timeout=1800,
            )  # fmt: skip
        console.print(f"churn {step[0]}: {time.perf_counter() - started:.0f} s")


@dataclass
class Payloads:
    """Request bodies, built once from the snapshot and the champion's feature list."""

    features: list[str]
    trees: int
    customer_ids: list[str]
    live_rows: list[dict[str, Any]]  # JSON-ready feature objects (None = missing)
    bodies: dict[str, list[bytes]] = field(default_factory=dict)


def payloads(work: Path) -> Payloads:
    import orjson
    import pandas as pd

    from training.registry import configure, load_registered

    env = deployment_env(work)
    configure(env["MLFLOW_TRACKING_URI"], Path(env["CHURN_MLFLOW_ARTIFACT_ROOT"]))
    model, _ = load_registered("churn-model", "champion")
    snapshot = pd.read_parquet(work / "store" / "snapshot.parquet")
    frame = snapshot[model.features].astype(object)
    frame = frame.where(frame.notna(), None)
    rows = [dict(zip(model.features, values, strict=True)) for values in frame.to_numpy()]
    p = Payloads(list(model.features), model.booster.num_trees(),
                 snapshot["customer_id"].astype(str).tolist(), rows)  # fmt: skip
    ids, n = p.customer_ids, BATCH_ROWS
    batches = [(i * n) % max(1, len(rows) - n) for i in range(3)]
    p.bodies = {
        "by id": [orjson.dumps({"customer_id": cid}) for cid in ids],
        "live features": [orjson.dumps({"features": row}) for row in rows[:500]],
        "batch live": [
            orjson.dumps({"items": [{"features": row} for row in rows[s : s + n]]}) for s in batches
        ],
        "batch by id": [
            orjson.dumps({"items": [{"customer_id": cid} for cid in ids[s : s + n]]})
            for s in batches
        ],
        "1 row": [
            orjson.dumps({"dataframe_split": {"columns": p.features, "data": [list(row.values())]}})
            for row in rows[:500]
        ],
        "1000 rows": [
            orjson.dumps(
                {
                    "dataframe_split": {
                        "columns": p.features,
                        "data": [list(r.values()) for r in rows[s : s + n]],
                    }
                }
            )
            for s in batches
        ],
    }
    return p


def http_requests(port: int, path: str, bodies: list[bytes]) -> list[bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nX-API-Key: {API_KEY}\r\n"
    ).encode()
    return [head + b"Content-Length: %d\r\n\r\n" % len(body) + body for body in bodies]


# ----------------------------------------------------------------------------------------------
# Phases and tables
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    name: str  # key into Payloads.bodies
    path: str
    route: str | None  # our metrics route; None for mlflow
    customers: int  # per request
    check: str  # a byte string every good response contains


OURS = [
    Workload("by id", "/score", "/score", 1, '"top_drivers"'),
    Workload("live features", "/score", "/score", 1, '"source":"live"'),
    Workload("batch live", "/score/batch", "/score/batch", BATCH_ROWS, '"count":1000'),
    Workload("batch by id", "/score/batch", "/score/batch", BATCH_ROWS, '"count":1000'),
]
MLFLOW = [
    Workload("1 row", "/invocations", None, 1, "predictions"),
    Workload("1000 rows", "/invocations", None, BATCH_ROWS, "predictions"),
]
# (requests, warm-up requests) per workload and concurrency, before --scale
BUDGET = {
    ("by id", 1): (1000, 100), ("by id", 16): (4000, 200),
    ("live features", 1): (500, 50), ("live features", 16): (1500, 100),
    ("batch live", 1): (8, 2), ("batch live", 16): (32, 16),
    ("batch by id", 1): (8, 2), ("batch by id", 16): (32, 16),
    ("1 row", 1): (300, 30), ("1 row", 16): (800, 50),
    ("1000 rows", 1): (6, 2), ("1000 rows", 16): (32, 16),
}  # fmt: skip


@dataclass
class Result:
    server: str
    workload: str
    concurrency: int
    requests: int
    errors: int
    rps: float
    customers_per_s: float
    p50_ms: float
    p99_ms: float
    server_timing: ServerTiming | None
    note: str = ""


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def check_response(port: int, workload: Workload, body: bytes) -> None:
    """One request by hand before timing anything: a wrong answer is not a fast answer."""
    import httpx

    response = httpx.post(
        f"http://127.0.0.1:{port}{workload.path}", content=body, timeout=60,
        headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
    )  # fmt: skip
    compact = response.text.replace(" ", "")
    if response.status_code != 200 or workload.check.replace(" ", "") not in compact:
        raise RuntimeError(
            f"{workload.path} ({workload.name}) answered {response.status_code}: "
            f"{response.text[:300]}"
        )


def measure(
    server: str, port: int, workload: Workload, bodies: list[bytes], concurrency: int,
    scale: float, seconds: float, metrics: bool,
) -> Result:  # fmt: skip
    requests, warmup = BUDGET[(workload.name, concurrency)]
    spec = {
        "port": port, "requests": http_requests(port, workload.path, bodies),
        "concurrency": concurrency, "max_requests": max(concurrency, int(requests * scale)),
        "warmup": int(warmup * min(scale, 1.0)), "seconds": seconds,
    }  # fmt: skip
    before = scrape(port) if metrics and workload.route else {}
    outcome = load_test(spec)
    after = scrape(port) if metrics and workload.route else {}
    if "error" in outcome:
        return Result(server, workload.name, concurrency, 0, 0, math.nan, math.nan, math.nan,
                      math.nan, None, outcome["error"])  # fmt: skip
    latencies, statuses = outcome["latencies"], outcome["statuses"]
    done = len(latencies)
    errors = done - statuses.get(200, 0) + len(outcome["failures"])
    rps = done / outcome["elapsed"] if outcome["elapsed"] > 0 else math.nan
    timing = server_timing(before, after, workload.route) if workload.route else None
    note = "; ".join(outcome["failures"]) or (
        f"statuses {statuses}" if set(statuses) - {200} else ""
    )
    return Result(
        server, workload.name, concurrency, done, errors, rps, rps * workload.customers,
        percentile_ms(latencies, 0.50), percentile_ms(latencies, 0.99), timing, note,
    )  # fmt: skip


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value != value else f"{value:,.{digits}f}"


def results_table(results: list[Result]) -> Any:
    from rich.table import Table

    table = Table(title="Load test (client-side wall time per request; server-side from /metrics)")
    for name in ("server", "workload", "conc", "requests", "errors", "req/s", "customers/s",
                 "p50 ms", "p99 ms", "srv p50", "srv p99", "srv mean", "srv <=1ms"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("server", "workload") else "right")
    for r in results:
        t = r.server_timing
        server_cols = (
            [fmt(1000 * t.quantile(0.5), 2), fmt(1000 * t.quantile(0.99), 2),
             fmt(1000 * t.mean, 2), f"{t.share_within(0.001):.0%}"]
            if t else ["n/a"] * 4
        )  # fmt: skip
        table.add_row(
            r.server, r.workload + (f" [red]({r.note})" if r.note else ""), str(r.concurrency),
            f"{r.requests:,}", str(r.errors), fmt(r.rps, 0), fmt(r.customers_per_s, 0),
            fmt(r.p50_ms, 2), fmt(r.p99_ms, 2), *server_cols,
        )  # fmt: skip
    return table


def find(results: list[Result], server: str, workload: str, c: int) -> Result | None:
    for r in results:
        if r.server == server and r.workload == workload and r.concurrency == c:
            return r
    return None


def ratio_table(results: list[Result], ours: list[str]) -> Any:
    from rich.table import Table

    table = Table(title="Ours / mlflow models serve (same registered model; mlflow: no drivers)")
    for name in ("ours", "ours workload", "mlflow workload", "conc", "customers/s ratio",
                 "p50 ratio (mlflow/ours)"):  # fmt: skip
        table.add_column(name, justify="right" if "ratio" in name or name == "conc" else "left")
    pairs = [("by id", "1 row"), ("live features", "1 row"), ("batch live", "1000 rows"),
             ("batch by id", "1000 rows")]  # fmt: skip
    for server in ours:
        for mine, theirs in pairs:
            for c in (1, 16):
                a, b = find(results, server, mine, c), find(results, "mlflow", theirs, c)
                if a is None or b is None:
                    continue
                table.add_row(
                    server, mine, theirs, str(c),
                    f"{a.customers_per_s / b.customers_per_s:,.1f}x",
                    f"{b.p50_ms / a.p50_ms:,.1f}x",
                )  # fmt: skip
    return table


def targets_table(results: list[Result], ours: list[str]) -> Any:
    from rich.table import Table

    table = Table(title="Targets (issue 7, 2 cores)")
    for name in ("target", "server", "measured", "met"):
        table.add_column(name)

    def row(target: str, server: str, measured: str, met: bool | None) -> None:
        verdict = "-" if met is None else "[green]yes" if met else "[red]no"
        table.add_row(target, server, measured, verdict)

    mlflow_single = find(results, "mlflow", "1 row", 16)
    for server in ours:
        by_id, live = find(results, server, "by id", 16), find(results, server, "live features", 1)
        batch = find(results, server, "batch live", 16)
        batch1 = find(results, server, "batch live", 1)
        if by_id and by_id.server_timing:
            t = by_id.server_timing
            share1, share5 = t.share_within(0.001), t.share_within(0.005)
            row(
                "/score by id server p50 <= 1 ms (c16)",
                server,
                f"{1000 * t.quantile(0.5):.2f} ms ({share1:.0%} <= 1 ms)",
                share1 >= 0.5,
            )
            row(
                "/score by id server p99 <= 5 ms (c16)",
                server,
                f"{1000 * t.quantile(0.99):.2f} ms ({share5:.1%} <= 5 ms)",
                share5 >= 0.99,
            )
        if by_id:
            row(">= 2 000 req/s by id (c16)", server, f"{by_id.rps:,.0f} req/s", by_id.rps >= 2000)
        if live and live.server_timing:
            t = live.server_timing
            share2 = t.share_within(0.002)
            row(
                "live features server p50 <= 2 ms (c1)",
                server,
                f"{1000 * t.quantile(0.5):.2f} ms ({share2:.0%} <= 2 ms)",
                share2 >= 0.5,
            )
        best = max((b.customers_per_s for b in (batch, batch1) if b), default=math.nan)
        row(
            ">= 5 000 customers/s, batch with drivers",
            server,
            f"{best:,.0f} /s",
            best >= 5000 if best == best else None,
        )
        if by_id and mlflow_single:
            ratio = by_id.rps / mlflow_single.rps
            row(">= 10x mlflow single-customer req/s (c16)", server, f"{ratio:,.1f}x", ratio >= 10)
    return table


def stall_table(results: list[Result]) -> Any:
    from rich.table import Table

    table = Table(title=f"Nagle / delayed-ACK stall: keep-alive /score by id at concurrency 1 "
                        f"(stall if p50 > {STALL_MS:.0f} ms)")  # fmt: skip
    for name in ("server", "p50 ms", "p99 ms", "stall"):
        table.add_column(name)
    for r in results:
        if r.workload == "by id" and r.concurrency == 1:
            stalled = r.p50_ms > STALL_MS
            table.add_row(r.server, fmt(r.p50_ms, 2), fmt(r.p99_ms, 2),
                          "[red]yes" if stalled else "[green]no")  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Build (or reuse) the deployment here; default a temp dir.",
    )
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply request counts.")
    parser.add_argument("--seconds", type=float, default=8.0, help="Time bound of each phase.")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[1, 2],
        help="`churn serve --workers` values to test.",
    )
    parser.add_argument("--mlflow-workers", type=int, default=1)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--skip-stock", action="store_true", help="Skip the stock-uvicorn TCP_NODELAY control."
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()  # fmt: skip

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 170)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    console.print(f"before: {uptime} ({os.cpu_count()} cores)")
    temp = None if args.workdir else Path(tempfile.mkdtemp(prefix="churn-serve-bench-"))
    work = (args.workdir or temp).resolve()  # type: ignore[union-attr]
    work.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    loads: list[str] = [f"start: {load_text()}"]
    try:
        build_deployment(work, args.customers, args.months, console)
        p = payloads(work)
        console.print(
            f"deployment {work}: {len(p.customer_ids):,} customers in the snapshot, "
            f"{len(p.features)} features, {p.trees} trees"
        )
        env = deployment_env(work)
        servers: list[tuple[str, list[str], str, list[Workload], bool]] = []
        for w in args.workers:
            port = free_port()
            argv = [str(BIN / "churn"), "serve", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(w)]  # fmt: skip
            servers.append((f"churn serve -w{w}", argv, "/readyz", OURS, True))
        if not args.skip_stock:
            port = free_port()
            argv = [str(BIN / "uvicorn"), "serving.server:app_from_env", "--factory",
                    "--host", "127.0.0.1", "--workers", "2", "--loop", "uvloop", "--http",
                    "httptools", "--no-access-log", "--port", str(port)]  # fmt: skip
            servers.append(("stock uvicorn -w2", argv, "/readyz", OURS[:1], False))
            port = free_port()
            argv = [str(BIN / "uvicorn"), "serving.server:app_from_env", "--factory",
                    "--host", "127.0.0.1", "--workers", "2", "--loop", "asyncio", "--http", "h11",
                    "--no-access-log", "--port", str(port)]  # fmt: skip
            servers.append(("stock uvicorn -w2 asyncio h11", argv, "/readyz", OURS[:1], False))
        if not args.skip_mlflow:
            port = free_port()
            argv = [str(BIN / "mlflow"), "models", "serve", "-m", MODEL_URI, "--env-manager",
                    "local", "-h", "127.0.0.1", "-w", str(args.mlflow_workers), "--port",
                    str(port)]  # fmt: skip
            servers.append(("mlflow", argv, "/ping", MLFLOW, False))
        for name, argv, ready, workloads, metrics in servers:
            port = int(argv[argv.index("--port") + 1])
            log = work / f"server-{name.replace(' ', '_')}.log"
            console.print(f"[bold]{name}[/] on 127.0.0.1:{port} ({load_text()})")
            with running(argv, env, ready, log):
                for workload in workloads:
                    bodies = p.bodies[workload.name]
                    check_response(port, workload, bodies[0])
                    concurrencies = [1] if name.startswith("stock") else [1, 16]
                    for c in concurrencies:
                        result = measure(name, port, workload, bodies, c, args.scale,
                                         args.seconds, metrics)  # fmt: skip
                        results.append(result)
                        console.print(
                            f"  {workload.name:<14} c{c:<3} {result.requests:>6,} req "
                            f"{fmt(result.rps, 0):>7} req/s p50 {fmt(result.p50_ms, 2)} ms "
                            f"p99 {fmt(result.p99_ms, 2)} ms {result.note}"
                        )
            loads.append(f"after {name}: {load_text()}")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    ours = [f"churn serve -w{w}" for w in args.workers]
    console.print(results_table(results))
    if not args.skip_mlflow:
        console.print(ratio_table(results, ours))
    console.print(targets_table(results, ours))
    console.print(stall_table(results))
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    console.print(f"after: {uptime}")
    console.print("\n".join(loads))
    if args.json:
        rows = [
            {k: v for k, v in vars(r).items() if k != "server_timing"}
            | ({"server_p50_ms": 1000 * r.server_timing.quantile(0.5),
                "server_p99_ms": 1000 * r.server_timing.quantile(0.99),
                "server_mean_ms": 1000 * r.server_timing.mean,
                "server_share_le_1ms": r.server_timing.share_within(0.001)}
               if r.server_timing else {})
            for r in results
        ]  # fmt: skip
        args.json.write_text(json.dumps({"loads": loads, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

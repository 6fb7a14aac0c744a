"""UI page times with ~50 000 scored customers: the at-risk list (sorted, filtered, searched,
deep page) and customer pages. Target: p50 < 100 ms per page.

Builds a scored world with ``churn.demo.build_scored_world`` (a simulated company tiled to
the target size, two scorings in the history), serves the API + UI under uvicorn on 127.0.0.1,
signs in, warms the UI data once, then requests each page ``--repeat`` times over one keep-alive
connection. Times are wall-clock per request on the loopback, an upper bound of server time.

    .venv/bin/python benchmarks/ui.py [--customers 50000] [--repeat 60] [--root /tmp/churn-ui-bench]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churn.demo import UiServer, build_scored_world, settings_for

BASE_CUSTOMERS = 3000  # simulated; tiled up to the target
KEY = "bench-key"


def sign_in(client: httpx.Client) -> None:
    form = client.get("/ui/signin")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, "no CSRF token on the sign-in form"
    done = client.post("/ui/signin", data={"api_key": KEY, "csrf": token.group(1), "next": "/ui/"})
    assert done.status_code in (200, 303), done.status_code


def timed(client: httpx.Client, url: str, repeat: int) -> tuple[list[float], list[float]]:
    """Server time (the page's Server-Timing header) and wall time per request, in ms."""
    server, wall = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        wall.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        timing = re.search(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
        server.append(float(timing.group(1)) if timing else float("nan"))
    return server, wall


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--root", type=Path, default=Path("/tmp/churn-ui-bench"))
    args = parser.parse_args()

    started = time.perf_counter()
    if (args.root / "store" / "scores.parquet").exists():
        settings = settings_for(args.root, KEY)
        print(f"reusing the world in {args.root} (delete it to rebuild)")
    else:
        active_share = 0.78  # share of simulated customers still active at the export's end
        replicate = max(1, math.ceil(args.customers / (BASE_CUSTOMERS * active_share)))
        world = build_scored_world(args.root, BASE_CUSTOMERS, replicate=replicate, api_key=KEY)
        settings = world.settings
        print(
            f"built a world of {world.customers:,} scored customers in "
            f"{time.perf_counter() - started:.0f} s"
        )

    with UiServer(settings) as server, httpx.Client(base_url=server.base_url) as client:
        sign_in(client)
        warm = time.perf_counter()
        first = client.get("/ui/", timeout=600)
        assert first.status_code == 200
        print(f"first list page (builds the UI data): {time.perf_counter() - warm:.2f} s")
        ids = re.findall(r'data-customer="([^"]+)"', first.text)
        deep = client.get("/ui/?sort=health_score&dir=asc&page=400")
        ids += re.findall(r'data-customer="([^"]+)"', deep.text)
        industry = re.search(
            r'<select name="industry".*?<option>([^<]+)</option>', first.text, re.S
        )
        pages = {
            "list: default (revenue at risk, page 1)": "/ui/",
            "list: sorted by churn risk, page 200": "/ui/?sort=churn_probability&page=200",
            "list: tier=high, industry filter": "/ui/?tier=high&industry="
            + (industry.group(1) if industry else ""),
            "list: search 'capital'": "/ui/?q=capital",
            "list: value segment, sorted by MRR asc": "/ui/?value_segment=VIP&sort=mrr&dir=asc",
        }
        rows = [(label, *timed(client, url, args.repeat)) for label, url in pages.items()]
        server_times: list[float] = []
        wall_times: list[float] = []
        for i in range(args.repeat):
            server, wall = timed(client, f"/ui/customers/{ids[i % len(ids)]}", 1)
            server_times += server
            wall_times += wall
        rows.append(("customer page (waterfall, history, trends)", server_times, wall_times))
        export = time.perf_counter()
        csv = client.get("/ui/export.csv?tier=high", timeout=120)
        export_ms = (time.perf_counter() - export) * 1000

    print(f"\n{'page':<46} {'server p50':>10} {'p95':>7} {'wall p50':>9} {'p95':>7}  (ms)")
    for label, server, wall in rows:
        print(
            f"{label:<46} {statistics.median(server):>10.1f} {percentile(server, 0.95):>7.1f} "
            f"{statistics.median(wall):>9.1f} {percentile(wall, 0.95):>7.1f}"
        )
    lines = csv.text.count("\n") - 1
    print(f"\nCSV export of tier=high: {lines:,} rows in {export_ms:.0f} ms")


if __name__ == "__main__":
    main()

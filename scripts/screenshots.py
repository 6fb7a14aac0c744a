"""Screenshots of the manager UI for the README: the at-risk list, a customer page, analytics.

Renders the demo world (``make demo``: settings from the environment, as ``churn serve``) with
the API + UI under uvicorn on 127.0.0.1 and Debian's Chromium, into ``docs/img/ui-*.png``.

"What moved the score" needs an earlier scoring in the history: when the history holds fewer
than two, the script scores the snapshot (``append_history`` of the score store) and a snapshot
28 days earlier with the champion, exactly what two weekly ``churn score-all`` runs would leave.

    .venv/bin/python scripts/screenshots.py            # the demo world in data/
    .venv/bin/python scripts/screenshots.py --tiny     # a small world built in a temp folder
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from churn_settings import Settings  # noqa: E402 - after the sys.path line
from serving.history import ScoreHistory, append_history  # noqa: E402

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def backfill_history(settings: Settings) -> None:
    """Score the current snapshot and one 28 days earlier into the history if it has < 2."""
    history = ScoreHistory(settings.store_dir)
    scorings = history.scorings()
    history.close()
    if len(scorings) >= 2:
        return
    import mlflow

    from features.contract import load_valid_tables
    from features.io import write_parquet
    from features.pipeline import build_snapshot, snapshot_as_of
    from serving.store import ModelRef, score_all
    from training.registry import load_registered

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    model, version = load_registered(settings.model_name, settings.model_alias)
    ref = ModelRef(settings.model_name, version, settings.model_alias)
    tables, _ = load_valid_tables(settings.data_dir, now=pd.Timestamp.now(tz="UTC"))
    latest = snapshot_as_of(tables)
    with tempfile.TemporaryDirectory() as tmp:
        for day in (latest - timedelta(days=28), latest):
            snapshot, scores = Path(tmp) / "snapshot.parquet", Path(tmp) / "scores.parquet"
            write_parquet(build_snapshot(tables, day), snapshot)
            score_all(model, ref, snapshot, scores, settings.top_k)
            at = datetime.combine(day, datetime.min.time(), UTC)
            append_history(settings.store_dir, pd.read_parquet(scores), version, day, at)
            print(f"history: scored {day} with {ref.name} v{version}")


def shoot(settings: Settings, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from churn.demo import UiServer

    out.mkdir(parents=True, exist_ok=True)
    key = settings.api_key_list()[0]
    made = []
    with UiServer(settings) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        page.set_default_timeout(120_000)
        page.goto(f"{server.base_url}/ui/")
        page.fill("#api_key", key)
        page.click("button[type=submit]")
        page.wait_for_selector("#customers")
        made.append(out / "ui-list.png")
        page.screenshot(path=str(made[-1]))
        # the riskiest customer by revenue at risk that has an explained move since last time
        page.locator("tbody tr td.who a").first.click()
        page.wait_for_selector("#chart-waterfall[data-rendered=true]")
        page.wait_for_timeout(300)
        made.append(out / "ui-customer.png")
        page.screenshot(path=str(made[-1]), full_page=True)
        page.goto(f"{server.base_url}/ui/analytics")
        page.wait_for_function(
            "() => [...document.querySelectorAll('div.chart')].every(c => c.dataset.rendered)"
        )
        made.append(out / "ui-analytics.png")
        page.screenshot(path=str(made[-1]), full_page=True)
        browser.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--tiny", action="store_true", help="build a small world in a temp dir")
    args = parser.parse_args()
    if args.tiny:
        from churn.demo import build_scored_world

        settings = build_scored_world(Path(tempfile.mkdtemp(prefix="churn-ui-"))).settings
    else:
        settings = Settings()
        if not settings.snapshot_path.exists():
            sys.exit(f"No snapshot at {settings.snapshot_path}: run `make demo` first (or --tiny).")
        backfill_history(settings)
    for path in shoot(settings, args.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

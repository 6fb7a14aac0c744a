"""A scored deployment with score history (``churn demo-world``), for the UI's browser tests,
screenshots and benchmark.

The same steps as ``make demo`` followed by two weekly ``churn score-all`` runs, as library
calls: generate a company, build the labeled set, train and register a champion, then score a
snapshot a month before the export's end and one at its end, appending both to the history (so
"what moved the score" has something to say). ``replicate`` tiles the customers (new ids) to
reach benchmark sizes without simulating every one of them. :class:`UiServer` serves such a
world under a real uvicorn in a background thread.

It lives beside the CLI, above every package, because it drives all three (features, training,
serving); nothing in ``serving`` imports it, so the wheel's serving code carries no fixtures.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from churn_settings import Settings
from features.contract import RawTables, load_valid_tables
from features.engine import build_labeled_set
from features.generator import generate_world, write_world
from features.io import write_parquet
from features.labels import LabelSpec
from features.pipeline import build_snapshot, default_as_of, snapshot_as_of
from serving.history import append_store
from serving.store import ModelRef, score_all
from training.fit import FitConfig
from training.pipeline import TrainConfig
from training.registry import configure
from training.workflow import train_and_register

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ScoredWorld:
    settings: Settings
    as_of: date
    previous_as_of: date
    customers: int
    model_version: str
    promoted: bool  # whether the model passed the promotion gate and is the served champion
    gate: str  # the gate's reason, e.g. why a tiny world's model was not promoted


def settings_for(root: Path, api_key: str = "demo-key") -> Settings:
    """The settings of a world built under ``root`` (paths, temp MLflow store, one key)."""
    return Settings(
        data_dir=root / "data",
        features_path=root / "features" / "labeled.parquet",
        store_dir=root / "store",
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        mlflow_artifact_root=root / "artifacts",
        playbook_path=REPO / "playbook.yaml",
        api_keys=api_key,
        reload_poll_seconds=0,
    )


def tile(frame: pd.DataFrame, times: int) -> pd.DataFrame:
    """``times`` copies of ``frame`` with customer ids suffixed ``-r<i>`` (copy 0 unchanged)."""
    if times <= 1:
        return frame
    parts = []
    for i in range(times):
        part = frame.copy()
        if i:
            part["customer_id"] = part["customer_id"].astype(str) + f"-r{i}"
            if "name" in part:
                part["name"] = part["name"].astype(str) + f" ({i + 1})"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def build_scored_world(
    root: Path,
    customers: int = 900,
    months: int = 14,
    seed: int = 7,
    replicate: int = 1,
    api_key: str = "demo-key",
    max_trees: int = 60,
) -> ScoredWorld:
    """Everything the UI reads, under ``root`` (data, labeled set, MLflow store, store)."""
    root = Path(root)
    data = root / "data"
    write_world(generate_world(customers, months, seed=seed), data)
    tables, _ = load_valid_tables(data, now=pd.Timestamp("2100-01-01", tz="UTC"))
    labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec())
    settings = settings_for(root, api_key)
    configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    report = train_and_register(
        labeled,
        TrainConfig(valid_dates=1, fit=FitConfig(max_trees=max_trees)),
        model_name=settings.model_name,
        tracking_uri=settings.mlflow_tracking_uri,
    )
    model = report.result.model
    ref = ModelRef(settings.model_name, str(report.version), settings.model_alias)
    if replicate > 1:
        _replicate_data(data, tables, replicate)
        labeled = tile(labeled, replicate)
    write_parquet(labeled, settings.features_path)
    latest = snapshot_as_of(tables)
    previous = latest - timedelta(days=28)
    store = settings.store_dir
    for day, snapshot_path, scores_path in (
        (previous, store / "snapshot-previous.parquet", store / "scores-previous.parquet"),
        (latest, settings.snapshot_path, settings.score_store_path),
    ):
        write_parquet(tile(build_snapshot(tables, day), replicate), snapshot_path)
        score_all(model, ref, snapshot_path, scores_path, settings.top_k)
        scored_at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=2)
        append_store(store, scores_path, ref.version, scored_at)
    served = len(pd.read_parquet(settings.snapshot_path, columns=["customer_id"]))
    decision = report.decision
    return ScoredWorld(
        settings, latest, previous, served, ref.version, decision.promoted, decision.reason
    )


def _replicate_data(data: Path, tables: RawTables, times: int) -> None:
    """Tile the small tables the UI reads (customers, subscriptions, exit reasons)."""
    for name in ("customers", "subscriptions", "exit_reasons"):
        frame = getattr(tables, name)
        if frame is None:
            continue
        tiled = tile(frame, times)
        if "subscription_id" in tiled:
            tiled["subscription_id"] = np.arange(len(tiled)).astype(str)
        for old in data.glob(f"{name}.*"):
            old.unlink()
        write_parquet(tiled, data / f"{name}.parquet")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class UiServer:
    """The API with the UI mounted, under a real uvicorn on 127.0.0.1, in a background thread."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        import uvicorn

        from serving.app import create_app

        app = create_app(settings)  # mounts the UI
        self.app = app
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn-ui", daemon=True)

    def __enter__(self) -> UiServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited before it started; see the log above")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 120 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.app.state.ui_data.close()

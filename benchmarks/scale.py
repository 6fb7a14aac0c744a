"""DuckDB vs Spark: feature build and batch scoring time and peak memory as the company grows.

    .venv/bin/python benchmarks/scale.py --sizes 5000,50000,200000 --months 12
    .venv/bin/python benchmarks/scale.py --sizes 50000 --spark-master "local-cluster[2,1,2048]"
    .venv/bin/python benchmarks/scale.py --score-all 1000000     # benchmarks/score_all.py

For each size: generate a world (Parquet), build the labeled set for the last ``--snapshots``
monthly as-of dates and write it to Parquet (DuckDB: pandas in, ``build_labeled_set``; Spark:
``read_export`` + ``build(..., engine=SparkEngine)``, no pandas), then train a small model once and
score every row (DuckDB path: ``score_frame`` + ``scores_table``; Spark: ``score_spark``). Prints
seconds, events per second and where Spark starts to win (measured, or extrapolated from a
straight-line fit of seconds against events). Peak RSS is sampled over this process and its
children (the Spark driver JVM, local-cluster executors and their Python workers) during each
feature build. ``--spark-master local-cluster[workers,cores,MB]`` runs Spark with executor
JVMs as on a cluster instead of ``local[cores]``. Needs the ``spark`` extra and Java 17.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this script's folder holds features.py, training.py, ...: keep it from shadowing the packages
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date

import lightgbm as lgb
import numpy as np
import pandas as pd
import psutil
from pyspark.sql import functions as F
from rich.console import Console
from rich.table import Table

from features.contract import TABLE_COLUMNS, RawTables
from features.engine import build, build_labeled_set, feature_columns, monthly_as_of
from features.generator import generate_world
from features.io import write_parquet
from features.labels import LabelSpec
from features.spark_engine import SparkEngine, local_session, read_export, write_frame
from serving.scoring import score_frame, scores_table
from serving.spark_scoring import score_spark
from training.model import ChurnModel, ScoreMap


@dataclass
class Run:
    customers: int
    events: int
    rows: int
    duck_features: float
    spark_features: float
    duck_scoring: float
    spark_scoring: float
    duck_peak_gb: float
    spark_peak_gb: float
    feature_difference: float
    """Largest difference of a feature between the engines (relative past 1, as 1e-9 reads)."""
    unequal: tuple[str, ...]
    """Columns whose values differ beyond 1e-9, or scores / drivers not bit for bit equal."""


class PeakRss:
    """Peak resident memory (GB) of this process plus all its descendants, sampled every
    ``interval`` seconds while the block runs: Spark's memory lives in child JVMs."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.gb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return total / 1024**3

    def _run(self) -> None:
        while not self._stop.is_set():
            self.gb = max(self.gb, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.gb = max(self.gb, self._sample())


def train_small_model(labeled: pd.DataFrame) -> ChurnModel:
    """A quick LightGBM model: scoring cost depends on the trees, not on how well they predict."""
    names = feature_columns(labeled)
    categories = {
        c: sorted(labeled[c].dropna().astype(str).unique())
        for c in names
        if not pd.api.types.is_numeric_dtype(labeled[c])
    }
    model = ChurnModel(None, names, categories, (1.0, 0.0), ScoreMap((0.03, 0.06, 0.12)), 90,  # type: ignore[arg-type]
                       "contractual")  # fmt: skip
    sample = labeled.sample(n=min(len(labeled), 50_000), random_state=0)
    data = lgb.Dataset(model.encode(sample), sample["churned"].to_numpy(), feature_name=names,
                       categorical_feature=list(categories))  # fmt: skip
    params = {"objective": "binary", "num_leaves": 31, "verbosity": -1, "seed": 0}
    model.booster = lgb.train(params, data, num_boost_round=200)
    return model


def feature_difference(duck: pd.DataFrame, spark: pd.DataFrame) -> tuple[float, list[str]]:
    """The largest numeric difference between the two labeled sets (absolute, or relative for
    values past 1: the tests' ``rtol = atol = 1e-9``) and the columns that disagree beyond it
    (text and labels must be equal, the same missing cells missing)."""
    if list(spark.columns) != list(duck.columns):
        return float("inf"), ["column list"]
    keys = ["customer_id", "as_of"]
    duck = duck.sort_values(keys, ignore_index=True)
    spark = spark.sort_values(keys, ignore_index=True)
    if len(duck) != len(spark):
        return float("inf"), ["row count"]
    worst, unequal = 0.0, []
    for column in duck.columns:
        left, right = duck[column], spark[column]
        if column == "as_of":
            same = bool((pd.to_datetime(left).to_numpy() == pd.to_datetime(right).to_numpy()).all())
        elif pd.api.types.is_numeric_dtype(left) and not pd.api.types.is_bool_dtype(left):
            a, b = left.to_numpy(np.float64), right.to_numpy(np.float64)
            same = bool((np.isnan(a) == np.isnan(b)).all())
            both = ~np.isnan(a) & ~np.isnan(b)
            gap = np.abs(a[both] - b[both]) / np.maximum(1.0, np.abs(a[both]))
            difference = float(gap.max()) if gap.size else 0.0
            worst = max(worst, difference)
            same = same and difference <= 1e-9
        else:
            same = (
                left.astype(object).where(left.notna(), None).tolist()
                == right.astype(object).where(right.notna(), None).tolist()
            )
        if not same:
            unequal.append(column)
    return worst, unequal


def scores_unequal(duck: pd.DataFrame, spark: pd.DataFrame) -> list[str]:
    """The score columns (probability, health, tier, drivers, sentences) not bit for bit equal."""
    if list(spark.columns) != list(duck.columns) or len(spark) != len(duck):
        return ["score columns or rows"]
    keys = ["customer_id", "as_of"]
    duck = duck.sort_values(keys, ignore_index=True)
    spark = spark.sort_values(keys, ignore_index=True)
    unequal = []
    for column in duck.columns:
        left, right = duck[column], spark[column]
        if pd.api.types.is_float_dtype(left):
            same = np.array_equal(left.to_numpy(float), right.to_numpy(float), equal_nan=True)
        elif column == "as_of":
            same = bool((pd.to_datetime(left).to_numpy() == pd.to_datetime(right).to_numpy()).all())
        else:
            same = left.astype(str).tolist() == right.astype(str).tolist()
        if not same:
            unequal.append(f"score {column}")
    return unequal


def run_size(
    customers: int, months: int, snapshots: int, work: Path, spark_cores: int, master: str | None
) -> Run:
    console = Console()
    folder = work / f"world-{customers}"
    folder.mkdir()
    t0 = time.perf_counter()
    world = generate_world(customers, months, seed=42)
    for name, frame in world.tables.present().items():
        frame.to_parquet(folder / f"{name}.parquet", index=False, compression="zstd")
    del world
    console.print(f"{customers:,} customers generated in {time.perf_counter() - t0:.0f} s")
    spec = LabelSpec()

    # DuckDB: Parquet -> pandas -> labeled set -> Parquet
    t0 = time.perf_counter()
    duck_peak = PeakRss().__enter__()
    tables = RawTables(
        **{
            name: pd.read_parquet(folder / f"{name}.parquet")
            for name in TABLE_COLUMNS
            if (folder / f"{name}.parquet").exists()
        }
    )
    assert tables.events is not None
    end = pd.to_datetime(tables.events["timestamp"]).max().date()
    as_of = monthly_as_of(date(end.year - 1, end.month, 1), end)[-snapshots:]
    labeled = build_labeled_set(tables, as_of, spec)
    write_parquet(labeled, work / "duck_labeled.parquet")
    duck_features = time.perf_counter() - t0
    duck_peak.__exit__()
    events = len(tables.events)
    del tables
    console.print(f"  duckdb features {duck_features:.1f} s ({len(labeled):,} rows)")

    # Spark: Parquet -> Spark -> labeled set -> Parquet (never through pandas)
    spark_peak = PeakRss().__enter__()
    spark = local_session(cores=spark_cores, memory="6g", shuffle_partitions=4 * spark_cores,
                          master=master)  # fmt: skip
    t0 = time.perf_counter()
    engine = SparkEngine(spark)
    on_spark = build(read_export(spark, str(folder)), as_of, spec, engine, labels=True)
    on_spark.write_parquet(str(work / "spark_labeled"))
    spark_features = time.perf_counter() - t0
    spark_peak.__exit__()
    engine.close()
    console.print(f"  spark features {spark_features:.1f} s")

    model = train_small_model(labeled)
    model_dir = model.save(work / "model")

    # score-all scores the latest snapshot: the rows of the last as-of date
    latest = pd.Timestamp(as_of[-1])
    t0 = time.perf_counter()
    frame = pd.read_parquet(work / "duck_labeled.parquet", filters=[("as_of", "==", latest)])
    X = model.encode(frame)
    scored = score_frame(model, frame, 3)
    table = scores_table(
        model, frame["customer_id"].to_numpy(), frame["as_of"].to_numpy(), X, scored
    )
    write_parquet(table, work / "duck_scores.parquet")
    duck_scoring = time.perf_counter() - t0
    console.print(f"  duckdb/pandas scoring {duck_scoring:.1f} s ({len(frame):,} rows)")

    t0 = time.perf_counter()
    features = spark.read.parquet(str(work / "spark_labeled")).where(F.col("as_of") == latest)
    write_frame(score_spark(features, model_dir, 3), str(work / "spark_scores"))
    spark_scoring = time.perf_counter() - t0
    console.print(f"  spark scoring {spark_scoring:.1f} s")

    # the same tables and scores on both engines (issue 23: features to 1e-9, scores bit for bit)
    difference, unequal = feature_difference(labeled, pd.read_parquet(work / "spark_labeled"))
    unequal += scores_unequal(table, pd.read_parquet(work / "spark_scores"))
    console.print(
        f"  largest feature difference {difference:.1e}; "
        + (f"NOT EQUAL: {', '.join(unequal)}" if unequal else "scores and drivers bit-identical")
    )
    return Run(customers, events, len(labeled), duck_features, spark_features, duck_scoring,
               spark_scoring, duck_peak.gb, spark_peak.gb, difference,
               tuple(unequal))  # fmt: skip


def crossover(runs: list[Run], duck: str, spark: str) -> str:
    """Where Spark's line (seconds vs events) crosses DuckDB's: measured or extrapolated."""
    for run in runs:
        if getattr(run, spark) <= getattr(run, duck):
            return (
                f"measured: Spark faster from {run.customers:,} customers ({run.events:,} events)"
            )
    if len(runs) < 2:
        return "need two sizes to extrapolate"
    x = np.array([r.events for r in runs], dtype=float)
    d_slope, d_icpt = np.polyfit(x, [getattr(r, duck) for r in runs], 1)
    s_slope, s_icpt = np.polyfit(x, [getattr(r, spark) for r in runs], 1)
    if s_slope >= d_slope:
        return "no crossover on one machine: Spark's time grows at least as fast as DuckDB's"
    events = (s_icpt - d_icpt) / (d_slope - s_slope)
    per_customer = runs[-1].events / runs[-1].customers
    return (
        f"extrapolated: about {events:,.0f} events (~{events / per_customer:,.0f} customers) "
        "on this machine; a cluster moves it down with every executor added"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000,50000,200000", help="Customers, comma-separated.")
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--snapshots", type=int, default=6, help="Monthly as-of dates.")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="Spark cores.")
    parser.add_argument("--spark-master", default=None,
                        help="Default local[cores]; e.g. local-cluster[2,1,2048].")  # fmt: skip
    parser.add_argument("--score-all", type=int, default=None, metavar="N",
                        help="Instead: score-all of N customers (score_all.py).")  # fmt: skip
    args = parser.parse_args()
    if args.score_all:
        script = Path(__file__).with_name("score_all.py")
        command = [sys.executable, str(script), "--customers", str(args.score_all)]
        raise SystemExit(subprocess.run(command, check=False).returncode)
    master = args.spark_master or f"local[{args.cores}]"
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for customers in sizes:
            work = Path(tmp) / str(customers)
            work.mkdir()
            runs.append(run_size(customers, args.months, args.snapshots, work, args.cores,
                                 master))  # fmt: skip
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:  # before exit: a killed local-cluster logs executor errors
            active.stop()
    table = Table(title=f"DuckDB vs Spark {master}: seconds (lower is better), peak RSS")
    columns = ("customers", "events", "rows", "DuckDB features", "Spark features",
               "DuckDB peak GB", "Spark peak GB", "DuckDB scoring", "Spark scoring",
               "DuckDB events/s", "Spark events/s", "max feature diff",
               "same tables and scores")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(
            f"{r.customers:,}", f"{r.events:,}", f"{r.rows:,}", f"{r.duck_features:.1f}",
            f"{r.spark_features:.1f}", f"{r.duck_peak_gb:.2f}", f"{r.spark_peak_gb:.2f}",
            f"{r.duck_scoring:.1f}", f"{r.spark_scoring:.1f}",
            f"{r.events / r.duck_features:,.0f}", f"{r.events / r.spark_features:,.0f}",
            f"{r.feature_difference:.1e}", ", ".join(r.unequal) or "yes",
        )  # fmt: skip
    console = Console(width=max(Console().width, 200))  # the table must not truncate in logs
    console.print(table)
    console.print(f"features crossover: {crossover(runs, 'duck_features', 'spark_features')}")
    console.print(f"scoring crossover:  {crossover(runs, 'duck_scoring', 'spark_scoring')}")


if __name__ == "__main__":
    main()

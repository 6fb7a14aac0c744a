"""The Spark engine on ``local-cluster[2,1,1024]``: a standalone master, two workers and two
executor JVMs on this machine, so data, the broadcast model and Python workers cross process
boundaries as on a real cluster. The DuckDB parity checks of ``test_spark.py`` and
``tests/serving/test_spark_scoring.py`` run again on it.

One cluster per pytest process at a time: the module stops the shared ``local[2]`` session,
starts the cluster, and stops it at the end (the next module starts ``local[2]`` again). Same
xdist group as the other Spark tests, so it never runs beside them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="PySpark not installed: uv sync --extra spark")

from pyspark.sql import SparkSession

from features.engine import build_labeled_set
from features.labels import LabelSpec
from features.spark_engine import SparkEngine, cluster_master, local_session, read_export
from tests.features.test_leakage import START, random_world
from tests.features.test_spark import assert_same_table, java_problem
from tests.serving.test_spark_scoring import (
    assert_spark_scores_the_service_way,
    small_model_and_snapshot,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

MASTER = cluster_master(workers=2, cores=1, memory_mb=1024)


@pytest.fixture(scope="module")
def cluster() -> Iterator[SparkSession]:
    problem = java_problem()
    if problem:
        pytest.skip(f"Java not found: {problem}")
    spark = local_session(memory="1g", shuffle_partitions=2, tiny_data=True, master=MASTER)
    yield spark
    spark.stop()


def test_the_session_runs_tasks_on_two_executor_jvms(cluster: SparkSession) -> None:
    assert cluster.sparkContext.master == "local-cluster[2,1,1024]"
    status = cluster.sparkContext._jsc.sc().getExecutorMemoryStatus
    deadline = time.monotonic() + 60  # executors register a few seconds after the session starts
    while status().size() < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status().size() == 3  # the driver and two executors


def test_cluster_features_from_parquet_equal_duckdb(cluster: SparkSession, tmp_path: Path) -> None:
    """A tiny world with every table and optional column, exported as Parquet and read by the
    executors: the labeled set equals DuckDB's (features within 1e-9, same labels)."""
    tables = random_world(11, customers=40)
    for name, frame in tables.present().items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    as_of = [(START + pd.Timedelta(days=d)).date() for d in (40, 90, 130)]
    spec = LabelSpec()
    engine = SparkEngine(cluster)
    on_cluster = build_labeled_set(read_export(cluster, str(tmp_path)), as_of, spec, engine=engine)
    engine.close()
    duck = build_labeled_set(tables, as_of, spec)
    assert len(duck) > 40 and duck["churned"].nunique() == 2
    assert_same_table(duck, on_cluster)


def test_cluster_scores_and_drivers_are_the_service_ones_bit_for_bit(
    cluster: SparkSession, tmp_path: Path
) -> None:
    assert_spark_scores_the_service_way(cluster, *small_model_and_snapshot(), tmp_path)

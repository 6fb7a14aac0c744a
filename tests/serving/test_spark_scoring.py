"""Spark batch scoring gives the service's answers: same probability, health, tier and drivers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pyspark", reason="PySpark not installed: uv sync --extra spark")

from pyspark.sql import SparkSession

from features.contract import parse_tables
from features.engine import build_labeled_set, feature_columns
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import build_snapshot, default_as_of
from features.spark_engine import spark_frame
from serving.scoring import score_frame, scores_table
from serving.spark_scoring import score_spark
from tests.features.test_spark import spark_session
from training.model import ChurnModel, ScoreMap

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

TOP_K = 3


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    yield spark_session()


@pytest.fixture(scope="module")
def world() -> tuple[ChurnModel, pd.DataFrame]:
    return small_model_and_snapshot()


def small_model_and_snapshot() -> tuple[ChurnModel, pd.DataFrame]:
    """A small LightGBM churn model trained on a generated company, and its latest snapshot."""
    tables = parse_tables(generate_world(300, 8, seed=1).tables)
    labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec(horizon_days=60))
    names = feature_columns(labeled)
    categories = {
        c: sorted(labeled[c].dropna().astype(str).unique())
        for c in names
        if not pd.api.types.is_numeric_dtype(labeled[c])
    }
    model = ChurnModel(None, names, categories, (0.9, -0.2), ScoreMap((0.05, 0.1, 0.2)), 60,  # type: ignore[arg-type]
                       "contractual")  # fmt: skip
    params = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 5, "seed": 0,
              "deterministic": True, "verbosity": -1, "num_threads": 1}  # fmt: skip
    data = lgb.Dataset(model.encode(labeled), labeled["churned"].to_numpy(), feature_name=names,
                       categorical_feature=list(categories))  # fmt: skip
    model.booster = lgb.train(params, data, num_boost_round=25)
    return model, build_snapshot(tables)


def assert_same_scores(service: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert list(spark.columns) == list(service.columns)
    keys = ["customer_id", "as_of"]
    service = service.sort_values(keys, ignore_index=True)
    spark = spark.sort_values(keys, ignore_index=True)
    for column in service.columns:
        left, right = service[column], spark[column]
        if pd.api.types.is_float_dtype(left):
            np.testing.assert_array_equal(right.to_numpy(float), left.to_numpy(float), column)
        elif column == "as_of":
            assert (pd.to_datetime(left).to_numpy() == pd.to_datetime(right).to_numpy()).all()
        else:
            assert left.astype(str).tolist() == right.astype(str).tolist(), column


def test_spark_batch_scores_equal_the_service_scores_and_drivers(
    spark: SparkSession, world: tuple[ChurnModel, pd.DataFrame], tmp_path: Path
) -> None:
    assert_spark_scores_the_service_way(spark, *world, tmp_path)


def assert_spark_scores_the_service_way(
    spark: SparkSession, model: ChurnModel, snapshot: pd.DataFrame, tmp_path: Path
) -> None:
    """``score_spark`` on several partitions gives ``scores_table``'s rows, bit for bit."""
    X = model.encode(snapshot)
    service = scores_table(
        model, snapshot["customer_id"].to_numpy(), snapshot["as_of"].to_numpy(), X,
        score_frame(model, snapshot, TOP_K),
    )  # fmt: skip
    assert service["tier"].nunique() > 1 and len(service) > 100
    # several partitions: every Python worker loads the broadcast model itself
    features = spark_frame(spark, snapshot).repartition(3)
    on_spark = score_spark(features, model.save(tmp_path / "model"), TOP_K).toPandas()
    assert_same_scores(service, on_spark)
    assert on_spark["driver_1_sentence"].str.len().min() > 0

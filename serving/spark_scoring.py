"""Batch scoring on Spark: the service's scoring core applied per partition with ``mapInPandas``.

The two model files (``model.txt``, ``model.json``) are broadcast as bytes and loaded once per
Python worker with :meth:`ChurnModel.load`, the loader every other path uses. Each Arrow batch
goes through :func:`serving.scoring.score_matrix` and :func:`serving.scoring.scores_table`, so
probability, health score, tier, contributions and driver sentences are the numbers ``/score``
returns for the same features, not a re-implementation.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from features.spark_engine import spark_type
from serving.scoring import score_matrix, scores_table
from training.model import ChurnModel

MODEL_FILES = ("model.txt", "model.json")
DEFAULT_TOP_K = 3

# Models already loaded in this Python worker, by content hash: Spark reuses workers across
# tasks, so a model is parsed once per worker, not once per partition.
_LOADED: dict[str, ChurnModel] = {}


def model_files(folder: Path) -> dict[str, bytes]:
    """The saved model (``ChurnModel.save``) as bytes, small enough to broadcast."""
    return {name: (Path(folder) / name).read_bytes() for name in MODEL_FILES}


def load_from_bytes(files: dict[str, bytes]) -> ChurnModel:
    """The model of :func:`model_files`, cached per process."""
    key = hashlib.sha256(b"".join(files[name] for name in MODEL_FILES)).hexdigest()
    model = _LOADED.get(key)
    if model is None:
        with tempfile.TemporaryDirectory(prefix="churn-model-") as folder:
            for name, content in files.items():
                (Path(folder) / name).write_bytes(content)
            model = ChurnModel.load(Path(folder))
        _LOADED[key] = model
    return model


def _score_batch(model: ChurnModel, frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """One batch of feature rows -> the score-store table (the service's code path)."""
    X = model.encode(frame)
    scored = score_matrix(model, X, k, num_threads=1)  # one Spark task per core already
    as_of = pd.to_datetime(frame["as_of"]).to_numpy(dtype="datetime64[us]")
    return scores_table(model, frame["customer_id"].to_numpy(), as_of, X, scored)


def scores_schema(model: ChurnModel, k: int) -> T.StructType:
    """The Spark schema of :func:`serving.scoring.scores_table`, read off one scored dummy row.

    Derived rather than written out so it follows the scoring core if its columns change.
    """
    dummy = pd.DataFrame({"customer_id": ["schema"], "as_of": [pd.Timestamp("2000-01-01")]})
    table = _score_batch(model, dummy, k)
    return T.StructType(
        [T.StructField(str(c), spark_type(table[c].dtype), True) for c in table.columns]
    )


def score_spark(features: DataFrame, model: ChurnModel | Path, k: int = DEFAULT_TOP_K) -> DataFrame:
    """Score every row of a feature table (snapshot or labeled set) on the cluster.

    ``features`` needs ``customer_id``, ``as_of`` and the model's feature columns (absent ones
    read as missing, as in ``ChurnModel.encode``). Returns one row per input row with
    ``churn_probability``, ``health_score``, ``tier``, ``base_value``, ``contribution.<feature>``
    and ``driver_<i>_feature|contribution|sentence`` for the top ``k`` drivers. Lazy: write it.
    ``model`` is a loaded model (e.g. ``training.registry.load_registered``) or its saved folder.
    """
    spark = features.sparkSession
    if isinstance(model, ChurnModel):
        with tempfile.TemporaryDirectory(prefix="churn-model-") as folder:
            files = model_files(model.save(Path(folder)))
    else:
        files = model_files(model)
        model = ChurnModel.load(model)
    shipped = spark.sparkContext.broadcast(files)
    schema = scores_schema(model, k)
    needed = ["customer_id", "as_of", *[f for f in model.features if f in features.columns]]

    def score_partition(batches: Iterable[pd.DataFrame]) -> Iterable[pd.DataFrame]:
        worker_model = load_from_bytes(shipped.value)
        for frame in batches:
            if len(frame):
                yield _score_batch(worker_model, frame, k)

    return features.select(*[f"`{c}`" for c in needed]).mapInPandas(score_partition, schema)


__all__ = ["MODEL_FILES", "model_files", "score_spark", "scores_schema"]

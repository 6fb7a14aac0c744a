"""The feature snapshot and the score store: the files serving reads.

``data/store/snapshot.parquet`` (``churn snapshot``) holds every active customer's features as of
the snapshot date. ``data/store/scores.parquet`` (``churn score-all``) holds what the champion
makes of them: probability, health score, tier, every contribution, the base value and the top
drivers in words, with the model name, version and alias, the ``as_of`` and a fingerprint of
the snapshot in the Parquet metadata.

The score store is a cache of the snapshot under one model version: serving uses its
contributions only when model version and snapshot fingerprint both match, and otherwise scores
the snapshot itself at load (vectorised, a few seconds for 100 000 customers), so a stale store
can never be served.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.catalog import CATALOG_VERSION
from features.io import atomic_path
from serving.errors import ScoreStoreError
from serving.scoring import ScoredBatch, score_matrix, scores_table
from training.model import ChurnModel

METADATA_KEY = b"churn.score_store"


@dataclass(frozen=True)
class ModelRef:
    """Which registered model produced a score: name, version and the alias it was served under."""

    name: str
    version: str
    alias: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "alias": self.alias}


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The served customers: ids, per-row as-of dates (ISO) and the encoded feature matrix."""

    customer_ids: np.ndarray  # object array of str, unique
    as_of: np.ndarray  # object array of ISO dates
    X: np.ndarray  # (n, f) float64, model.encode
    fingerprint: str


def empty_snapshot(model: ChurnModel) -> Snapshot:
    return Snapshot(
        np.empty(0, dtype=object),
        np.empty(0, dtype=object),
        np.empty((0, len(model.features))),
        "empty",
    )


def read_snapshot(path: Path, model: ChurnModel) -> Snapshot:
    """Read and check a feature snapshot against the model that will score it."""
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError:
        raise ScoreStoreError(
            f"No feature snapshot at {path} (missing): build it with `churn snapshot`."
        ) from None
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ScoreStoreError(
            f"The feature snapshot {path} is corrupt ({str(exc)[:200]}): rebuild it with "
            "`churn snapshot`."
        ) from None
    return snapshot_from_frame(frame, model, str(path))


def snapshot_from_frame(frame: pd.DataFrame, model: ChurnModel, source: str) -> Snapshot:
    """Check ids and feature columns, then encode once for the whole life of the state."""
    check_snapshot_columns(frame, model, source)
    ids = checked_ids(frame["customer_id"], source)
    as_of = pd.to_datetime(frame["as_of"]).dt.strftime("%Y-%m-%d")
    return Snapshot(
        customer_ids=ids.to_numpy(dtype=object),
        as_of=as_of.to_numpy(dtype=object),
        X=model.encode(frame),
        fingerprint=hashlib.sha256(row_hashes(frame, model).tobytes()).hexdigest()[:16],
    )


def check_snapshot_columns(frame: pd.DataFrame, model: ChurnModel, source: str) -> None:
    """Ids, as-of dates and every feature the model reads must be columns of the snapshot."""
    for column in ("customer_id", "as_of"):
        if column not in frame.columns:
            raise ScoreStoreError(f"{source}: column '{column}' is missing; rebuild the snapshot.")
    missing = [name for name in model.features if name not in frame.columns]
    if missing:
        raise ScoreStoreError(
            f"{source}: the model needs feature column(s) {', '.join(missing[:10])} that the "
            "snapshot lacks; rebuild it with `churn snapshot --model NAME@ALIAS` (the columns "
            "that model reads, even when the export's event types changed)."
        )


def checked_ids(customer_ids: pd.Series, source: str) -> pd.Series:
    """The ids as strings, refused when one is missing or appears twice."""
    ids = customer_ids.astype("string")
    if ids.isna().any():
        raise ScoreStoreError(f"{source}: {int(ids.isna().sum())} rows have no customer_id.")
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        raise ScoreStoreError(
            f"{source}: customer_id(s) {', '.join(map(str, duplicated[:5]))} appear more than once;"
            " a snapshot has one row per customer."
        )
    return ids


def row_hashes(frame: pd.DataFrame, model: ChurnModel) -> np.ndarray:
    """One hash per snapshot row over id, as-of and the model's features: the fingerprint is
    the SHA-256 of their bytes, so it can be computed whole or batch by batch alike."""
    columns = ["customer_id", "as_of", *model.features]
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def write_score_store(
    model: ChurnModel,
    ref: ModelRef,
    snapshot: Snapshot,
    scored: ScoredBatch,
    path: Path,
    survival: pd.DataFrame | None = None,
) -> Path:
    """Write the score store atomically, with the model and snapshot it belongs to.

    ``survival``: the time-to-churn columns (``survival.*``), row-aligned with the snapshot.
    """
    table = scores_table(model, snapshot.customer_ids, snapshot.as_of, snapshot.X, scored)
    if survival is not None:
        table = pd.concat([table, survival], axis=1)
    meta = {
        **ref.as_dict(),
        "snapshot_fingerprint": snapshot.fingerprint,
        "as_of": sorted(set(snapshot.as_of.tolist())),
        "features": model.features,
        "catalog_version": CATALOG_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "customers": len(table),
        "survival": survival is not None,
    }
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()}
    )
    with atomic_path(Path(path)) as tmp:
        pq.write_table(arrow, tmp, compression="zstd")
    return Path(path)


def store_metadata(path: Path) -> dict[str, Any] | None:
    """The score store's metadata, or None when there is no readable store."""
    try:
        return read_store_metadata(path)
    except ScoreStoreError:
        return None


def read_store_metadata(path: Path) -> dict[str, Any] | None:
    """The score store's metadata; None when there is no file; :class:`ScoreStoreError` when
    there is one that cannot be read (truncated, not Parquet, no metadata): missing and corrupt
    are different problems with different fixes."""
    if not Path(path).exists():
        return None
    try:
        schema = pq.read_schema(path)
        raw = (schema.metadata or {}).get(METADATA_KEY)
        meta = json.loads(raw) if raw else None
    except (OSError, pa.ArrowInvalid, ValueError) as exc:
        raise ScoreStoreError(
            f"The score store {path} is corrupt ({str(exc)[:200]}): rebuild it with "
            "`churn score-all`."
        ) from None
    if not isinstance(meta, dict):
        raise ScoreStoreError(
            f"The score store {path} has no churn metadata: rebuild it with `churn score-all`."
        )
    return meta


def read_contributions(
    path: Path, model: ChurnModel, ref: ModelRef, snapshot: Snapshot
) -> tuple[np.ndarray | None, str]:
    """The store's contribution matrix, row-aligned with ``snapshot``, if it belongs to this
    model version and this snapshot; else None and the reason (logged, shown in /readyz)."""
    try:
        meta = read_store_metadata(path)
    except ScoreStoreError as exc:
        return None, str(exc)
    if meta is None:
        return None, f"no score store at {path}"
    if (meta.get("name"), str(meta.get("version"))) != (ref.name, ref.version):
        return None, (
            f"score store is for {meta.get('name')} v{meta.get('version')}, serving v{ref.version}"
        )
    if meta.get("snapshot_fingerprint") != snapshot.fingerprint:
        return None, "score store was computed from another snapshot"
    if meta.get("features") != model.features:
        return None, "score store has other features than the model"
    columns = ["customer_id", *[f"contribution.{n}" for n in model.features], "base_value"]
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        return None, f"cannot read the score store {path}: {exc}"
    ids = np.asarray(table.column("customer_id").to_pylist(), dtype=object)
    if len(ids) != len(snapshot.customer_ids) or not np.array_equal(ids, snapshot.customer_ids):
        return None, "score store rows do not match the snapshot"
    matrix = np.column_stack([table.column(c).to_numpy() for c in columns[1:]])
    return np.ascontiguousarray(matrix, dtype=np.float64), "score store"


def read_survival(path: Path, snapshot: Snapshot) -> list[dict[str, Any]] | None:
    """Each snapshot row's survival block from the store (call after :func:`read_contributions`
    accepted it), or None when the store has none."""
    meta = store_metadata(path)
    if not meta or not meta.get("survival"):
        return None
    schema = pq.read_schema(path)
    columns = [c for c in schema.names if c.startswith(SURVIVAL_PREFIX)]
    table = pq.read_table(path, columns=["customer_id", *columns]).to_pandas()
    if not np.array_equal(table["customer_id"].astype(str).to_numpy(dtype=object),
                          snapshot.customer_ids.astype(str)):  # fmt: skip
        return None
    return [survival_block(row) for row in table[columns].to_dict("records")]


def survival_block(row: dict[str, Any]) -> dict[str, Any]:
    """One stored row's ``survival.*`` columns as the API's survival block."""

    def number(name: str) -> float | None:
        value = row.get(SURVIVAL_PREFIX + name)
        return None if value is None or not np.isfinite(value) else round(float(value), 6)

    curve = {
        name[len(SURVIVAL_PREFIX + "survival_") :]: number(name[len(SURVIVAL_PREFIX) :])
        for name in row
        if name.startswith(SURVIVAL_PREFIX + "survival_")
    }
    return {
        "survival": curve,
        **{key: number(key) for key in ("median_days_to_churn", "expected_days_to_churn",
                                        "p_renew_next", "expected_revenue_12m",
                                        "revenue_at_risk_12m", "expected_ltv")},
    }  # fmt: skip


SCORE_BATCH_ROWS = 100_000
"""Snapshot rows scored and written per step of :func:`score_all`: memory is bounded by this
many rows (about 1 GB at 100 000 customers with 5 drivers), not by the customer count."""


def _open_snapshot(snapshot_path: Path) -> list[pq.ParquetFile]:
    """The snapshot's Parquet files: one (``churn snapshot``) or a folder's part files in name
    order (``churn snapshot --engine spark``; ``_SUCCESS`` and hidden files skipped), the order
    ``pd.read_parquet`` reads them in."""
    path = Path(snapshot_path)
    if not path.exists():
        raise ScoreStoreError(
            f"No feature snapshot at {snapshot_path} (missing): build it with `churn snapshot`."
        )
    files = (
        sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", ".")))
        if path.is_dir()
        else [path]
    )
    try:
        parts = [pq.ParquetFile(f) for f in files]
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise ScoreStoreError(
            f"The feature snapshot {snapshot_path} is corrupt ({str(exc)[:200]}): rebuild it "
            "with `churn snapshot`."
        ) from None
    if not parts:
        raise ScoreStoreError(f"The feature snapshot folder {snapshot_path} has no Parquet files.")
    return parts


def _snapshot_batches(
    source: list[pq.ParquetFile], path: Path, batch_rows: int, columns: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The snapshot's rows in file order, at most ``batch_rows`` at a time. ``iter_batches``
    decodes pages as it goes, so one big row group is still read a batch at a time (an Arrow
    dataset scan would hold row groups and read ahead: twice the memory)."""
    try:
        for part in source:
            for batch in part.iter_batches(batch_size=batch_rows, columns=columns):
                if not batch.num_rows:
                    continue
                frame = batch.to_pandas()
                frame.attrs = {}  # pandas deep-copies attrs at every column access: seconds
                yield frame
    except (OSError, pa.ArrowException) as exc:
        raise ScoreStoreError(
            f"The feature snapshot {path} is corrupt ({str(exc)[:200]}): rebuild it with "
            "`churn snapshot`."
        ) from None


def snapshot_summary(
    snapshot_path: Path, model: ChurnModel, batch_rows: int = SCORE_BATCH_ROWS
) -> tuple[str, list[str], int]:
    """The snapshot's fingerprint, sorted as-of dates and row count, read batch by batch.

    The fingerprint equals :func:`snapshot_from_frame`'s (row hashes do not depend on the
    batch), so serving recognises a streamed store as its snapshot's. Ids are checked over the
    whole file first (one column): a duplicate across two batches is still a duplicate.
    """
    source = _open_snapshot(snapshot_path)
    columns = ["customer_id", "as_of", *model.features]
    check_snapshot_columns(source[0].schema_arrow.empty_table().to_pandas(), model,
                           str(snapshot_path))  # fmt: skip
    try:
        ids = pd.concat(
            [p.read(columns=["customer_id"]).column("customer_id").to_pandas() for p in source],
            ignore_index=True,
        )
    except (OSError, pa.ArrowException) as exc:
        raise ScoreStoreError(
            f"The feature snapshot {snapshot_path} is corrupt ({str(exc)[:200]}): rebuild it "
            "with `churn snapshot`."
        ) from None
    checked_ids(ids, str(snapshot_path))
    digest = hashlib.sha256()
    days: set[str] = set()
    rows = 0
    for frame in _snapshot_batches(source, snapshot_path, batch_rows, columns):
        digest.update(row_hashes(frame, model).tobytes())
        days.update(pd.to_datetime(frame["as_of"]).dt.strftime("%Y-%m-%d").unique().tolist())
        rows += len(frame)
    return digest.hexdigest()[:16], sorted(days), rows


def score_all(
    model: ChurnModel,
    ref: ModelRef,
    snapshot_path: Path,
    out: Path,
    k: int,
    num_threads: int = 0,
    gross_margin: float = 0.8,
    annual_discount_rate: float = 0.10,
    batch_rows: int = SCORE_BATCH_ROWS,
) -> tuple[Path, int]:
    """Score every snapshot customer with one model and write the score store (``churn
    score-all``); returns the path and the number of customers.

    Streams: the snapshot is read ``batch_rows`` at a time, each batch goes through the scoring
    core and becomes one row group of the store, so peak memory is one batch whatever the
    number of customers. The store appears only when every batch is written (``atomic_path``):
    a crash leaves the previous one in place. Same rows, values and metadata as
    :func:`write_score_store` of the whole snapshot.
    """
    fingerprint, days, rows = snapshot_summary(snapshot_path, model, batch_rows)
    source = _open_snapshot(snapshot_path)
    meta = {
        **ref.as_dict(),
        "snapshot_fingerprint": fingerprint,
        "as_of": days,
        "features": model.features,
        "catalog_version": CATALOG_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "customers": rows,
        "survival": model.survival is not None,
    }
    with atomic_path(Path(out)) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            batches = _snapshot_batches(source, snapshot_path, batch_rows)
            for frame in batches:
                arrow = _scored_arrow(model, frame, str(snapshot_path), k, num_threads,
                                      gross_margin, annual_discount_rate)  # fmt: skip
                if writer is None:
                    schema = arrow.schema.with_metadata(
                        {**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(meta).encode()}
                    )
                    writer = pq.ParquetWriter(tmp, schema, compression="zstd")
                if not arrow.schema.equals(schema):
                    arrow = arrow.cast(schema)  # e.g. a column null in one batch
                writer.write_table(arrow)
            if writer is None:  # no rows: an empty store with the columns of one
                empty = source[0].schema_arrow.empty_table().to_pandas()
                arrow = _scored_arrow(model, empty, str(snapshot_path), k, num_threads,
                                      gross_margin, annual_discount_rate)  # fmt: skip
                metadata = {**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(meta)}
                pq.write_table(arrow.replace_schema_metadata(metadata), tmp, compression="zstd")
        finally:
            if writer is not None:
                writer.close()
    return Path(out), rows


def _scored_arrow(
    model: ChurnModel,
    frame: pd.DataFrame,
    source: str,
    k: int,
    num_threads: int,
    gross_margin: float,
    annual_discount_rate: float,
) -> pa.Table:
    """One snapshot batch as score-store rows (the columns :func:`write_score_store` writes);
    ids were checked and the fingerprint taken over the whole file (:func:`snapshot_summary`)."""

    check_snapshot_columns(frame, model, source)
    ids = frame["customer_id"].astype("string").to_numpy(dtype=object)
    as_of = pd.to_datetime(frame["as_of"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    X = model.encode(frame)
    scored = score_matrix(model, X, k, num_threads)
    table = scores_table(model, ids, as_of, X, scored)
    survival = survival_columns(model, frame, gross_margin, annual_discount_rate)
    if survival is not None:
        table = pd.concat([table, survival], axis=1)
    return pa.Table.from_pandas(table, preserve_index=False)


SURVIVAL_PREFIX = "survival."


def survival_columns(
    model: ChurnModel, frame: pd.DataFrame, gross_margin: float, annual_discount_rate: float
) -> pd.DataFrame | None:
    """Each customer's time-to-churn numbers (``training.survival.outcomes``), precomputed so
    that ``/score`` by id reads them like the contributions; None for a model without one."""
    if model.survival is None:
        return None
    from training.survival import outcomes

    values = outcomes(model.survival, frame.reset_index(drop=True), gross_margin,
                      annual_discount_rate)  # fmt: skip
    return values.add_prefix(SURVIVAL_PREFIX).reset_index(drop=True)


# features.io.atomic_path's temporaries: ".<target>.<8 mkdtemp chars>", ".<target>.old-<pid>"
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.(?:[a-z0-9_]{8}|old-\d+)$")
STALE_TEMPORARY_SECONDS = 900.0


def clean_stale_temporaries(
    folder: Path, min_age_seconds: float = STALE_TEMPORARY_SECONDS, now: float | None = None
) -> list[Path]:
    """Remove the temporary folders an atomic write leaves when it is killed (``kill -9``
    between ``mkdtemp`` and the rename): hidden folders named like ``atomic_path``'s, under
    ``folder``, untouched for ``min_age_seconds`` (a write in progress is younger). Returns
    what was removed."""
    moment = time.time() if now is None else now
    removed: list[Path] = []
    if not Path(folder).is_dir():
        return removed
    for candidate in sorted(Path(folder).rglob(".*")):
        if not candidate.is_dir() or not _TEMPORARY.match(candidate.name):
            continue
        try:
            newest = max(
                [candidate.stat().st_mtime] + [p.stat().st_mtime for p in candidate.rglob("*")]
            )
        except OSError:
            continue
        if moment - newest >= min_age_seconds:
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def example_customer_id(snapshot_path: Path) -> str | None:
    """The first customer id of the snapshot (for the curl line ``churn serve`` prints)."""
    try:
        ids = pq.read_table(snapshot_path, columns=["customer_id"]).column("customer_id")
    except (OSError, pa.ArrowInvalid, KeyError):
        return None
    return str(ids[0]) if len(ids) else None

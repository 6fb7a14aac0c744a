"""``score-all`` streams the snapshot: same store as scoring it whole, crash-safe, batch-bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import serving.store as store
from serving.errors import ScoreStoreError
from serving.scoring import score_matrix
from serving.store import (
    METADATA_KEY,
    ModelRef,
    read_snapshot,
    score_all,
    survival_columns,
    write_score_store,
)
from tests.serving.conftest import Deployment

REF = ModelRef("churn-model", "1", "champion")
K = 5


def assert_same_store(left: Path, right: Path) -> None:
    """Same rows and values: scores, contributions and drivers bit for bit; the survival money
    columns to 1e-12 (``discounted_months`` is a BLAS product, whose last bits depend on how
    many rows it is given at once)."""
    a, b = pd.read_parquet(left), pd.read_parquet(right)
    survival = [c for c in a.columns if c.startswith("survival.")]
    pd.testing.assert_frame_equal(a.drop(columns=survival), b.drop(columns=survival),
                                  check_exact=True)  # fmt: skip
    pd.testing.assert_frame_equal(a[survival], b[survival], check_exact=False, rtol=1e-12)


def metadata(path: Path) -> dict[str, object]:
    meta = json.loads((pq.read_schema(path).metadata or {})[METADATA_KEY])
    meta.pop("created_at")
    return meta


def test_streamed_store_equals_the_store_of_the_whole_snapshot(
    deployment: Deployment, tmp_path: Path
) -> None:
    model, snapshot_path = deployment.model, deployment.settings.snapshot_path
    rows = len(deployment.snapshot)
    snapshot = read_snapshot(snapshot_path, model)
    frame = pd.read_parquet(snapshot_path)
    whole = write_score_store(model, REF, snapshot, score_matrix(model, snapshot.X, K),
                              tmp_path / "whole.parquet",
                              survival_columns(model, frame, 0.8, 0.10))  # fmt: skip
    streamed, count = score_all(model, REF, snapshot_path, tmp_path / "streamed.parquet", K,
                                batch_rows=rows // 3 + 1)  # fmt: skip
    assert count == rows
    assert pq.ParquetFile(streamed).metadata.num_row_groups == 3
    assert_same_store(streamed, whole)
    assert pq.read_schema(streamed).equals(pq.read_schema(whole))
    assert metadata(streamed) == metadata(whole)  # fingerprint included: serving accepts it


def test_a_crash_in_the_second_batch_leaves_the_previous_store_and_no_temporary(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, snapshot_path = deployment.model, deployment.settings.snapshot_path
    out = tmp_path / "store" / "scores.parquet"
    score_all(model, REF, snapshot_path, out, K)
    before = out.read_bytes()
    calls = []

    def crash_on_second(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise MemoryError("killed in the second batch")
        return score_matrix(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "score_matrix", crash_on_second)
    with pytest.raises(MemoryError):
        score_all(model, REF, snapshot_path, out, K, batch_rows=len(deployment.snapshot) // 3 + 1)
    assert len(calls) == 2
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.parquet"]


def test_a_customer_in_two_batches_is_refused(deployment: Deployment, tmp_path: Path) -> None:
    frame = pd.read_parquet(deployment.settings.snapshot_path)
    ids = frame["customer_id"].to_numpy(dtype=object, copy=True)
    ids[-1] = ids[0]
    frame["customer_id"] = ids
    frame.to_parquet(tmp_path / "snapshot.parquet", index=False)
    with pytest.raises(ScoreStoreError, match="more than once"):
        score_all(deployment.model, REF, tmp_path / "snapshot.parquet", tmp_path / "s.parquet",
                  K, batch_rows=len(frame) // 2)  # fmt: skip
    assert not (tmp_path / "s.parquet").exists()


def test_a_snapshot_folder_of_part_files_gives_the_store_of_the_file(
    deployment: Deployment, tmp_path: Path
) -> None:
    """``churn snapshot --engine spark`` writes a folder of parts with a ``_SUCCESS`` marker."""
    model, snapshot_path = deployment.model, deployment.settings.snapshot_path
    table = pq.read_table(snapshot_path)
    folder = tmp_path / "snapshot.parquet"
    folder.mkdir()
    half = table.num_rows // 2
    pq.write_table(table.slice(0, half), folder / "part-00000.parquet")
    pq.write_table(table.slice(half), folder / "part-00001.parquet")
    (folder / "_SUCCESS").touch()
    from_file, _ = score_all(model, REF, snapshot_path, tmp_path / "file.parquet", K)
    from_folder, count = score_all(model, REF, folder, tmp_path / "folder.parquet", K,
                                   batch_rows=half // 2 + 1)  # fmt: skip
    assert count == table.num_rows
    assert_same_store(from_folder, from_file)
    assert metadata(from_folder) == metadata(from_file)

"""Atomic writes: an output file or folder either appears whole or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``; move it into place only if the block succeeds.

    Works for files and folders. On failure the temporary is removed and ``target`` is untouched,
    so a crash never leaves a half-written output behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)) / target.name
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def write_parquet(frame: pd.DataFrame, target: Path) -> Path:
    """Write ``frame`` to ``target`` atomically (no index, zstd)."""
    with atomic_path(Path(target)) as tmp:
        frame.to_parquet(tmp, index=False, compression="zstd")
    return Path(target)

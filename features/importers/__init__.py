"""Importers: public data sets -> the raw-data contract, after which the pipeline runs unchanged.

``churn import telco|cdnow|ravenstack|churnsim --src PATH --out DIR`` calls
:func:`import_to_folder`. Each importer reads its source strictly (a malformed row is a
``SourceError`` naming file, row, column) and writes the contract folder atomically. Read each
data set's ``SOURCE.md`` and the module docstrings for the mapping and what is unavailable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from features.importers.cdnow import import_cdnow, write_cdnow
from features.importers.churnsim import import_churnsim, write_churnsim
from features.importers.ravenstack import import_ravenstack, write_ravenstack
from features.importers.source import SourceError
from features.importers.telco import import_telco, write_telco

WRITERS: dict[str, Callable[[Path, Path], Path]] = {
    "telco": write_telco,
    "cdnow": write_cdnow,
    "ravenstack": write_ravenstack,
    "churnsim": write_churnsim,
}


def import_to_folder(name: str, src: Path, out: Path) -> Path:
    """Import the data set ``name`` from ``src`` into the contract folder ``out``."""
    if name not in WRITERS:
        raise SourceError(f"Unknown data set {name!r}; choose one of {', '.join(WRITERS)}.")
    return WRITERS[name](Path(src), Path(out))


def shared_data_dir() -> Path:
    """The public data sets: ``$CHURN_SHARED_DATA``, else ``shared/data`` beside the repository.

    CI clones the repository with ``shared/`` next to it; notebooks and benchmarks use this.
    """
    override = os.environ.get("CHURN_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


__all__ = [
    "WRITERS",
    "SourceError",
    "import_cdnow",
    "import_churnsim",
    "import_ravenstack",
    "import_telco",
    "import_to_folder",
    "shared_data_dir",
]

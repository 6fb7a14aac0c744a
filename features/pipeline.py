"""Choosing as-of dates and building the latest snapshot: the glue between contract and store."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import RawTables
from features.engine import (
    ROW_GROUP_ROWS,
    Export,
    ExportProfile,
    FeatureSet,
    build,
    monthly_as_of,
    observed_until,
    profile,
)
from features.errors import ChurnError
from features.io import atomic_path
from features.labels import LabelSpec
from features.sql import SqlEngine
from features.vocabulary import Vocabulary

HISTORY_DAYS = 90


def data_start(tables: RawTables | Export) -> date:
    """The first day of product history: the first event, else the first subscription.

    Exports often carry years of subscriptions but only recent event logs; usage features mean
    something only once events are logged, so the events decide where history starts.
    """
    return _history_start(profile(tables))


def _history_start(known: ExportProfile) -> date:
    if known.data_start is None:
        raise ChurnError("The export has neither events nor subscriptions with a start date.")
    return known.data_start


def default_as_of(
    tables: RawTables | Export, history_days: int = HISTORY_DAYS, until: date | None = None
) -> list[date]:
    """Monthly as-of dates from the first month with ``history_days`` of data to the export end.

    Dates whose horizon runs past the export stay in: their rows carry ``label_complete=False``
    and are used for scoring, never for training or evaluation.
    """
    known = profile(tables)
    first = _history_start(known) + timedelta(days=history_days)
    return monthly_as_of(first, until or known.observed_until)


def snapshot_as_of(tables: RawTables | Export, until: date | None = None) -> date:
    """ "Now" for a snapshot of an export: the day after its export date (default: last record)."""
    return (until or observed_until(tables)) + timedelta(days=1)


def snapshot_set(
    source: RawTables | Export,
    as_of: date | None = None,
    until: date | None = None,
    vocabulary: Vocabulary | None = None,
    engine: SqlEngine | None = None,
) -> FeatureSet:
    """Each active customer's features as of ``as_of`` (default: the day after the export),
    still in the engine: fetch it (:func:`build_snapshot`) or stream it to a file
    (:meth:`FeatureSet.write_frame`).

    ``vocabulary``: a model's (``ChurnModel.vocabulary``), so a later export whose event types
    changed still gets every column the model reads; default the export's own.
    """
    day = as_of or snapshot_as_of(source, until)
    return build(source, [day], LabelSpec(), engine, vocabulary)


def build_snapshot(
    tables: RawTables,
    as_of: date | None = None,
    until: date | None = None,
    vocabulary: Vocabulary | None = None,
) -> pd.DataFrame:
    """Each active customer's features as of ``as_of`` (:func:`snapshot_set`), in pandas."""
    return snapshot_set(tables, as_of, until, vocabulary).frame()


# ----- the labeled set carries its label spec (Parquet metadata) -----
LABEL_SPEC_KEY = b"churn.label_spec"
DEFAULT_ORIGIN = "export"
"""The origin of a company's own contract folder; an import's origin is its importer's name."""


class Fingerprint:
    """A running :func:`fingerprint`: fed a labeled set piece by piece, in row order, it gives
    the hash of the whole (a streamed write never holds the whole set)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, piece: pd.DataFrame) -> None:
        self._hash.update(pd.util.hash_pandas_object(piece, index=False).to_numpy().tobytes())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:16]


def fingerprint(frame: pd.DataFrame) -> str:
    """A stable hash of a labeled set, logged so a run can be traced to its exact data."""
    running = Fingerprint()
    running.update(frame)
    return running.hexdigest()


def import_note(folder: Path) -> dict[str, Any]:
    """``import.json`` of an imported folder (see ``features.importers``), else ``{}``."""
    path = Path(folder) / "import.json"
    if not path.is_file():
        return {}
    note: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return note


def export_origin(folder: Path) -> str:
    """Which export a folder holds: the importer's short name (``telco``) or ``export``.

    Models trained on different origins never replace each other (see ``training.registry``).
    """
    importer = str(import_note(folder).get("importer", ""))
    return importer.rsplit(".", 1)[-1] if importer else DEFAULT_ORIGIN


def resolve_observed_until(
    tables: RawTables | Export, folder: Path | None = None, override: date | None = None
) -> date:
    """The export date: ``override``, else what ``import.json`` records, else the last record.

    An export whose last record is earlier than the day it was taken (a snapshot table of
    customers and contracts) says so with ``--observed-until``; a date before the last record
    contradicts the data and is refused.
    """
    last = observed_until(tables)
    chosen = override
    if chosen is None and folder is not None:
        recorded = import_note(folder).get("label", {}).get("observed_until")
        chosen = date.fromisoformat(str(recorded)[:10]) if recorded else None
    if chosen is None:
        return last
    if chosen < last:
        raise ChurnError(
            f"observed_until {chosen} is before the export's last record ({last}); the export "
            "date cannot precede its own data. Pass a date on or after "
            f"{last}, or leave --observed-until out."
        )
    return chosen


def label_record(
    spec: LabelSpec, until: date, frame: pd.DataFrame | str, origin: str = DEFAULT_ORIGIN
) -> dict[str, Any]:
    """What a labeled set says about itself: how it was labeled, up to when, from where.

    ``frame``: the set, or its :func:`fingerprint` when the set was streamed.
    """
    return {
        "kind": spec.kind,
        "horizon_days": spec.horizon_days,
        "lead_days": spec.lead_days,
        "gap_days": spec.gap_days,
        "free_is_churn": spec.free_is_churn,
        "observed_until": until.isoformat(),
        "origin": origin,
        "fingerprint": frame if isinstance(frame, str) else fingerprint(frame),
    }


def write_labeled_set(frame: pd.DataFrame, record: dict[str, Any], target: Path) -> Path:
    """Write ``frame`` atomically with ``record`` in the Parquet schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {**(table.schema.metadata or {}), LABEL_SPEC_KEY: json.dumps(record).encode()}
    with atomic_path(Path(target)) as tmp:
        pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="zstd")
    return Path(target)


def stream_labeled_set(
    labeled: FeatureSet,
    spec: LabelSpec,
    until: date,
    target: Path,
    origin: str = DEFAULT_ORIGIN,
    rows: int = ROW_GROUP_ROWS,
) -> dict[str, Any]:
    """Write a labeled set from its engine in row groups (:meth:`FeatureSet.write_frame`) with
    the record :func:`write_labeled_set` writes, fingerprint included; returns the record.

    The record goes into the file's key-value metadata once the last row is written (the
    fingerprint is known only then); :func:`read_labeled_set` reads it from there.
    """
    running = Fingerprint()
    record: dict[str, Any] = {}

    def footer() -> dict[bytes, bytes]:
        record.update(label_record(spec, until, running.hexdigest(), origin))
        return {LABEL_SPEC_KEY: json.dumps(record).encode()}

    labeled.write_frame(Path(target), running.update, footer, rows)
    return record


def read_labeled_set(path: Path) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """A labeled set and its label record (``None`` for a file written without one)."""
    path = Path(path)
    if not path.exists():
        raise ChurnError(f"{path} does not exist: build it with `churn features`.")
    metadata = pq.read_metadata(path).metadata or {}  # the file's, whoever wrote it
    raw = metadata.get(LABEL_SPEC_KEY)
    return pd.read_parquet(path), (json.loads(raw) if raw else None)


def record_spec(record: dict[str, Any]) -> LabelSpec:
    """The :class:`LabelSpec` a label record describes."""
    return LabelSpec(
        kind=record["kind"],
        horizon_days=int(record["horizon_days"]),
        lead_days=int(record["lead_days"]),
        gap_days=int(record["gap_days"]),
        free_is_churn=bool(record.get("free_is_churn", True)),
        observed_until=date.fromisoformat(record["observed_until"]),
    )


def record_observed_until(folder: Path, tables: RawTables, day: date) -> None:
    """Write the export date ``day`` into ``folder/import.json`` (``churn import
    --observed-until``); ``features`` and ``snapshot`` read it from there."""
    resolve_observed_until(tables, None, day)  # refuses a date before the last record
    note = import_note(folder)
    note.setdefault("label", {})["observed_until"] = day.isoformat()
    with atomic_path(Path(folder) / "import.json") as tmp:
        tmp.write_text(json.dumps(note, indent=2, sort_keys=True, default=str) + "\n")

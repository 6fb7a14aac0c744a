"""Score history: every customer's score at every ``churn score-all``, for "did it work?".

A customer-success manager acts on a score and comes back next week to see whether it moved, so
each batch scoring is kept, not only the latest. Layout: one Parquet file per (as_of, model
version) under ``<store_dir>/history/``, rows sorted by ``customer_id`` in small row groups so a
one-customer read touches one row group per file. Re-running ``score-all`` for the same as_of and
model overwrites that file atomically (``features.io.atomic_path``): appending is idempotent.

Columns: ``customer_id``, ``as_of`` (date of the features), ``scored_at`` (UTC), ``model_version``,
``churn_probability``, ``health_score``, ``tier``, the top drivers as in the score store
(``driver_<i>_feature`` / ``_contribution`` / ``_sentence``), ``base_value`` and every
``contribution.<feature>`` (calibrated log-odds, float32: enough for "what moved the score").

Reads go through DuckDB in-process (``read_parquet`` over the folder), so filtering, sorting and
"latest scoring before a date, per customer" are one SQL query even at 50 000 customers a week.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.errors import ChurnError
from features.io import atomic_path

HISTORY_FOLDER = "history"
ROW_GROUP_ROWS = 8_192
CONTRIBUTION_PREFIX = "contribution."
SUMMARY_COLUMNS = (
    "customer_id",
    "as_of",
    "scored_at",
    "model_version",
    "churn_probability",
    "health_score",
    "tier",
)
_REQUIRED = ("customer_id", "churn_probability", "health_score", "tier")


class HistoryError(ChurnError):
    """The score history cannot be written or read (bad input frame, damaged file)."""


def history_dir(store_dir: Path) -> Path:
    """Where ``churn score-all`` appends: ``<store_dir>/history``."""
    return Path(store_dir) / HISTORY_FOLDER


def history_file(store_dir: Path, as_of: date, model_version: str) -> Path:
    """The one file of a (as_of, model version) scoring; the version is made file-name safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(model_version)) or "unknown"
    return history_dir(store_dir) / f"scores_{as_of:%Y-%m-%d}_v{safe}.parquet"


def _as_date(value: date | datetime | str | pd.Timestamp) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, pd.Timestamp | datetime):
        return value.date()
    return value


def append_history(
    store_dir: Path,
    scores_frame: pd.DataFrame,
    model_version: str,
    as_of: date | datetime | str,
    scored_at: datetime,
) -> Path:
    """Add one batch scoring (the score store table, ``serving.scoring.scores_table``) to the
    history; returns the file written.

    Idempotent: the same ``as_of`` and ``model_version`` replace the earlier file whole, so a
    re-run never duplicates rows and a crash never leaves half a file. ``scored_at`` is stored in
    UTC (a naive value is taken as UTC).
    """
    missing = [c for c in _REQUIRED if c not in scores_frame.columns]
    if missing:
        raise HistoryError(
            f"The scores passed to append_history lack column(s) {', '.join(missing)}; pass the "
            "score store table (serving.scoring.scores_table / data/store/scores.parquet)."
        )
    kept = _kept_columns(list(map(str, scores_frame.columns)))
    frame = scores_frame[kept].reset_index(drop=True)
    frame["customer_id"] = frame["customer_id"].astype("string")
    frame["tier"] = frame["tier"].astype("string")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return _write_history(store_dir, table.column, kept, len(frame), model_version, as_of,
                          scored_at)  # fmt: skip


def append_store(
    store_dir: Path, score_store: Path, model_version: str, scored_at: datetime
) -> Path:
    """Add the score store file to the history (what ``churn score-all`` does after writing it),
    reading one column at a time in Arrow: a million customers' drivers never become pandas
    objects, so the append stays within the memory of the store's own columns."""
    source = pq.ParquetFile(score_store)
    names = source.schema_arrow.names
    missing = [c for c in (*_REQUIRED, "as_of") if c not in names]
    if missing:
        raise HistoryError(
            f"The score store {score_store} lacks column(s) {', '.join(missing)}; rebuild it "
            "with `churn score-all`."
        )
    as_of = pc.max(source.read(columns=["as_of"]).column("as_of")).as_py()
    if as_of is None:
        raise HistoryError(f"The score store {score_store} has no rows to append.")

    def column(name: str) -> pa.ChunkedArray:
        return source.read(columns=[name]).column(name)

    return _write_history(store_dir, column, _kept_columns(names), source.metadata.num_rows,
                          model_version, str(as_of), scored_at)  # fmt: skip


def _kept_columns(names: list[str]) -> list[str]:
    """The score-store columns the history keeps, in the store's order."""
    kept = [
        n
        for n in names
        if n.startswith("driver_") or n == "base_value" or n.startswith(CONTRIBUTION_PREFIX)
    ]
    return [*_REQUIRED, *kept]


def _write_history(
    store_dir: Path,
    column: Callable[[str], pa.ChunkedArray],
    names: list[str],
    rows: int,
    model_version: str,
    as_of: date | datetime | str,
    scored_at: datetime,
) -> Path:
    """The history file of one scoring from its columns (``column(name)``), sorted by id."""
    ids = column("customer_id").cast(pa.string())
    if ids.null_count or pc.count_distinct(ids).as_py() != len(ids):
        raise HistoryError("append_history: customer_id must be filled and unique per scoring.")
    order = pc.sort_indices(ids)
    day = _as_date(as_of)
    moment = scored_at if scored_at.tzinfo else scored_at.replace(tzinfo=UTC)
    instant = pd.Timestamp(moment).tz_convert("UTC").tz_localize(None).to_datetime64()
    stamp = pa.array(np.full(rows, instant.astype("datetime64[ns]")), pa.timestamp("ns", tz="UTC"))
    arrays: dict[str, pa.Array | pa.ChunkedArray] = {
        "customer_id": ids.take(order),
        "as_of": pa.array(np.full(rows, np.datetime64(day, "D")), pa.date32()),
        "scored_at": stamp,
        "model_version": pa.array(np.full(rows, str(model_version), dtype=object), pa.string()),
        "churn_probability": column("churn_probability").cast(pa.float64()).take(order),
        "health_score": column("health_score").cast(pa.float64()).take(order),
        "tier": column("tier").cast(pa.string()).take(order),
    }
    for name in names[len(_REQUIRED) :]:
        values = column(name)
        if name == "base_value" or name.startswith(CONTRIBUTION_PREFIX):
            values = values.cast(pa.float32())
        arrays[name] = values.take(order)
    table = pa.table(arrays)
    target = history_file(store_dir, day, str(model_version))
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return target


def history_files(store_dir: Path) -> list[Path]:
    """The history's Parquet files, oldest as_of first."""
    folder = history_dir(store_dir)
    return sorted(folder.glob("scores_*.parquet")) if folder.is_dir() else []


def history_stamp(store_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, mtimes and sizes of the history files: it changes when a scoring is appended."""
    out = []
    for path in history_files(store_dir):
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def _source(files: list[Path]) -> str:
    listed = ", ".join("'" + str(p).replace("'", "''") + "'" for p in files)
    return f"read_parquet([{listed}], union_by_name = true, filename = true)"


@dataclass(frozen=True)
class Scoring:
    """One batch scoring in the history."""

    as_of: date
    model_version: str
    scored_at: datetime
    customers: int
    path: Path


class ScoreHistory:
    """The history's summary columns held in an in-process DuckDB table, sorted by customer.

    Built once per history change by the UI (a second or so for millions of rows): a customer's
    scorings and "the latest scoring before the current one" per customer are then queries on
    memory, not scans of every file per page view. Contributions stay in the files and are read
    for one customer and one scoring at a time (:meth:`contributions`).
    """

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = Path(store_dir)
        self.files = history_files(self.store_dir)
        self.con = duckdb.connect()
        columns = ", ".join(SUMMARY_COLUMNS)
        if self.files:
            try:
                self.con.execute(
                    f"CREATE TABLE history AS SELECT {columns}, filename "
                    f"FROM {_source(self.files)} ORDER BY customer_id, as_of, scored_at"
                )
            except duckdb.Error as exc:
                raise HistoryError(
                    f"Cannot read the score history in {history_dir(self.store_dir)}: {exc}. "
                    "Remove the damaged file and re-run `churn score-all`."
                ) from None
        else:
            self.con.execute(
                "CREATE TABLE history (customer_id VARCHAR, as_of DATE, "
                "scored_at TIMESTAMPTZ, model_version VARCHAR, churn_probability DOUBLE, "
                "health_score DOUBLE, tier VARCHAR, filename VARCHAR)"
            )

        self.frame = self.con.execute(
            "SELECT * FROM history ORDER BY customer_id, as_of, scored_at"
        ).df()
        self.ids = self.frame["customer_id"].astype(str).to_numpy()
        self._contributions: dict[str, tuple[dict[str, int], list[str], np.ndarray]] = {}
        self._lock = threading.Lock()

    def _query(self, sql: str, params: list[object] | None = None) -> pd.DataFrame:
        cursor = self.con.cursor()  # one cursor per call: safe from several threads
        try:
            return cursor.execute(sql, params or []).df()
        finally:
            cursor.close()

    def scorings(self) -> list[Scoring]:
        """Every scoring, oldest first."""
        frame = self._query(
            "SELECT as_of, model_version, max(scored_at) AS scored_at, count(*) AS customers, "
            "any_value(filename) AS filename FROM history GROUP BY as_of, model_version "
            "ORDER BY as_of, scored_at"
        )
        return [
            Scoring(
                pd.Timestamp(str(as_of)).date(),
                str(version),
                pd.Timestamp(str(scored_at)).to_pydatetime(),
                int(str(customers)),
                Path(str(filename)),
            )
            for as_of, version, scored_at, customers, filename in frame.itertuples(
                index=False, name=None
            )
        ]

    def customer(self, customer_id: str) -> pd.DataFrame:
        """One customer's scorings, oldest first (summary columns and the file of each): a
        binary search in the sorted frame, no query per page view."""
        lo = int(np.searchsorted(self.ids, customer_id, side="left"))
        hi = int(np.searchsorted(self.ids, customer_id, side="right"))
        return self.frame.iloc[lo:hi]

    def latest_before(self, as_of: date) -> pd.DataFrame:
        """Per customer, the latest scoring whose as_of is before ``as_of`` ("the previous
        scoring" when the current one is as of ``as_of``); the newest model wins a tie."""
        return self._query(
            "SELECT * FROM history WHERE as_of < ? QUALIFY row_number() OVER "
            "(PARTITION BY customer_id ORDER BY as_of DESC, scored_at DESC) = 1",
            [as_of],
        )

    def contributions(self, path: Path | str, customer_id: str) -> dict[str, float] | None:
        """Every contribution (and ``base_value``) of one customer in one scoring file.

        A file's contribution matrix is read once (float32, ~12 MB for 50 000 customers) and kept:
        the customer page asks for the previous scoring of a different customer each time.
        """
        key = str(path)
        if key not in self._contributions:
            with self._lock:
                if key not in self._contributions:
                    self._contributions[key] = _contribution_matrix(Path(path))
        row_of, names, matrix = self._contributions[key]
        row = row_of.get(customer_id)
        if row is None or not names:
            return None
        return dict(zip(names, matrix[row].astype(float).tolist(), strict=True))

    def close(self) -> None:
        self.con.close()


def _contribution_matrix(path: Path) -> tuple[dict[str, int], list[str], np.ndarray]:
    """customer id -> row, feature names (+ ``base_value``) and the float32 matrix of a file."""
    schema = pq.read_schema(path).names
    columns = [n for n in schema if n.startswith(CONTRIBUTION_PREFIX)]
    if not columns:
        return {}, [], np.empty((0, 0), dtype=np.float32)
    table = pq.read_table(path, columns=["customer_id", *columns, "base_value"])
    ids = table.column("customer_id").to_pylist()
    matrix = np.column_stack(
        [table.column(c).to_numpy().astype(np.float32) for c in [*columns, "base_value"]]
    )
    names = [c.removeprefix(CONTRIBUTION_PREFIX) for c in columns] + ["base_value"]
    return {str(cid): i for i, cid in enumerate(ids)}, names, matrix


def read_history(store_dir: Path, customer_id: str | None = None) -> pd.DataFrame:
    """The history's summary columns (optionally one customer's), oldest first: for notebooks,
    exports and tests; the UI keeps a :class:`ScoreHistory` instead."""
    files = history_files(store_dir)
    if not files:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    where = "WHERE customer_id = ?" if customer_id is not None else ""
    con = duckdb.connect()
    try:
        return con.execute(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM {_source(files)} {where} "
            "ORDER BY customer_id, as_of, scored_at",
            [customer_id] if customer_id is not None else [],
        ).df()
    finally:
        con.close()


__all__ = [
    "HistoryError",
    "ScoreHistory",
    "Scoring",
    "append_history",
    "append_store",
    "history_dir",
    "history_files",
    "history_stamp",
    "read_history",
]


def recover_history(store_dir: Path, score_store: Path) -> Path | None:
    """Append the score store to the history if a crash came between writing the one and
    appending to the other (``churn score-all`` does both; ``kill -9`` between them left the
    scoring unrecorded). Runs at server start; idempotent (the same as_of and version map to
    one file). Returns the file written, or None when there was nothing to recover."""
    from serving.store import store_metadata

    meta = store_metadata(score_store)
    if not meta or not meta.get("as_of") or meta.get("version") is None:
        return None
    day = _as_date(str(max(meta["as_of"])))
    version = str(meta["version"])
    if history_file(store_dir, day, version).exists():
        return None
    scored_at = datetime.fromisoformat(str(meta.get("created_at") or datetime.now(UTC)))
    return append_store(store_dir, score_store, version, scored_at)

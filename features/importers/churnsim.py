"""ChurnSim "crm6" (the simulator of *Fighting Churn With Data*; a B2B CRM SaaS) -> the contract.

An export nobody on this team wrote: 28 event types of its own, accounts with many users,
base plans with add-on products, seats and discounts, 12.2 M events. Its churn is mostly random
by design (``SOURCE.md``), so it tests import, vocabulary and scale, not accuracy.

Mapping (source file.column -> contract table.column):

- accounts -> ``customers``: account_id -> customer_id, start_date -> signup_date, country (a US
  state) -> region, channel -> acquisition_channel, date_of_birth (the company's founding day)
  kept as a date attribute. ``churn_date`` is the label and is never a feature: it becomes
  ``status`` (``churned`` when filled, else ``active``; the contract cross-checks it and never
  uses it as a feature), and churn itself comes from the subscriptions.
- subscriptions -> ``subscriptions``: the source holds one row per product per billing period
  (a base plan, whose ``units`` are ``users``, plus add-ons such as ``meetings``). The contract
  row is the account's billing period: all products starting together on one
  ``(account_id, start_date)``; ``mrr`` = the sum of the products' ``mrr`` (as billed: the base
  plan's is already net of its ``discount``, add-ons are billed in full), ``plan`` = the base
  plan, ``seats`` = the base plan's ``quantity``, ``end_date`` = the latest product end of the
  period (products end together but for one add-on in the file). One row per period keeps
  MRR changes meaningful: consecutive periods that raise or lower the account's MRR are up- and
  downgrades. The add-ons themselves have no contract column and are dropped after summing.
  Periods follow each other without a gap (one of a day), so a life of periods ends exactly at
  the book's churn: the last ``end_date`` with no new start within 7 days, i.e. ``churn_date``.
  The current period of an active account keeps its scheduled end (the next renewal).
- events.csv.gz -> ``events``, streamed by DuckDB straight from the gzip file into Parquet
  (never through Python rows): account_id -> customer_id, event_time (naive; UTC) ->
  timestamp, event_type verbatim (the export's vocabulary, checked against event_types.csv),
  user_id verbatim (the user within the account), event_value -> value. Events at or after the
  export date ``EXPORT_DATE`` are dropped: the simulator runs active accounts to the end of
  their current month, which a real export on that day could not contain.
- observations.csv -> ``observations.parquet`` beside the tables (no contract table): the book's
  observation rows ``(account_id, observation_date, is_churn)``.
  :func:`observation_labeled_set` builds features as of each ``observation_date`` and joins
  ``is_churn`` as the label.

Labels: either the observation rows, or the contract's own contractual labels with
:func:`label_spec` (30-day horizon, 7-day re-subscription gap, observed until the day before
the export date).

Unavailable: tickets, invoices, NPS, marketing, exit reasons and product ``feature`` (the event
type is the only vocabulary).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pandas as pd

from features.contract import RawTables
from features.engine import SqlEngine, build_features
from features.errors import ChurnError
from features.importers.source import (
    MAX_SHOWN,
    SourceError,
    choice,
    contract_tables,
    dates,
    fail,
    number,
    read_csv_text,
    sha256,
    text,
    unique_ids,
    write_note,
    write_tables,
)
from features.io import atomic_path
from features.labels import LabelSpec

FILES = {
    "accounts": "accounts.csv",
    "subscriptions": "subscriptions.csv",
    "events": "events.csv.gz",
    "observations": "observations.csv",
    "event_types": "event_types.csv",
}
REQUIRED = {
    "accounts": ("account_id", "channel", "date_of_birth", "country", "start_date",
                 "churn_date"),
    "subscriptions": ("account_id", "product", "start_date", "end_date", "mrr", "quantity",
                      "units", "bill_period_months", "discount"),
    "events": ("account_id", "event_time", "event_type", "user_id", "event_value"),
    "observations": ("account_id", "observation_date", "is_churn"),
    "event_types": ("event_type_id", "event_type"),
}  # fmt: skip
# DuckDB types of the event columns; every other column of the file is read as text and dropped.
EVENT_COLUMN_TYPES = {"account_id": "VARCHAR", "event_time": "TIMESTAMP", "event_type": "VARCHAR",
                   "user_id": "VARCHAR", "event_value": "DOUBLE"}  # fmt: skip
EXPORT_DATE = date(2022, 10, 1)  # SOURCE.md: "The export date is 2022-10-01"
LAST_DAY = EXPORT_DATE - timedelta(days=1)  # the last day whose events are all in the export
HORIZON_DAYS = 30  # is_churn: "churns within the following month"
GAP_DAYS = 7  # the book's re-subscription gap
BASE_UNITS = "users"  # a base plan's quantity counts seats
OBSERVATIONS = "observations.parquet"
DAY = "%Y-%m-%d"
TIME = "%Y-%m-%d %H:%M:%S"
BOOLEAN = {"true": True, "false": False}


def label_spec(horizon_days: int = HORIZON_DAYS) -> LabelSpec:
    """The contract's contractual labels in the book's terms: churn = the last subscription
    ends with no new one within 7 days; the export is complete up to ``LAST_DAY``."""
    return LabelSpec(
        kind="contractual", horizon_days=horizon_days, gap_days=GAP_DAYS, observed_until=LAST_DAY
    )


def _folder(src: Path) -> Path:
    src = Path(src)
    if not src.is_dir():
        raise SourceError(
            f"{src} is not a folder; pass the ChurnSim folder holding {', '.join(FILES.values())}."
        )
    missing = [name for name in FILES.values() if not (src / name).is_file()]
    if missing:
        raise SourceError(f"{src} lacks {', '.join(missing)}; all five ChurnSim files are needed.")
    return src


def _known(frame: pd.DataFrame, column: str, file: str, ids: pd.Series, what: str) -> None:
    fail(file, column, frame, ~frame[column].isin(ids).to_numpy(dtype=bool), f"known {what}")


def _customers(acc: pd.DataFrame) -> pd.DataFrame:
    file = FILES["accounts"]
    start = dates(acc, "start_date", file, DAY)
    churn = dates(acc, "churn_date", file, DAY, allow_empty=True)
    fail(file, "churn_date", acc, (churn < start).to_numpy(dtype=bool),
         "on or after the account's start_date")  # fmt: skip
    return pd.DataFrame(
        {
            "customer_id": unique_ids(acc, "account_id", file),
            "signup_date": start,
            "region": text(acc, "country", file, allow_empty=True),
            "acquisition_channel": text(acc, "channel", file, allow_empty=True),
            "status": churn.notna().map({True: "churned", False: "active"}),
            # microseconds, not pandas' nanoseconds, which Spark reads as integers
            "date_of_birth": dates(acc, "date_of_birth", file, DAY, allow_empty=True).astype(
                "datetime64[us]"
            ),
        }
    )


def _subscriptions(sub: pd.DataFrame, account_id: pd.Series) -> pd.DataFrame:
    """One contract row per account and billing period (products starting together)."""
    file = FILES["subscriptions"]
    _known(sub, "account_id", file, account_id, f"account ids ({FILES['accounts']})")
    rows = pd.DataFrame(
        {
            "customer_id": text(sub, "account_id", file),
            "product": text(sub, "product", file),
            "start_date": dates(sub, "start_date", file, DAY),
            "end_date": dates(sub, "end_date", file, DAY),
            "mrr": number(sub, "mrr", file, minimum=0),
            "quantity": number(sub, "quantity", file, minimum=0, whole=True),
            "units": text(sub, "units", file),
        },
        index=sub.index,
    )
    number(sub, "bill_period_months", file, minimum=1, whole=True)  # checked, then dropped
    discount = number(sub, "discount", file, minimum=0)
    fail(file, "discount", sub, (discount > 1).to_numpy(dtype=bool), "shares between 0 and 1")
    fail(file, "end_date", sub, (rows["end_date"] <= rows["start_date"]).to_numpy(dtype=bool),
         "after the row's start_date")  # fmt: skip

    period = ["customer_id", "start_date"]
    is_base = rows["units"].eq(BASE_UNITS).to_numpy(dtype=bool)
    bases = rows.groupby(period)["units"].transform(lambda u: int(u.eq(BASE_UNITS).sum()))
    fail(file, "units", sub, bases.ne(1).to_numpy(dtype=bool),
         f"in a billing period (account_id, start_date) with exactly one base plan (units "
         f"{BASE_UNITS!r})")  # fmt: skip
    base = rows.loc[is_base, [*period, "product", "quantity"]]
    totals = rows.groupby(period, sort=False).agg(end_date=("end_date", "max"), mrr=("mrr", "sum"))
    periods = totals.reset_index().merge(base, on=period, how="left", validate="1:1")
    return pd.DataFrame(
        {
            "subscription_id": periods["customer_id"]
            + "-"
            + periods["start_date"].dt.strftime("%Y%m%d"),
            "customer_id": periods["customer_id"],
            "start_date": periods["start_date"],
            "end_date": periods["end_date"],
            "mrr": periods["mrr"],
            "plan": periods["product"],
            "seats": periods["quantity"].astype("Int64"),
        }
    )


def _observations(obs: pd.DataFrame, account_id: pd.Series) -> pd.DataFrame:
    file = FILES["observations"]
    _known(obs, "account_id", file, account_id, f"account ids ({FILES['accounts']})")
    frame = pd.DataFrame(
        {
            "customer_id": text(obs, "account_id", file),
            "observation_date": dates(obs, "observation_date", file, DAY),
            "is_churn": choice(obs, "is_churn", file, BOOLEAN, lower=True).map(BOOLEAN),
        },
        index=obs.index,
    )
    repeated = frame.duplicated(["customer_id", "observation_date"], keep=False)
    fail(file, "observation_date", obs, repeated.to_numpy(dtype=bool),
         "one observation per account and date (the pair repeats)")  # fmt: skip
    return frame.astype({"is_churn": bool}).reset_index(drop=True)


class ChurnSimSource(NamedTuple):
    """The small files of a ChurnSim folder, parsed; the events are streamed separately."""

    tables: RawTables  # customers and subscriptions
    observations: pd.DataFrame  # customer_id, observation_date, is_churn
    vocabulary: list[str]  # event_types.csv
    churn_date: pd.Series  # the label, indexed by customer_id; never a feature


def import_churnsim(src: Path) -> ChurnSimSource:
    """Read and check accounts, subscriptions, observations and event types (mapping above)."""
    folder = _folder(src)
    raw = {t: read_csv_text(folder / FILES[t], REQUIRED[t]) for t in FILES if t != "events"}
    customers = _customers(raw["accounts"])
    subscriptions = _subscriptions(raw["subscriptions"], customers["customer_id"])
    observations = _observations(raw["observations"], customers["customer_id"])
    kinds = raw["event_types"]
    vocabulary = unique_ids(kinds, "event_type", FILES["event_types"]).tolist()
    unique_ids(kinds, "event_type_id", FILES["event_types"])
    churn_date = dates(raw["accounts"], "churn_date", FILES["accounts"], DAY, allow_empty=True)
    churn_date.index = pd.Index(customers["customer_id"].to_numpy(), name="customer_id")
    tables = contract_tables(customers=customers, subscriptions=subscriptions)
    return ChurnSimSource(tables, observations, vocabulary, churn_date)


def _header(path: Path) -> list[str]:
    try:
        with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(io.StringIO(handle.readline())), [])
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(
            f"{path.name} cannot be read as a gzip-compressed CSV file ({exc})."
        ) from None
    header = [name.strip() for name in first]
    missing = [name for name in REQUIRED["events"] if name not in header]
    if missing:
        raise SourceError(
            f"{path.name} has no column {', '.join(missing)} (the header row is: "
            f"{', '.join(header)}). Export the file with its original columns."
        )
    return header


def _listed(rows: Sequence[int], total: int) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_SHOWN])
    more = f" and {total - MAX_SHOWN:,} more" if total > MAX_SHOWN else ""
    return f"{total:,} row{'s' if total != 1 else ''} ({shown}{more})"


def _check_events(con: duckdb.DuckDBPyConnection, file: str) -> None:
    """Stop at the first problem of the loaded events, naming rows as ``fail`` does."""
    rejected = con.execute(
        "SELECT line - 1 AS row, ANY_VALUE(column_name), ANY_VALUE(error_type), "
        "ANY_VALUE(csv_line), COUNT(*) OVER () FROM reject_errors GROUP BY line ORDER BY line "
        f"LIMIT {MAX_SHOWN}"
    ).fetchall()
    if rejected:
        examples = "; ".join(
            f"row {row}, column {column}: {str(kind).lower()} error in {line!r}"
            for row, column, kind, line, _ in rejected
        )
        raise SourceError(
            f"{file}: {_listed([r[0] for r in rejected], int(rejected[0][4]))} cannot be read "
            f"({examples}). Each row needs {len(REQUIRED['events'])} cells: account_id, "
            "event_time written YYYY-MM-DD hh:mm:ss, event_type, user_id and event_value (a "
            "number or empty). Rows are numbered from 1 under the header. Correct or remove "
            "those rows and import again; nothing was written."
        )
    checks = (
        ("account_id", "account_id IS NULL", "filled in (the cell is empty)"),
        ("event_time", "event_time IS NULL", "filled in (the cell is empty)"),
        ("event_type", "event_type IS NULL", "filled in (the cell is empty)"),
        ("account_id", "account_id NOT IN (SELECT customer_id FROM known_accounts)",
         f"known account ids ({FILES['accounts']})"),
        ("event_type", "event_type NOT IN (SELECT event_type FROM vocabulary)",
         f"event types listed in {FILES['event_types']}"),
    )  # fmt: skip
    for column, bad, expected in checks:
        found = con.execute(
            f"SELECT row, CAST({column} AS VARCHAR), COUNT(*) OVER () FROM events_in "
            f"WHERE {bad} ORDER BY row LIMIT {MAX_SHOWN}"
        ).fetchall()
        if found:
            examples = "; ".join(f"row {row}: {value or ''!r}" for row, value, _ in found)
            raise SourceError(
                f"{file}, column {column}: {_listed([r[0] for r in found], int(found[0][2]))} "
                f"{'is' if found[0][2] == 1 else 'are'} not {expected} ({examples}). Rows are "
                "numbered from 1 under the header. Correct or remove those rows and import "
                "again; nothing was written."
            )


def write_events(
    path: Path,
    target: Path,
    customer_ids: Sequence[str],
    vocabulary: Sequence[str],
    spill: Path,
) -> dict[str, Any]:
    """Stream the gzip event log into the contract's ``events.parquet`` with DuckDB.

    Typed columns are read directly from the gzip file; a cell that does not parse is recorded
    by DuckDB (``store_rejects``) with its line, and any problem raises a :class:`SourceError`
    before the Parquet file is written. Returns counts for the import note.
    """
    header = _header(path)
    columns = {name: EVENT_COLUMN_TYPES.get(name, "VARCHAR") for name in header}
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute("SET temp_directory = ?", [str(spill)])
        con.execute("SET preserve_insertion_order = true")
        con.register("known_df", pd.DataFrame({"customer_id": list(customer_ids)}, dtype=str))
        con.register("vocabulary_df", pd.DataFrame({"event_type": list(vocabulary)}, dtype=str))
        con.execute("CREATE TEMP TABLE known_accounts AS SELECT * FROM known_df")
        con.execute("CREATE TEMP TABLE vocabulary AS SELECT * FROM vocabulary_df")
        # Row numbers count data rows from 1 in file order (the scan of a gzip file is
        # sequential and insertion order is preserved); they are used only when nothing was
        # rejected, so no row is missing from the count.
        con.execute(
            """
            CREATE TEMP TABLE events_in AS
            SELECT ROW_NUMBER() OVER () AS row,
                   NULLIF(TRIM(account_id), '') AS account_id,
                   event_time,
                   NULLIF(TRIM(event_type), '') AS event_type,
                   NULLIF(TRIM(user_id), '') AS user_id,
                   event_value
            FROM read_csv(?, header = true, auto_detect = false, columns = ?, delim = ',',
                          quote = '"', escape = '"', timestampformat = ?, compression = 'gzip',
                          strict_mode = true, store_rejects = true)
            """,
            [str(path), columns, TIME],
        )
        _check_events(con, path.name)
        export = pd.Timestamp(EXPORT_DATE).to_pydatetime()
        con.execute(
            """
            COPY (
              SELECT account_id AS customer_id, CAST(event_time AS TIMESTAMPTZ) AS "timestamp",
                     event_type, user_id, event_value AS value
              FROM events_in WHERE event_time < ?
            ) TO '{target}' (FORMAT parquet, COMPRESSION zstd)
            """.replace("{target}", str(target).replace("'", "''")),
            [export],
        )
        read, after, types, users, first, last = con.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE event_time >= ?), "
            "COUNT(DISTINCT event_type) FILTER (WHERE event_time < ?), "
            "COUNT(DISTINCT (account_id, user_id)) FILTER (WHERE event_time < ?), "
            "MIN(event_time), MAX(event_time) FILTER (WHERE event_time < ?) FROM events_in",
            [export] * 4,
        ).fetchone()  # type: ignore[misc]
    finally:
        con.close()
    return {
        "rows_read": read,
        "rows_at_or_after_export_date_dropped": after,
        "rows_written": read - after,
        "event_types_seen": types,
        "event_types_listed": len(vocabulary),
        "users": users,
        "first": first,
        "last": last,
    }


def _life_ends(subscriptions: pd.DataFrame) -> pd.Series:
    """Per customer, the end of its last life of subscriptions (periods chained within the gap)."""
    subs = subscriptions.sort_values(["customer_id", "start_date"])
    reach = subs.groupby("customer_id")["end_date"].cummax()
    previous = reach.groupby(subs["customer_id"]).shift()
    new_life = previous.isna() | (subs["start_date"] > previous + pd.Timedelta(days=GAP_DAYS))
    life = new_life.astype(int).groupby(subs["customer_id"]).cumsum()
    last = life.eq(life.groupby(subs["customer_id"]).transform("max"))
    return subs.loc[last].groupby("customer_id")["end_date"].max()


def churn_agreement(tables: RawTables, churn_date: pd.Series) -> dict[str, int]:
    """How the subscriptions' churn matches the source's ``churn_date`` (indexed by customer).

    Churned per subscriptions = the last life ends on or before ``LAST_DAY``; the note records
    these counts so a reader sees the label is reproduced, not assumed.
    """
    ends = _life_ends(tables.subscriptions).reindex(churn_date.index)
    churned = ends <= pd.Timestamp(LAST_DAY)
    flagged = churn_date.notna() & (churn_date <= pd.Timestamp(LAST_DAY))
    return {
        "accounts": len(churn_date),
        "churn_date_filled": int(churn_date.notna().sum()),
        "churn_date_before_export": int(flagged.sum()),
        "churned_per_subscriptions": int(churned.sum()),
        "both": int((churned & flagged).sum()),
        "same_day": int((churned & flagged & ends.eq(churn_date)).sum()),
    }


def import_note(src: Path, events: dict[str, Any], agreement: dict[str, int]) -> dict[str, Any]:
    """What ``import.json`` records for a ChurnSim import."""
    folder = _folder(src)
    spec = label_spec()
    return {
        "source": "ChurnSim crm6 (fightchurn 1.2.0, Carl Gold, Fighting Churn With Data; MIT), "
        "simulated with CSV writers; see SOURCE.md",
        "importer": "features.importers.churnsim",
        "files": {name: sha256(folder / name) for name in FILES.values()},
        "export_date": EXPORT_DATE,
        "events": events,
        "churn": agreement,
        "label": {
            "kind": spec.kind,
            "horizon_days": spec.horizon_days,
            "gap_days": spec.gap_days,
            "observed_until": spec.observed_until,
        },
        "observations": {
            "file": OBSERVATIONS,
            "columns": "customer_id, observation_date, is_churn",
            "use": "features.importers.churnsim.observation_labeled_set: features as of each "
            "observation_date, is_churn as the label; split out of time by observation date",
        },
        "notes": "Churn is mostly random by design (acausal_churn 0.02 a month): a test of "
        "import, vocabulary and scale, not of accuracy. Subscriptions are one row per account "
        "and billing period (base plan + add-ons summed); see features/importers/churnsim.py.",
    }


def write_churnsim(src: Path, out: Path) -> Path:
    """Import ``src`` and write the contract folder ``out`` atomically (nothing on failure)."""
    folder = _folder(src)
    source = import_churnsim(folder)
    tables = source.tables
    agreement = churn_agreement(tables, source.churn_date)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        spill = tmp.parent / "duckdb-spill"
        events = write_events(
            folder / FILES["events"],
            tmp / "events.parquet",
            tables.customers["customer_id"].astype(str).tolist(),
            source.vocabulary,
            spill,
        )
        write_tables(tables, tmp)
        source.observations.to_parquet(tmp / OBSERVATIONS, index=False, compression="zstd")
        write_note(import_note(folder, events, agreement), tmp)
    return out


def read_observations(folder: Path) -> pd.DataFrame:
    """The observation rows written by the import: ``customer_id``, ``as_of``, ``churned``."""
    path = Path(folder) / OBSERVATIONS
    if not path.is_file():
        raise ChurnError(
            f"{path} does not exist: import the data with `churn import churnsim --src "
            "../shared/data/churnsim_crm6 --out DIR` first."
        )
    frame = pd.read_parquet(path)
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("string"),
            "as_of": pd.to_datetime(frame["observation_date"]).astype("datetime64[us]"),
            "churned": frame["is_churn"].astype("int8"),
        }
    )


def observation_labeled_set(
    tables: RawTables, observations: pd.DataFrame, engine: SqlEngine | None = None
) -> pd.DataFrame:
    """Features as of each observation date (``as_of`` = observation_date) with ``is_churn``.

    The features are the pipeline's own (point-in-time: only rows stamped before the date);
    the label is the source's. Every row is ``label_complete``. An observation whose account is
    not a paying customer on that date per the subscriptions is an error, not silently lost.
    """
    days = sorted(observations["as_of"].dt.date.unique())
    features = build_features(tables, days, label_spec(), engine)
    keys = ["customer_id", "as_of"]
    labeled = observations.merge(features, on=keys, how="left", validate="1:1", indicator=True)
    lost = labeled["_merge"].eq("left_only").to_numpy()
    if lost.any():
        shown = "; ".join(
            f"{row.customer_id} on {row.as_of:%Y-%m-%d}"
            for row in labeled.loc[lost, keys].head(MAX_SHOWN).itertuples()
        )
        raise ChurnError(
            f"{int(lost.sum()):,} observation rows name an account that holds no paid "
            f"subscription on its observation date ({shown}); check the subscriptions."
        )
    labeled = labeled.drop(columns="_merge")
    labeled["label_complete"] = True
    columns = [*keys, *[c for c in features.columns if c not in keys], "churned", "label_complete"]
    return labeled[columns].sort_values(keys, kind="stable").reset_index(drop=True)

"""CDNOW purchase log (Fader & Hardie; non-contractual) -> the raw-data contract.

- each transaction row -> one ``events`` row: ``event_type`` ``purchase``, ``timestamp`` the day at
  00:00 UTC, ``value`` the dollar value. Several purchases on one day stay separate rows, as in
  the log. ``number_of_cds`` has no contract column and is dropped.
- ``customers``: one row per customer, ``signup_date`` = the first purchase.
- ``subscriptions``: the contract requires the table, and a CD store has none. Each customer gets
  ONE open-ended, zero-MRR row (``plan`` ``non-contractual``) from the first purchase, so the
  export is valid and no subscription fact is invented: no end date (churn is defined from
  silence, by the non-contractual label), no revenue (MRR features are constant and dropped).
  ``days_to_renewal`` then counts to the anniversary of the first purchase; it carries no
  information beyond ``days_since_first_activity``.
- the ``CDNOW_sample.txt`` layout (master id, sample id, date, CDs, dollars; no header) is read
  too, with the master file's customer ids.

Labels: "no purchase in the next H days" (``label_spec``). The literature's split is the
39-week calibration period 1997-01-01 .. 1997-09-30 and the 39-week holdout from
``HOLDOUT_START`` = 1997-10-01: features (and the BG/NBD fit) from purchases before it, label =
no purchase in the holdout. ``LOG_END`` = 1998-07-01 is passed as ``observed_until`` because the
log covers every day through 1998-06-30 (the label SQL treats ``observed_until`` as not yet
observed). ``training_as_of`` gives monthly as-of dates for an out-of-time split.

Unavailable: tickets, invoices, NPS, marketing, users and product features; only purchase
(usage) and profile features exist.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from features.contract import RawTables
from features.engine import monthly_as_of
from features.importers.source import (
    SourceError,
    contract_tables,
    dates,
    fail,
    find_file,
    number,
    sha256,
    text,
    utc_midnight,
    write_contract_folder,
)
from features.labels import LabelSpec

FILE_NAMES = ("CDNOW_master.txt", "CDNOW_sample.txt")
MASTER_COLUMNS = ("customer_id", "date", "number_of_cds", "dollar_value")
SAMPLE_COLUMNS = ("customer_id", "sample_id", "date", "number_of_cds", "dollar_value")
HOLDOUT_START = date(1997, 10, 1)
HOLDOUT_DAYS = 273  # 39 weeks
LOG_END = date(1998, 7, 1)  # first day after the log
FIRST_FULL_MONTH = date(1997, 4, 1)  # the whole Q1-1997 cohort has bought by then


def label_spec(horizon_days: int = HOLDOUT_DAYS) -> LabelSpec:
    """Churned = no purchase in ``[as_of, as_of + horizon_days)``; the log ends at ``LOG_END``."""
    return LabelSpec(kind="noncontractual", horizon_days=horizon_days, observed_until=LOG_END)


def training_as_of(horizon_days: int) -> list[date]:
    """Monthly as-of dates from April 1997 whose whole horizon lies inside the log."""
    last = (pd.Timestamp(LOG_END) - pd.Timedelta(days=horizon_days)).date()
    return monthly_as_of(FIRST_FULL_MONTH, last)


def _read_log(path: Path) -> pd.DataFrame:
    """The whitespace-separated log as text cells, rows numbered from 1 under any header."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name} cannot be read as a plain-text log ({exc}).") from None
    cells = [line.split() for line in lines]
    has_header = bool(cells) and bool(cells[0]) and cells[0][0] == "customer_id"
    body = [row for row in cells[1 if has_header else 0 :] if row]
    if not body:
        raise SourceError(f"{path.name} holds no transactions.")
    columns = MASTER_COLUMNS if has_header or len(body[0]) == 4 else SAMPLE_COLUMNS
    ragged = [i for i, row in enumerate(body, start=1) if len(row) != len(columns)]
    if ragged:
        row = ragged[0]
        raise SourceError(
            f"{path.name}: {len(ragged):,} row(s) do not have the {len(columns)} fields "
            f"{' '.join(columns)}; the first is row {row}: {' '.join(body[row - 1])!r}. "
            "Correct or remove those rows and import again; nothing was written."
        )
    frame = pd.DataFrame(body, columns=list(columns), dtype=object)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="row")
    return frame


def import_cdnow(src: Path) -> RawTables:
    """Read ``CDNOW_master.txt`` (or the sample file, or their folder) into contract tables."""
    path = find_file(src, FILE_NAMES, "CDNOW log")
    file = path.name
    rows = _read_log(path)
    customer_id = text(rows, "customer_id", file)
    fail(file, "customer_id", rows, ~customer_id.str.fullmatch(r"\d+").to_numpy(dtype=bool),
         "numeric customer ids")  # fmt: skip
    day = dates(rows, "date", file, "%Y%m%d")
    number(rows, "number_of_cds", file, minimum=0, whole=True)  # checked, then dropped
    dollars = number(rows, "dollar_value", file, minimum=0)

    events = pd.DataFrame(
        {
            "customer_id": customer_id,
            "timestamp": utc_midnight(day),
            "event_type": "purchase",
            "value": dollars,
        }
    )
    first = day.groupby(customer_id).min().sort_index()
    ids = first.index.astype("string")
    customers = pd.DataFrame({"customer_id": ids, "signup_date": first.to_numpy()})
    subscriptions = pd.DataFrame(
        {
            "subscription_id": "P-" + ids,
            "customer_id": ids,
            "start_date": first.to_numpy(),
            "end_date": pd.NaT,
            "mrr": 0.0,
            "plan": "non-contractual",
        }
    )
    return contract_tables(customers=customers, subscriptions=subscriptions, events=events)


def import_note(path: Path) -> dict[str, Any]:
    """What ``import.json`` records for a CDNOW import."""
    return {
        "source": "CDNOW purchase log (Fader & Hardie), copied from Lifetimes 0.11.3",
        "importer": "features.importers.cdnow",
        "files": {path.name: sha256(path)},
        "as_of": [HOLDOUT_START],
        "label": {
            "kind": "noncontractual",
            "horizon_days": HOLDOUT_DAYS,
            "observed_until": LOG_END,
        },
        "notes": "Subscriptions are one open-ended zero-MRR row per customer (the contract "
        "requires the table); see features/importers/cdnow.py.",
    }


def write_cdnow(src: Path, out: Path) -> Path:
    """Import ``src`` and write the contract folder ``out`` atomically (nothing on failure)."""
    tables = import_cdnow(src)
    return write_contract_folder(tables, out, import_note(find_file(src, FILE_NAMES, "CDNOW")))

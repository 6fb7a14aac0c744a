"""IBM Telco Customer Churn (one snapshot row per customer) -> the raw-data contract.

The table has no dates, so the importer places it on a fictional calendar chosen such that the
unchanged pipeline reproduces the data set's own label with ONE as-of date:

- snapshot ``SNAPSHOT`` = 2024-07-01 (fictional; the source gives none). ``Churn == "Yes"`` means
  "left within the last month", i.e. during the churn month ``[AS_OF, SNAPSHOT)`` = June 2024.
- as-of date ``AS_OF`` = 2024-06-01, horizon ``HORIZON_DAYS`` = 30: with
  ``build_labeled_set(tables, [AS_OF], label_spec())`` every ``Churn == "Yes"`` row is labeled
  churned and every other row not (``tests/features/importers`` checks all 7,043).
- subscription start = signup = ``AS_OF`` - ``tenure`` months - 1 day. Tenure is counted back from
  the as-of date rather than the snapshot so that every customer, including the 11 who joined in
  the snapshot month (tenure 0), is a customer on the as-of date; the order of tenures is kept.
- ``Churn == "Yes"`` -> subscription ``end_date`` = ``CHURN_DAY`` (2024-06-15, mid-month: the real
  day is unknown); otherwise the subscription is open. ``MonthlyCharges`` -> ``mrr``,
  ``Contract`` -> ``plan`` (on the subscription and the customer).
- demographics, services, billing and ``TotalCharges`` -> customer attribute columns in
  snake_case (they become features automatically). The 11 blank ``TotalCharges`` (tenure 0, not
  yet billed) stay missing.

Unavailable, because a snapshot has no history: every usage feature (no events), every support
feature (no tickets), invoices, NPS and marketing, seats, and MRR changes / up- and downgrades
(one subscription per customer). What remains: ``mrr``, ``days_to_renewal``, ``tenure_days``,
``lifecycle_stage``, ``plan`` and the 15 attributes. With one as-of date the training pipeline uses
a stratified random split (stated in every report) instead of an out-of-time split.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from features.contract import RawTables
from features.importers.source import (
    choice,
    contract_tables,
    find_file,
    number,
    read_csv_text,
    sha256,
    unique_ids,
    write_contract_folder,
)
from features.labels import LabelSpec

FILE_NAMES = ("Telco-Customer-Churn.csv", "WA_Fn-UseC_-Telco-Customer-Churn.csv")
SNAPSHOT = date(2024, 7, 1)
AS_OF = date(2024, 6, 1)
HORIZON_DAYS = (SNAPSHOT - AS_OF).days  # 30: the churn month
CHURN_DAY = AS_OF + timedelta(days=14)

YES_NO = ("Yes", "No")
# Source column -> (customer attribute, allowed values). Order = the attribute order.
ATTRIBUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "gender": ("gender", ("Female", "Male")),
    "SeniorCitizen": ("senior_citizen", ("0", "1")),
    "Partner": ("partner", YES_NO),
    "Dependents": ("dependents", YES_NO),
    "PhoneService": ("phone_service", YES_NO),
    "MultipleLines": ("multiple_lines", (*YES_NO, "No phone service")),
    "InternetService": ("internet_service", ("DSL", "Fiber optic", "No")),
    **{
        source: (name, (*YES_NO, "No internet service"))
        for source, name in (
            ("OnlineSecurity", "online_security"),
            ("OnlineBackup", "online_backup"),
            ("DeviceProtection", "device_protection"),
            ("TechSupport", "tech_support"),
            ("StreamingTV", "streaming_tv"),
            ("StreamingMovies", "streaming_movies"),
        )
    },
    "PaperlessBilling": ("paperless_billing", YES_NO),
    "PaymentMethod": (
        "payment_method",
        (
            "Electronic check",
            "Mailed check",
            "Bank transfer (automatic)",
            "Credit card (automatic)",
        ),
    ),
}
CONTRACTS = ("Month-to-month", "One year", "Two year")
REQUIRED = ("customerID", "tenure", "Contract", "MonthlyCharges", "TotalCharges", "Churn",
            *ATTRIBUTES)  # fmt: skip


def label_spec() -> LabelSpec:
    """The label that reproduces ``Churn``: a 30-day contractual horizon seen from ``AS_OF``.

    ``observed_until`` is the snapshot: the export holds no dated record after the signups.
    """
    return LabelSpec(kind="contractual", horizon_days=HORIZON_DAYS, observed_until=SNAPSHOT)


def import_telco(src: Path) -> RawTables:
    """Read the Telco CSV (the file or its folder) into customers and subscriptions.

    Raises :class:`~features.importers.source.SourceError` for a malformed row.
    """
    path = find_file(src, FILE_NAMES, "Telco customer churn CSV")
    file = path.name
    rows = read_csv_text(path, REQUIRED)
    customer_id = unique_ids(rows, "customerID", file)
    tenure = number(rows, "tenure", file, minimum=0, whole=True).astype("int64")
    mrr = number(rows, "MonthlyCharges", file, minimum=0)
    total = number(rows, "TotalCharges", file, allow_empty=True, minimum=0)
    churned = choice(rows, "Churn", file, YES_NO).eq("Yes").to_numpy()
    plan = choice(rows, "Contract", file, CONTRACTS)

    as_of = pd.Timestamp(AS_OF)
    start = pd.Series(
        [as_of - pd.DateOffset(months=int(m)) - pd.Timedelta(days=1) for m in tenure],
        index=rows.index,
        dtype="datetime64[ns]",
    )
    end = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns]")
    end[churned] = pd.Timestamp(CHURN_DAY)
    attributes = {
        name: choice(rows, column, file, allowed) for column, (name, allowed) in ATTRIBUTES.items()
    }
    attributes["senior_citizen"] = attributes["senior_citizen"].map({"0": "No", "1": "Yes"})
    customers = pd.DataFrame(
        {
            "customer_id": customer_id,
            "signup_date": start,
            "plan": plan,
            **attributes,
            "total_charges": total,
        }
    )
    subscriptions = pd.DataFrame(
        {
            "subscription_id": "S-" + customer_id,
            "customer_id": customer_id,
            "start_date": start,
            "end_date": end,
            "mrr": mrr,
            "plan": plan,
        }
    )
    return contract_tables(customers=customers, subscriptions=subscriptions)


def import_note(path: Path) -> dict[str, Any]:
    """What ``import.json`` records for a Telco import."""
    spec = label_spec()
    return {
        "source": "IBM Telco Customer Churn (IBM/telco-customer-churn-on-icp4d)",
        "importer": "features.importers.telco",
        "files": {path.name: sha256(path)},
        "snapshot": SNAPSHOT,
        "as_of": [AS_OF],
        "label": {
            "kind": spec.kind,
            "horizon_days": spec.horizon_days,
            "observed_until": spec.observed_until,
        },
        "notes": "Fictional calendar; see features/importers/telco.py. No events, tickets, "
        "invoices, NPS or marketing: usage, support and billing features are unavailable.",
    }


def write_telco(src: Path, out: Path) -> Path:
    """Import ``src`` and write the contract folder ``out`` atomically (nothing on failure)."""
    tables = import_telco(src)
    return write_contract_folder(tables, out, import_note(find_file(src, FILE_NAMES, "Telco")))

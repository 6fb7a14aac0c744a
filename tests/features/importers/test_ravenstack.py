"""The RavenStack importer maps a messy export; `churn validate` and the source check list every
known inconsistency with table, column, rows and counts. Never a model-quality test."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract import validate, validate_folder
from features.importers import SourceError, import_to_folder
from features.importers.ravenstack import FILES, import_ravenstack, source_inconsistencies

NOW = pd.Timestamp("2030-01-01", tz="UTC")
ACCOUNTS = [
    "account_id,account_name,industry,country,signup_date,referral_source,plan_tier,seats,"
    "is_trial,churn_flag",
    "A-1,Acme,FinTech,US,2024-01-01,partner,Pro,5,False,False",
    "A-2,Beta,EdTech,DE,2024-01-01,ads,Basic,3,False,True",
]
SUBSCRIPTIONS = [
    "subscription_id,account_id,start_date,end_date,plan_tier,seats,mrr_amount,arr_amount,"
    "is_trial,upgrade_flag,downgrade_flag,churn_flag,billing_frequency,auto_renew_flag",
    "S-1,A-1,2024-01-01,,Pro,5,500,6000,False,False,False,False,monthly,True",
    "S-2,A-2,2024-01-01,2024-03-01,Basic,3,100,1200,False,False,False,True,monthly,False",
]
USAGE = [
    "usage_id,subscription_id,usage_date,feature_name,usage_count,usage_duration_secs,"
    "error_count,is_beta_feature",
    "U-1,S-1,2024-02-01,feature_1,4,100,0,False",
    "U-1,S-2,2024-02-02,feature_2,2,50,1,False",  # duplicate usage id
    "U-3,S-2,2024-05-01,feature_2,1,10,0,False",  # after S-2 ended
]
TICKETS = [
    "ticket_id,account_id,submitted_at,closed_at,resolution_time_hours,priority,"
    "first_response_time_minutes,satisfaction_score,escalation_flag",
    "T-1,A-1,2024-02-01,2024-02-02 03:00:00,27.0,high,30,4,False",
    "T-2,A-2,2024-02-05,,,urgent,10,,True",
]
CHURN = [
    "churn_event_id,account_id,churn_date,reason_code,refund_amount_usd,preceding_upgrade_flag,"
    "preceding_downgrade_flag,is_reactivation,feedback_text",
    "C-1,A-1,2024-04-01,unknown,0,False,False,False,",  # A-1 is flagged active and subscribed
    "C-2,A-2,2024-03-01,pricing,10,False,False,False,too expensive",
]


def _write(folder: Path, **overrides: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"accounts": ACCOUNTS, "subscriptions": SUBSCRIPTIONS, "feature_usage": USAGE,
              "support_tickets": TICKETS, "churn_events": CHURN, **overrides}  # fmt: skip
    for table, lines in tables.items():
        (folder / FILES[table]).write_text("\r\n".join(lines) + "\r\n")
    return folder


def test_mapping_of_every_table(tmp_path: Path) -> None:
    tables = import_ravenstack(_write(tmp_path / "src"))
    assert tables.customers["region"].tolist() == ["US", "DE"]
    assert "churn_flag" not in tables.customers.columns  # the author's label never a feature
    assert tables.events is not None and tables.events["customer_id"].tolist() == [
        "A-1",
        "A-2",
        "A-2",
    ]
    assert tables.tickets is not None and tables.tickets["csat"].isna().tolist() == [False, True]
    exits = tables.exit_reasons
    assert exits is not None
    assert exits["category"].tolist() == ["unavoidable", "price"]
    assert exits["main_reason"].tolist() == ["unknown", "pricing"]


def test_validate_reports_usage_outside_subscriptions_and_exits_while_subscribed(
    tmp_path: Path,
) -> None:
    out = import_to_folder("ravenstack", _write(tmp_path / "src"), tmp_path / "out")
    _, report = validate_folder(out, NOW)
    found = {f.rule: f for f in report.findings}
    assert report.ok
    assert found["event_outside_subscription"].row_count == 1
    assert found["event_outside_subscription"].where == "events.timestamp"
    assert found["exit_reason_while_active"].row_count == 1
    assert found["exit_reason_while_active"].ids == ("A-1",)


def test_source_check_lists_what_the_contract_cannot_see(tmp_path: Path) -> None:
    problems = source_inconsistencies(_write(tmp_path / "src")).set_index("column")
    assert problems.loc["usage_id", "rows"] == 2
    assert problems.loc["usage_date", "rows"] == 1
    assert problems.loc["account_id", "rows"] == 1  # C-1: A-1 flagged active
    assert problems.loc["churn_flag", "rows"] == 0
    assert "row 1 (U-1)" in problems.loc["usage_id", "first_rows"]


def test_every_known_inconsistency_of_the_shared_export_is_listed(shared: Path) -> None:
    src = shared / "ravenstack"
    tables = import_ravenstack(src)
    report = validate(tables, NOW)
    rules = {f.rule: f.row_count for f in report.findings}
    assert report.ok
    assert rules["event_outside_subscription"] > 0
    assert rules["exit_reason_while_active"] > 0
    problems = source_inconsistencies(src).set_index("column")["rows"]
    # SOURCE.md: 21 usage ids repeat; 78 % of usage rows outside their subscription;
    # 277 accounts flagged active have churn events; 35 flagged churned have none.
    assert problems["usage_id"] == 42
    assert problems["usage_date"] / 25_000 == pytest.approx(0.78, abs=0.01)
    assert problems["account_id"] > 277
    assert problems["churn_flag"] == 35


@pytest.mark.parametrize(
    ("table", "lines", "needle"),
    [
        ("feature_usage", [*USAGE, "U-9,S-404,2024-02-01,feature_1,1,1,0,False"],
         "ravenstack_feature_usage.csv, column subscription_id: 1 row (4)"),
        ("subscriptions", [*SUBSCRIPTIONS[:2], SUBSCRIPTIONS[2].replace("100,", "lots,", 1)],
         "ravenstack_subscriptions.csv, column mrr_amount"),
        ("churn_events", [*CHURN, "C-3,A-2,2024-03-01,aliens,0,False,False,False,"],
         "column reason_code"),
        ("support_tickets", [*TICKETS, "T-3,A-1,2024-02-01,tomorrow,1,low,1,,False"],
         "column closed_at"),
        ("accounts", [*ACCOUNTS, "A-3,Gamma,EdTech,US,01/02/2024,ads,Pro,1,False,False"],
         "column signup_date"),
    ],
)  # fmt: skip
def test_malformed_rows_are_errors_and_nothing_is_written(
    tmp_path: Path, table: str, lines: list[str], needle: str
) -> None:
    src = _write(tmp_path / "src", **{table: lines})
    with pytest.raises(SourceError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        import_to_folder("ravenstack", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_file_and_unknown_data_set_are_clear(tmp_path: Path) -> None:
    src = _write(tmp_path / "src")
    (src / FILES["churn_events"]).unlink()
    with pytest.raises(SourceError, match=r"lacks ravenstack_churn_events\.csv"):
        import_ravenstack(src)
    with pytest.raises(SourceError, match="Unknown data set 'kkbox'"):
        import_to_folder("kkbox", src, tmp_path / "out")

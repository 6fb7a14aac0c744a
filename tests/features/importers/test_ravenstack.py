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
    assert "churn_flag" not in tables.customers.columns  # mapped to status, checked not learned
    assert tables.customers["status"].tolist() == ["active", "churned"]
    events = tables.events
    assert events is not None
    assert events["customer_id"].tolist() == ["A-1", "A-2", "A-2"]
    assert events["event_id"].tolist() == ["U-1", "U-1", "U-3"]
    assert events["subscription_id"].tolist() == ["S-1", "S-2", "S-2"]
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


def test_validate_sees_duplicate_usage_ids_own_subscription_and_the_churn_flag(
    tmp_path: Path,
) -> None:
    out = import_to_folder("ravenstack", _write(tmp_path / "src"), tmp_path / "out")
    _, report = validate_folder(out, NOW)
    found = {f.rule: f for f in report.findings}
    assert found["duplicate_event_id"].values == ("U-1", "U-1")
    assert found["event_outside_own_subscription"].ids == ("U-3",)
    assert found["exit_reason_for_active_customer"].ids == ("A-1",)
    # A-2 is flagged churned, has its churn event and its only subscription ended
    assert "churned_without_exit_reason" not in found
    assert "churned_while_subscribed" not in found


def test_a_churn_flag_other_than_true_or_false_stops_the_import(tmp_path: Path) -> None:
    accounts = [*ACCOUNTS[:2], ACCOUNTS[2].replace(",True", ",maybe")]
    src = _write(tmp_path / "src", accounts=accounts)
    with pytest.raises(SourceError, match=r"column churn_flag: 1 row \(2\) is not one of true"):
        import_ravenstack(src)


def test_source_check_lists_the_contract_findings_in_the_source_names(tmp_path: Path) -> None:
    problems = source_inconsistencies(_write(tmp_path / "src")).set_index("rule")
    assert problems.loc["duplicate_event_id", ["table", "column", "rows"]].tolist() == [
        "feature_usage",
        "usage_id",
        2,
    ]
    assert problems.loc["duplicate_event_id", "first_rows"] == "row 1 (U-1), row 2 (U-1)"
    assert problems.loc["event_outside_own_subscription", "first_rows"] == "row 3 (U-3)"
    assert problems.loc["exit_reason_for_active_customer", "rows"] == 1  # C-1: A-1 active
    assert problems.loc["churned_without_exit_reason", "rows"] == 0
    assert problems.loc["churned_while_subscribed", "rows"] == 0


def test_every_known_inconsistency_of_the_shared_export_is_listed(shared: Path) -> None:
    """SOURCE.md: 21 usage ids repeat; 78 % of usage rows fall outside their subscription; of the
    110 accounts flagged churned only 75 have a churn event; 277 accounts flagged active have one.
    """
    src = shared / "ravenstack"
    tables = import_ravenstack(src)
    report = validate(tables, NOW)
    found = {f.rule: f for f in report.findings}
    assert report.ok
    assert {rule: f.row_count for rule, f in found.items()} == {
        "duplicate_event_id": 42,
        "event_outside_own_subscription": 19_434,
        "exit_reason_for_active_customer": 465,
        "churned_without_exit_reason": 35,
        "churned_while_subscribed": 110,
        "overlapping_subscriptions": 4_492,
        "event_outside_subscription": 14_226,
        "exit_reason_while_active": 538,
    }
    assert "21 event_ids appear more than once" in found["duplicate_event_id"].message
    assert found["event_outside_own_subscription"].row_count / 25_000 == pytest.approx(
        0.78, abs=0.01
    )
    assert "(277 customers)" in found["exit_reason_for_active_customer"].message
    flagged_churned = (tables.customers["status"] == "churned").sum()
    assert flagged_churned == 110  # and every one of them still holds an open subscription
    assert flagged_churned - found["churned_without_exit_reason"].row_count == 75
    assert source_inconsistencies(src)["rows"].tolist() == [42, 19_434, 465, 35, 110]


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

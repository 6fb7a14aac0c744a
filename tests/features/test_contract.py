"""The raw-data contract, one rule per test: bad input is rejected or warned with a message that
names the table, the column and the offending rows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from features.contract import (
    RULES,
    TABLE_COLUMNS,
    Finding,
    RawTables,
    ValidationReport,
    clean,
    load_valid_tables,
    parse_tables,
    print_report,
    read_raw_tables,
    render_report,
    validate,
    validate_folder,
)
from features.errors import ChurnError, ContractError
from features.io import write_parquet

NOW = pd.Timestamp("2024-06-01T00:00:00Z")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def export() -> dict[str, pd.DataFrame]:
    """A small valid export, every value a string as a CSV would give it."""
    rows = {
        "customers": [
            {"customer_id": "c1", "signup_date": "2024-01-01", "region": "NA"},
            {"customer_id": "c2", "signup_date": "2024-02-01", "region": "EU"},
        ],
        "subscriptions": [
            {"subscription_id": "s1", "customer_id": "c1", "start_date": "2024-01-01",
             "end_date": "", "mrr": "100", "plan": "pro", "seats": "3"},
            {"subscription_id": "s2", "customer_id": "c2", "start_date": "2024-02-01",
             "end_date": "2024-05-01", "mrr": "50.5", "plan": "basic", "seats": ""},
        ],
        "events": [
            {"customer_id": "c1", "timestamp": "2024-03-01T10:00:00Z", "event_type": "login"},
            {"customer_id": "c2", "timestamp": "2024-03-02 10:00:00", "event_type": "export"},
        ],
        "tickets": [
            {"ticket_id": "t1", "customer_id": "c1", "opened_at": "2024-03-01T09:00:00Z",
             "resolved_at": "2024-03-01T12:00:00Z", "priority": "high", "csat": "4"},
            {"ticket_id": "t2", "customer_id": "c2", "opened_at": "2024-03-03T09:00:00Z",
             "resolved_at": "", "priority": "low", "csat": ""},
        ],
        "invoices": [
            {"invoice_id": "i1", "customer_id": "c1", "issued_at": "2024-03-01",
             "due_at": "2024-03-15", "paid_at": "2024-03-10", "amount": "100"},
        ],
        "nps": [{"customer_id": "c1", "responded_at": "2024-03-05", "score": "9"}],
        "marketing": [
            {"customer_id": "c1", "timestamp": "2024-03-01", "channel": "email", "action": "open"}
        ],
        "exit_reasons": [
            {"customer_id": "c2", "churned_at": "2024-05-01", "category": "price",
             "avoidable": "yes"}
        ],
    }  # fmt: skip
    return {table: pd.DataFrame(table_rows) for table, table_rows in rows.items()}


def with_rows(frames: dict[str, pd.DataFrame], table: str, *rows: dict[str, str]) -> None:
    """Append raw rows to one table of an export, in place."""
    frames[table] = pd.concat([frames[table], pd.DataFrame(list(rows))], ignore_index=True)


def check(frames: dict[str, pd.DataFrame], now: pd.Timestamp = NOW) -> ValidationReport:
    return validate(parse_tables(RawTables(**frames)), now)  # type: ignore[arg-type]


def only(report: ValidationReport, rule: str, table: str | None = None) -> Finding:
    """The one finding of ``rule`` (in ``table``); fails if there is not exactly one."""
    found = [f for f in report.findings if f.rule == rule and table in (None, f.table)]
    assert len(found) == 1, [f.describe() for f in report.findings]
    return found[0]


def write_export(frames: dict[str, pd.DataFrame], folder: Path, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in frames.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{table}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{table}.parquet", index=False)
    return folder


# --- reading ------------------------------------------------------------------------------------


def test_a_valid_export_passes_without_findings() -> None:
    report = check(export())
    assert report.ok
    assert report.findings == ()
    assert report.row_counts["events"] == 2


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_exports_are_read_with_contract_types(tmp_path: Path, fmt: str) -> None:
    tables = read_raw_tables(write_export(export(), tmp_path, fmt))
    assert tables.customers["customer_id"].tolist() == ["c1", "c2"]
    assert tables.customers["signup_date"].dtype == "datetime64[ns]"
    assert tables.events is not None
    assert str(tables.events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert tables.subscriptions["mrr"].dtype == "float64"
    assert tables.subscriptions["seats"].tolist()[0] == 3
    assert tables.exit_reasons is not None
    assert tables.exit_reasons["avoidable"].tolist() == [True]
    assert list(tables.subscriptions.columns) == [
        *TABLE_COLUMNS["subscriptions"][0],
        *TABLE_COLUMNS["subscriptions"][1],
    ]


def test_parquet_with_native_types_reads_like_csv(tmp_path: Path) -> None:
    typed = parse_tables(RawTables(**export()))  # type: ignore[arg-type]
    for table, frame in typed.present().items():
        frame.to_parquet(tmp_path / f"{table}.parquet", index=False)
    from_parquet = read_raw_tables(tmp_path)
    for table, frame in typed.present().items():
        pd.testing.assert_frame_equal(from_parquet.present()[table], frame, check_dtype=False)


def test_a_naive_timestamp_is_read_as_utc_and_an_offset_is_converted_to_utc() -> None:
    frames = export()
    with_rows(
        frames,
        "events",
        {"customer_id": "c1", "timestamp": "2024-03-01T12:00:00+02:00", "event_type": "login"},
    )
    events = parse_tables(RawTables(**frames)).events  # type: ignore[arg-type]
    assert events is not None
    assert events["timestamp"].tolist() == [
        pd.Timestamp("2024-03-01T10:00:00Z"),
        pd.Timestamp("2024-03-02T10:00:00Z"),
        pd.Timestamp("2024-03-01T10:00:00Z"),
    ]


def test_a_date_with_a_time_part_is_read_as_its_calendar_day() -> None:
    frames = export()
    frames["customers"].loc[0, "signup_date"] = "2024-01-01 17:45:00"
    customers = parse_tables(RawTables(**frames)).customers  # type: ignore[arg-type]
    assert customers["signup_date"].iloc[0] == pd.Timestamp("2024-01-01")


def test_empty_strings_are_missing_values_but_na_stays_a_region(tmp_path: Path) -> None:
    tables = read_raw_tables(write_export(export(), tmp_path, "csv"))
    assert tables.customers["region"].tolist() == ["NA", "EU"]
    assert pd.isna(tables.subscriptions["end_date"].iloc[0])
    assert pd.isna(tables.tickets["csat"].iloc[1])  # type: ignore[index]


def test_ids_are_text_and_keep_their_leading_zeros(tmp_path: Path) -> None:
    frames = seven_zero_ids()
    tables = read_raw_tables(write_export(frames, tmp_path, "csv"))
    assert tables.customers["customer_id"].tolist() == ["007", "008"]


def test_extra_customer_columns_are_kept_as_customer_attributes(tmp_path: Path) -> None:
    frames = export()
    frames["customers"]["segment"] = ["smb", "enterprise"]
    tables = read_raw_tables(write_export(frames, tmp_path, "csv"))
    assert tables.customers["segment"].tolist() == ["smb", "enterprise"]
    assert not [f for f in tables.read_findings if f.table == "customers"]


def test_unknown_columns_of_other_tables_are_dropped_with_a_warning(tmp_path: Path) -> None:
    frames = export()
    frames["events"]["colour"] = "red"
    tables = read_raw_tables(write_export(frames, tmp_path, "csv"))
    assert tables.events is not None and "colour" not in tables.events.columns
    finding = only(validate(tables, NOW), "unknown_column")
    assert (finding.severity, finding.where) == ("warning", "events.colour")


def test_unknown_files_are_ignored_and_absent_optional_tables_are_none(tmp_path: Path) -> None:
    frames = export()
    del frames["nps"], frames["marketing"]
    folder = write_export(frames, tmp_path, "csv")
    (folder / "notes.csv").write_text("anything,at all\n1,2\n")
    tables, report = validate_folder(folder, NOW)
    assert tables is not None and report.ok and report.findings == ()
    assert tables.nps is None and tables.marketing is None


def test_missing_optional_columns_are_added_empty() -> None:
    frames = export()
    frames["tickets"] = frames["tickets"].drop(columns=["csat"])
    tickets = parse_tables(RawTables(**frames)).tickets  # type: ignore[arg-type]
    assert tickets is not None and tickets["csat"].isna().all()
    assert tickets["csat"].dtype == "float64"


def test_a_folder_without_customers_fails_naming_the_missing_table(tmp_path: Path) -> None:
    frames = export()
    del frames["customers"]
    folder = write_export(frames, tmp_path, "csv")
    with pytest.raises(ContractError, match=r"required table customers is missing"):
        read_raw_tables(folder)
    tables, report = validate_folder(folder, NOW)
    assert tables is None
    assert only(report, "missing_table").severity == "error"


def test_a_folder_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    tables, report = validate_folder(tmp_path / "nowhere", NOW)
    assert tables is None and not report.ok
    assert "nowhere" in only(report, "missing_folder").message


def test_an_unreadable_parquet_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    folder = write_export(export(), tmp_path, "parquet")
    (folder / "events.parquet").write_bytes(b"not parquet at all")
    tables, report = validate_folder(folder, NOW)
    assert tables is not None and tables.events is None
    finding = only(report, "unreadable_file")
    assert finding.table == "events" and "events.parquet" in finding.message


def test_csv_and_parquet_of_one_table_reads_the_parquet_with_a_warning(tmp_path: Path) -> None:
    folder = write_export(export(), tmp_path, "parquet")
    (folder / "customers.csv").write_text("customer_id,signup_date\nzz,2024-01-01\n")
    tables, report = validate_folder(folder, NOW)
    assert tables is not None and tables.customers["customer_id"].tolist() == ["c1", "c2"]
    assert only(report, "duplicate_file").severity == "warning"


def test_an_unparseable_date_is_an_error_naming_table_column_row_id_and_value(
    tmp_path: Path,
) -> None:
    frames = export()
    frames["customers"].loc[1, "signup_date"] = "31/12/2024"
    _, report = validate_folder(write_export(frames, tmp_path, "csv"), NOW)
    finding = only(report, "unparseable_date")
    assert (finding.severity, finding.where) == ("error", "customers.signup_date")
    assert (finding.rows, finding.ids, finding.values) == ((2,), ("c2",), ("31/12/2024",))
    assert "row 2 (customer_id c2): '31/12/2024'" in finding.describe()
    assert "YYYY-MM-DD" in finding.fix
    assert not [f for f in report.findings if f.rule == "missing_value"]  # not reported twice


@pytest.mark.parametrize(
    ("table", "column", "value", "rule"),
    [
        ("events", "timestamp", "yesterday", "unparseable_timestamp"),
        ("subscriptions", "mrr", "$100", "unparseable_number"),
        ("subscriptions", "seats", "2.5", "unparseable_number"),
        ("exit_reasons", "avoidable", "maybe", "unparseable_boolean"),
    ],
)
def test_unparseable_values_are_errors_naming_table_column_and_value(
    table: str, column: str, value: str, rule: str
) -> None:
    frames = export()
    frames[table].loc[0, column] = value
    finding = only(check(frames), rule)
    assert (finding.severity, finding.table, finding.column) == ("error", table, column)
    assert finding.rows == (1,) and finding.values == (value,)


def test_mixed_iso_timestamp_formats_in_one_column_all_parse() -> None:
    frames = export()
    with_rows(
        frames,
        "events",
        {"customer_id": "c1", "timestamp": "2024-03-01T10:00", "event_type": "login"},
        {"customer_id": "c1", "timestamp": "2024-03-01T10:00:00.5+01:00", "event_type": "login"},
    )
    assert check(frames).ok


# --- rules of one table -------------------------------------------------------------------------


def test_a_missing_required_column_is_an_error() -> None:
    frames = export()
    frames["subscriptions"] = frames["subscriptions"].drop(columns=["mrr"])
    report = check(frames)
    finding = only(report, "missing_column")
    assert (finding.severity, finding.where) == ("error", "subscriptions.mrr")
    assert "has no column mrr" in finding.message


def test_an_empty_customers_table_is_an_error() -> None:
    frames = export()
    frames["customers"] = frames["customers"].iloc[0:0]
    assert only(check(frames), "empty_table").table == "customers"


@pytest.mark.parametrize(
    ("table", "column"),
    [
        ("customers", "customer_id"),
        ("subscriptions", "subscription_id"),
        ("tickets", "ticket_id"),
        ("invoices", "invoice_id"),
    ],
)
def test_a_duplicate_id_is_an_error_naming_the_ids(table: str, column: str) -> None:
    frames = export()
    frames[table] = pd.concat([frames[table], frames[table].iloc[[0]]], ignore_index=True)
    finding = only(check(frames), "duplicate_id")
    assert (finding.severity, finding.where) == ("error", f"{table}.{column}")
    first_id = frames[table][column].iloc[0]
    assert finding.ids == (first_id, first_id)
    assert finding.rows == (1, len(frames[table]))


@pytest.mark.parametrize(("table", "column"), [("subscriptions", "mrr"), ("invoices", "amount")])
def test_a_negative_mrr_or_amount_is_an_error(table: str, column: str) -> None:
    frames = export()
    frames[table].loc[0, column] = "-10"
    finding = only(check(frames), "negative_value")
    assert (finding.severity, finding.where, finding.rows) == ("error", f"{table}.{column}", (1,))


def test_a_required_value_left_empty_is_an_error() -> None:
    frames = export()
    frames["events"].loc[1, "event_type"] = "  "
    finding = only(check(frames), "missing_value")
    assert (finding.severity, finding.where, finding.rows) == ("error", "events.event_type", (2,))


def test_a_subscription_ending_before_it_starts_is_an_error() -> None:
    frames = export()
    frames["subscriptions"].loc[1, "end_date"] = "2024-01-15"
    finding = only(check(frames), "end_before_start")
    assert (finding.severity, finding.table, finding.ids) == ("error", "subscriptions", ("s2",))


def test_a_ticket_resolved_before_it_was_opened_is_a_warning_and_clean_blanks_it() -> None:
    frames = export()
    frames["tickets"].loc[0, "resolved_at"] = "2024-02-01T00:00:00Z"
    tables = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    report = validate(tables, NOW)
    finding = only(report, "resolved_before_opened")
    assert (finding.severity, finding.ids) == ("warning", ("t1",))
    tickets = clean(tables, report).tickets
    assert tickets is not None and pd.isna(tickets["resolved_at"].iloc[0])


def test_an_invoice_paid_before_it_was_issued_is_a_warning_kept_as_a_prepayment() -> None:
    frames = export()
    frames["invoices"].loc[0, "paid_at"] = "2024-02-20"
    tables = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    report = validate(tables, NOW)
    assert only(report, "paid_before_issued").severity == "warning"
    invoices = clean(tables, report).invoices
    assert invoices is not None and invoices["paid_at"].notna().all()


def test_an_invoice_due_before_it_was_issued_is_a_warning() -> None:
    frames = export()
    frames["invoices"].loc[0, "due_at"] = "2024-02-01"
    assert only(check(frames), "due_before_issued").severity == "warning"


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [
        ("events", "timestamp", "2024-06-01T00:00:01Z"),
        ("customers", "signup_date", "2024-06-02"),
        ("nps", "responded_at", "2030-01-01"),
    ],
)
def test_a_time_later_than_the_given_now_is_a_warning(table: str, column: str, value: str) -> None:
    frames = export()
    frames[table].loc[0, column] = value
    finding = only(check(frames), "future_time")
    assert (finding.severity, finding.where) == ("warning", f"{table}.{column}")
    assert "2024-06-01 00:00 UTC" in finding.message
    assert check(frames, now=pd.Timestamp("2031-01-01")).ok
    assert not [f for f in check(frames, now=pd.Timestamp("2031-01-01")).findings]


def test_a_scheduled_end_date_or_a_due_date_in_the_future_is_not_a_warning() -> None:
    frames = scheduled_ends()
    assert check(frames).findings == ()


def test_csat_and_nps_outside_their_scales_are_errors() -> None:
    frames = export()
    frames["tickets"].loc[0, "csat"] = "9"
    frames["nps"].loc[0, "score"] = "11"
    report = check(frames)
    csat, nps = only(report, "out_of_range", "tickets"), only(report, "out_of_range", "nps")
    assert (csat.severity, csat.where, csat.values) == ("error", "tickets.csat", ("9.0",))
    assert "outside 1–5" in csat.message and "outside 0–10" in nps.message


@pytest.mark.parametrize(
    ("table", "column", "allowed"),
    [
        ("tickets", "priority", "low, medium, high, urgent"),
        ("marketing", "action", "sent, open, click, attend"),
        ("exit_reasons", "category", "product, price, service, competitor, unavoidable"),
    ],
)
def test_a_value_outside_the_allowed_list_is_an_error(
    table: str, column: str, allowed: str
) -> None:
    frames = export()
    frames[table].loc[0, column] = "Whatever"
    finding = only(check(frames), "unknown_category")
    assert (finding.severity, finding.where, finding.values) == (
        "error",
        f"{table}.{column}",
        ("whatever",),
    )
    assert allowed in finding.message


def test_allowed_values_ignore_case_and_surrounding_spaces() -> None:
    frames = export()
    frames["tickets"].loc[0, "priority"] = " URGENT "
    tables = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    assert validate(tables, NOW).ok
    assert tables.tickets is not None and tables.tickets["priority"].iloc[0] == "urgent"


def test_in_memory_tables_with_the_wrong_types_get_a_wrong_type_error() -> None:
    report = validate(RawTables(**export()), NOW)  # type: ignore[arg-type]  # not parsed
    finding = next(f for f in report.errors if f.where == "customers.signup_date")
    assert finding.rule == "wrong_type"
    assert "read_raw_tables or parse_tables" in finding.fix


def test_a_finding_shows_five_example_rows_and_the_total_count() -> None:
    frames = export()
    events = [{"customer_id": "c1", "timestamp": "2024-03-01", "event_type": ""} for _ in range(8)]
    with_rows(frames, "events", *events)
    finding = only(check(frames), "missing_value")
    assert finding.row_count == 8 and finding.rows == (3, 4, 5, 6, 7)
    assert finding.message.startswith("8 rows of events have no event_type")
    assert "and 3 more" in finding.examples()


# --- rules across tables ------------------------------------------------------------------------


def test_an_unknown_customer_id_is_a_warning_and_clean_drops_those_rows() -> None:
    frames = export()
    with_rows(
        frames, "events", {"customer_id": "ghost", "timestamp": "2024-03-01", "event_type": "x"}
    )
    with_rows(frames, "nps", {"customer_id": "ghost", "responded_at": "2024-03-01", "score": "5"})
    tables = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    report = validate(tables, NOW)
    finding = only(report, "unknown_customer", "events")
    assert (finding.severity, finding.where, finding.rows, finding.ids) == (
        "warning",
        "events.customer_id",
        (3,),
        ("ghost",),
    )
    assert "dropped" in finding.message
    cleaned = clean(tables, report)
    assert cleaned.events is not None and "ghost" not in cleaned.events["customer_id"].tolist()
    assert cleaned.nps is not None and len(cleaned.nps) == 1
    assert cleaned.events.index.equals(pd.RangeIndex(2))


def test_a_customer_without_subscription_is_a_warning() -> None:
    frames = export()
    with_rows(frames, "customers", {"customer_id": "c3", "signup_date": "2024-03-01"})
    finding = only(check(frames), "customer_without_subscription")
    assert (finding.severity, finding.ids) == ("warning", ("c3",))


def test_overlapping_subscriptions_of_one_customer_are_a_warning() -> None:
    frames = export()
    with_rows(
        frames,
        "subscriptions",
        {"subscription_id": "s3", "customer_id": "c2", "start_date": "2024-04-01",
         "end_date": "2024-04-15", "mrr": "10", "plan": "addon"},
    )  # fmt: skip
    finding = only(check(frames), "overlapping_subscriptions")
    assert (finding.severity, finding.table, finding.ids) == ("warning", "subscriptions", ("s3",))


def test_back_to_back_subscriptions_do_not_overlap_because_windows_are_half_open() -> None:
    frames = export()
    with_rows(
        frames,
        "subscriptions",
        {"subscription_id": "s3", "customer_id": "c2", "start_date": "2024-05-01",
         "end_date": "2024-05-20", "mrr": "10", "plan": "pro"},
    )  # fmt: skip
    frames["exit_reasons"].loc[0, "churned_at"] = "2024-05-20"
    assert check(frames).findings == ()


def test_events_outside_every_subscription_are_counted_as_a_warning() -> None:
    frames = export()  # c2 is covered on [2024-02-01, 2024-05-01)
    with_rows(
        frames,
        "events",
        {"customer_id": "c2", "timestamp": "2024-02-01T00:00:00Z", "event_type": "in"},
        {"customer_id": "c2", "timestamp": "2024-04-30T23:59:59Z", "event_type": "in"},
        {"customer_id": "c2", "timestamp": "2024-05-01T00:00:00Z", "event_type": "out"},
        {"customer_id": "c2", "timestamp": "2024-01-31T23:59:59Z", "event_type": "out"},
        {"customer_id": "c1", "timestamp": "2023-12-31T12:00:00Z", "event_type": "out"},
    )
    finding = only(check(frames), "event_outside_subscription")
    assert (finding.severity, finding.where) == ("warning", "events.timestamp")
    assert finding.rows == (5, 6, 7) and finding.row_count == 3
    assert "3 rows of events (42.9% of all events)" in finding.message


def test_an_exit_reason_for_a_customer_still_subscribed_is_a_warning() -> None:
    frames = export()
    with_rows(
        frames,
        "exit_reasons",
        {"customer_id": "c1", "churned_at": "2024-04-01", "category": "product"},
    )
    finding = only(check(frames), "exit_reason_while_active")
    assert (finding.severity, finding.rows, finding.ids) == ("warning", (2,), ("c1",))


def test_an_exit_reason_before_a_win_back_subscription_is_not_a_warning() -> None:
    frames = export()
    with_rows(
        frames,
        "subscriptions",
        {"subscription_id": "s3", "customer_id": "c2", "start_date": "2024-05-20",
         "end_date": "", "mrr": "60", "plan": "pro"},
    )  # fmt: skip
    assert check(frames).findings == ()


# --- event ids, event -> subscription links, customer status ----------------------------------


def linked_export() -> dict[str, pd.DataFrame]:
    """The valid export with event ids, each event's subscription and the CRM status filled."""
    frames = export()
    frames["customers"]["status"] = ["active", "churned"]  # c2 left on 2024-05-01
    frames["events"]["event_id"] = ["e1", "e2"]
    frames["events"]["subscription_id"] = ["s1", "s2"]
    return frames


def event(event_id: str, customer: str, subscription: str, timestamp: str) -> dict[str, str]:
    return {"event_id": event_id, "customer_id": customer, "subscription_id": subscription,
            "timestamp": timestamp, "event_type": "login"}  # fmt: skip


# --- exports shared with tests/features/test_contract_stream.py ---------------------------------


def seven_zero_ids() -> dict[str, pd.DataFrame]:
    """Customer ids with leading zeros."""
    frames = export()
    frames["customers"]["customer_id"] = ["007", "008"]
    frames["subscriptions"]["customer_id"] = ["007", "008"]
    return frames


def scheduled_ends() -> dict[str, pd.DataFrame]:
    """A scheduled end date and a due date in the future, s2 active now."""
    frames = export()
    frames["subscriptions"].loc[1, "end_date"] = "2025-01-01"
    frames["invoices"].loc[0, "due_at"] = "2024-07-01"
    frames["exit_reasons"] = frames["exit_reasons"].iloc[0:0]  # s2 is active now
    return frames


def spanning_subscriptions() -> dict[str, pd.DataFrame]:
    """c2 with a second subscription s3 after s2, events inside and outside each."""
    frames = linked_export()  # s2 covers [2024-02-01, 2024-05-01); s1 is open since 2024-01-01
    with_rows(
        frames,
        "subscriptions",
        {"subscription_id": "s3", "customer_id": "c2", "start_date": "2024-05-01",
         "end_date": "2024-05-10", "mrr": "10", "plan": "basic"},
    )  # fmt: skip
    frames["exit_reasons"].loc[0, "churned_at"] = "2024-05-10"
    with_rows(
        frames,
        "events",
        event("e3", "c2", "s2", "2024-02-01T00:00:00Z"),  # first day: inside
        event("e4", "c2", "s2", "2024-04-30T23:59:59Z"),  # inside
        event("e5", "c2", "s2", "2024-05-01T00:00:00Z"),  # end_date is not covered: outside
        event("e6", "c2", "s3", "2024-04-15T00:00:00Z"),  # before s3 starts: outside
        event("e7", "c1", "s1", "2023-12-31T00:00:00Z"),  # before s1 starts: outside
    )
    return frames


def both_churned_by_status() -> dict[str, pd.DataFrame]:
    """Both customers flagged churned; c1's subscription is still open."""
    frames = linked_export()
    frames["customers"]["status"] = ["churned", "churned"]
    with_rows(frames, "exit_reasons", {"customer_id": "c1", "churned_at": "2024-04-01",
                                       "category": "price"})  # fmt: skip
    return frames


def cancelled_with_notice() -> dict[str, pd.DataFrame]:
    """c2 churned, its subscription ending after a notice period."""
    frames = linked_export()
    frames["subscriptions"].loc[1, "end_date"] = "2024-07-01"  # cancelled, notice period runs
    frames["exit_reasons"].loc[0, "churned_at"] = "2024-05-20"
    return frames


def two_errors() -> dict[str, pd.DataFrame]:
    """Repeated customers and a negative MRR."""
    frames = export()
    frames["customers"] = pd.concat([frames["customers"]] * 2, ignore_index=True)
    frames["subscriptions"].loc[0, "mrr"] = "-1"
    return frames


def test_event_ids_subscription_links_and_status_that_agree_pass_without_findings(
    tmp_path: Path,
) -> None:
    tables, report = validate_folder(write_export(linked_export(), tmp_path, "csv"), NOW)
    assert report.findings == ()
    assert tables is not None and tables.events is not None
    assert tables.events["event_id"].tolist() == ["e1", "e2"]
    assert tables.customers["status"].tolist() == ["active", "churned"]


def test_status_is_lower_cased_and_a_value_other_than_active_or_churned_is_an_error() -> None:
    frames = linked_export()
    frames["customers"]["status"] = [" Active ", "gone"]
    finding = only(check(frames), "unknown_category")
    assert (finding.severity, finding.where, finding.rows) == ("error", "customers.status", (2,))
    assert finding.values == ("gone",) and "active, churned" in finding.message


def test_a_repeated_event_id_is_a_warning_naming_ids_and_counts_and_rows_are_kept() -> None:
    frames = linked_export()
    with_rows(
        frames,
        "events",
        event("e1", "c1", "s1", "2024-03-05"),
        event("e1", "c1", "s1", "2024-03-06"),
        event("e2", "c2", "s2", "2024-03-07"),
    )
    tables = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    report = validate(tables, NOW)
    finding = only(report, "duplicate_event_id")
    assert (finding.severity, finding.where, finding.row_count) == ("warning", "events.event_id", 5)
    assert finding.rows == (1, 2, 3, 4, 5)
    assert finding.values == ("e1", "e2", "e1", "e1", "e2")
    assert "2 event_ids appear more than once (e1 (3 rows), e2 (2 rows))" in finding.message
    assert "None of them is an exact copy" in finding.message and "kept" in finding.message
    events = clean(tables, report).events
    assert events is not None and len(events) == 5


def test_an_event_exported_twice_is_named_as_an_exact_copy() -> None:
    frames = linked_export()
    with_rows(frames, "events", frames["events"].iloc[0].to_dict())
    finding = only(check(frames), "duplicate_event_id")
    assert finding.row_count == 2 and "2 of them are exact copies" in finding.message
    assert "remove the copy" in finding.fix


def test_an_event_whose_subscription_id_is_not_in_subscriptions_is_a_warning() -> None:
    frames = linked_export()
    with_rows(frames, "events", event("e3", "c1", "s404", "2024-03-05"))
    finding = only(check(frames), "unknown_subscription")
    assert (finding.severity, finding.where, finding.rows) == (
        "warning",
        "events.subscription_id",
        (3,),
    )
    assert (finding.id_column, finding.ids, finding.values) == ("event_id", ("e3",), ("s404",))


def test_an_event_linked_to_another_customers_subscription_is_a_warning() -> None:
    frames = linked_export()
    with_rows(frames, "events", event("e3", "c1", "s2", "2024-03-05"))
    finding = only(check(frames), "subscription_of_other_customer")
    assert (finding.severity, finding.rows, finding.values) == ("warning", (3,), ("s2",))


def test_events_outside_their_own_subscription_are_counted_even_if_another_covers_them() -> None:
    report = check(spanning_subscriptions())
    finding = only(report, "event_outside_own_subscription")
    assert (finding.severity, finding.where) == ("warning", "events.timestamp")
    assert finding.rows == (5, 6, 7) and finding.ids == ("e5", "e6", "e7")
    assert "3 rows of events (42.9% of the events linked to a subscription)" in finding.message
    # e5 and e6 fall in another subscription of c2: only e7 is outside every subscription
    assert only(report, "event_outside_subscription").rows == (7,)


def test_events_without_a_subscription_id_are_not_checked_against_one() -> None:
    frames = linked_export()
    with_rows(frames, "events", event("e3", "c1", "", "2023-12-31T00:00:00Z"))
    rules = {f.rule for f in check(frames).findings}
    assert rules == {"event_outside_subscription"}


def test_an_exit_reason_for_a_customer_flagged_active_is_a_warning() -> None:
    frames = linked_export()
    frames["customers"]["status"] = ["active", "active"]
    finding = only(check(frames), "exit_reason_for_active_customer")
    assert (finding.severity, finding.where, finding.ids) == (
        "warning",
        "exit_reasons.customer_id",
        ("c2",),
    )
    assert finding.message.startswith("1 row of exit_reasons (1 customer) belongs to a customer")


def test_a_customer_flagged_churned_without_an_exit_reason_is_a_warning() -> None:
    frames = linked_export()
    frames["exit_reasons"] = frames["exit_reasons"].iloc[0:0]
    finding = only(check(frames), "churned_without_exit_reason")
    assert (finding.severity, finding.where, finding.ids) == (
        "warning",
        "customers.status",
        ("c2",),
    )
    del frames["exit_reasons"]  # no exit survey exported: nothing to compare with
    assert check(frames).findings == ()


def test_a_customer_flagged_churned_with_a_subscription_still_open_is_a_warning() -> None:
    report = check(both_churned_by_status())
    finding = only(report, "churned_while_subscribed")
    assert (finding.severity, finding.where, finding.ids) == (
        "warning",
        "customers.status",
        ("c1",),
    )
    assert "never from status" in finding.message


def test_a_scheduled_end_date_counts_as_cancelled_for_a_churned_status() -> None:
    rules = {f.rule for f in check(cancelled_with_notice()).findings}
    assert "churned_while_subscribed" not in rules


def test_link_and_status_checks_over_many_events_count_every_offending_row() -> None:
    """The same array operations as above on 200 k events, against a plain pandas count."""
    rng = np.random.default_rng(11)
    frames = linked_export()
    n = 200_000
    subscription = rng.choice(["s1", "s2", "s404"], n)
    frames["events"] = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in rng.integers(0, n * 10, n)],
            "customer_id": np.where(subscription == "s2", "c2", "c1"),
            "subscription_id": subscription,
            "timestamp": pd.Timestamp("2023-12-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 180 * 86400, n), unit="s"),
            "event_type": "login",
        }
    )
    events = frames["events"]
    report = check(frames)
    start = events["subscription_id"].map({"s1": "2024-01-01", "s2": "2024-02-01"})
    end = events["subscription_id"].map({"s2": "2024-05-01"})
    day = events["timestamp"].dt.tz_localize(None)
    outside = (day < pd.to_datetime(start)) | (day >= pd.to_datetime(end))
    repeated = events["event_id"].duplicated(keep=False)
    assert only(report, "unknown_subscription").row_count == (subscription == "s404").sum()
    assert (
        only(report, "event_outside_own_subscription").row_count
        == (outside & (subscription != "s404")).sum()
    )
    assert only(report, "duplicate_event_id").row_count == repeated.sum()


# --- loading, cleaning, reporting ---------------------------------------------------------------


def test_load_valid_tables_raises_a_contract_error_listing_every_error(tmp_path: Path) -> None:
    folder = write_export(two_errors(), tmp_path, "parquet")
    with pytest.raises(ContractError) as raised:
        load_valid_tables(folder, NOW)
    message = str(raised.value)
    assert isinstance(raised.value, ChurnError)
    assert "2 errors" in message
    assert "customers.customer_id" in message and "row 3 (customer_id c1)" in message
    assert "subscriptions.mrr" in message and "How to fix" in message


def test_nothing_is_written_when_validation_fails(tmp_path: Path) -> None:
    frames = export()
    frames["subscriptions"].loc[1, "end_date"] = "2024-01-01"
    folder = write_export(frames, tmp_path / "export", "csv")
    output = tmp_path / "out" / "features.parquet"

    def build_and_write() -> None:
        tables, _ = load_valid_tables(folder, NOW)
        write_parquet(tables.customers, output)

    with pytest.raises(ContractError, match=r"subscriptions\.end_date"):
        build_and_write()
    assert not output.exists() and not output.parent.exists()


def test_load_valid_tables_returns_clean_tables_and_the_warnings(tmp_path: Path) -> None:
    frames = export()
    with_rows(frames, "events", {"customer_id": "zz", "timestamp": "2024-03-01", "event_type": "x"})
    tables, report = load_valid_tables(write_export(frames, tmp_path, "csv"), NOW)
    assert report.ok and report.warning_count == 1
    assert tables.events is not None and len(tables.events) == 2


def test_clean_refuses_a_report_with_errors() -> None:
    frames = export()
    frames["nps"].loc[0, "score"] = "42"
    tables = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    with pytest.raises(ContractError, match=r"nps\.score"):
        clean(tables, validate(tables, NOW))


def test_the_report_renders_as_a_rich_table_naming_every_finding() -> None:
    frames = export()
    frames["tickets"].loc[0, "csat"] = "0"
    with_rows(frames, "events", {"customer_id": "zz", "timestamp": "2024-03-01", "event_type": "x"})
    report = check(frames)
    console = Console(record=True, width=160)
    console.print(render_report(report))
    text = console.export_text()
    assert "1 error, 1 warning" in text
    assert "tickets.csat" in text and "out_of_range" in text and "row 1 (ticket_id t1)" in text
    assert "events.customer_id" in text and "unknown_customer" in text


def test_a_passing_report_prints_as_valid() -> None:
    console = Console(record=True, width=120)
    print_report(check(export()), console)
    text = console.export_text()
    assert "Every check passed" in text and "valid: 0 errors, 0 warnings" in text


def test_every_rule_is_documented_with_its_severity() -> None:
    docs = DOCS.read_text()
    for rule, spec in RULES.items():
        row = re.search(rf"^\|[^\n]*`{rule}`[^\n]*$", docs, flags=re.MULTILINE)
        assert row, f"{rule} is not in the docs table"
        assert spec.severity in row.group(0), f"{rule} should be documented as {spec.severity}"


def test_checks_over_many_events_count_every_offending_row() -> None:
    """The cross-table checks are array operations; this runs them on 200 k events.

    Timings live in benchmarks/, not in tests (about 3 s for 10 M events when written).
    """
    rng = np.random.default_rng(7)
    frames = export()
    n = 200_000
    frames["events"] = pd.DataFrame(
        {
            "customer_id": rng.choice(["c1", "c2", "ghost"], n),
            "timestamp": pd.Timestamp("2023-12-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 180 * 86400, n), unit="s"),
            "event_type": "login",
        }
    )
    events = parse_tables(RawTables(**frames)).events  # type: ignore[arg-type]
    assert events is not None
    report = validate(parse_tables(RawTables(**frames)), NOW)  # type: ignore[arg-type]
    ghost = events["customer_id"] == "ghost"
    covered_from = events["customer_id"].map({"c1": "2024-01-01", "c2": "2024-02-01"})
    before = events["timestamp"].dt.tz_localize(None) < pd.to_datetime(covered_from)
    after = (events["customer_id"] == "c2") & (events["timestamp"] >= "2024-05-01T00:00:00Z")
    assert only(report, "unknown_customer").row_count == ghost.sum()
    assert only(report, "event_outside_subscription").row_count == (~ghost & (before | after)).sum()


def test_categorical_text_columns_are_checked_like_text_even_when_empty() -> None:
    """The generator keeps event text as pandas categoricals; an empty one is a missing value."""
    tables = parse_tables(RawTables(**export()))  # type: ignore[arg-type]
    assert tables.events is not None
    events = tables.events.astype({"customer_id": "category", "event_type": "category"})
    events.loc[1, "event_type"] = None
    report = validate(RawTables(tables.customers, tables.subscriptions, events=events), NOW)
    finding = only(report, "missing_value")
    assert (finding.where, finding.rows, finding.ids) == ("events.event_type", (2,), ("c2",))

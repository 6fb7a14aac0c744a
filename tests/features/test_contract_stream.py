"""The streamed contract gives validate_folder's report, finding for finding: every export of
tests/features/test_contract.py, as CSV and as Parquet, in chunks small enough to split every
table, and the RavenStack export with its known inconsistencies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import features.contract_stream as contract_stream
from features.contract import RawTables, parse_tables, validate_folder
from features.contract_stream import validate_export
from features.generator import generate_world, write_world
from features.importers import import_to_folder, shared_data_dir
from tests.features.test_contract import (
    NOW,
    both_churned_by_status,
    cancelled_with_notice,
    event,
    export,
    linked_export,
    scheduled_ends,
    seven_zero_ids,
    spanning_subscriptions,
    two_errors,
    with_rows,
    write_export,
)

Frames = dict[str, pd.DataFrame]


def changed(table: str, row: int, column: str, value: str, base: Callable[[], Frames] = export):
    """The export with one cell set to ``value``."""

    def build() -> Frames:
        frames = base()
        frames[table].loc[row, column] = value
        return frames

    return build


def added(table: str, *rows: dict[str, str], base: Callable[[], Frames] = export):
    """The export with raw rows appended to one table."""

    def build() -> Frames:
        frames = base()
        with_rows(frames, table, *rows)
        return frames

    return build


def many_events(linked: bool) -> Callable[[], Frames]:
    """200 k random events (test_contract's two large cases), some repeated ids and ghosts."""

    def build() -> Frames:
        rng = np.random.default_rng(11 if linked else 7)
        frames = linked_export() if linked else export()
        n = 200_000
        subscription = rng.choice(["s1", "s2", "s404"], n)
        customer = np.where(subscription == "s2", "c2", "c1")
        frames["events"] = pd.DataFrame(
            {
                "customer_id": customer if linked else rng.choice(["c1", "c2", "ghost"], n),
                "timestamp": (
                    pd.Timestamp("2023-12-01", tz="UTC")
                    + pd.to_timedelta(rng.integers(0, 180 * 86400, n), unit="s")
                ).astype(str),
                "event_type": "login",
                **(
                    {
                        "event_id": [f"e{i}" for i in rng.integers(0, n * 10, n)],
                        "subscription_id": subscription,
                    }
                    if linked
                    else {}
                ),
            }
        )
        return frames

    return build


def dropped(table: str, column: str | None = None, base: Callable[[], Frames] = export):
    """The export without one table, or without one column of it."""

    def build() -> Frames:
        frames = base()
        if column is None:
            del frames[table]
        else:
            frames[table] = frames[table].drop(columns=[column])
        return frames

    return build


def emptied(table: str, base: Callable[[], Frames] = export):
    def build() -> Frames:
        frames = base()
        frames[table] = frames[table].iloc[0:0]
        return frames

    return build


def repeated_row(table: str):
    def build() -> Frames:
        frames = export()
        frames[table] = pd.concat([frames[table], frames[table].iloc[[0]]], ignore_index=True)
        return frames

    return build


def with_frames(**changes: Callable[[Frames], None]) -> Callable[[], Frames]:
    def build() -> Frames:
        frames = export()
        for change in changes.values():
            change(frames)
        return frames

    return build


def _status(values: list[str]) -> Callable[[], Frames]:
    def build() -> Frames:
        frames = linked_export()
        frames["customers"]["status"] = values
        return frames

    return build


def _many_bad_events() -> Frames:
    """Row findings spread over chunks, each rule first seen in a different chunk: marketing's
    unknown action before its missing one, a bad value before a bad timestamp."""
    frames = linked_export()
    rows = [event(f"x{i}", "c1", "s1", "2024-03-01T00:00:00Z") for i in range(40)]
    rows[2]["value"] = "lots"
    rows[17]["timestamp"] = "soon"
    rows[23]["event_type"] = ""
    rows[31]["customer_id"] = "ghost"
    rows[35]["event_id"] = "x1"
    with_rows(frames, "events", *rows, frames["events"].iloc[0].to_dict())
    marketing = [
        {"customer_id": "c1", "timestamp": "2024-03-01", "channel": "email", "action": "sent"}
        for _ in range(20)
    ]
    marketing[4]["action"] = "Shouted"
    marketing[13]["action"] = " "
    marketing[16]["timestamp"] = "2030-01-01"
    with_rows(frames, "marketing", *marketing)
    return frames


def _categorical_text(frames: Frames) -> None:
    frames["events"] = frames["events"].astype({"event_type": "category"})


E = "events"
CASES: dict[str, Callable[[], Frames]] = {
    "valid": export,
    "offset_timestamp": added(
        E, {"customer_id": "c1", "timestamp": "2024-03-01T12:00:00+02:00", "event_type": "login"}
    ),
    "date_with_time": changed("customers", 0, "signup_date", "2024-01-01 17:45:00"),
    "leading_zeros": seven_zero_ids,
    "extra_customer_column": with_frames(segment=lambda f: f["customers"].insert(2, "seg", "x")),
    "unknown_event_column": with_frames(colour=lambda f: f[E].insert(3, "colour", "red")),
    "no_nps_no_marketing": lambda: {
        k: v for k, v in export().items() if k not in ("nps", "marketing")
    },
    "no_csat_column": dropped("tickets", "csat"),
    "no_customers": dropped("customers"),
    "no_events": dropped(E),
    "unparseable_date": changed("customers", 1, "signup_date", "31/12/2024"),
    "unparseable_timestamp": changed(E, 0, "timestamp", "yesterday"),
    "unparseable_mrr": changed("subscriptions", 0, "mrr", "$100"),
    "fractional_seats": changed("subscriptions", 0, "seats", "2.5"),
    "unparseable_boolean": changed("exit_reasons", 0, "avoidable", "maybe"),
    "mixed_iso_formats": added(
        E,
        {"customer_id": "c1", "timestamp": "2024-03-01T10:00", "event_type": "login"},
        {"customer_id": "c1", "timestamp": "2024-03-01T10:00:00.5+01:00", "event_type": "login"},
    ),
    "no_mrr_column": dropped("subscriptions", "mrr"),
    "no_event_type_column": dropped(E, "event_type"),
    "no_event_customer_column": lambda: dropped(
        E, "customer_id", base=added(E, event("e1", "c1", "s1", "2024-03-05"), base=linked_export)
    )(),
    "empty_customers": emptied("customers"),
    "empty_events": emptied(E),
    **{
        f"duplicate_{table}": repeated_row(table)
        for table in ("customers", "subscriptions", "tickets", "invoices")
    },
    "negative_mrr": changed("subscriptions", 0, "mrr", "-10"),
    "negative_amount": changed("invoices", 0, "amount", "-10"),
    "empty_event_type": changed(E, 1, "event_type", "  "),
    "end_before_start": changed("subscriptions", 1, "end_date", "2024-01-15"),
    "resolved_before_opened": changed("tickets", 0, "resolved_at", "2024-02-01T00:00:00Z"),
    "paid_before_issued": changed("invoices", 0, "paid_at", "2024-02-20"),
    "due_before_issued": changed("invoices", 0, "due_at", "2024-02-01"),
    "future_event": changed(E, 0, "timestamp", "2024-06-01T00:00:01Z"),
    "future_signup": changed("customers", 0, "signup_date", "2024-06-02"),
    "future_nps": changed("nps", 0, "responded_at", "2030-01-01"),
    "scheduled_end_and_due": scheduled_ends,
    "csat_out_of_range": changed("tickets", 0, "csat", "9"),
    "nps_out_of_range": changed("nps", 0, "score", "11"),
    "unknown_priority": changed("tickets", 0, "priority", "Whatever"),
    "unknown_action": changed("marketing", 0, "action", "Whatever"),
    "unknown_exit_category": changed("exit_reasons", 0, "category", "Whatever"),
    "priority_case_and_spaces": changed("tickets", 0, "priority", " URGENT "),
    "eight_empty_event_types": added(
        E, *[{"customer_id": "c1", "timestamp": "2024-03-01", "event_type": ""}] * 8
    ),
    "unknown_customers": with_frames(
        events=lambda f: with_rows(
            f, E, {"customer_id": "ghost", "timestamp": "2024-03-01", "event_type": "x"}
        ),
        nps=lambda f: with_rows(
            f, "nps", {"customer_id": "ghost", "responded_at": "2024-03-01", "score": "5"}
        ),
    ),
    "customer_without_subscription": added(
        "customers", {"customer_id": "c3", "signup_date": "2024-03-01"}
    ),
    "overlapping_subscriptions": added(
        "subscriptions",
        {
            "subscription_id": "s3",
            "customer_id": "c2",
            "start_date": "2024-04-01",
            "end_date": "2024-04-15",
            "mrr": "10",
            "plan": "addon",
        },
    ),
    "back_to_back": added(
        "subscriptions",
        {
            "subscription_id": "s3",
            "customer_id": "c2",
            "start_date": "2024-05-01",
            "end_date": "2024-05-20",
            "mrr": "10",
            "plan": "pro",
        },
    ),
    "events_outside_every_subscription": added(
        E,
        {"customer_id": "c2", "timestamp": "2024-02-01T00:00:00Z", "event_type": "in"},
        {"customer_id": "c2", "timestamp": "2024-04-30T23:59:59Z", "event_type": "in"},
        {"customer_id": "c2", "timestamp": "2024-05-01T00:00:00Z", "event_type": "out"},
        {"customer_id": "c2", "timestamp": "2024-01-31T23:59:59Z", "event_type": "out"},
        {"customer_id": "c1", "timestamp": "2023-12-31T12:00:00Z", "event_type": "out"},
    ),
    "exit_while_subscribed": added(
        "exit_reasons", {"customer_id": "c1", "churned_at": "2024-04-01", "category": "product"}
    ),
    "win_back": added(
        "subscriptions",
        {
            "subscription_id": "s3",
            "customer_id": "c2",
            "start_date": "2024-05-20",
            "end_date": "",
            "mrr": "60",
            "plan": "pro",
        },
    ),
    "linked": linked_export,
    "unknown_status": _status([" Active ", "gone"]),
    "repeated_event_ids": added(
        E,
        event("e1", "c1", "s1", "2024-03-05"),
        event("e1", "c1", "s1", "2024-03-06"),
        event("e2", "c2", "s2", "2024-03-07"),
        base=linked_export,
    ),
    "event_exported_twice": lambda: added(
        E, linked_export()["events"].iloc[0].to_dict(), base=linked_export
    )(),
    "unknown_subscription": added(E, event("e3", "c1", "s404", "2024-03-05"), base=linked_export),
    "other_customers_subscription": added(
        E, event("e3", "c1", "s2", "2024-03-05"), base=linked_export
    ),
    "outside_own_subscription": spanning_subscriptions,
    "no_subscription_id": added(
        E, event("e3", "c1", "", "2023-12-31T00:00:00Z"), base=linked_export
    ),
    "exit_for_active_status": _status(["active", "active"]),
    "churned_without_exit_reason": emptied("exit_reasons", base=linked_export),
    "churned_without_exit_table": dropped("exit_reasons", base=linked_export),
    "churned_while_subscribed": both_churned_by_status,
    "cancelled_with_notice": cancelled_with_notice,
    "errors_to_list": two_errors,
    "end_date_early": changed("subscriptions", 1, "end_date", "2024-01-01"),
    "unknown_event_customer": added(
        E, {"customer_id": "zz", "timestamp": "2024-03-01", "event_type": "x"}
    ),
    "nps_42": changed("nps", 0, "score", "42"),
    "csat_0": changed("tickets", 0, "csat", "0"),
    "categorical_event_type": with_frames(categorical=_categorical_text),
    "findings_in_every_chunk": _many_bad_events,
}
LARGE = {"many_linked_events": many_events(linked=True), "many_events": many_events(False)}


def assert_same_report(folder: Path, chunk_sizes: tuple[int, ...], now: pd.Timestamp = NOW) -> None:
    """validate_export's report in chunks of each size is validate_folder's."""
    expected = validate_folder(folder, now)[1]
    for chunk_rows in chunk_sizes:
        streamed = validate_export(folder, now, chunk_rows=chunk_rows)
        assert [f.describe() for f in streamed.findings] == [
            f.describe() for f in expected.findings
        ]
        assert streamed == expected


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("name", CASES)
def test_every_contract_export_gets_the_same_report_in_chunks(
    tmp_path: Path, name: str, fmt: str
) -> None:
    folder = write_export(CASES[name](), tmp_path / name, fmt)
    assert_same_report(folder, (3, 1_000_000))
    assert_same_report(folder, (2,), now=pd.Timestamp("2031-01-01"))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("name", LARGE)
def test_many_events_get_the_same_counts_across_chunk_boundaries(
    tmp_path: Path, name: str, fmt: str
) -> None:
    assert_same_report(write_export(LARGE[name](), tmp_path, fmt), (7_919,))


def test_parquet_with_native_types_gets_the_same_report(tmp_path: Path) -> None:
    frames = _many_bad_events()
    typed = parse_tables(RawTables(**frames))  # type: ignore[arg-type]
    for table, frame in typed.present().items():
        kept = frame.astype({"event_type": "category"}) if table == E else frame
        kept.to_parquet(tmp_path / f"{table}.parquet", index=False)
    assert_same_report(tmp_path, (4,))


FOLDER_PROBLEMS: dict[str, dict[str, str]] = {
    "unknown_files": {"notes.csv": "a,b\n1,2\n"},
    "unreadable_parquet": {"events.parquet": "not parquet"},
    "unreadable_csv": {"events.csv": "a,a\n1,2\n"},  # a header naming a column twice
    "ragged_csv": {
        "marketing.csv": "customer_id,timestamp,channel,action\nc1,2024-03-01,x,open\nc1\n"
    },
    "csv_beside_parquet": {"customers.csv": "customer_id,signup_date\nzz,2024-01-01\n"},
    "bad_features_yaml": {"features.yaml": "sign_in: [unclosed\n"},
}


@pytest.mark.parametrize("name", FOLDER_PROBLEMS)
def test_folder_problems_get_the_same_report(tmp_path: Path, name: str) -> None:
    folder = write_export(export(), tmp_path, "parquet")
    for file, text in FOLDER_PROBLEMS[name].items():
        (folder / file).write_text(text)
        if file.endswith(".csv") and file != "customers.csv":
            (folder / file.replace(".csv", ".parquet")).unlink(missing_ok=True)
    assert_same_report(folder, (1,))


def test_a_folder_that_does_not_exist_gets_the_same_report(tmp_path: Path) -> None:
    assert_same_report(tmp_path / "nowhere", (3,))


def test_the_ravenstack_export_gets_the_same_findings_in_chunks(tmp_path: Path) -> None:
    """SOURCE.md's inconsistencies: repeated usage ids, usage outside subscriptions, churn flags."""
    source = shared_data_dir() / "ravenstack"
    assert source.is_dir(), f"public data sets expected in {source} (set CHURN_SHARED_DATA)"
    folder = import_to_folder("ravenstack", source, tmp_path / "out")
    now = pd.Timestamp("2030-01-01", tz="UTC")
    expected = validate_folder(folder, now)[1]
    assert {f.rule for f in expected.findings} >= {"duplicate_event_id", "churned_while_subscribed"}
    streamed = validate_export(folder, now, chunk_rows=997)
    assert streamed == expected


def test_large_tables_are_only_read_in_chunks_of_at_most_chunk_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events and marketing never go through the whole-file reader; the rest do."""
    folder = write_world(generate_world(40, 3, seed=5), tmp_path / "world")
    whole: list[str] = []
    passes: dict[str, list[list[int]]] = {}  # per table, the chunk sizes of each pass
    read_file, file_chunks = contract_stream.read_file, contract_stream.file_chunks

    def spy_whole(path: Path) -> pd.DataFrame:
        whole.append(path.stem)
        return read_file(path)

    def spy_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
        sizes: list[int] = []
        passes.setdefault(path.stem, []).append(sizes)
        for chunk in file_chunks(path, chunk_rows):
            sizes.append(len(chunk))
            yield chunk

    monkeypatch.setattr(contract_stream, "read_file", spy_whole)
    monkeypatch.setattr(contract_stream, "file_chunks", spy_chunks)
    report = validate_export(folder, NOW, chunk_rows=500)
    assert set(whole) == {
        "customers",
        "subscriptions",
        "tickets",
        "invoices",
        "nps",
        "exit_reasons",
    }
    assert set(passes) == {"events", "marketing"}
    assert max(size for table in passes.values() for sizes in table for size in sizes) <= 500
    for table in passes:  # the checking pass reads every row once
        assert sum(passes[table][-1]) == report.row_counts[table]
    assert len(passes["events"][-1]) > 2
    monkeypatch.undo()
    assert report == validate_folder(folder, NOW)[1]

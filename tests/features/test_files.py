"""An export read by DuckDB from its files builds the same tables as the export read into pandas."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract import RawTables, load_valid_tables
from features.engine import build_features, build_labeled_set, load_export
from features.errors import ChurnError
from features.files import FileExport, read_file_export
from features.generator import generate_world, write_world
from features.importers.telco import AS_OF as TELCO_AS_OF
from features.importers.telco import label_spec as telco_spec
from features.importers.telco import write_telco
from features.labels import LabelSpec
from features.pipeline import default_as_of, snapshot_as_of
from features.sql import DuckDBEngine

NOW = pd.Timestamp("2030-01-01", tz="UTC")


def both(folder: Path) -> tuple[RawTables, FileExport]:
    """The folder read the in-memory way (validated, cleaned) and as a file export."""
    tables, _ = load_valid_tables(folder, NOW)
    return tables, read_file_export(folder)


def assert_same_builds(folder: Path) -> None:
    tables, export = both(folder)
    as_of = default_as_of(tables)
    assert default_as_of(export) == as_of
    expected = build_labeled_set(tables, as_of, LabelSpec())
    got = build_labeled_set(export, as_of, LabelSpec())
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs == expected.attrs
    day = snapshot_as_of(tables)
    assert snapshot_as_of(export) == day
    pd.testing.assert_frame_equal(build_features(export, [day]), build_features(tables, [day]))


def as_csv(source: Path, target: Path, drop: dict[str, list[str]] | None = None) -> Path:
    """``source``'s Parquet tables rewritten as CSV (text, offsets in the timestamps)."""
    target.mkdir(parents=True)
    for path in source.glob("*.parquet"):
        frame = pd.read_parquet(path).drop(columns=(drop or {}).get(path.stem, []))
        frame.to_csv(target / f"{path.stem}.csv", index=False)
    return target


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "parquet"
    return write_world(generate_world(250, 9, seed=11), folder)


def test_a_parquet_export_builds_the_labeled_set_and_snapshot_of_the_pandas_path(
    small_world_dir: Path,
) -> None:
    assert_same_builds(small_world_dir)


def test_a_csv_export_builds_the_same_tables_as_the_pandas_path(
    tiny_world: Path, tmp_path: Path
) -> None:
    assert_same_builds(as_csv(tiny_world, tmp_path / "csv"))


def test_absent_optional_columns_are_typed_nulls_and_their_features_absent(
    tiny_world: Path, tmp_path: Path
) -> None:
    folder = as_csv(
        tiny_world,
        tmp_path / "csv",
        drop={"events": ["user_id", "feature", "value"], "tickets": ["category", "csat"],
              "subscriptions": ["seats"]},
    )  # fmt: skip
    assert_same_builds(folder)
    _, known = load_export(read_file_export(folder))
    assert "events.user_id" not in known.sources and "tickets.csat" not in known.sources


def test_an_imported_snapshot_export_without_events_builds_the_same(tmp_path: Path) -> None:
    header = (
        "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,"
        "InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,"
        "StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,"
        "Churn"
    )
    rows = [
        f"c-{i},Female,{i % 2},Yes,No,{i % 30},Yes,No,DSL,No,Yes,No,No,No,No,"
        f"{'Month-to-month' if i % 3 else 'One year'},Yes,Electronic check,{20 + i}.5,"
        f"{(20 + i) * (i % 30)},{'Yes' if i % 4 == 0 else 'No'}"
        for i in range(60)
    ]
    src = tmp_path / "src" / "Telco-Customer-Churn.csv"
    src.parent.mkdir()
    src.write_text("\n".join([header, *rows]) + "\n")
    folder = write_telco(src, tmp_path / "telco")
    tables, export = both(folder)
    spec = telco_spec()
    expected = build_labeled_set(tables, [TELCO_AS_OF], spec)
    got = build_labeled_set(export, [TELCO_AS_OF], spec)
    assert len(got) == 60
    pd.testing.assert_frame_equal(got, expected)


def test_rows_of_unknown_customers_and_resolutions_before_openings_are_cleaned(
    tiny_world: Path, tmp_path: Path
) -> None:
    folder = as_csv(tiny_world, tmp_path / "csv")
    tickets = pd.read_csv(folder / "tickets.csv")
    first = tickets.index[0]
    tickets.loc[first, "resolved_at"] = "2000-01-01 00:00:00+00:00"  # before it was opened
    stranger = tickets.iloc[[1]].assign(customer_id="nobody", ticket_id="t-stranger")
    pd.concat([tickets, stranger]).to_csv(folder / "tickets.csv", index=False)
    tables, export = both(folder)
    engine, _ = load_export(export)
    loaded = engine.fetch("SELECT * FROM tickets")
    assert "t-stranger" not in set(loaded["ticket_id"])
    assert pd.isna(
        loaded.set_index("ticket_id").loc[tickets.loc[first, "ticket_id"], "resolved_at"]
    )
    assert tables.tickets is not None and len(loaded) == len(tables.tickets)
    assert_same_builds(folder)


def test_a_folder_without_subscriptions_is_refused_with_the_files_it_needs(
    tiny_world: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "customers.parquet").write_bytes((tiny_world / "customers.parquet").read_bytes())
    with pytest.raises(ChurnError, match=r"subscriptions\.parquet or subscriptions\.csv"):
        read_file_export(folder)


def test_the_files_are_parsed_once_for_the_export_date_the_as_of_dates_and_the_build(
    tiny_world: Path, tmp_path: Path
) -> None:
    folder = as_csv(tiny_world, tmp_path / "csv")
    tables, export = both(folder)
    as_of = default_as_of(export)
    for path in folder.glob("*.csv"):
        if path.stem != "customers":
            path.unlink()  # a second parse would find nothing
    pd.testing.assert_frame_equal(
        build_labeled_set(export, as_of, LabelSpec()),
        build_labeled_set(tables, as_of, LabelSpec()),
    )


def test_text_is_trimmed_of_the_whitespace_pandas_strips_and_only_of_it(tmp_path: Path) -> None:
    """Only text starting or ending with a space or control character is trimmed (the fast
    path): every such value reads as ``str.strip`` of the six ASCII whitespace characters."""
    from features.files import parsed_column

    values = ["plain", " lead", "trail\t", "\n\r both \x0b\x0c", "in side", "", "   ",
              "\x01ctl", "é ", None]  # fmt: skip
    path = tmp_path / "t.parquet"
    pd.DataFrame({"v": values}).to_parquet(path)
    engine = DuckDBEngine()
    sql = parsed_column("events", "user_id", "v", "VARCHAR")
    got = engine.con.execute(f"SELECT {sql} FROM read_parquet('{path}')").fetchall()
    expected = [(v.strip(" \t\n\r\x0b\x0c") or None) if v is not None else None for v in values]
    assert [row[0] for row in got] == expected

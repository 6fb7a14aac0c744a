"""The Telco importer: one snapshot row per customer -> customers + subscriptions whose labels,
seen from the one as-of date, reproduce the source's Churn flag."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.contract import validate, validate_folder
from features.engine import build_labeled_set
from features.importers import SourceError, import_to_folder, telco
from features.importers.telco import import_telco, write_telco

NOW = pd.Timestamp("2030-01-01", tz="UTC")
HEADER = (
    "customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,"
    "InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,"
    "StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn"
)
SERVICES = "Yes,No,DSL,No,Yes,No,No,No,No"


def _row(cid: str, tenure: str, contract: str, monthly: str, total: str, churn: str) -> str:
    return (f"{cid},Female,0,Yes,No,{tenure},{SERVICES},{contract},Yes,Electronic check,"
            f"{monthly},{total},{churn}")  # fmt: skip


def _csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "src" / "Telco-Customer-Churn.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_labels_from_the_one_as_of_date_equal_the_churn_column(
    shared: Path, head: Callable[..., Path]
) -> None:
    src = head(shared / "telco" / "Telco-Customer-Churn.csv", 401)
    source = pd.read_csv(src)
    tables = import_telco(src)
    labeled = build_labeled_set(tables, [telco.AS_OF], telco.label_spec())
    assert len(labeled) == len(source) == 400
    assert labeled["label_complete"].all()
    expected = source.set_index("customerID")["Churn"].eq("Yes").astype("int8")
    got = labeled.set_index("customer_id")["churned"]
    assert got.sort_index().tolist() == expected.sort_index().tolist()


def test_mapping_tenure_mrr_plan_and_attributes(tmp_path: Path) -> None:
    src = _csv(
        tmp_path,
        _row("new-1", "0", "Two year", "20.00", " ", "No"),
        _row("old-1", "12", "Month-to-month", "70.50", "846.00", "Yes"),
    )
    tables = import_telco(src)
    subs = tables.subscriptions.set_index("customer_id")
    assert subs.loc["new-1", "start_date"] == pd.Timestamp("2024-05-31")  # as_of - 0 months - 1d
    assert subs.loc["old-1", "start_date"] == pd.Timestamp("2023-05-31")
    assert pd.isna(subs.loc["new-1", "end_date"])
    assert subs.loc["old-1", "end_date"] == pd.Timestamp(telco.CHURN_DAY)
    assert subs.loc["old-1", "mrr"] == 70.5
    customers = tables.customers.set_index("customer_id")
    assert customers.loc["old-1", "plan"] == "Month-to-month"
    assert customers.loc["old-1", "senior_citizen"] == "No"
    assert pd.isna(customers.loc["new-1", "total_charges"])  # blank: not yet billed
    assert customers.loc["old-1", "total_charges"] == 846.0
    assert validate(tables, NOW).ok


def test_tenure_zero_customers_get_a_row_and_are_not_churned(tmp_path: Path) -> None:
    src = _csv(tmp_path, _row("new-1", "0", "Two year", "20.00", " ", "No"),
               _row("old-1", "3", "One year", "30", "90", "Yes"))  # fmt: skip
    labeled = build_labeled_set(import_telco(src), [telco.AS_OF], telco.label_spec())
    assert dict(zip(labeled["customer_id"], labeled["churned"], strict=True)) == {
        "new-1": 0,
        "old-1": 1,
    }


def test_malformed_tenure_names_file_row_column_and_writes_nothing(tmp_path: Path) -> None:
    src = _csv(tmp_path, _row("a", "12", "One year", "30", "360", "No"),
               _row("b", "twelve", "One year", "30", "360", "No"))  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(SourceError) as error:
        write_telco(src, out)
    message = str(error.value)
    assert "Telco-Customer-Churn.csv" in message
    assert "column tenure" in message
    assert "row 2: 'twelve'" in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]  # no temporary left behind


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (_row("b", "5", "Weekly", "30", "150", "No"), "column Contract"),
        (_row("b", "5", "One year", "30", "150", "Maybe"), "column Churn"),
        (_row("b", "5", "One year", "-3", "150", "No"), "column MonthlyCharges"),
        (_row("a", "5", "One year", "30", "150", "No"), "column customerID"),  # duplicate id
        (_row("b", "5", "One year", "30", "150", "No") + ",extra", "different number of cells"),
    ],
)
def test_malformed_rows_are_errors(tmp_path: Path, row: str, needle: str) -> None:
    src = _csv(tmp_path, _row("a", "12", "One year", "30", "360", "No"), row)
    with pytest.raises(SourceError, match=needle):
        import_to_folder("telco", src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failed_import_leaves_the_previous_folder_untouched(tmp_path: Path) -> None:
    good = _csv(tmp_path, _row("a", "12", "One year", "30", "360", "No"))
    out = write_telco(good, tmp_path / "out")
    before = sorted(p.name for p in out.iterdir())
    bad = _csv(tmp_path, _row("a", "x", "One year", "30", "360", "No"))
    with pytest.raises(SourceError):
        write_telco(bad, out)
    assert sorted(p.name for p in out.iterdir()) == before


def test_written_folder_is_valid_and_records_its_source(tmp_path: Path) -> None:
    src = _csv(tmp_path, _row("a", "12", "One year", "30", "360", "No"))
    out = write_telco(tmp_path / "src", tmp_path / "out")  # the folder works as --src too
    tables, report = validate_folder(out, NOW)
    assert report.ok and report.warning_count == 0
    assert tables is not None and "payment_method" in tables.customers.columns
    note = json.loads((out / "import.json").read_text())
    assert note["as_of"] == [str(telco.AS_OF)]
    assert set(note["files"]) == {src.name}


def test_missing_column_and_missing_file_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "Telco-Customer-Churn.csv"
    path.write_text(HEADER.replace(",Churn", "") + "\n")
    with pytest.raises(SourceError, match="has no column Churn"):
        import_telco(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no Telco"):
        import_telco(tmp_path / "empty")
    with pytest.raises(SourceError, match="does not exist"):
        import_telco(tmp_path / "nowhere.csv")

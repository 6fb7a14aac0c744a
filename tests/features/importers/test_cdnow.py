"""The CDNOW importer: purchases -> events with value; one open zero-MRR subscription each;
non-contractual labels reproduce the literature's calibration/holdout churn share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from features.contract import validate
from features.engine import build_labeled_set
from features.importers import SourceError, cdnow, import_to_folder
from features.importers.cdnow import import_cdnow

NOW = pd.Timestamp("2030-01-01", tz="UTC")


def test_master_slice_maps_purchases_customers_and_subscriptions(
    shared: Path, head: Callable[..., Path]
) -> None:
    src = head(shared / "cdnow" / "CDNOW_master.txt", 301)
    source = pd.read_csv(src, sep=r"\s+", dtype={"customer_id": str})
    tables = import_cdnow(src)
    events = tables.events
    assert events is not None and len(events) == 300
    assert set(events["event_type"]) == {"purchase"}
    assert events["value"].sum() == pytest.approx(source["dollar_value"].sum())
    assert events["customer_id"].iloc[0] == "00001"  # zero padding kept
    assert str(events["timestamp"].dt.tz) == "UTC"
    first = pd.to_datetime(source.groupby("customer_id")["date"].min().astype(str))
    customers = tables.customers.set_index("customer_id")
    assert (customers["signup_date"] == first.reindex(customers.index)).all()
    subs = tables.subscriptions
    assert len(subs) == len(customers) and subs["end_date"].isna().all()
    assert (subs["mrr"] == 0).all()
    report = validate(tables, NOW)
    assert report.ok and report.warning_count == 0


def test_sample_layout_is_read_with_master_ids(shared: Path, head: Callable[..., Path]) -> None:
    tables = import_cdnow(head(shared / "cdnow" / "CDNOW_sample.txt", 3))
    assert tables.events is not None
    assert tables.events["customer_id"].tolist() == ["00004"] * 3


def test_holdout_labels_reproduce_the_published_churn_share(shared: Path) -> None:
    tables = import_cdnow(shared / "cdnow" / "CDNOW_sample.txt")
    labeled = build_labeled_set(tables, [cdnow.HOLDOUT_START], cdnow.label_spec())
    assert len(labeled) == 2357
    assert labeled["label_complete"].all()  # the holdout ends with the log
    assert int(labeled["churned"].sum()) == 1673  # SOURCE.md: 1,673 of 2,357 (71.0 %)


def test_training_as_of_dates_keep_the_whole_horizon_inside_the_log() -> None:
    dates = cdnow.training_as_of(91)
    assert dates[0] == cdnow.FIRST_FULL_MONTH
    assert dates[-1] == pd.Timestamp("1998-04-01").date()


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (" 00002 19971350  1   12.00", "column date"),
        (" 00002 19970112  x   12.00", "column number_of_cds"),
        (" 00002 19970112  1   $12.00", "column dollar_value"),
        (" 0000B 19970112  1   12.00", "column customer_id"),
        (" 00002 19970112  1", "do not have the 4 fields"),
    ],
)
def test_malformed_rows_name_file_row_and_column_and_write_nothing(
    tmp_path: Path, line: str, needle: str
) -> None:
    src = tmp_path / "CDNOW_master.txt"
    src.write_text(
        "customer_id  date number_of_cds  dollar_value\r\n"
        " 00001 19970101  1   11.77\r\n" + line + "\r\n"
    )
    with pytest.raises(SourceError, match=needle) as error:
        import_to_folder("cdnow", src, tmp_path / "out")
    assert "CDNOW_master.txt" in str(error.value)
    assert "row 2" in str(error.value)
    assert not (tmp_path / "out").exists()

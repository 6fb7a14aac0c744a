"""The ChurnSim importer: billing periods become subscriptions, the event log is streamed with its
own vocabulary, bad rows are named by file, row and column, and the imported folder validates,
builds features and trains end to end (a seeded folder in the ChurnSim format, built here)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet
import pytest
from rich.console import Console
from typer.testing import CliRunner

from churn.cli import app
from features.contract import load_valid_tables, read_raw_tables, validate_folder
from features.engine import build_labeled_set
from features.errors import ChurnError
from features.importers import SourceError, import_to_folder
from features.importers.churnsim import (
    EXPORT_DATE,
    FILES,
    import_churnsim,
    label_spec,
    observation_labeled_set,
    read_observations,
)

NOW = pd.Timestamp("2030-01-01", tz="UTC")
VOCABULARY = ["search", "add_contact", "schedule_meeting", "cancel_meeting", "email_lead"]
PLANS = {"basic_mthly": (200.0, 10), "standard_mthly": (500.0, 25)}
ADD_ONS = {
    "meetings": (300.0, 5000, "schedule_meeting"),
    "search_unlimited": (200.0, 5000, "search"),
}
runner = CliRunner()


def simulate(folder: Path, accounts: int = 600, seed: int = 7) -> Path:
    """A ChurnSim-format folder: monthly base plan + two add-ons, 10 % churn at each renewal
    (likelier with little use), several users per account, events simulated to the end of the
    current period (past the export date, as ChurnSim does), the book's observation rows."""
    rng = np.random.default_rng(seed)
    start_days = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 181, accounts), "D")
    export = pd.Timestamp(EXPORT_DATE)
    account_rows, sub_rows, obs_rows, events = [], [], [], []
    for account, start in enumerate(start_days):
        use = rng.gamma(2.0, 0.5)  # events per user and day
        users = int(rng.integers(2, 6))
        plan = "standard_mthly" if rng.random() < 0.3 else "basic_mthly"
        discount = 0.25 if rng.random() < 0.3 else 0.0
        k, churn = 0, None
        while True:
            begin, end = start + pd.DateOffset(months=k), start + pd.DateOffset(months=k + 1)
            mrr, seats = PLANS[plan]
            sub_rows.append((account, plan, begin, end, mrr * (1 - discount), seats, "users",
                             1, discount))  # fmt: skip
            for product, (price, quantity, units) in ADD_ONS.items():
                sub_rows.append((account, product, begin, end, price, quantity, units, 1,
                                 discount))  # fmt: skip
            if end >= export:
                break
            if rng.random() < 0.1 + 0.1 * (use < 0.5):
                churn = end
                break
            k += 1
        last = churn if churn is not None else end
        days = pd.date_range(start, last - pd.Timedelta(days=1), freq="D").to_numpy()
        counts = rng.poisson(use * users, len(days))
        seconds = rng.integers(0, 86400, counts.sum()).astype("timedelta64[s]")
        events.append((account, np.repeat(days, counts) + seconds, users))
        for j in range(1, k + 2):
            observed = start + pd.DateOffset(months=j) - pd.Timedelta(days=5)
            if observed + pd.DateOffset(months=1) >= export or (churn and observed >= churn):
                break
            obs_rows.append((account, observed, churn == start + pd.DateOffset(months=j)))
        account_rows.append(
            (account, rng.choice(["web", "appstore1"]),
             (start - pd.Timedelta(days=int(rng.integers(100, 3000)))).date(),
             rng.choice(["CA", "NY", "TX"]), start.date(), churn.date() if churn else "")
        )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(account_rows, columns=["account_id", "channel", "date_of_birth", "country",
                                        "start_date", "churn_date"]).to_csv(
        folder / FILES["accounts"], index=False)  # fmt: skip
    subs = pd.DataFrame(sub_rows, columns=["account_id", "product", "start_date", "end_date",
                                           "mrr", "quantity", "units", "bill_period_months",
                                           "discount"])  # fmt: skip
    for column in ("start_date", "end_date"):
        subs[column] = subs[column].dt.strftime("%Y-%m-%d")
    subs.to_csv(folder / FILES["subscriptions"], index=False)
    stamps = np.concatenate([times for _, times, _ in events])
    n = len(stamps)
    pd.DataFrame(
        {
            "account_id": np.repeat([a for a, _, _ in events], [len(t) for _, t, _ in events]),
            "event_time": pd.DatetimeIndex(stamps).strftime("%Y-%m-%d %H:%M:%S"),
            "event_type": rng.choice(VOCABULARY, n, p=[0.4, 0.2, 0.2, 0.1, 0.1]),
            "user_id": np.concatenate([rng.integers(0, u, len(t)) for _, t, u in events]),
            "event_value": np.where(rng.random(n) < 0.1, 1.5, np.nan),
        }
    ).to_csv(folder / FILES["events"], index=False, compression="gzip")
    obs = pd.DataFrame(obs_rows, columns=["account_id", "observation_date", "is_churn"])
    obs["observation_date"] = obs["observation_date"].dt.strftime("%Y-%m-%d")
    obs.to_csv(folder / FILES["observations"], index=False)
    pd.DataFrame({"event_type_id": range(len(VOCABULARY)), "event_type": VOCABULARY}).to_csv(
        folder / FILES["event_types"], index=False
    )
    return folder


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(tmp_path_factory.mktemp("churnsim") / "src")


@pytest.fixture(scope="module")
def imported(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_to_folder("churnsim", source, tmp_path_factory.mktemp("out") / "crm")


def tiny(
    folder: Path, events: list[str] | None = None, subscriptions: list[str] | None = None
) -> Path:
    """Two accounts by hand: A churns after two periods, B is active with a discounted plan."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILES["accounts"]).write_text(
        "account_id,channel,date_of_birth,country,start_date,churn_date\n"
        "0,web,2019-06-28,IL,2022-01-07,2022-03-07\n"
        "1,appstore1,2020-03-02,GA,2022-08-10,\n"
    )
    (folder / FILES["subscriptions"]).write_text(
        "\n".join(
            subscriptions
            or [
                "account_id,product,start_date,end_date,mrr,quantity,units,bill_period_months,"
                "discount",
                "0,basic_mthly,2022-01-07,2022-02-07,200.0,10,users,1,0.0",
                "0,meetings,2022-01-07,2022-02-07,300,5000,schedule_meeting,1,0.0",
                "0,standard_mthly,2022-02-07,2022-03-07,500.0,25,users,1,0.0",
                "0,meetings,2022-02-07,2022-03-07,300,5000,schedule_meeting,1,0.0",
                "0,search_unlimited,2022-02-07,2022-03-06,200,5000,search,1,0.0",
                "1,basic_mthly,2022-08-10,2022-09-10,150.0,10,users,1,0.25",
                "1,basic_mthly,2022-09-10,2022-10-10,150.0,10,users,1,0.25",
            ]
        )
        + "\n"
    )
    lines = events or [
        "account_id,event_time,event_type,user_id,event_value",
        "0,2022-01-07 00:20:17,search,3,",
        "0,2022-02-09 06:00:59,cancel_meeting,5,2.5",
        "1,2022-09-30 23:59:59,search,0,",
        "1,2022-10-01 00:00:00,search,1,",  # on the export date: a real export has not got it
    ]
    with gzip.open(folder / FILES["events"], "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    (folder / FILES["observations"]).write_text(
        "account_id,observation_date,is_churn\n0,2022-02-02,False\n0,2022-03-02,True\n"
    )
    (folder / FILES["event_types"]).write_text(
        "event_type_id,event_type\n0,search\n1,cancel_meeting\n2,unsub_lead\n"
    )
    return folder


def test_billing_periods_become_one_subscription_each_with_summed_mrr(tmp_path: Path) -> None:
    tables = import_churnsim(tiny(tmp_path / "src")).tables
    subs = tables.subscriptions.sort_values(["customer_id", "start_date"])
    assert subs["subscription_id"].tolist() == ["0-20220107", "0-20220207", "1-20220810",
                                                "1-20220910"]  # fmt: skip
    assert subs["mrr"].tolist() == [500.0, 1000.0, 150.0, 150.0]  # base plan + add-ons
    assert subs["plan"].tolist() == ["basic_mthly", "standard_mthly", "basic_mthly", "basic_mthly"]
    assert subs["seats"].tolist() == [10, 25, 10, 10]  # the base plan's users
    # the add-on ending a day early does not end the period before its base plan
    assert subs["end_date"].iloc[1] == pd.Timestamp("2022-03-07")


def test_accounts_map_to_customers_and_churn_date_is_never_a_column(tmp_path: Path) -> None:
    customers = import_churnsim(tiny(tmp_path / "src")).tables.customers
    assert customers["customer_id"].tolist() == ["0", "1"]
    assert customers["signup_date"].tolist() == [pd.Timestamp("2022-01-07"),
                                                 pd.Timestamp("2022-08-10")]  # fmt: skip
    assert customers["region"].tolist() == ["IL", "GA"]
    assert customers["acquisition_channel"].tolist() == ["web", "appstore1"]
    assert customers["status"].tolist() == ["churned", "active"]
    assert customers["date_of_birth"].iloc[0] == pd.Timestamp("2019-06-28")


def test_date_of_birth_is_written_as_a_microsecond_timestamp(tmp_path: Path) -> None:
    """Spark reads nanosecond Parquet timestamps as integers; microseconds stay timestamps."""
    out = import_to_folder("churnsim", tiny(tmp_path / "src"), tmp_path / "out")
    schema = pyarrow.parquet.read_schema(out / "customers.parquet")
    assert schema.field("date_of_birth").type == pyarrow.timestamp("us")
    customers = read_raw_tables(out).customers
    assert pd.api.types.is_datetime64_any_dtype(customers["date_of_birth"])
    assert "churn_date" not in customers.columns


def test_events_are_streamed_verbatim_and_cut_at_the_export_date(tmp_path: Path) -> None:
    out = import_to_folder("churnsim", tiny(tmp_path / "src"), tmp_path / "out")
    events = read_raw_tables(out).events
    assert events is not None
    assert events["customer_id"].tolist() == ["0", "0", "1"]
    assert events["event_type"].tolist() == ["search", "cancel_meeting", "search"]
    assert events["user_id"].tolist() == ["3", "5", "0"]
    assert events["timestamp"].iloc[1] == pd.Timestamp("2022-02-09 06:00:59", tz="UTC")
    assert events["value"].isna().tolist() == [True, False, True]
    note = json.loads((out / "import.json").read_text())
    assert note["events"]["rows_read"] == 4
    assert note["events"]["rows_at_or_after_export_date_dropped"] == 1
    assert set(note["files"]) == set(FILES.values()) and all(
        len(digest) == 64 for digest in note["files"].values()
    )
    assert note["label"] == {"kind": "contractual", "horizon_days": 30, "gap_days": 7,
                             "observed_until": "2022-09-30"}  # fmt: skip


def test_an_unreadable_event_time_names_file_row_and_column_and_writes_nothing(
    tmp_path: Path,
) -> None:
    lines = ["account_id,event_time,event_type,user_id,event_value",
             "0,2022-01-07 00:20:17,search,3,", "0,07/01/2022,search,3,"]  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(SourceError, match=r"events\.csv\.gz.*row 2, column event_time"):
        import_to_folder("churnsim", tiny(tmp_path / "src", events=lines), out)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_a_row_with_an_extra_cell_is_an_error_naming_the_row(tmp_path: Path) -> None:
    lines = ["account_id,event_time,event_type,user_id,event_value",
             "0,2022-01-07 00:20:17,search,3,", "0,2022-01-08 00:20:17,search,3,,oops"]  # fmt: skip
    with pytest.raises(SourceError, match=r"1 row \(2\) cannot be read"):
        import_to_folder("churnsim", tiny(tmp_path / "src", events=lines), tmp_path / "out")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("7,2022-01-07 00:20:17,search,3,", r"column account_id: 1 row \(3\) is not known account"),
        ("0,2022-01-07 00:20:17,login,3,", r"column event_type: 1 row \(3\) is not event types"),
        (",2022-01-07 00:20:17,search,3,", r"column account_id: 1 row \(3\) is not filled in"),
    ],
)
def test_events_outside_the_accounts_or_vocabulary_are_errors(
    tmp_path: Path, row: str, message: str
) -> None:
    lines = ["account_id,event_time,event_type,user_id,event_value",
             "0,2022-01-07 00:20:17,search,3,", "0,2022-01-07 00:20:18,search,3,", row]  # fmt: skip
    with pytest.raises(SourceError, match=message):
        import_to_folder("churnsim", tiny(tmp_path / "src", events=lines), tmp_path / "out")


def test_a_billing_period_without_a_base_plan_is_an_error(tmp_path: Path) -> None:
    subscriptions = [
        "account_id,product,start_date,end_date,mrr,quantity,units,bill_period_months,discount",
        "0,basic_mthly,2022-01-07,2022-02-07,200.0,10,users,1,0.0",
        "0,meetings,2022-02-07,2022-03-07,300,5000,schedule_meeting,1,0.0",
        "1,basic_mthly,2022-08-10,2022-09-10,150.0,10,users,1,0.25",
    ]
    with pytest.raises(SourceError, match=r"subscriptions\.csv, column units: 1 row \(2\)"):
        import_churnsim(tiny(tmp_path / "src", subscriptions=subscriptions))


def test_a_failed_import_keeps_the_previous_folder(tmp_path: Path) -> None:
    out = import_to_folder("churnsim", tiny(tmp_path / "good"), tmp_path / "out")
    before = (out / "import.json").read_text()
    bad = ["account_id,event_time,event_type,user_id,event_value", "0,never,search,3,"]
    with pytest.raises(SourceError):
        import_to_folder("churnsim", tiny(tmp_path / "bad", events=bad), out)
    assert (out / "import.json").read_text() == before


def test_contract_labels_at_the_observation_dates_equal_is_churn(imported: Path) -> None:
    tables, _ = load_valid_tables(imported, NOW)
    observations = read_observations(imported)
    days = sorted(observations["as_of"].dt.date.unique())
    labels = build_labeled_set(tables, days, label_spec())
    joined = observations.merge(labels, on=["customer_id", "as_of"], suffixes=("_source", ""))
    assert len(joined) == len(observations) and joined["label_complete"].all()
    assert (joined["churned"] == joined["churned_source"]).all()
    assert observations["churned"].sum() > 50


def test_observation_rows_get_features_as_of_their_own_date(imported: Path) -> None:
    tables, _ = load_valid_tables(imported, NOW)
    observations = read_observations(imported)
    labeled = observation_labeled_set(tables, observations)
    keys = ["customer_id", "as_of", "churned"]
    expected = observations.sort_values(keys[:2]).reset_index(drop=True)
    pd.testing.assert_frame_equal(labeled[keys], expected[keys], check_dtype=False)
    assert labeled["label_complete"].all()
    # point in time: the first observation of an account counts only its events before that day
    row = labeled.iloc[0]
    events = tables.events
    assert events is not None
    mine = events[events["customer_id"] == row["customer_id"]]
    window = mine["timestamp"].dt.tz_localize(None)
    recent = (window < row["as_of"]) & (window >= row["as_of"] - pd.Timedelta(days=30))
    assert row["events_30d"] == recent.sum()


def test_an_observation_of_an_account_without_a_subscription_is_an_error(imported: Path) -> None:
    tables, _ = load_valid_tables(imported, NOW)
    ghost = pd.DataFrame({"customer_id": pd.Series(["0"], dtype="string"),
                          "as_of": pd.to_datetime(["2021-06-01"]).astype("datetime64[us]"),
                          "churned": np.array([0], dtype="int8")})  # fmt: skip
    with pytest.raises(ChurnError, match="1 observation rows name an account"):
        observation_labeled_set(tables, ghost)


def test_import_validate_features_train_end_to_end(
    imported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import churn.cli

    monkeypatch.setattr(churn.cli, "console", Console(width=200))
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("CHURN_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CHURN_STORE_DIR", str(tmp_path / "store"))
    report = validate_folder(imported, NOW)[1]
    assert report.ok, report.format_errors()
    result = runner.invoke(app, ["validate", "--data", str(imported)])
    assert result.exit_code == 0, result.output
    labeled = tmp_path / "labeled.parquet"
    result = runner.invoke(app, ["features", "--data", str(imported), "--monthly",
                                 "--horizon", "30d", "--out", str(labeled)])  # fmt: skip
    assert result.exit_code == 0, result.output
    config = tmp_path / "train.yaml"
    config.write_text("horizon_days: 30\nshap_sample: 300\nfit:\n  max_trees: 40\n")
    result = runner.invoke(app, ["train", "--features", str(labeled), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "out-of-time" in result.output and "roc_auc" in result.output.lower().replace("-", "_")

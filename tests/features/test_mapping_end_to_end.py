"""Stripe + Segment + Zendesk + HubSpot exports -> one preset mapping -> a served score.

The vendor sample (features/importers/vendor_sample.py) is written in each vendor's format with
its truth beside it; every step runs through the ``churn`` command as a user would, and what
the import produced is checked against the truth: MRR, churn dates, exit reasons, tickets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from churn.cli import app
from features.importers.vendor_sample import generate_vendor_sample, write_vendor_sample

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    import churn.cli

    monkeypatch.setattr(churn.cli, "console", Console(width=200))
    monkeypatch.setattr(churn.cli, "err_console", Console(width=200, stderr=True))


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vendor") / "exports"
    return write_vendor_sample(generate_vendor_sample(customers=400, months=24, seed=7), folder)


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_vendor_exports_import_validate_train_and_score_end_to_end(
    exports: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, store = tmp_path / "data", tmp_path / "store"
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("CHURN_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CHURN_STORE_DIR", str(store))
    monkeypatch.setenv("CHURN_DATA_DIR", str(data))
    monkeypatch.setenv("CHURN_MODEL_NAME", "acme-churn")  # train, score-all and serve agree

    imported = invoke("import", "--map", str(exports / "mapping.yaml"), "--src", str(exports),
                      "--out", str(data))  # fmt: skip
    assert "customers 400" in imported and "import.json" in imported
    assert "acct_internal" in imported  # the unbilled test account is reported, not imported
    validated = invoke("validate", "--data", str(data))
    assert "valid" in validated and "minor units" not in validated
    truth = {p.stem: pd.read_parquet(p) for p in (exports / "truth").glob("*.parquet")}
    check_against_truth(data, truth)

    labeled = tmp_path / "labeled.parquet"
    invoke("features", "--data", str(data), "--monthly", "--out", str(labeled))
    check_ticket_features(pd.read_parquet(labeled), truth["tickets"])
    trained = invoke("train", "--features", str(labeled))
    assert "acme-churn v1" in trained  # champion or challenger: the gate's call, not ours
    invoke("snapshot", "--data", str(data))
    scored = invoke("score-all", "--model", "acme-churn@1", "--no-rules")
    assert "customers scored" in scored
    scores = pd.read_parquet(store / "scores.parquet")
    active = truth["customers"]["churned_at"].isna().sum()
    assert len(scores) == active  # every customer still subscribed on the export day
    assert scores["customer_id"].isin(truth["customers"]["customer_id"]).all()


def check_against_truth(data: Path, truth: dict[str, pd.DataFrame]) -> None:
    subs = pd.read_parquet(data / "subscriptions.parquet")
    merged = subs.merge(truth["subscriptions"], on="subscription_id", suffixes=("", "_truth"))
    assert len(merged) == len(subs) == len(truth["subscriptions"])
    np.testing.assert_allclose(merged["mrr"], merged["mrr_truth"], rtol=1e-9)
    assert (merged["customer_id"] == merged["customer_id_truth"]).all()

    # churn date: the end of a customer's last subscription, for those who left
    ends = subs.groupby("customer_id")["end_date"].agg(
        lambda e: None if e.isna().any() else e.max()
    )
    customers = truth["customers"].set_index("customer_id")
    churned = customers["churned_at"].dropna()
    assert set(ends.dropna().index) == set(churned.index)
    assert (pd.to_datetime(ends[churned.index]).dt.date == pd.to_datetime(churned).dt.date).all()

    exits = pd.read_parquet(data / "exit_reasons.parquet").set_index("customer_id").sort_index()
    expected = truth["exit_reasons"].set_index("customer_id").sort_index()
    assert list(exits.index) == list(expected.index)
    assert (exits["category"] == expected["category"]).all()
    assert (exits["main_reason"] == expected["main_reason"]).all()
    assert exits["avoidable"].astype(object).where(exits["avoidable"].notna(), None).tolist() == (
        expected["avoidable"].tolist()
    )
    assert (exits["churned_at"] == pd.to_datetime(expected["churned_at"], utc=True)).all()

    tickets = pd.read_parquet(data / "tickets.parquet")
    assert len(tickets) == len(truth["tickets"])
    counts = tickets.groupby("customer_id").size()
    assert counts.equals(truth["tickets"].groupby("customer_id").size().loc[counts.index])
    np.testing.assert_allclose(tickets["csat"].mean(), truth["tickets"]["csat"].mean())

    customers_out = pd.read_parquet(data / "customers.parquet").set_index("customer_id")
    assert customers_out["industry"].notna().sum() >= 390  # HubSpot attributes linked by domain


def check_ticket_features(labeled: pd.DataFrame, tickets: pd.DataFrame) -> None:
    """tickets_90d and csat_90d recomputed from the vendor's own tickets, at every as-of date."""
    opened = pd.to_datetime(tickets["opened_at"], utc=True)
    resolved = pd.to_datetime(tickets["resolved_at"], utc=True)
    for as_of in sorted(labeled["as_of"].unique())[-3:]:
        moment = pd.Timestamp(as_of).tz_localize("UTC")
        rows = labeled[labeled["as_of"] == as_of].set_index("customer_id")
        window = (opened >= moment - pd.Timedelta(days=90)) & (opened < moment)
        expected = tickets[window].groupby("customer_id").size()
        expected = expected[expected.index.isin(rows.index)]  # customers active at as_of
        assert len(expected) > 20
        got = rows["tickets_90d"]
        assert (got.reindex(expected.index) == expected).all()
        assert (got.drop(expected.index, errors="ignore") == 0).all()
        done = resolved.notna() & (resolved < moment) & (resolved >= moment - pd.Timedelta(days=90))
        csat = tickets[done].groupby("customer_id")["csat"].mean().dropna()
        csat = csat[csat.index.isin(rows.index)]
        np.testing.assert_allclose(rows.loc[csat.index, "csat_90d"], csat)


def test_the_sample_written_with_cents_as_mrr_is_warned_about(
    exports: Path, tmp_path: Path
) -> None:
    """Stripe's unit_amount x quantity copied into mrr without saying the unit: the doctor warns."""
    data = tmp_path / "data"
    invoke("import", "--map", str(exports / "mapping.yaml"), "--src", str(exports),
           "--out", str(data))  # fmt: skip
    subs = pd.read_parquet(data / "subscriptions.parquet")
    subs.assign(mrr=(subs["mrr"] * 100).round()).to_parquet(data / "subscriptions.parquet")
    result = runner.invoke(app, ["validate", "--data", str(data)])
    output = " ".join(result.output.split())
    assert result.exit_code == 0  # a warning, not an error: the numbers may be right
    assert "mrr_in_minor_units" in output and "units: minor" in output

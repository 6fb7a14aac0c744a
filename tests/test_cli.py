"""The `churn` command: readable errors, exit codes, and nothing written on failure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from churn.cli import app, parse_dates, parse_days
from features.errors import ChurnError

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps tables at the terminal width, which differs between runs; fix it wide."""
    import churn.cli

    monkeypatch.setattr(churn.cli, "console", Console(width=200))
    monkeypatch.setattr(churn.cli, "err_console", Console(width=200, stderr=True))


def broken_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    pd.DataFrame({"customer_id": ["a", "a"], "signup_date": ["2024-01-01", "2024-01-02"]}).to_csv(
        folder / "customers.csv", index=False
    )
    pd.DataFrame(
        {
            "subscription_id": ["s1"],
            "customer_id": ["a"],
            "start_date": ["2024-01-01"],
            "end_date": [""],
            "mrr": ["-5"],
            "plan": ["pro"],
        }
    ).to_csv(folder / "subscriptions.csv", index=False)
    return folder


def test_validate_exits_1_and_names_table_column_and_rule(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", "--data", str(broken_folder(tmp_path))])
    assert result.exit_code == 1
    assert "customers" in result.output and "customer_id" in result.output
    assert "mrr" in result.output


def test_validate_of_a_large_export_keeps_the_contract_and_leaves_out_event_plausibility(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above PROFILED_EVENTS rows events are only streamed: every contract finding, the
    customer-sized plausibility checks, and a note for what needs the whole event log."""
    import churn.cli

    folder = tmp_path / "export"
    folder.mkdir()
    pd.DataFrame({"customer_id": ["a"], "signup_date": ["2024-01-01"]}).to_csv(
        folder / "customers.csv", index=False
    )
    subscriptions = {"subscription_id": ["s1"], "customer_id": ["a"], "start_date": ["2024-01-01"],
                     "end_date": [""], "mrr": ["10"], "plan": ["pro"]}  # fmt: skip
    pd.DataFrame(subscriptions).to_csv(folder / "subscriptions.csv", index=False)
    events = {"customer_id": ["a", "ghost"] * 20, "timestamp": "2024-02-01", "event_type": "x"}
    pd.DataFrame(events).to_csv(folder / "events.csv", index=False)
    small = runner.invoke(app, ["validate", "--data", str(folder)])
    assert small.exit_code == 0 and "no_sign_in_events" in small.output
    monkeypatch.setattr(churn.cli, "PROFILED_EVENTS", 39)
    large = runner.invoke(app, ["validate", "--data", str(folder)])
    assert large.exit_code == 0, large.output
    assert "unknown_customer" in large.output and "no_sign_in_events" not in large.output
    assert "40 event and marketing rows: too many to read whole" in large.output


def test_features_on_invalid_data_fails_cleanly_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "labeled.parquet"
    result = runner.invoke(
        app, ["features", "--data", str(broken_folder(tmp_path)), "--monthly", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".labeled*"))


def test_generate_then_validate_then_features_on_a_tiny_world(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    assert runner.invoke(app, ["generate", "--customers", "200", "--months", "8",
                               "--out", str(data)]).exit_code == 0  # fmt: skip
    assert runner.invoke(app, ["validate", "--data", str(data)]).exit_code == 0
    out = tmp_path / "labeled.parquet"
    result = runner.invoke(app, ["features", "--data", str(data), "--monthly", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "label rate" in " ".join(result.output.split())  # rich wraps at the terminal width
    labeled = pd.read_parquet(out)
    assert {"customer_id", "as_of", "churned", "label_complete"} <= set(labeled.columns)


def test_durations_and_dates_are_parsed_or_rejected_with_a_hint() -> None:
    assert parse_days("90d") == 90 and parse_days("13w") == 91 and parse_days("30") == 30
    with pytest.raises(ChurnError, match="90d"):
        parse_days("three months")
    with pytest.raises(ChurnError, match="YYYY-MM-DD"):
        parse_dates("2024-13-01")


def test_demo_world_builds_a_scored_deployment_with_two_scorings(tmp_path: Path) -> None:
    from serving.history import ScoreHistory

    out = tmp_path / "ui"
    result = runner.invoke(app, ["demo-world", "--out", str(out), "--customers", "300",
                                 "--months", "10", "--seed", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"CHURN_STORE_DIR={out / 'store'}" in result.output.replace("\n", "")
    scores = pd.read_parquet(out / "store" / "scores.parquet")
    assert scores["customer_id"].is_unique and len(scores) > 100
    history = ScoreHistory(out / "store")
    assert len(history.scorings()) == 2
    history.close()


@pytest.fixture()
def private_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A deployment whose MLflow store and artifact folder are given only by the environment."""
    monkeypatch.setenv("CHURN_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("CHURN_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "chosen-artifacts"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CHURN_MODEL_NAME", raising=False)
    return tmp_path


def test_train_writes_the_run_and_model_into_the_artifact_root_of_the_environment(
    small_labeled: pd.DataFrame, private_store: Path
) -> None:
    from mlflow.tracking import MlflowClient

    labeled = private_store / "labeled.parquet"
    small_labeled.to_parquet(labeled)
    config = private_store / "train.yaml"
    config.write_text("valid_dates: 1\nfit:\n  max_trees: 40\n")
    result = runner.invoke(app, ["train", "--features", str(labeled), "--config", str(config)])
    assert result.exit_code == 0, result.output
    client = MlflowClient(f"sqlite:///{private_store}/mlflow.db")
    version = client.get_model_version_by_alias("churn-model", "champion")
    run = client.get_run(str(version.run_id))
    chosen = (private_store / "chosen-artifacts").resolve().as_uri()
    assert run.info.artifact_uri.startswith(chosen)
    assert any((private_store / "chosen-artifacts").rglob("model_card.md"))


def test_train_refuses_an_artifact_root_the_existing_store_does_not_use(
    small_labeled: pd.DataFrame, private_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.registry import configure

    configure(f"sqlite:///{private_store}/mlflow.db", private_store / "first-artifacts")
    labeled = private_store / "labeled.parquet"
    small_labeled.to_parquet(labeled)
    result = runner.invoke(app, ["train", "--features", str(labeled)])
    assert result.exit_code == 1
    assert "first-artifacts" in result.output and "chosen-artifacts" in result.output
    assert "CHURN_MLFLOW_ARTIFACT_ROOT" in result.output and "Traceback" not in result.output

"""The labeled set carries its label spec; train, evaluate and serving follow it end to end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from churn.cli import app
from churn_settings import Settings
from features.pipeline import read_labeled_set
from serving.app import create_app

runner = CliRunner()
REPO_PLAYBOOK = Path(__file__).resolve().parents[2] / "playbook.yaml"


@pytest.fixture()
def deployment_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings of a private deployment in ``tmp_path``, through the CLI's environment."""
    import churn.cli

    monkeypatch.setattr(churn.cli, "console", Console(width=200))
    monkeypatch.setattr(churn.cli, "err_console", Console(width=200, stderr=True))
    monkeypatch.setenv("CHURN_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("CHURN_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CHURN_MODEL_NAME", raising=False)
    return tmp_path


def quick_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(f"valid_dates: 1\nfit:\n  max_trees: 60\n{extra}")
    return path


def test_a_30_day_labeled_set_trains_registers_and_serves_a_30_day_model(
    small_world_dir: Path, deployment_env: Path
) -> None:
    labeled_path = deployment_env / "labeled.parquet"
    built = runner.invoke(app, ["features", "--data", str(small_world_dir), "--monthly",
                                "--horizon", "30d", "--out", str(labeled_path)])  # fmt: skip
    assert built.exit_code == 0, built.output
    _, record = read_labeled_set(labeled_path)
    assert record is not None and record["horizon_days"] == 30 and record["origin"] == "export"
    trained = runner.invoke(app, ["train", "--features", str(labeled_path),
                                  "--config", str(quick_config(deployment_env))])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "30-day horizon" in trained.output and "promoted to champion" in trained.output
    snap = runner.invoke(app, ["snapshot", "--data", str(small_world_dir)])
    assert snap.exit_code == 0, snap.output
    settings = Settings(playbook_path=REPO_PLAYBOOK, api_keys="k", reload_poll_seconds=0)
    customer = str(pd.read_parquet(settings.snapshot_path)["customer_id"].iloc[0])
    with TestClient(create_app(settings)) as client:
        response = client.post("/score", json={"customer_id": customer}, headers={"X-API-Key": "k"})
    assert response.status_code == 200, response.text
    assert response.json()["horizon_days"] == 30


def test_a_config_contradicting_the_labeled_set_names_both_values(
    small_world_dir: Path, deployment_env: Path
) -> None:
    labeled_path = deployment_env / "labeled.parquet"
    runner.invoke(app, ["features", "--data", str(small_world_dir), "--monthly",
                        "--horizon", "30d", "--out", str(labeled_path)])  # fmt: skip
    config = quick_config(deployment_env, "horizon_days: 90\n")
    config.write_text("horizon_days: 90\n" + config.read_text().replace("horizon_days: 90\n", ""))
    result = runner.invoke(app, ["train", "--features", str(labeled_path), "--config", str(config)])
    assert result.exit_code == 1
    assert "horizon_days = 90" in result.output and "horizon_days = 30" in result.output


def snapshot_export(folder: Path) -> None:
    """Customers and contracts taken on 2024-08-01; the last dated record is a 2023 signup."""
    customers = pd.DataFrame(
        {"customer_id": [f"c{i:03d}" for i in range(200)], "signup_date": "2023-01-01"}
    )
    ends = [("2024-05-20" if i % 4 == 0 else "") for i in range(200)]  # a quarter churn
    subscriptions = pd.DataFrame(
        {
            "subscription_id": [f"s{i:03d}" for i in range(200)],
            "customer_id": customers["customer_id"],
            "start_date": "2023-01-01",
            "end_date": ends,
            "mrr": [10.0 + i % 7 for i in range(200)],
            "plan": ["a", "b"] * 100,
        }
    )
    folder.mkdir(parents=True)
    customers.to_csv(folder / "customers.csv", index=False)
    subscriptions.to_csv(folder / "subscriptions.csv", index=False)


def test_a_snapshot_export_labels_completely_given_its_export_date(
    deployment_env: Path,
) -> None:
    folder = deployment_env / "export"
    snapshot_export(folder)
    out = deployment_env / "labeled.parquet"
    args = ["features", "--data", str(folder), "--as-of", "2024-05-01", "--horizon", "30d",
            "--out", str(out)]  # fmt: skip
    without = runner.invoke(app, args)
    assert without.exit_code == 0, without.output
    assert "no label is complete" in without.output
    given = runner.invoke(app, [*args, "--observed-until", "2024-08-01"])
    assert given.exit_code == 0, given.output
    labeled, record = read_labeled_set(out)
    assert record is not None and record["observed_until"] == "2024-08-01"
    assert labeled["label_complete"].all()
    # the churners are the customers whose contract ended inside the horizon
    assert labeled["churned"].sum() == 50 and len(labeled) == 200


def test_an_export_date_before_the_last_record_is_refused(deployment_env: Path) -> None:
    folder = deployment_env / "export"
    snapshot_export(folder)
    result = runner.invoke(app, ["features", "--data", str(folder), "--as-of", "2024-05-01",
                                 "--observed-until", "2022-06-01"])  # fmt: skip
    assert result.exit_code == 1
    assert "before the export's last record" in result.output


def test_imported_export_date_is_recorded_and_read_by_features(deployment_env: Path) -> None:
    from features.importers import shared_data_dir

    src = shared_data_dir() / "telco"
    if not src.exists():
        pytest.skip("the shared Telco data set is not beside the repository")
    out = deployment_env / "telco"
    result = runner.invoke(app, ["import", "telco", "--src", str(src), "--out", str(out),
                                 "--observed-until", "2030-01-01"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"observed_until": "2030-01-01"' in (out / "import.json").read_text()
    labeled_path = deployment_env / "telco.parquet"
    built = runner.invoke(app, ["features", "--data", str(out), "--as-of", "2024-06-01",
                                "--horizon", "30d", "--out", str(labeled_path)])  # fmt: skip
    assert built.exit_code == 0, built.output
    _, record = read_labeled_set(labeled_path)
    assert record is not None
    assert record["observed_until"] == "2030-01-01" and record["origin"] == "telco"


def test_three_monthly_dates_with_one_complete_train_with_the_fallback_and_say_so(
    small_world_dir: Path, small_tables: object, deployment_env: Path
) -> None:
    from features.engine import observed_until

    until = pd.Timestamp(observed_until(small_tables))  # type: ignore[arg-type]
    first = (until - pd.Timedelta(days=100)).to_period("M").to_timestamp()  # closed month
    dates = [first + pd.DateOffset(months=k) for k in range(3)]
    labeled_path = deployment_env / "short.parquet"
    built = runner.invoke(app, ["features", "--data", str(small_world_dir), "--as-of",
                                ",".join(f"{d:%Y-%m-%d}" for d in dates),
                                "--out", str(labeled_path)])  # fmt: skip
    assert built.exit_code == 0, built.output
    labeled, _ = read_labeled_set(labeled_path)
    complete = labeled.groupby("as_of")["label_complete"].all()
    assert complete.sum() == 1  # one date closed, two still open
    trained = runner.invoke(app, ["train", "--features", str(labeled_path),
                                  "--config", str(quick_config(deployment_env))])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "stratified random split" in trained.output
    assert "promoted to champion" in trained.output
